"""`korlhf serve` throughput at 1, 4 and 16 concurrent clients, batched vs one request at a time.

Starts the server in this process twice on the same model (``--max_batch_size 16``, then 1),
sends --requests greedy chat requests from C concurrent clients for each C, and reports
requests/s and p50/p90 latency. Greedy answers must be identical in both modes and at every
concurrency (batching must not change an answer); the script exits non-zero if one differs.

    .venv/bin/python benchmarks/bench_serve.py [--model runs/demo/sft] [--requests 48] [--max_tokens 64]

Without --model (or with a folder that does not exist) it builds a tiny random GPT-2 in a
temporary folder, which measures the server, not a useful model.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORDS = ["사과", "바다", "서울", "겨울", "음악", "한글", "기차", "커피", "우주", "김치", "단풍", "축구"]


def tiny_model(folder: Path) -> str:
    from korlhf.demo_data import demo_corpus
    from korlhf.tiny import save_tiny, train_tokenizer

    tokenizer = train_tokenizer(list(demo_corpus(seed=0, n=2000)), vocab_size=3000)
    return str(save_tiny(folder / "gpt2", None, arch="gpt2", tokenizer=tokenizer))


async def run_clients(url: str, name: str, questions: list[str], concurrency: int, max_tokens: int):
    import httpx

    queue: asyncio.Queue = asyncio.Queue()
    for i, q in enumerate(questions):
        queue.put_nowait((i, q))
    answers, latencies = [None] * len(questions), []

    async def client(http):
        while not queue.empty():
            i, question = queue.get_nowait()
            body = {"model": name, "messages": [{"role": "user", "content": question}], "max_tokens": max_tokens,
                    "temperature": 0}
            began = time.perf_counter()
            response = await http.post(url + "/v1/chat/completions", json=body, timeout=600)
            latencies.append(time.perf_counter() - began)
            response.raise_for_status()
            answers[i] = response.json()["choices"][0]["message"]["content"]

    async with httpx.AsyncClient() as http:
        began = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        wall = time.perf_counter() - began
    return answers, wall, latencies


def measure(model: str, batch: int, levels: list[int], questions: list[str], max_tokens: int) -> dict:
    from korlhf.serve.server import Background, Config

    server = Background(Config(model=model, model_name="bench", port=0, max_batch_size=batch,
                               max_new_tokens=max_tokens, log_level="warning"))
    try:
        asyncio.run(run_clients(server.url, "bench", questions[:2], 1, max_tokens))  # warm-up
        return {c: asyncio.run(run_clients(server.url, "bench", questions, c, max_tokens)) for c in levels}
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/demo/sft")
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--max_tokens", type=int, default=64)
    parser.add_argument("--concurrency", default="1,4,16")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    print("command: .venv/bin/python benchmarks/bench_serve.py " + " ".join(sys.argv[1:]))
    levels = [int(c) for c in args.concurrency.split(",")]
    questions = [f"{WORDS[i % len(WORDS)]}에 대해 {'자세히 ' * (i % 3)}알려 주세요. ({i})" for i in range(args.requests)]
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model if Path(args.model).is_dir() else tiny_model(Path(tmp))
        print(f"model: {model}, {args.requests} greedy requests of up to {args.max_tokens} tokens per level")
        results = {mode: measure(model, batch, levels, questions, args.max_tokens)
                   for mode, batch in (("batched", 16), ("one at a time", 1))}
    reference = results["one at a time"][levels[0]][0]
    same = all(r[c][0] == reference for r in results.values() for c in levels)
    print("\n| clients | mode | requests/s | p50 latency s | p90 latency s |\n|---|---|---|---|---|")
    for c in levels:
        for mode, by_level in results.items():
            _, wall, lat = by_level[c]
            p90 = statistics.quantiles(lat, n=10)[-1] if len(lat) > 1 else lat[0]
            print(f"| {c} | {mode} | {len(lat) / wall:.2f} | {statistics.median(lat):.2f} | {p90:.2f} |")
    top, low = levels[-1], levels[0]
    speedup = results["one at a time"][low][1] / results["batched"][top][1]  # same request count: wall ratio
    print(f"\nbatched at {top} clients vs one at a time ({low} client(s)): {speedup:.2f}x requests/s; greedy "
          f"answers {'identical in every run' if same else 'DIFFER between runs'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
