"""Every `korlhf eval` metric on 10k Korean (prediction, reference) pairs from the shared data.

Pairs: consecutive chatbot answers of the same KoChatGPT dialogue, then KoBEST HellaSwag wrong
ending vs right ending, up to --n. Times one cold `score()` call in a fresh process (Kiwi and
MeCab loading included), then each stage on its own, and, side by side on the same pairs, our
bit-parallel ROUGE-L against rouge_score's LCS table (why ROUGE is computed in korlhf).

    .venv/bin/python benchmarks/bench_metrics.py [--n 10000] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def korean_pairs(data: Path, n: int) -> tuple[list[str], list[str]]:
    conv = (data / "kochatgpt" / "kochatgpt_1_SFT_conversation.jsonl").read_text(encoding="utf-8-sig")
    preds, refs = [], []
    for dialogue in conv.split("<<start conversation>>"):
        answers = [a.strip() for a in re.findall(r"<챗봇>:(.*)", dialogue) if a.strip()]
        for a, b in zip(answers, answers[1:], strict=False):
            preds.append(b)
            refs.append(a)
    for split in ("train", "dev", "test"):
        with open(data / "kobest" / "HellaSwag" / f"{split}.tsv", encoding="utf-8-sig", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                right = int(row["label"])
                for k in range(4):
                    if k != right:
                        preds.append(row[f"choice{k + 1}"])
                        refs.append(row[f"choice{right + 1}"])
    if len(preds) < n:
        sys.exit(f"only {len(preds)} pairs in {data}; lower --n")
    return preds[:n], refs[:n]


def timed(label: str, fn, rows: list) -> object:
    """Wall and CPU seconds (CPU includes Kiwi's worker threads: steadier on a shared machine)."""
    began, cpu = time.perf_counter(), time.process_time()
    out = fn()
    rows.append((label, time.perf_counter() - began, time.process_time() - cpu))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--lcs-pairs", type=int, default=500, help="pairs for the rouge_score LCS comparison")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    print("command: .venv/bin/python benchmarks/bench_metrics.py " + " ".join(sys.argv[1:]))
    preds, refs = korean_pairs(args.data, args.n)
    chars = sum(map(len, preds + refs)) / (2 * len(preds))
    print(f"{len(preds):,} pairs, {chars:.0f} characters per text on average")

    from korlhf.evaluation import metrics

    rows: list[tuple[str, float, float]] = []
    result = timed("score(): every metric, cold (Kiwi + MeCab load included)", lambda: metrics.score(preds, refs), rows)
    metrics.kiwi.cache_clear()
    timed("  Kiwi load", lambda: metrics.kiwi().tokenize(""), rows)
    morph = timed("  Kiwi morphemes (all unique texts)", lambda: metrics.morphemes(preds + refs), rows)
    type(metrics._sacrebleu()["bleu"].tokenizer).__call__.cache_clear()  # MeCab runs again, as in a cold call
    for name in ("bleu", "bleu_char", "chrf", "chrf++"):
        metric = metrics._sacrebleu()[name]
        timed(f"  sacrebleu {name} (corpus + per sample)",
              lambda m=metric: m._extract_corpus_statistics(preds, [refs]), rows)
    pm, rm = morph[:len(preds)], morph[len(preds):]
    timed("  ROUGE-1/2/L, Kiwi morphemes", lambda: [metrics.rouge(p, r) for p, r in zip(pm, rm, strict=True)], rows)
    timed("  ROUGE-1/2/L, characters", lambda: [metrics.rouge(metrics.characters(p), metrics.characters(r))
                                                for p, r in zip(preds, refs, strict=True)], rows)
    timed("  lengths, Hangul ratio, refusals, rep-n, distinct-n",
          lambda: metrics._free_metrics(preds, pm, [{} for _ in preds], {}), rows)
    tokenizer = metrics._sacrebleu()["bleu"].tokenizer
    timed("  self-BLEU (each vs all others)", lambda: metrics.self_bleu([tokenizer(p.rstrip()) for p in preds]), rows)

    from rouge_score.rouge_scorer import _lcs_table

    k = min(args.lcs_pairs, len(preds))
    sample = [(metrics.characters(p), metrics.characters(r)) for p, r in zip(preds[:k], refs[:k], strict=True)]
    ours = timed(f"  LCS, ours, {k} character pairs", lambda: [metrics.lcs_length(p, r) for p, r in sample], rows)
    theirs = timed(f"  LCS, rouge_score table, {k} character pairs",
                   lambda: [_lcs_table(r, p)[-1][-1] for p, r in sample], rows)
    assert ours == theirs, "LCS lengths differ"

    width = max(len(label) for label, _, _ in rows)
    print(f"{'':<{width}}  {'wall s':>7}  {'CPU s':>7}")
    for label, wall, cpu in rows:
        print(f"{label:<{width}}  {wall:7.2f}  {cpu:7.2f}")
    ratio = rows[-1][2] / max(rows[-2][2], 1e-9)
    print(f"rouge_score's LCS takes {ratio:.0f}x the CPU time of ours on the same pairs")
    print(f"corpus: BLEU {result.corpus['bleu']:.2f}  chrF {result.corpus['chrf']:.2f}  "
          f"ROUGE-L {result.corpus['rougeL']:.4f}  self-BLEU {result.corpus['self_bleu']:.2f}")
    print(f"signature: {result.signatures['bleu']}")


if __name__ == "__main__":
    main()
