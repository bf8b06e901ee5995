"""The results of `korlhf eval judge`: one row per model, by category and turn; terminal, Markdown, CSV, PNG.

Single mode: the mean 1-10 rating per category, per turn and overall (FastChat's ``show_result``:
"First turn", "Second turn", "Average"), judgments without a rating (-1) left out. Pairwise mode:
FastChat's ``display_result_pairwise``: a match (both orders of one question's turn) is a win when
both orders name the same winner, otherwise a tie; ``win_rate`` = wins / matches, and
``win_rate_adjusted`` counts a tie as half a win; the baseline's own row is left out. The adjusted
win rate is also given per category and turn.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

# MT-Bench's category order (its radar plot's); other categories follow in order of appearance.
MT_BENCH = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")


def _categories(records: list[dict]) -> list[str]:
    seen = list(dict.fromkeys(r["category"] for r in records))
    return [c for c in MT_BENCH if c in seen] + [c for c in seen if c not in MT_BENCH]


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else math.nan


def summarize(records: list[dict], mode: str, baseline: str | None = None) -> dict:
    """``{"columns": [...], "rows": [{"model": ..., column: value}]}``."""
    return _single(records) if mode == "single" else _pairwise(records, baseline)


def _single(records: list[dict]) -> dict:
    categories = _categories(records)
    turns = sorted({r["turn"] for r in records})
    columns = [*categories, *(f"turn {t}" for t in turns), "average", "judged", "failed"]
    rows = []
    for model in dict.fromkeys(r["model"] for r in records):
        mine = [r for r in records if r["model"] == model]
        ok = [r for r in mine if r["score"] != -1]
        row = {"model": model}
        row.update({c: _mean([r["score"] for r in ok if r["category"] == c]) for c in categories})
        row.update({f"turn {t}": _mean([r["score"] for r in ok if r["turn"] == t]) for t in turns})
        row.update(average=_mean([r["score"] for r in ok]), judged=len(ok), failed=len(mine) - len(ok))
        rows.append(row)
    return {"columns": columns, "rows": rows}


def _outcomes(records: list[dict]):
    """(record, winner or None for a tie, loser) per usable match, as FastChat counts them."""
    for r in records:
        g1, g2 = r["g1_winner"], r["g2_winner"]
        if "error" in (g1, g2):
            continue
        if g1 == "tie" or g1 != g2:
            yield r, None, None
        else:
            yield r, r[g1], r["model_2" if g1 == "model_1" else "model_1"]


def _pairwise(records: list[dict], baseline: str | None) -> dict:
    categories = _categories(records)
    turns = sorted({r["turn"] for r in records})
    counts: dict = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))  # model -> group -> [win, loss, tie]
    for r, winner, loser in _outcomes(records):
        for group in ("all", r["category"], f"turn {r['turn']}"):
            if winner is None:
                counts[r["model_1"]][group][2] += 1
                counts[r["model_2"]][group][2] += 1
            else:
                counts[winner][group][0] += 1
                counts[loser][group][1] += 1
    models = list(dict.fromkeys(m for r in records for m in (r["model_1"], r["model_2"])))
    columns = ["win", "loss", "tie", "win_rate", "loss_rate", "win_rate_adjusted", *categories,
               *(f"turn {t}" for t in turns), "failed"]
    rows = []
    for model in models:
        if model == baseline:
            continue
        win, loss, tie = counts[model]["all"]
        total = win + loss + tie
        row = {"model": model, "win": win, "loss": loss, "tie": tie,
               "win_rate": round(win / total, 4) if total else math.nan,
               "loss_rate": round(loss / total, 4) if total else math.nan,
               "win_rate_adjusted": _adjusted(counts[model]["all"])}
        row.update({g: _adjusted(counts[model][g]) for g in [*categories, *(f"turn {t}" for t in turns)]})
        row["failed"] = sum(1 for r in records if model in (r["model_1"], r["model_2"])
                            and "error" in (r["g1_winner"], r["g2_winner"]))
        rows.append(row)
    return {"columns": columns, "rows": rows}


def _adjusted(counts: list[int]) -> float:
    win, loss, tie = counts
    total = win + loss + tie
    return round((win + 0.5 * tie) / total, 4) if total else math.nan


def format_value(value, rate: bool = False) -> str:
    """Ratings with 2 decimals, rates with 3, counts as they are."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}" if rate else f"{value:.2f}"
    return str(value)


def markdown(table: dict, rate: bool = False) -> str:
    columns = table["columns"]
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {r['model']} | " + " | ".join(format_value(r[c], rate) for c in columns) + " |"
              for r in table["rows"]]
    return "\n".join(lines) + "\n"


def headline(results: dict) -> str:
    """What was judged, by whom, how many verdicts failed: the line above every results table."""
    head = (f"{results['mode']} judging by {results['judge']} ({results['judge_prompts']} prompts): "
            f"{results['questions']} questions, {results['judgments']} judgments, {results['failed']} without a verdict")
    if results.get("baseline"):
        head += f"; win rates against {results['baseline']}"
    return head


def write_results(results: dict, out: Path, console) -> None:
    """results.md, results.csv, results.png and the table on the terminal."""
    from rich.console import Console
    from rich.table import Table

    table = results["table"]
    head = headline(results)
    rate = results["mode"] == "pairwise"
    (out / "results.md").write_text(f"{head}\n\n{markdown(table, rate)}", encoding="utf-8")
    with open(out / "results.csv", "w", encoding="utf-8-sig", newline="") as f:  # BOM: Excel reads Hangul
        writer = csv.writer(f)
        writer.writerow(["model", *table["columns"]])
        writer.writerows([[r["model"], *(r[c] for c in table["columns"])] for r in table["rows"]])
    shown = Table("model", *table["columns"], title=head)
    for r in table["rows"]:
        shown.add_row(r["model"], *(format_value(r[c], rate) for c in table["columns"]))
    screen = Console()
    if not screen.is_terminal:  # a log file: no wrapping into unreadable columns
        screen = Console(width=max(screen.width, 16 + 11 * len(table["columns"])))
    screen.print(shown)
    api = results["api"]
    console.print(f"{api['requests']} requests ({api['cache_hits']} cached answers reused), "
                  f"{api['prompt_tokens'] + api['completion_tokens']} tokens, ${api['cost_usd']:.4f} -> {out}")
    plot(table, results["mode"], out / "results.png")


def plot(table: dict, mode: str, path: Path) -> None:
    """Grouped bars: per category (and overall), one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    overall = "average" if mode == "single" else "win_rate_adjusted"
    groups = [c for c in table["columns"] if c not in ("win", "loss", "tie", "win_rate", "loss_rate", "judged",
                                                      "failed", overall)] + [overall]
    rows = table["rows"]
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(groups) + 2), 3.6))
    for i, r in enumerate(rows):
        ax.bar([g + i * width for g in range(len(groups))], [float(r[c]) for c in groups], width, label=r["model"])
    ax.set_xticks([g + width * (len(rows) - 1) / 2 for g in range(len(groups))], groups, rotation=30, ha="right")
    ax.set_ylim(0, 10 if mode == "single" else 1)
    ax.set_ylabel("mean rating (1-10)" if mode == "single" else "win rate (tie = 1/2)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
