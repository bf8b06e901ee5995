"""`korlhf data inspect FILE...`: what is wrong with a dataset, counted, with examples.

Per file: record count, length distributions (characters, and tokens of ``--tokenizer``), exact and
near duplicates, empty fields, Hangul share and mostly-English rows, refusal boilerplate, truncated
endings, stray leading quotes, placeholders (#이름#), PII, NFD text, leaked JSON fields, repetition;
then the prompts that files share. The checks are the ones `korlhf data clean` acts on
(`korlhf.data.normalize`, `korlhf.text`), so what inspect finds is what clean removes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations

from korlhf.data import normalize as nz
from korlhf.data.dedup import exact_duplicates, near_duplicates
from korlhf.data.readers import FORMATS, Source, read_sources
from korlhf.data.tables import Tables, print_notes, progress, snippet
from korlhf.data.turns import first_bad_turn
from korlhf.endings import ending
from korlhf.text import hangul_ratio, is_refusal, looks_truncated, rep_n

CHECKS = {
    "empty_prompt": "prompt is empty or blank",
    "empty_answer": "an answer (response, ranked response, assistant turn) is empty, or a dialogue has none",
    "duplicate_prompt": "prompt repeats an earlier one exactly (whitespace-normalised); extra copies counted",
    "duplicate_record": "whole record repeats an earlier one exactly; extra copies counted",
    "near_duplicate": "MinHash-LSH near duplicate of an earlier record (character 5-grams)",
    "mostly_english": "Hangul is under min_hangul of the letters",
    "skipped": "a record the reader could not use (no answer, malformed, multi-party); data clean rejects it",
    "refusal": "an answer declines ('답할 수 없습니다'); describing itself as an AI is not enough",
    "role_confusion": "a user turn speaks the assistant's lines ('무엇을 도와드릴까요?', a leaked 'AI:')",
    "truncated": "a question, an answer or a dialogue's last turn ends mid-sentence; [class] is how it ends "
                 "(Kiwi; docs/data_quality.md)",
    "stray_quote": "a text starts with a quote that is never closed",
    "placeholder": "de-identification placeholder such as #이름# or &name1&",
    "pii": "주민등록번호, card, phone number or e-mail",
    "nfd": "decomposed Hangul (NFD) that NFC would compose",
    "leaked_field": "the record's own JSON keys leaked into its text",
    "repetitive": "an answer repeats word 3-grams (rep-3 > max_repetition)",
    "tied_responses": "a ranked record has two identical answers",
}


@dataclass
class Config:
    files: list[str] = field(default_factory=list, metadata={
        "help": "files to inspect (any format korlhf reads), given as arguments: korlhf data inspect FILE..."})
    format: str | None = field(default=None, metadata={"help": f"force a reader: {', '.join(FORMATS)}"})
    map: dict = field(default_factory=dict, metadata={
        "help": "column map canonical=column, e.g. --map prompt=질문 --map response=답변 (responses=a+b: best first)"})
    out: str | None = field(default=None, metadata={"help": "also write report.md and report.json into this directory"})
    tokenizer: str | None = field(default=None, metadata={
        "help": "hub id or path of a tokenizer: adds token-length distributions (imports transformers)"})
    examples: int = field(default=3, metadata={"help": "examples shown per check and file"})
    min_hangul: float = field(default=0.5, metadata={"help": "rows with a lower Hangul share count as mostly English"})
    max_repetition: float = field(default=0.5, metadata={"help": "rep-3 (share of repeated word 3-grams) above this is repetitive"})
    near_dedup: bool = field(default=True, metadata={"help": "look for near duplicates (MinHash-LSH)"})
    near_threshold: float = field(default=0.8, metadata={"help": "estimated Jaccard of character 5-grams for a near duplicate"})


def main(cfg: Config) -> dict:
    """Inspect every file; print the tables; write report.md/json if ``cfg.out``. Returns the report."""
    from korlhf.errors import KorlhfError

    if not cfg.files:
        raise KorlhfError("no files to inspect; usage: korlhf data inspect FILE... [--out DIR]")
    tables = Tables()
    sources = read_sources(cfg.files, cfg.format, cfg.map)
    print_notes(tables.console, [n for s in sources for n in s.notes])
    tokenizer = _tokenizer(cfg.tokenizer)
    reports = [inspect_source(s, cfg, tokenizer) for s in sources]
    names = [f"#{i + 1}" for i in range(len(sources))]
    tables.table("Files", ["#", "file", "format", "kinds", "records"],
                 [[names[i], s.path, s.format, ", ".join(s.kinds), len(s.records)] for i, s in enumerate(sources)])
    tables.table("Checks (records affected)", ["check", *names],
                 [[c, *(_count(r, c) for r in reports)] for c in CHECKS],
                 markdown_extra=("meaning", list(CHECKS.values())))
    tables.table("Lengths", ["file", "field", "unit", "min", "p50", "mean", "p90", "p99", "max"],
                 [[names[i], f, unit, *stats.values()] for i, r in enumerate(reports)
                  for (f, unit), stats in r["lengths"].items()])
    if len(sources) > 1:
        tables.table("Prompts shared between files", ["file", "file", "shared prompts"], overlap(sources, names))
    tables.table("Examples", ["check", "file", "id", "text"],
                 [[c, names[i], ex["id"], ex["text"]] for c in CHECKS for i, r in enumerate(reports)
                  for ex in r["checks"][c]["examples"]], one_line=True)
    report = {"files": [{**r, "lengths": [{"field": f, "unit": u, **s} for (f, u), s in r["lengths"].items()]}
                        for r in reports],
              "overlap": [{"a": a, "b": b, "shared_prompts": n} for a, b, n in overlap(sources, names)]}
    if cfg.out:
        md, js = tables.write(cfg.out, "Data inspection", report)
        tables.console.print(f"wrote {md} and {js}")
    return report


def inspect_source(source: Source, cfg: Config, tokenizer=None) -> dict:
    """Counts and examples of every check in CHECKS for one file, and its length distributions."""
    hits: dict[str, list[tuple[int, str]]] = {c: [] for c in CHECKS}
    pii_types: dict[str, int] = {}
    records = source.records
    with progress(len(records), f"inspecting {source.path.name}") as advance:
        for i, record in enumerate(records):
            for check, detail in _record_checks(record, cfg, pii_types):
                hits[check].append((i, detail))
            advance()
    for k, entry in enumerate(source.rejected):  # indices after the records': see ``ids`` below
        hits["skipped"].append((len(records) + k, entry.get("detail", entry["reasons"][0]).replace(f"{source.path}: ", "")))
    prompts = [nz.prompt_of(r) for r in records]
    texts = [nz.full_text(r) for r in records]
    for i, j in exact_duplicates(prompts).items():
        hits["duplicate_prompt"].append((i, f"= {records[j]['id']}: {prompts[i]}"))
    record_dups = exact_duplicates(texts)
    for i, j in record_dups.items():
        hits["duplicate_record"].append((i, f"= {records[j]['id']}: {texts[i]}"))
    if cfg.near_dedup:
        candidates = [None if i in record_dups else t for i, t in enumerate(texts)]
        with progress(len(records), "near duplicates") as advance:
            near = near_duplicates(candidates, cfg.near_threshold, advance=advance)
        for i, (j, score) in near.items():
            hits["near_duplicate"].append((i, f"~{score:.2f} {records[j]['id']}: {texts[i]}"))
    ids = [r["id"] for r in records] + [e["id"] for e in source.rejected]
    checks = {c: {"count": len(found), "examples": [{"id": ids[i], "text": snippet(d)}
                                                    for i, d in sorted(found)[:cfg.examples]]}
              for c, found in hits.items()}
    checks["pii"]["by_type"] = pii_types
    return {"path": str(source.path), "format": source.format, "source": source.name, "records": len(records),
            "kinds": source.kinds, "notes": source.notes, "checks": checks,
            "lengths": _lengths(records, tokenizer)}


def _record_checks(record: dict, cfg: Config, pii_types: dict):
    """Yield (check, example text) for every check ``record`` fails."""
    prompt, answers = nz.prompt_of(record), _all_answers(record)
    fields = nz.texts_of(record)
    if not prompt.strip():
        yield "empty_prompt", repr(prompt)
    if nz.record_kind(record) != "prompt" and (not answers or any(not a.strip() for a in answers)):
        yield "empty_answer", prompt
    text = nz.full_text(record)
    if any(ch.isalpha() for ch in text) and hangul_ratio(text) < cfg.min_hangul:
        yield "mostly_english", f"{hangul_ratio(text):.2f} {text}"
    checks = (("refusal", is_refusal), ("repetitive", lambda a: rep_n(a.split(), 3) > cfg.max_repetition))
    for name, test in checks:
        hit = next((a for a in answers if test(a)), None)
        if hit is not None:
            yield name, hit
    cut = _truncated_text(record, prompt, answers)
    if cut is not None:
        yield "truncated", f"[{ending(cut)}] {cut[-80:]}"
    confused = first_bad_turn(record.get("messages", []), refusals=False)
    if confused is not None:
        yield "role_confusion", record["messages"][confused[0]]["content"]
    for name, test in (("stray_quote", nz.has_stray_quote), ("nfd", nz.is_nfd),
                       ("leaked_field", lambda t: nz.LEAKED_FIELD.search(t) is not None)):
        hit = next((f"{k}: {t}" for k, t in fields if test(t)), None)
        if hit is not None:
            yield name, hit
    marks = sorted({m for _, t in fields for m in nz.PLACEHOLDER.findall(t)})
    if marks:
        yield "placeholder", f"{' '.join(marks)} | {text}"
    found = sum((nz.find_pii(t) for _, t in fields), start=Counter())
    if found:
        for kind, n in found.items():
            pii_types[kind] = pii_types.get(kind, 0) + n
        yield "pii", f"{', '.join(sorted(found))}: {nz.mask_pii(text)[0]}"
    responses = record.get("responses", [])
    if len(set(responses)) < len(responses):
        yield "tied_responses", prompt


def _truncated_text(record: dict, prompt: str, answers: list[str]) -> str | None:
    """The text that looks cut off: a dialogue's last non-empty assistant turn, any ranked or single
    answer, or a prompt record's question (`korlhf data clean` checks a dialogue's last turn and a
    ranked record's best answer only: what it would train on)."""
    if "messages" in record:
        turns = [m["content"] for m in record["messages"] if m["role"] == "assistant" and m["content"].strip()]
        return turns[-1] if turns and looks_truncated(turns[-1], "turn") else None
    if answers:
        return next((a for a in answers if a.strip() and looks_truncated(a, "answer")), None)
    return prompt if prompt.strip() and looks_truncated(prompt, "question") else None


def _all_answers(record: dict) -> list[str]:
    return list(record["responses"]) if "responses" in record else nz.answers_of(record)


def _lengths(records: list[dict], tokenizer) -> dict:
    fields = {"prompt": [nz.prompt_of(r) for r in records],
              "answer": [a for r in records for a in _all_answers(r)]}
    out = {}
    for name, texts in fields.items():
        if not texts or (name == "answer" and not any(texts)):
            continue
        out[(name, "chars")] = distribution([len(t) for t in texts])
        if tokenizer is not None:
            ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
            out[(name, "tokens")] = distribution([len(x) for x in ids])
    return out


def distribution(values: list[int]) -> dict:
    """min, median, mean, 90th/99th percentile (nearest rank) and max."""
    v = sorted(values)
    at = lambda q: v[min(len(v) - 1, int(q * len(v)))]  # noqa: E731
    return {"min": v[0], "p50": at(0.5), "mean": round(sum(v) / len(v), 1), "p90": at(0.9), "p99": at(0.99),
            "max": v[-1]}


def overlap(sources: list[Source], names: list[str]) -> list[list]:
    """Distinct normalised prompts each pair of files shares (the original reused prompts across stages)."""
    keys = [{nz.prompt_key(nz.prompt_of(r)) for r in s.records} - {""} for s in sources]
    return [[names[a], names[b], len(keys[a] & keys[b])] for a, b in combinations(range(len(sources)), 2)]


def _count(report: dict, check: str) -> str:
    n, total = report["checks"][check]["count"], report["records"]
    return f"{n:,} ({100 * n / total:.1f}%)" if n else "0"


def _tokenizer(name: str | None):
    if name is None:
        return None
    from korlhf.models import load_tokenizer

    return load_tokenizer(name)
