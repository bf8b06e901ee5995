"""Benchmark `korlhf data clean` (repairs, filters, exact + MinHash-LSH near dedup) on 100k records.

Target: 100k records in <= 60 s on the 2-core development machine. The records are built from the
shared KoChatGPT data (real PPO questions x real assistant turns of the dialogue file), replicated
and perturbed: exact copies with whitespace changes, near copies with a few character edits, PII,
stray quotes and refusal boilerplate, so every stage of the cleaner has work to do. The same input
is cleaned twice in one run, with and without near-dedup, to show what near-dedup costs.

    .venv/bin/python benchmarks/bench_clean.py            # 100,000 records
    .venv/bin/python benchmarks/bench_clean.py --n 20000  # quicker
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_records(n: int, seed: int, shared: Path) -> list[dict]:
    from korlhf.data.readers import read_source

    prompts = [r["prompt"] for r in read_source(shared / "kochatgpt" / "kochatgpt_3_PPO.jsonl").records if r["prompt"]]
    dialogues = read_source(shared / "kochatgpt" / "kochatgpt_1_SFT_conversation.jsonl").records
    turns = [m["content"] for r in dialogues for m in r["messages"] if m["role"] == "assistant"]
    rng = random.Random(seed)
    records = []
    for i in range(n):
        roll = rng.random()
        if records and roll < 0.15:  # exact copy of an earlier record, spaces changed
            base = rng.choice(records)
            record = {**base, "prompt": base["prompt"].replace(" ", "  ", 1)}
        elif records and roll < 0.30:  # near copy: a few character edits in the answer
            base = rng.choice(records)
            record = {**base, "response": _edit(base["response"], rng, rng.randint(1, 3))}
        else:
            answer = rng.choice(turns) if rng.random() < 0.5 else rng.choice(turns) + " " + rng.choice(turns)
            record = {"prompt": rng.choice(prompts), "response": answer}
            if rng.random() < 0.05:
                record["response"] += f" 문의는 010-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}로 주세요."
            if rng.random() < 0.05:
                record["response"] = "'저는 인공지능 챗봇이며, " + record["response"]
        records.append({**record, "source": "bench", "id": f"bench-{i + 1}"})
    return records


def _edit(text: str, rng: random.Random, k: int) -> str:
    chars = list(text)
    for _ in range(k):
        pos = rng.randrange(len(chars))
        chars[pos] = rng.choice("가나다라마바사아자차카타파하")
    return "".join(chars)


def run(path: Path, out: Path, near_dedup: bool) -> tuple[float, float, dict]:
    """Wall seconds, CPU seconds of this process (steadier on a shared machine), the report."""
    import json

    from korlhf.data import clean

    start, cpu = time.perf_counter(), time.process_time()
    paths = clean.main(clean.Config(files=[str(path)], out=str(out), near_dedup=near_dedup))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return seconds, cpu, json.loads(paths["report_json"].read_text(encoding="utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars in the measured output
    sys.path.insert(0, str(REPO))
    from korlhf.records import write_jsonl

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        records = make_records(args.n, args.seed, args.shared)
        write_jsonl(tmp / "bench.jsonl", records)
        size_mb = (tmp / "bench.jsonl").stat().st_size / 1e6
        chars = sum(len(r["prompt"]) + len(r["response"]) for r in records) / len(records)
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        results = {}
        for near in (False, True):
            results[near] = run(tmp / "bench.jsonl", tmp / f"out-{near}", near)
    print(f"\n{args.n:,} records ({size_mb:.0f} MB, {chars:.0f} characters each on average), "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"load average before the run: {load}")
    print(f"{'configuration':<42} {'wall s':>7} {'CPU s':>6} {'records/s':>10} {'kept':>8} {'rejected':>9}")
    for near, (seconds, cpu, report) in results.items():
        name = "clean, exact dedup + near dedup (default)" if near else "clean, exact dedup only (--no-near_dedup)"
        totals = report["totals"]
        print(f"{name:<42} {seconds:7.1f} {cpu:6.1f} {args.n / seconds:10,.0f} {totals['kept']:8,} "
              f"{totals['rejected']:9,}")
    ratio = results[True][1] / results[False][1]
    reasons = results[True][2]["files"][0]["reasons"]
    print(f"near dedup costs {ratio:.2f}x the CPU time of the run without it; rejected by reason: {reasons}")
    verdict = "within" if results[True][0] <= 60 else "OVER"
    print(f"target: 100k records in <= 60 s: {verdict} ({results[True][0]:.1f} s)")
    print(f"reproduce: .venv/bin/python benchmarks/bench_clean.py --n {args.n} --seed {args.seed}")


if __name__ == "__main__":
    main()
