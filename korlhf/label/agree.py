"""How far two raters agree on the same answer pairs: `korlhf label agree RATER_A RATER_B`.

A rater is any of:

- a `korlhf label` run directory (its ``preferences.jsonl`` and ``unranked.jsonl``; ties included,
  and the judge's pairwise verdicts for position consistency);
- preference JSON Lines, ranked best -> worst (known truth, e.g. KoBEST-derived with
  ``tied_after_first``, which only knows "the first beats each other one"); records with
  ``candidates`` carrying ``score`` (a label output) give every pair, ties included;
- a pairwise sheet (``.csv``/``.tsv``/``.jsonl``): columns ``prompt``, ``response_a``,
  ``response_b`` and ``label`` (or ``winner``) = A, B or tie;
- one rater's ratings of a `korlhf eval sheet` (the CSV saved by ``sheet.html``, a filled
  ``sheet.csv``, or judge JSON Lines with ``item``, ``slot``/``system``, ``rating``), with
  ``--sheet`` naming that sheet's directory: higher rating = better answer, equal = tie.

Each rater becomes a map from (prompt, answer x, answer y), with x < y as text, to ``A`` (x is
better), ``B`` (y is better) or ``tie``; pairs rated by both are compared. The report gives the
agreement rate (with and without the pairs either rater called a tie), Cohen's kappa over the
three labels (`korlhf.agreement`), each rater's tie rate, and each pairwise judge's position
consistency (share of pairs where asking in both orders gave the same verdict).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from korlhf.errors import KorlhfError
from korlhf.label.prompts import prompt_text

LABELS = ("A", "B", "tie")
RUN_FILES = ("preferences.jsonl", "unranked.jsonl")
_SHEET_LABELS = {"a": 1, "b": -1, "tie": 0, "c": 0, "동점": 0, "same": 0, "draw": 0}


@dataclass
class Config:
    files: list[str] = field(default_factory=list, metadata={"help": "two raters: label run directories, ranked preference JSON Lines "
                                               "(e.g. KoBEST truth) or pairwise sheets (.csv/.tsv/.jsonl with "
                                               "prompt, response_a, response_b, label A/B/tie)"})
    names: list[str] = field(default_factory=list, metadata={"help": "names for the two raters in the report "
                                                                     "(default: the file names)"})
    sheet: str | None = field(default=None, metadata={
        "help": "a `korlhf eval sheet` directory, to read raters' 1-N ratings files (item, slot, rating)"})
    output: str = field(default="runs/agreement", metadata={"help": "write OUTPUT.md and OUTPUT.json"})

    def __post_init__(self):
        if self.names and len(self.names) != 2:
            raise ValueError("names: give one name per rater (two)")


def pair_outcomes(record: dict) -> dict[tuple[str, str, str], str]:
    """(prompt, x, y) -> ``A`` / ``B`` / ``tie`` for every pair a record rates (x < y)."""
    triples = []  # (x, y, +1 if x is better, -1 if y is, 0 for a tie)
    candidates = record.get("candidates")
    if candidates and all(isinstance(c, dict) and c.get("score") is not None for c in candidates):
        for a, b in combinations(candidates, 2):
            triples.append((a["response"], b["response"], _sign(a["score"] - b["score"])))
    elif "response_a" in record:
        triples.append((record["response_a"], record["response_b"], record["_label"]))
    else:
        responses = record.get("responses") or []  # none: an unjudged record (too few candidates)
        pairs = [(0, j) for j in range(1, len(responses))] if record.get("tied_after_first") else \
            combinations(range(len(responses)), 2)
        triples += [(responses[i], responses[j], 1) for i, j in pairs]
    prompt = prompt_text(record["prompt"])
    out = {}
    for x, y, sign in triples:
        if x == y:
            continue
        if x > y:
            x, y, sign = y, x, -sign
        out[(prompt, x, y)] = LABELS[{1: 0, -1: 1, 0: 2}[sign]]
    return out


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def read_rater(path: str | Path, sheet: str | None = None) -> list[dict]:
    """The records of one rater (see the module docstring for what a rater can be)."""
    from korlhf.records import read_jsonl

    path = Path(path)
    if path.is_dir():
        files = [path / name for name in RUN_FILES if (path / name).is_file()]
        if not files:
            raise KorlhfError(f"{path}: not a `korlhf label` run directory (no {' or '.join(RUN_FILES)})")
        return [r for f in files for r in read_rater(f)]
    if sheet is not None and path.suffix != ".tsv" and _has_ratings(path):
        return sheet_ratings(path, sheet)
    if path.suffix in (".csv", ".tsv"):
        if not path.is_file():
            raise KorlhfError(f"file not found: {path}")
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ","))
        return [_check(row, f"{path}:{n + 2}") for n, row in enumerate(rows)]
    return [_check(record, f"{path}:{n}") for n, record in read_jsonl(path)]


def _has_ratings(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, encoding="utf-8-sig") as f:
        first = f.readline()
    return "rating" in (json.loads(first) if first.lstrip().startswith("{") else first.strip().split(","))


def sheet_ratings(path: Path, sheet: str) -> list[dict]:
    """One rater's ratings of a `korlhf eval sheet`, as records of scored candidates per item."""
    from korlhf.evaluation.agree import read_key, read_ratings

    key = read_key(sheet)
    ratings = read_ratings([str(path)], key)
    raters = sorted({rater for rater, *_ in ratings})
    if len(raters) > 1:
        raise KorlhfError(f"{path} holds ratings of {len(raters)} raters ({', '.join(raters)}); "
                          "korlhf label agree compares one rater per file")
    items = {str(item["item"]): item for item in key["items"]}
    records: dict[str, dict] = {}
    for r in ratings:
        record = records.setdefault(r.item, {"prompt": items[r.item]["prompt"], "candidates": []})
        record["candidates"].append({"response": items[r.item]["answers"][r.system], "score": r.rating})
    return list(records.values())


def _check(record: dict, where: str) -> dict:
    if "response_a" in record:
        missing = [k for k in ("prompt", "response_b") if k not in record]
        raw = str(record.get("label", record.get("winner", ""))).strip().lower()
        if missing or raw not in _SHEET_LABELS:
            raise KorlhfError(f"{where}: a pairwise sheet row needs prompt, response_a, response_b and label "
                              f"A, B or tie (got label {raw!r}{', missing ' + ', '.join(missing) if missing else ''})")
        return {**record, "_label": _SHEET_LABELS[raw]}
    if "prompt" not in record or not isinstance(record.get("responses", record.get("candidates")), list):
        raise KorlhfError(f"{where}: expected a preference record (prompt + responses ranked best to worst) "
                          "or a pairwise sheet row (prompt, response_a, response_b, label)")
    return record


def rater_summary(records: list[dict]) -> tuple[dict, float | None]:
    """All pair outcomes of a rater, and its position consistency (None if it never asked both orders)."""
    outcomes: dict = {}
    consistent = asked = 0
    for record in records:
        outcomes.update(pair_outcomes(record))
        for judgment in record.get("judgments") or []:
            if "position_consistent" in judgment:
                asked += 1
                consistent += bool(judgment["position_consistent"])
    return outcomes, (consistent / asked if asked else None)


def compare(a: tuple[dict, float | None], b: tuple[dict, float | None], names: list[str]) -> dict:
    """The agreement report of two `rater_summary` results."""
    from korlhf.agreement import agreement_rate, cohen_kappa

    (out_a, cons_a), (out_b, cons_b) = a, b
    shared = sorted(set(out_a) & set(out_b))
    la, lb = [out_a[k] for k in shared], [out_b[k] for k in shared]
    decided = [(x, y) for x, y in zip(la, lb, strict=True) if x != "tie" and y != "tie"]
    confusion = Counter(zip(la, lb, strict=True))
    return {
        "raters": names,
        "pairs_compared": len(shared),
        "pairs_only_in": {names[0]: len(set(out_a) - set(out_b)), names[1]: len(set(out_b) - set(out_a))},
        "agreement": _num(agreement_rate(la, lb)) if shared else None,
        "agreement_without_ties": (sum(x == y for x, y in decided) / len(decided)) if decided else None,
        "pairs_without_ties": len(decided),
        "cohen_kappa": _num(cohen_kappa(la, lb)) if shared else None,
        "tie_rate": {names[0]: la.count("tie") / len(la) if la else None,
                     names[1]: lb.count("tie") / len(lb) if lb else None},
        "position_consistency": {names[0]: cons_a, names[1]: cons_b},
        "confusion": {x: {y: confusion[(x, y)] for y in LABELS} for x in LABELS},
    }


def _num(value: float) -> float | None:
    return None if value != value else value  # nan -> None (JSON has no nan)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def to_markdown(report: dict) -> str:
    a, b = report["raters"]
    lines = [f"# Agreement: {a} vs {b}", "",
             f"{report['pairs_compared']} answer pairs rated by both "
             f"(only {a}: {report['pairs_only_in'][a]}, only {b}: {report['pairs_only_in'][b]}).", "",
             "| measure | value |", "|---|---|",
             f"| agreement (A / B / tie) | {_fmt(report['agreement'])} |",
             f"| agreement without ties ({report['pairs_without_ties']} pairs) | "
             f"{_fmt(report['agreement_without_ties'])} |",
             f"| Cohen's kappa | {_fmt(report['cohen_kappa'])} |"]
    for name in (a, b):
        lines.append(f"| tie rate: {name} | {_fmt(report['tie_rate'][name])} |")
        lines.append(f"| position consistency: {name} | {_fmt(report['position_consistency'][name])} |")
    lines += ["", f"Confusion (rows: {a}, columns: {b}; A = the first answer of a pair in text order is better):",
              "", "| | " + " | ".join(LABELS) + " |", "|---" * (len(LABELS) + 1) + "|"]
    lines += [f"| {x} | " + " | ".join(str(report["confusion"][x][y]) for y in LABELS) + " |" for x in LABELS]
    return "\n".join(lines) + "\n"


def write_report(report: dict, stem: str | Path) -> tuple[Path, Path]:
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    md, js = stem.with_name(stem.name + ".md"), stem.with_name(stem.name + ".json")
    md.write_text(to_markdown(report), encoding="utf-8")
    js.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return md, js


def print_report(report: dict, console=None) -> None:
    from rich.console import Console
    from rich.markdown import Markdown

    (console or Console()).print(Markdown(to_markdown(report)))


def main(cfg: Config) -> dict:
    if len(cfg.files) != 2:
        raise KorlhfError(f"korlhf label agree compares two raters; got {len(cfg.files)} file(s): "
                          "korlhf label agree RATER_A RATER_B")
    names = cfg.names or [Path(f).name for f in cfg.files]
    if names[0] == names[1]:
        names = [f"{names[0]} (1)", f"{names[1]} (2)"]
    report = compare(rater_summary(read_rater(cfg.files[0], cfg.sheet)),
                     rater_summary(read_rater(cfg.files[1], cfg.sheet)), names)
    if report["pairs_compared"] == 0:
        raise KorlhfError(f"{cfg.files[0]} and {cfg.files[1]} rate no answer pair in common "
                          "(same prompts and answer texts are needed)")
    print_report(report)
    md, js = write_report(report, cfg.output)
    print(f"written: {md}, {js}")
    return report
