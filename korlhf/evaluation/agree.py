"""`korlhf eval agree`: do the metrics agree with people (or a judge)? Do the raters agree with each other?

Reads the ``key.json`` of a `korlhf eval sheet` and one or more ratings files:

- CSV saved by ``sheet.html`` or a filled ``sheet.csv``: columns ``item``, ``slot``, ``rating`` and
  optionally ``rater`` (default: the file name);
- JSON Lines from a judge: ``{"rater", "item", "slot" or "system", "rating"}`` per line.

Reports, per metric, Spearman rho and Kendall tau between the metric of each answer and its mean
rating (`korlhf.agreement.rank_correlations`); for each pair of raters, exact agreement, Cohen's
kappa and Spearman on the answers both rated, and agreement on which system each preferred per
item; and per system its mean rating beside its mean metrics. This is the "compare quantitative
with subjective evaluation" step.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from korlhf.errors import KorlhfError

SKIP = {"index", "len_morphs"}


@dataclass
class Config:
    ratings: list[str] = field(default_factory=list, metadata={
        "help": "ratings files: CSV from sheet.html / sheet.csv, or judge JSON Lines (rater, item, slot|system, rating)"})
    sheet: str = field(default="runs/sheet", metadata={"help": "the `korlhf eval sheet` directory (its key.json)"})
    metrics: list[str] = field(default_factory=list, metadata={"help": "metrics to correlate (default: all per-answer metrics)"})
    out: str | None = field(default=None, metadata={"help": "directory for agree.json and agree.md"})


def read_key(sheet: str | Path) -> dict:
    path = Path(sheet) / "key.json" if Path(sheet).is_dir() else Path(sheet)
    if not path.is_file():
        raise KorlhfError(f"{path} not found: give --sheet the directory `korlhf eval sheet` wrote")
    return json.loads(path.read_text(encoding="utf-8"))


def read_ratings(paths: list[str], key: dict) -> list[tuple[str, str, str, float]]:
    """(rater, item, system, rating) for every rated answer; blank ratings are skipped."""
    from korlhf.records import read_jsonl

    if not paths:
        raise KorlhfError("no ratings files given: korlhf eval agree RATINGS.csv [MORE...] --sheet DIR")
    slots = {str(item["item"]): item["slots"] for item in key["items"]}
    systems = set(key["systems"])
    out = []
    for path in map(Path, paths):
        if path.suffix == ".jsonl":
            rows = [(f"{path}:{n}", r) for n, r in read_jsonl(path)]
        elif path.is_file():
            with open(path, encoding="utf-8-sig", newline="") as f:
                rows = [(f"{path}:{n}", r) for n, r in enumerate(csv.DictReader(f), 2)]
        else:
            raise KorlhfError(f"ratings file not found: {path}")
        for where, row in rows:
            rating = row.get("rating")
            if rating is None or str(rating).strip() == "":
                continue
            item = str(row.get("item", ""))
            if item not in slots:
                raise KorlhfError(f"{where}: item {item!r} is not in this sheet ({len(slots)} items); wrong --sheet?")
            system = row.get("system") or slots[item].get(str(row.get("slot", "")))
            if system not in systems:
                raise KorlhfError(f"{where}: no answer {row.get('slot', row.get('system'))!r} for item {item!r}")
            try:
                value = float(rating)
            except ValueError:
                raise KorlhfError(f"{where}: rating {rating!r} is not a number") from None
            if not 1 <= value <= key.get("scale", 5):
                raise KorlhfError(f"{where}: rating {value:g} is outside 1..{key.get('scale', 5)}")
            out.append((str(row.get("rater") or path.stem), item, system, value))
    if not out:
        raise KorlhfError(f"no ratings in {', '.join(paths)}: every 'rating' cell is empty")
    return out


def answer_metrics(key: dict) -> dict[tuple[str, str], dict]:
    """Per-answer metrics of every (item, system) in the sheet (against references if all have one)."""
    from korlhf.evaluation.metrics import score

    pairs = [(str(item["item"]), system, text, item.get("reference"))
             for item in key["items"] for system, text in item["answers"].items()]
    refs = [p[3] for p in pairs]
    references = refs if all(isinstance(r, str) for r in refs) else None
    rows = score([p[2] for p in pairs], references).samples
    return {(p[0], p[1]): {k: v for k, v in row.items() if k not in SKIP} for p, row in zip(pairs, rows, strict=True)}


def rater_agreement(ratings: list[tuple]) -> list[dict]:
    """Exact agreement, Cohen's kappa and Spearman of ratings, and agreement on per-item preference."""
    from korlhf.agreement import agreement_rate, cohen_kappa, rank_correlations

    by_rater: dict[str, dict] = defaultdict(dict)
    for rater, item, system, value in ratings:
        by_rater[rater][(item, system)] = value
    out = []
    for a, b in combinations(sorted(by_rater), 2):
        shared = sorted(set(by_rater[a]) & set(by_rater[b]))
        xa, xb = [by_rater[a][k] for k in shared], [by_rater[b][k] for k in shared]
        pa, pb = _preferences(by_rater[a]), _preferences(by_rater[b])
        items = sorted(set(pa) & set(pb))
        out.append({"raters": f"{a} vs {b}", "answers": len(shared), "exact": agreement_rate(xa, xb),
                    "kappa": cohen_kappa(xa, xb), "spearman": rank_correlations(xa, xb)["spearman"],
                    "items": len(items), "preference": agreement_rate([pa[i] for i in items], [pb[i] for i in items]),
                    "preference_kappa": cohen_kappa([pa[i] for i in items], [pb[i] for i in items])})
    return out


def _preferences(ratings: dict) -> dict[str, str]:
    """Per item, the system rated highest, or "tie" (only items where every answer was rated)."""
    per_item: dict[str, dict] = defaultdict(dict)
    for (item, system), value in ratings.items():
        per_item[item][system] = value
    prefs = {}
    for item, scores in per_item.items():
        if len(scores) >= 2:
            top = max(scores.values())
            winners = [s for s, v in scores.items() if v == top]
            prefs[item] = winners[0] if len(winners) == 1 else "tie"
    return prefs


def main(cfg: Config) -> dict:
    from korlhf.agreement import rank_correlations

    key = read_key(cfg.sheet)
    ratings = read_ratings(cfg.ratings, key)
    mean: dict[tuple, list] = defaultdict(list)
    for _, item, system, value in ratings:
        mean[(item, system)].append(value)
    rated = {k: sum(v) / len(v) for k, v in mean.items()}
    metrics = answer_metrics(key)
    names = cfg.metrics or list(next(iter(metrics.values())))
    unknown = [m for m in names if m not in next(iter(metrics.values()))]
    if unknown:
        raise KorlhfError(f"unknown metric(s) {', '.join(unknown)}; available: {', '.join(next(iter(metrics.values())))}")
    answers = sorted(rated)
    human = [rated[a] for a in answers]
    correlations = [{"metric": m, **rank_correlations([metrics[a][m] for a in answers], human)} for m in names]
    systems = [{"system": s, "answers": sum(1 for a in answers if a[1] == s),
                "rating": _mean([rated[a] for a in answers if a[1] == s]),
                **{m: _mean([metrics[a][m] for a in answers if a[1] == s]) for m in names}}
               for s in key["systems"]]
    result = {"raters": sorted({r[0] for r in ratings}), "ratings": len(ratings), "answers": len(answers),
              "correlations": correlations, "rater_agreement": rater_agreement(ratings), "systems": systems}
    _print(result)
    if cfg.out:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "agree.json").write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
        (out / "agree.md").write_text(to_markdown(result), encoding="utf-8")
    return result


def _mean(values) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def _tables(result: dict) -> list[tuple[str, list[str], list[list]]]:
    corr = [[c["metric"], c["spearman"], c["spearman_p"], c["kendall"], c["kendall_p"], c["n"]]
            for c in sorted(result["correlations"], key=lambda c: -abs(c["spearman"]) if not math.isnan(c["spearman"]) else 0)]
    raters = [[r["raters"], r["answers"], r["exact"], r["kappa"], r["spearman"], r["items"], r["preference"],
               r["preference_kappa"]] for r in result["rater_agreement"]]
    keys = [k for k in result["systems"][0] if k != "system"] if result["systems"] else []
    systems = [[s["system"], *(s[k] for k in keys)] for s in result["systems"]]
    return [
        (f"metric vs mean rating ({result['answers']} answers, raters: {', '.join(result['raters'])})",
         ["metric", "spearman", "p", "kendall", "p", "n"], corr),
        ("agreement between raters", ["raters", "answers", "exact", "kappa", "spearman", "items", "same preference",
                                      "preference kappa"], raters),
        ("per system", ["system", *keys], systems),
    ]


def _print(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from korlhf.evaluation.score import format_value

    console = Console()
    for title, header, rows in _tables(result):
        if not rows:
            continue
        table = Table(*header, title=title)
        for row in rows:
            table.add_row(*map(format_value, row))
        console.print(table)


def to_markdown(result: dict) -> str:
    from korlhf.evaluation.score import format_value

    lines = []
    for title, header, rows in _tables(result):
        lines += [f"### {title}", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        lines += ["| " + " | ".join(map(format_value, row)) + " |" for row in rows] + [""]
    return "\n".join(lines)
