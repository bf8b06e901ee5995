"""`korlhf data clean FILE... --out DIR`: repair, filter, deduplicate and decontaminate records.

Per record, in order: Unicode repair (ftfy, NFC), invisible/control characters, whitespace and the
stray leading quote (`korlhf.data.normalize`); PII masking; filters with thresholds from the config
(length, Hangul share, repetition, refusal, truncation, placeholders, leaked JSON, overlap with
eval files). Then, among the records that passed, exact duplicates and MinHash-LSH near
duplicates (the first occurrence is kept). Output: ``kept.jsonl`` (repaired records),
``rejected.jsonl`` (the original record, its file and line, and every reason code) and a report.
Every input record ends up in exactly one of the two files; the run checks it. Deterministic.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from korlhf.data import normalize as nz
from korlhf.data.dedup import exact_duplicates, near_duplicates
from korlhf.data.readers import FORMATS, read_sources
from korlhf.data.tables import Tables, print_notes, progress, snippet
from korlhf.data.turns import cut_dialogue
from korlhf.records import write_jsonl
from korlhf.text import hangul_ratio, is_refusal, looks_truncated, rep_n

REASONS = {
    "empty_prompt": "the prompt is empty",
    "empty_answer": "an answer is empty (or a dialogue has no assistant turn)",
    "too_short": "prompt or best answer shorter than min_prompt_chars / min_answer_chars",
    "too_long": "prompt or an answer longer than max_prompt_chars / max_answer_chars",
    "low_hangul": "Hangul under min_hangul of the letters: mostly another language",
    "repetitive": "an answer (or the prompt) repeats word 3-grams: rep-3 above max_repetition",
    "refusal": "an answer declines ('답할 수 없습니다'; drop_refusals); in a dialogue only the turns from it on",
    "role_confusion": "a user turn speaks the assistant's lines ('무엇을 도와드릴까요?'; drop_role_confusion); "
                      "in a dialogue only that exchange, or the turns from it on",
    "truncated": "the question, the (best) answer or the last dialogue turn ends mid-sentence (drop_truncated; "
                 "Kiwi-judged, casual and short answers are finished: docs/data_quality.md)",
    "placeholder": "de-identification placeholders like #이름# (drop_placeholders)",
    "leaked_field": "the record's own JSON keys leaked into its text (drop_leaked_fields)",
    "contaminated": "has an eval prompt, or shares a decontam_ngram-character span with an eval text",
    "unanswerable": "read: a question without an answer (AI Hub MRC is_impossible, answers: [])",
    "malformed": "read: a record whose answer is not where its layout says, or not text",
    "multi_party": "read: a chat of three or more speakers (multi_party=reject)",
    "no_assistant": "read: the speaker named by --map assistant does not speak in this conversation",
    "duplicate": "same text as an earlier kept record (whitespace-normalised)",
    "near_duplicate": "MinHash-LSH near duplicate (character 5-grams, near_threshold) of an earlier kept record",
}


@dataclass
class Config:
    files: list[str] = field(default_factory=list, metadata={
        "help": "files to clean (any format korlhf reads), given as arguments: korlhf data clean FILE..."})
    format: str | None = field(default=None, metadata={"help": f"force a reader: {', '.join(FORMATS)}"})
    map: dict = field(default_factory=dict, metadata={
        "help": "column map canonical=column, e.g. --map prompt=질문 --map response=답변 (responses=a+b: best first)"})
    out: str = field(default="runs/data/clean", metadata={"help": "output directory: kept.jsonl, rejected.jsonl, report.md"})
    min_prompt_chars: int = field(default=2, metadata={"help": "shorter prompts are rejected (too_short)"})
    max_prompt_chars: int = field(default=2000, metadata={"help": "longer prompts are rejected (too_long)"})
    min_answer_chars: int = field(default=2, metadata={"help": "a shorter best answer is rejected (too_short)"})
    max_answer_chars: int = field(default=4000, metadata={"help": "a longer answer is rejected (too_long)"})
    min_hangul: float = field(default=0.3, metadata={
        "help": "minimum Hangul share of the letters; 0.3 keeps Korean questions about English names"})
    max_repetition: float = field(default=0.5, metadata={"help": "maximum rep-3 (share of repeated word 3-grams)"})
    drop_refusals: bool = field(default=True, metadata={"help": "reject refusal / 'I am an AI' boilerplate answers"})
    drop_truncated: bool = field(default=True, metadata={
        "help": "reject questions, answers and dialogue turns that end mid-sentence (Kiwi; see docs/data_quality.md)"})
    drop_role_confusion: bool = field(default=True, metadata={
        "help": "cut dialogue exchanges where the user speaks the assistant's lines (무엇을 도와드릴까요?)"})
    drop_placeholders: bool = field(default=False, metadata={"help": "reject texts with #이름#-style placeholders"})
    drop_leaked_fields: bool = field(default=True, metadata={"help": "reject texts holding leaked JSON keys"})
    mask_pii: bool = field(default=True, metadata={
        "help": "mask 주민등록번호, card, phone numbers and e-mails as #주민번호#, #카드번호#, #전화번호#, #이메일#"})
    dedup: bool = field(default=True, metadata={"help": "reject exact duplicates (first occurrence kept)"})
    near_dedup: bool = field(default=True, metadata={"help": "reject MinHash-LSH near duplicates"})
    near_threshold: float = field(default=0.8, metadata={"help": "estimated Jaccard of character n-grams for a near duplicate"})
    ngram: int = field(default=5, metadata={"help": "character n-gram size for near duplicates"})
    num_perm: int = field(default=128, metadata={"help": "MinHash permutations (more: slower, more exact)"})
    seed: int = field(default=0, metadata={"help": "MinHash seed (the run is deterministic given it)"})
    eval_files: list[str] = field(default_factory=list, metadata={
        "help": "eval / benchmark files to decontaminate against (any readable format)"})
    decontam_ngram: int = field(default=20, metadata={
        "help": "a shared span of this many characters (spaces ignored) with an eval text is contamination"})


def main(cfg: Config) -> dict[str, Path]:
    """Clean ``cfg.files`` into ``cfg.out``; returns the paths written (kept, rejected, report, report_json)."""
    from korlhf.config import save_config
    from korlhf.errors import KorlhfError

    if not cfg.files:
        raise KorlhfError("no files to clean; usage: korlhf data clean FILE... --out DIR")
    tables = Tables()
    sources = read_sources(cfg.files, cfg.format, cfg.map)
    print_notes(tables.console, [n for s in sources for n in s.notes])
    evals = Decontaminator(cfg.eval_files, cfg.decontam_ngram) if cfg.eval_files else None
    items = [(s, i) for s in sources for i in range(len(s.records))]
    cleaned, reasons, fixes, pii, cuts = [], [], [], [], []
    with progress(len(items), "cleaning") as advance:
        for source, i in items:
            record, why, fixed, masked, cut = clean_record(source.records[i], cfg, evals)
            cleaned.append(record)
            reasons.append(why)
            fixes.append(fixed)
            pii.append(masked)
            cuts.append(cut)
            advance()
    dup_of = _deduplicate(cleaned, reasons, cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"kept": out / "kept.jsonl", "rejected": out / "rejected.jsonl"}
    n_kept = write_jsonl(paths["kept"], (r for r, why in zip(cleaned, reasons, strict=True) if not why))
    unread = [{**r, "file": str(s.path), "line": None} for s in sources for r in s.rejected]
    n_rejected = write_jsonl(paths["rejected"], [*unread, *(_rejected(items[k], reasons[k], dup_of.get(k), cleaned)
                                                            for k in range(len(items)) if reasons[k])])
    # Turns cut from kept dialogues are rejected parts, marked "part": they do not count as records.
    n_parts = write_jsonl(out / "rejected_turns.jsonl", (_cut_entry(items[k], c) for k in range(len(items))
                                                        if not reasons[k] for c in cuts[k]))
    paths["rejected_turns"] = out / "rejected_turns.jsonl"
    if n_kept + n_rejected != len(items) + len(unread):  # the invariant: nothing is silently dropped
        raise RuntimeError(f"bug: {len(items) + len(unread)} records in, {n_kept} kept + {n_rejected} rejected out")
    save_config(cfg, out / "config.yaml")
    report = _report(tables, sources, items, reasons, fixes, pii, cleaned, cfg)
    report["dialogue_parts_cut"] = dict(Counter(c[0] for k in range(len(items)) if not reasons[k]
                                                          for c in cuts[k]))
    paths["report"], paths["report_json"] = tables.write(out, "Data cleaning", report)
    tables.console.print(f"kept {n_kept:,} of {len(items):,} records -> {paths['kept']}; "
                         f"rejected {n_rejected:,} -> {paths['rejected']}; report {paths['report']}")
    if n_parts:
        tables.console.print(f"cut {n_parts:,} bad parts (refusal / role confusion) off kept dialogues -> "
                             f"{paths['rejected_turns']}")
    return paths


def clean_record(record: dict, cfg: Config, evals: Decontaminator | None = None
                 ) -> tuple[dict, list, Counter, Counter, list]:
    """(repaired record, reason codes, fixes applied, PII masked, turns cut) for one record; no dedup.

    Turns cut: ``(reason, messages)`` for each part of a dialogue removed (a refusing turn on, a
    role-confused exchange); the record keeps its other turns.
    """
    fixes: Counter = Counter()

    def repair(text: str) -> str:
        text, applied = nz.normalize_text(text)
        fixes.update(applied)
        return text

    new = nz.map_texts(record, repair)
    texts = [t for _, t in nz.texts_of(new)]
    placeholders = any(nz.PLACEHOLDER.search(t) for t in texts)  # before PII masks add #전화번호#
    masked: Counter = Counter()
    if cfg.mask_pii:
        def mask(text: str) -> str:
            text, found = nz.mask_pii(text)
            masked.update(found)
            return text

        new = nz.map_texts(new, mask)
    new, cuts, why = _cut_turns(new, cfg)
    why += _filter(new, cfg)
    if placeholders and cfg.drop_placeholders:
        why.append("placeholder")
    if evals is not None and evals.contaminated(new):
        why.append("contaminated")
    return new, why, fixes, masked, cuts


def _cut_turns(record: dict, cfg: Config) -> tuple[dict, list, list]:
    """Cut refusing / role-confused parts off a dialogue until none is left; (record, cuts, reasons)."""
    cuts: list = []
    if "messages" not in record or not (cfg.drop_refusals or cfg.drop_role_confusion):
        return record, cuts, []
    for _ in range(len(record["messages"])):
        new, removed, reason = cut_dialogue(record, cfg.drop_refusals, cfg.drop_role_confusion)
        if reason is None:
            break
        if not removed:  # nothing usable left: the record is rejected for it
            return record, [], [reason]
        cuts.append((reason, removed))
        record = new
    return record, cuts, []


def _filter(record: dict, cfg: Config) -> list[str]:
    prompt, answers = nz.prompt_of(record), nz.answers_of(record)
    kind = nz.record_kind(record)
    why = []
    if not prompt.strip():
        why.append("empty_prompt")
    if kind != "prompt" and (not answers or any(not a.strip() for a in [*answers, *record.get("responses", [])])):
        why.append("empty_answer")
    if prompt.strip() and len(prompt) < cfg.min_prompt_chars or (answers and 0 < len(answers[0]) < cfg.min_answer_chars):
        why.append("too_short")
    if len(prompt) > cfg.max_prompt_chars or any(len(a) > cfg.max_answer_chars
                                                 for a in record.get("responses", answers)):
        why.append("too_long")
    text = nz.full_text(record)
    if any(ch.isalpha() for ch in text) and hangul_ratio(text) < cfg.min_hangul:
        why.append("low_hangul")
    if any(rep_n(t.split(), 3) > cfg.max_repetition for t in (answers or [prompt])):
        why.append("repetitive")
    if cfg.drop_refusals and "messages" not in record and any(is_refusal(a) for a in answers):
        why.append("refusal")
    if cfg.drop_truncated and _truncated(record, prompt, answers):
        why.append("truncated")
    if cfg.drop_leaked_fields and any(nz.LEAKED_FIELD.search(t) for _, t in nz.texts_of(record)):
        why.append("leaked_field")
    return why


def _truncated(record: dict, prompt: str, answers: list[str]) -> bool:
    """Questions, answers and dialogue turns are judged each by their own rule (`korlhf.endings`)."""
    if "messages" in record:
        return bool(answers and answers[-1].strip()) and looks_truncated(answers[-1], "turn")
    if answers and answers[-1].strip():
        return looks_truncated(answers[-1], "answer")
    return nz.record_kind(record) == "prompt" and bool(prompt.strip()) and looks_truncated(prompt, "question")


class Decontaminator:
    """Eval texts as character n-grams (spaces removed) and normalised prompts.

    A record is contaminated if it has an eval prompt (normalised), or shares an n-gram with any
    eval text: the GPT-3 paper's 13-gram test, in characters because Korean words carry
    particles. Eval texts shorter than n only count through the prompt match: a short sentence
    such as "휴대폰이 고장났다." occurs in many unrelated texts (we tried; KoBEST COPA train then
    lost 5% of its items to such coincidences).
    """

    def __init__(self, files: list[str], n: int):
        self.n = n
        self.grams: set[str] = set()
        self.prompts: set[str] = set()
        for record in (r for s in read_sources(files) for r in s.records):
            self.prompts.add(nz.prompt_key(nz.prompt_of(record)))
            for _, text in nz.texts_of(record):
                self.grams.update(self._grams(text))
        self.prompts.discard("")

    def _grams(self, text: str) -> set[str]:
        text = "".join(text.split())
        return {text[i:i + self.n] for i in range(len(text) - self.n + 1)}

    def contaminated(self, record: dict) -> bool:
        if nz.prompt_key(nz.prompt_of(record)) in self.prompts:
            return True
        return not self.grams.isdisjoint(self._grams(nz.full_text(record)))


def _deduplicate(cleaned: list[dict], reasons: list[list], cfg: Config) -> dict[int, tuple[int, float]]:
    """Mark exact then near duplicates among records not yet rejected; returns index -> (first, similarity)."""
    dup_of: dict[int, tuple[int, float]] = {}
    texts = [None if why else nz.full_text(r) for r, why in zip(cleaned, reasons, strict=True)]
    if cfg.dedup:
        for i, j in exact_duplicates(texts).items():
            reasons[i].append("duplicate")
            dup_of[i] = (j, 1.0)
            texts[i] = None
    if cfg.near_dedup:
        with progress(len(texts), "near duplicates") as advance:
            near = near_duplicates(texts, cfg.near_threshold, cfg.ngram, cfg.num_perm, cfg.seed, advance)
        for i, (j, score) in near.items():
            reasons[i].append("near_duplicate")
            dup_of[i] = (j, round(score, 3))
    return dup_of


def _cut_entry(item, cut: tuple[str, list]) -> dict:
    source, i = item
    record = source.records[i]
    return {"id": record["id"], "source": record["source"], "file": str(source.path),
            "line": source.lines[i] if i < len(source.lines) else None, "reasons": [cut[0]], "part": "turns",
            "messages": cut[1]}


def _rejected(item, why: list[str], dup, cleaned: list[dict]) -> dict:
    source, i = item
    record = source.records[i]
    entry = {"id": record["id"], "source": record["source"], "file": str(source.path),
             "line": source.lines[i] if i < len(source.lines) else None, "reasons": why}
    if dup is not None:
        entry.update(duplicate_of=cleaned[dup[0]]["id"], similarity=dup[1])
    entry["record"] = record
    return entry


def _report(tables: Tables, sources, items, reasons, fixes, pii, cleaned, cfg: Config) -> dict:
    per_file = []
    for s in sources:
        idx = [k for k, (src, _) in enumerate(items) if src is s]
        per_file.append({"path": str(s.path), "source": s.name, "format": s.format, "read": len(idx) + len(s.rejected),
                         "kept": sum(1 for k in idx if not reasons[k]),
                         "rejected": sum(1 for k in idx if reasons[k]) + len(s.rejected),
                         "reasons": dict(Counter([*(r for k in idx for r in reasons[k]),
                                                  *(r for x in s.rejected for r in x["reasons"])])),
                         "fixes": dict(Counter(f for k in idx for f in fixes[k])),
                         "pii_masked": dict(sum((pii[k] for k in idx), Counter()))})
    names = [f"#{i + 1}" for i in range(len(sources))]
    tables.table("Records", ["#", "file", "read", "kept", "rejected"],
                 [[names[i], f["path"], f["read"], f["kept"], f["rejected"]] for i, f in enumerate(per_file)])
    tables.table("Rejected, by reason", ["reason", *names], [[r, *(f["reasons"].get(r, 0) for f in per_file)]
                                                            for r in REASONS],
                 note="a record can have several reasons", markdown_extra=("meaning", list(REASONS.values())))
    fix_names = sorted({k for f in per_file for k in f["fixes"]})
    if fix_names:
        tables.table("Repairs (texts changed)", ["repair", *names],
                     [[x, *(f["fixes"].get(x, 0) for f in per_file)] for x in fix_names])
    pii_names = sorted({k for f in per_file for k in f["pii_masked"]})
    if pii_names:
        tables.table("PII masked", ["type", *names], [[x, *(f["pii_masked"].get(x, 0) for f in per_file)]
                                                    for x in pii_names])
    examples = [[r, items[k][0].records[items[k][1]]["id"], snippet(nz.full_text(cleaned[k]), 120)]
                for r in REASONS for k in [k for k in range(len(items)) if r in reasons[k]][:2]]
    if examples:
        tables.table("Rejected examples", ["reason", "id", "text"], examples, one_line=True)
    tables.text("## Criteria\n\n" + "\n".join(f"- `{r}`: {m}" for r, m in REASONS.items()) +
                "\n\nThresholds: " + ", ".join(f"`{k}={v}`" for k, v in dataclasses.asdict(cfg).items()
                                               if k not in ("files", "out")))
    return {"config": dataclasses.asdict(cfg), "files": per_file,
            "totals": {"read": sum(f["read"] for f in per_file), "kept": sum(f["kept"] for f in per_file),
                       "rejected": sum(f["rejected"] for f in per_file)}}
