"""`korlhf serve` throughput at 1, 4 and 16 concurrent clients, batched vs one request at a time.

Starts `korlhf serve` as its own process twice on the same model (``--max_batch_size 16``, then 1),
as a user runs it, and sends --requests greedy chat requests from C concurrent clients for each C;
reports requests/s (median of --repeats alternating rounds) and p50/p90 latency. Greedy answers must be identical in both modes and at every
concurrency (batching must not change an answer); the script exits non-zero if one differs.

    .venv/bin/python benchmarks/bench_serve.py [--model runs/demo/sft] [--requests 96] [--max_tokens 32] [--repeats 3]

Without --model (or with a folder that does not exist) it builds a tiny random GPT-2 in a
temporary folder, which measures the server, not a useful model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
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


async def run_clients(url: str, name: str, questions: list[str], concurrency: int, max_tokens: int, stream: bool):
    import httpx

    queue: asyncio.Queue = asyncio.Queue()
    for i, q in enumerate(questions):
        queue.put_nowait((i, q))
    answers, latencies = [None] * len(questions), []

    async def client(http):
        while not queue.empty():
            i, question = queue.get_nowait()
            body = {"model": name, "messages": [{"role": "user", "content": question}], "max_tokens": max_tokens,
                    "temperature": 0, "stream": stream}
            began = time.perf_counter()
            if stream:  # every piece as it comes; the answer is their concatenation
                async with http.stream("POST", url + "/v1/chat/completions", json=body, timeout=600) as response:
                    response.raise_for_status()
                    pieces = [json.loads(line[6:])["choices"][0]["delta"].get("content", "")
                              async for line in response.aiter_lines()
                              if line.startswith("data: {") and json.loads(line[6:])["choices"]]
                answers[i] = "".join(pieces)
            else:
                response = await http.post(url + "/v1/chat/completions", json=body, timeout=600)
                response.raise_for_status()
                answers[i] = response.json()["choices"][0]["message"]["content"]
            latencies.append(time.perf_counter() - began)

    async with httpx.AsyncClient() as http:
        began = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        wall = time.perf_counter() - began
    return answers, wall, latencies


def measure(model: str, batch: int, levels: list[int], questions: list[str], max_tokens: int, stream: bool) -> dict:
    """Start `korlhf serve` as its own process (as a user runs it), then time the clients from this one."""
    import httpx

    from korlhf.serve.server import Config  # noqa: F401  (fails here, not in the child, without the extra)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "korlhf", "serve", "--model", model, "--model_name", "bench", "--port", str(port),
               "--max_batch_size", str(batch), "--max_new_tokens", str(max_tokens), "--log_level", "warning"]
    server = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise SystemExit(f"korlhf serve exited: {server.stderr.read()}")
            try:
                httpx.get(url + "/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit("korlhf serve did not start within 120 s") from None
                time.sleep(0.2)
        asyncio.run(run_clients(url, "bench", questions[:2], 1, max_tokens, stream))  # warm-up
        return {c: asyncio.run(run_clients(url, "bench", questions, c, max_tokens, stream)) for c in levels}
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/demo/sft")
    parser.add_argument("--requests", type=int, default=96)
    parser.add_argument("--max_tokens", type=int, default=32)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of both modes, alternating; medians reported")
    parser.add_argument("--stream", action="store_true", help="streamed requests (server-sent events)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    print("command: .venv/bin/python benchmarks/bench_serve.py " + " ".join(sys.argv[1:]))
    levels = [int(c) for c in args.concurrency.split(",")]
    questions = [f"{WORDS[i % len(WORDS)]}에 대해 {'자세히 ' * (i % 3)}알려 주세요. ({i})" for i in range(args.requests)]
    modes = {"batched": 16, "one at a time": 1}
    runs: dict[str, list[dict]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model if Path(args.model).is_dir() else tiny_model(Path(tmp))
        print(f"model: {model}, {args.requests} greedy {'streamed ' if args.stream else ''}requests of up to {args.max_tokens} tokens per level, "
              f"{args.repeats} rounds")
        for _ in range(args.repeats):  # alternating, so a slow spell of the machine hits both modes
            for mode, batch in modes.items():
                runs[mode].append(measure(model, batch, levels, questions, args.max_tokens, args.stream))
    reference = runs["one at a time"][0][levels[0]][0]
    same = all(run[c][0] == reference for by_mode in runs.values() for run in by_mode for c in levels)
    rate = {(mode, c): statistics.median(len(run[c][2]) / run[c][1] for run in by_mode)
            for mode, by_mode in runs.items() for c in levels}
    print("\n| clients | mode | requests/s (median) | all rounds | p50 latency s | p90 latency s |\n"
          "|---|---|---|---|---|---|")
    for c in levels:
        for mode, by_mode in runs.items():
            lat = sorted(x for run in by_mode for x in run[c][2])
            p90 = statistics.quantiles(lat, n=10)[-1] if len(lat) > 1 else lat[0]
            rounds = ", ".join(f"{len(run[c][2]) / run[c][1]:.1f}" for run in by_mode)
            print(f"| {c} | {mode} | {rate[mode, c]:.2f} | {rounds} | {statistics.median(lat):.2f} | {p90:.2f} |")
    top = levels[-1]
    for c in sorted({levels[0], top}):
        print(f"batched at {top} clients vs one at a time at {c}: {rate['batched', top] / rate['one at a time', c]:.2f}x "
              "requests/s (medians)")
    print(f"greedy answers {'identical in every run' if same else 'DIFFER between runs'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
