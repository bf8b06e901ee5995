"""`korlhf eval agree`: do the metrics agree with people (or a judge)? Do the raters agree with each other?

Reads the ``key.json`` of a `korlhf eval sheet` and one or more ratings files:

- CSV saved by ``sheet.html`` or a filled ``sheet.csv``: columns ``item``, ``slot``, ``rating`` and
  optionally ``rater`` (default: the file name);
- JSON Lines from a judge: ``{"rater", "item", "slot" or "system", "rating"}`` per line;
- the judgment JSONL of `korlhf eval judge` in single mode (FastChat's: ``question_id``, ``model``,
  ``judge``, ``score`` 1-10, ``turn``): the judge model is the rater, ``question_id`` the sheet
  item (the sheet and the judge key the same generation files the same way) and ``model`` the
  system (both named by file stem or NAME=PATH). A multi-turn answer, rated as a whole on the
  sheet, gets the mean of its turns' scores; FastChat's failed verdicts (score -1) are left out.

Reports, per metric, Spearman rho and Kendall tau between the metric of each answer and its mean
rating on the sheet's scale (`korlhf.agreement.rank_correlations`), and the same against each
judge's 1-10 ratings (kept apart: a mean over two scales means nothing); for each pair of raters,
Spearman on the answers both rated and agreement on which system each preferred per item, plus
exact agreement and Cohen's kappa when both rate on the same scale; and per system its mean
rating (and each judge's) beside its mean metrics. This is the "compare quantitative with
subjective evaluation" step: metric vs judge, metric vs people and judge vs people in one table set.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import NamedTuple

from korlhf.errors import KorlhfError

SKIP = {"index", "len_morphs"}
JUDGE_SCALE = 10  # `korlhf eval judge` (MT-Bench) rates 1-10


class Rating(NamedTuple):
    rater: str
    item: str
    system: str
    rating: float
    scale: int  # ratings go from 1 to this: the sheet's, or JUDGE_SCALE for a judgment file
    judged: bool = False  # from a judgment file: correlated on its own, not averaged with the sheet's


@dataclass
class Config:
    ratings: list[str] = field(default_factory=list, metadata={
        "help": "ratings files: CSV from sheet.html / sheet.csv, judge JSON Lines (rater, item, slot|system, rating), "
                "or korlhf eval judge's single-mode judgment JSONL (question_id, model, score, turn)"})
    sheet: str = field(default="runs/sheet", metadata={"help": "the `korlhf eval sheet` directory (its key.json)"})
    metrics: list[str] = field(default_factory=list, metadata={"help": "metrics to correlate (default: all per-answer metrics)"})
    out: str | None = field(default=None, metadata={"help": "directory for agree.json and agree.md"})


def read_key(sheet: str | Path) -> dict:
    path = Path(sheet) / "key.json" if Path(sheet).is_dir() else Path(sheet)
    if not path.is_file():
        raise KorlhfError(f"{path} not found: give --sheet the directory `korlhf eval sheet` wrote")
    return json.loads(path.read_text(encoding="utf-8"))


def read_ratings(paths: list[str], key: dict) -> list[Rating]:
    """Every rated answer (rater, item, system, rating, scale); blank ratings are skipped."""
    from korlhf.records import read_jsonl

    if not paths:
        raise KorlhfError("no ratings files given: korlhf eval agree RATINGS.csv [MORE...] --sheet DIR")
    slots = {str(item["item"]): item["slots"] for item in key["items"]}
    out = []
    for path in map(Path, paths):
        if path.suffix == ".jsonl":
            rows = [(f"{path}:{n}", r) for n, r in read_jsonl(path)]
        elif path.is_file():
            with open(path, encoding="utf-8-sig", newline="") as f:
                rows = [(f"{path}:{n}", r) for n, r in enumerate(csv.DictReader(f), 2)]
        else:
            raise KorlhfError(f"ratings file not found: {path}")
        judged = [(w, r) for w, r in rows if "question_id" in r]
        out += _judgments(path, judged, slots, key["systems"])
        for where, row in rows:
            rating = row.get("rating")
            if "question_id" in row or rating is None or str(rating).strip() == "":
                continue
            item = _item(where, row.get("item", ""), slots)
            system = row.get("system") or slots[item].get(str(row.get("slot", "")))
            if system not in key["systems"]:
                raise KorlhfError(f"{where}: no answer {row.get('slot', row.get('system'))!r} for item {item!r}")
            scale = key.get("scale", 5)
            out.append(Rating(str(row.get("rater") or path.stem), item, system, _value(where, rating, scale), scale))
    if not out:
        raise KorlhfError(f"no ratings in {', '.join(paths)}: every 'rating' cell is empty")
    return out


def _item(where: str, item, slots: dict) -> str:
    if str(item) not in slots:
        raise KorlhfError(f"{where}: item {str(item)!r} is not in this sheet ({len(slots)} items); wrong --sheet?")
    return str(item)


def _value(where: str, rating, scale: int, name: str = "rating") -> float:
    try:
        value = float(rating)
    except (TypeError, ValueError):
        raise KorlhfError(f"{where}: {name} {rating!r} is not a number") from None
    if not 1 <= value <= scale:
        raise KorlhfError(f"{where}: {name} {value:g} is outside 1..{scale}")
    return value


def _judgments(path: Path, rows: list[tuple[str, dict]], slots: dict, systems) -> list[Rating]:
    """Ratings from `korlhf eval judge` judgment lines: per (judge, question, model), the mean score
    of its turns, as a person rates the whole conversation on the sheet."""
    turns: dict[tuple, list[float]] = defaultdict(list)
    for where, row in rows:
        if "model" not in row:
            raise KorlhfError(f"{where}: a pairwise judgment (no 'model'); eval agree reads ratings, which "
                              "`korlhf eval judge --mode single` writes")
        item = str(row["question_id"])
        if item not in slots:
            raise KorlhfError(f"{where}: question_id {item!r} is not an item of this sheet ({len(slots)} items); "
                              "judge the generation files the sheet was made from, or give the right --sheet")
        if row["model"] not in systems:
            raise KorlhfError(f"{where}: model {row['model']!r} is not a system of this sheet ({', '.join(systems)}); "
                              "name the answer files as the sheet names its systems (NAME=PATH)")
        if row.get("score") == -1:  # FastChat's mark of a judge answer without a verdict
            continue
        judge = row.get("judge")
        rater = str(judge[0] if isinstance(judge, list) and judge else judge or path.stem)
        turns[(rater, item, row["model"])].append(_value(where, row.get("score"), JUDGE_SCALE, "score"))
    return [Rating(rater, item, system, sum(v) / len(v), JUDGE_SCALE, True) for (rater, item, system), v in turns.items()]


def answer_metrics(key: dict) -> dict[tuple[str, str], dict]:
    """Per-answer metrics of every (item, system) in the sheet (against references if all have one)."""
    from korlhf.evaluation.metrics import score

    pairs = [(str(item["item"]), system, text, item.get("reference"))
             for item in key["items"] for system, text in item["answers"].items()]
    refs = [p[3] for p in pairs]
    references = refs if all(isinstance(r, str) for r in refs) else None
    rows = score([p[2] for p in pairs], references).samples
    return {(p[0], p[1]): {k: v for k, v in row.items() if k not in SKIP} for p, row in zip(pairs, rows, strict=True)}


def rater_agreement(ratings: list[Rating]) -> list[dict]:
    """Spearman of ratings and agreement on per-item preference for each pair of raters; exact
    agreement and Cohen's kappa only between raters on the same scale (a 4 of 5 is no 4 of 10)."""
    from korlhf.agreement import agreement_rate, cohen_kappa, rank_correlations

    by_rater: dict[str, dict] = defaultdict(dict)
    scales = {}
    for r in ratings:
        by_rater[r.rater][(r.item, r.system)] = r.rating
        scales[r.rater] = r.scale
    out = []
    for a, b in combinations(sorted(by_rater), 2):
        shared = sorted(set(by_rater[a]) & set(by_rater[b]))
        xa, xb = [by_rater[a][k] for k in shared], [by_rater[b][k] for k in shared]
        pa, pb = _preferences(by_rater[a]), _preferences(by_rater[b])
        items = sorted(set(pa) & set(pb))
        same = scales[a] == scales[b]
        out.append({"raters": f"{a} vs {b}", "answers": len(shared),
                    "exact": agreement_rate(xa, xb) if same else math.nan,
                    "kappa": cohen_kappa(xa, xb) if same else math.nan, "spearman": rank_correlations(xa, xb)["spearman"],
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


def rating_groups(ratings: list[Rating]) -> dict[str, dict[tuple, float]]:
    """Per answer (item, system): the mean sheet rating ("rating") and each judge's rating apart."""
    groups: dict[str, dict[tuple, list]] = defaultdict(lambda: defaultdict(list))
    for r in ratings:
        groups[f"{r.rater} (1-{r.scale})" if r.judged else "rating"][(r.item, r.system)].append(r.rating)
    order = sorted(groups, key=lambda g: (g != "rating", g))
    return {g: {a: sum(v) / len(v) for a, v in groups[g].items()} for g in order}


def main(cfg: Config) -> dict:
    from korlhf.agreement import rank_correlations

    key = read_key(cfg.sheet)
    ratings = read_ratings(cfg.ratings, key)
    groups = rating_groups(ratings)
    metrics = answer_metrics(key)
    names = cfg.metrics or list(next(iter(metrics.values())))
    unknown = [m for m in names if m not in next(iter(metrics.values()))]
    if unknown:
        raise KorlhfError(f"unknown metric(s) {', '.join(unknown)}; available: {', '.join(next(iter(metrics.values())))}")
    correlations = []
    for group, rated in groups.items():
        answers = sorted(rated)
        correlations += [{"rating": group, "metric": m,
                          **rank_correlations([metrics[a][m] for a in answers], [rated[a] for a in answers])}
                         for m in names]
    answers = sorted({a for rated in groups.values() for a in rated})
    systems = [{"system": s, "answers": sum(1 for a in answers if a[1] == s),
                **{g: _mean([v for a, v in rated.items() if a[1] == s]) for g, rated in groups.items()},
                **{m: _mean([metrics[a][m] for a in answers if a[1] == s]) for m in names}}
               for s in key["systems"]]
    result = {"raters": sorted({r.rater for r in ratings}), "ratings": len(ratings), "answers": len(answers),
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
    def strength(c):
        return -abs(c["spearman"]) if not math.isnan(c["spearman"]) else 0

    corr = [[c["metric"], c["rating"], c["spearman"], c["spearman_p"], c["kendall"], c["kendall_p"], c["n"]]
            for c in sorted(result["correlations"], key=lambda c: (c["rating"] != "rating", c["rating"], strength(c)))]
    raters = [[r["raters"], r["answers"], r["exact"], r["kappa"], r["spearman"], r["items"], r["preference"],
               r["preference_kappa"]] for r in result["rater_agreement"]]
    keys = [k for k in result["systems"][0] if k != "system"] if result["systems"] else []
    systems = [[s["system"], *(s[k] for k in keys)] for s in result["systems"]]
    return [
        (f"metric vs rating ({result['answers']} answers, raters: {', '.join(result['raters'])})",
         ["metric", "rating", "spearman", "p", "kendall", "p", "n"], corr),
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
