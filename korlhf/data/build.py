"""`korlhf data build --config configs/data.yaml`: disjoint SFT / RM / PPO / eval sets from clean sources.

The original KoChatGPT reused the same 12,000 questions for SFT, the reward model and PPO, so the
reward model and the policy were scored on prompts the SFT model had memorised. Here every
normalised prompt (NFC, case-folded, no spaces or punctuation) goes to exactly one output:

1. sft records can go to ``sft`` (and to ``ppo`` with ``ppo_from_sft``), preference records to
   ``rm``, prompt records to ``ppo``; single-turn sft records of ``eval_sources`` can be held out;
2. ``eval_size`` prompts (with reference answers) are drawn for ``eval.jsonl`` first;
3. a prompt that more than one stage could use goes to one of them, drawn with ``stage_weights``
   (a hash of seed and prompt, so the draw does not depend on file order);
4. one record per prompt; then per-source ``caps``; then ``max_sft``/``max_rm``/``max_ppo``, filled by
   weighted sampling without replacement with per-source ``weights``.

Every record read is accounted for in the report: used by a stage, or unused with a reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from korlhf.data import normalize as nz
from korlhf.data.readers import FORMATS, read_sources
from korlhf.data.tables import Tables, print_notes
from korlhf.errors import KorlhfError
from korlhf.records import write_jsonl

STAGES = ("eval", "sft", "rm", "ppo")
TRAIN_STAGES = ("sft", "rm", "ppo")
UNUSED = {
    "empty_prompt": "no prompt text to key on",
    "weight_0": "its source has weight 0",
    "duplicate_prompt": "another record with the same prompt was used in the same stage",
    "prompt_in_other_stage": "its prompt was assigned to another stage (prompts are disjoint)",
    "cap": "over its source's cap",
    "stage_full": "the stage reached max_sft / max_rm / max_ppo",
}


@dataclass
class Config:
    sources: list[str] = field(default_factory=list, metadata={
        "help": "cleaned files (kept.jsonl from korlhf data clean) or any readable file"})
    format: str | None = field(default=None, metadata={"help": f"force a reader: {', '.join(FORMATS)}"})
    map: dict = field(default_factory=dict, metadata={"help": "column map canonical=column, as in data clean"})
    out: str = field(default="runs/data/build", metadata={
        "help": "output directory: sft.jsonl, rm.jsonl, ppo.jsonl, eval.jsonl, report.md/json"})
    seed: int = field(default=0, metadata={"help": "seed of every draw (the build is deterministic given it)"})
    eval_size: int = field(default=200, metadata={"help": "held-out prompts with reference answers (eval.jsonl)"})
    eval_sources: list[str] = field(default_factory=list, metadata={
        "help": "source names eval prompts may come from (default: every source of single-turn sft records)"})
    stage_weights: dict = field(default_factory=lambda: {"sft": 1.0, "rm": 1.0, "ppo": 1.0}, metadata={
        "help": "odds for a prompt more than one stage could use, e.g. sft=1,rm=1,ppo=2"})
    ppo_from_sft: bool = field(default=False, metadata={"help": "let single-turn sft prompts serve as PPO prompts"})
    max_sft: int = field(default=0, metadata={"help": "at most this many sft records (0: no limit)"})
    max_rm: int = field(default=0, metadata={"help": "at most this many rm records (0: no limit)"})
    max_ppo: int = field(default=0, metadata={"help": "at most this many ppo prompts (0: no limit)"})
    caps: dict = field(default_factory=dict, metadata={
        "help": "per-source maximum records per stage, e.g. kobest-BoolQ=2000"})
    weights: dict = field(default_factory=dict, metadata={
        "help": "per-source sampling weight when a stage is cut to max_*: 2 = twice as likely; 0 = leave out"})
    rationale: dict = field(default_factory=dict, metadata={
        "help": "per-source reason for including it, copied into the report (the criteria, as data)"})


@dataclass
class _Item:
    record: dict
    source: str
    where: str
    key: str
    stages: tuple[str, ...]
    status: str = ""  # a stage name, or an UNUSED reason


def main(cfg: Config) -> dict[str, Path]:
    """Build the four sets into ``cfg.out``; returns the paths written (sft, rm, ppo, eval, report, report_json)."""
    from korlhf.config import save_config

    if not cfg.sources:
        raise KorlhfError("no sources; set `sources:` in the config (cleaned kept.jsonl files) or pass --sources FILE")
    tables = Tables()
    sources = read_sources(cfg.sources, cfg.format, cfg.map)
    print_notes(tables.console, [n for s in sources for n in s.notes])
    stage_w, weights, caps = _numbers(cfg.stage_weights, "stage_weights"), _numbers(cfg.weights, "weights"), \
        _numbers(cfg.caps, "caps")
    items = _items(sources, cfg)
    for item in items:
        if not item.key:
            item.status = "empty_prompt"
        elif weights.get(item.source, 1.0) == 0:
            item.status = "weight_0"
    _assign(items, cfg, stage_w)
    for stage in STAGES:
        _cap(items, stage, caps, cfg.seed)
        limit = {"sft": cfg.max_sft, "rm": cfg.max_rm, "ppo": cfg.max_ppo}.get(stage, 0)
        if limit:
            _limit(items, stage, limit, weights, cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {stage: out / f"{stage}.jsonl" for stage in ("sft", "rm", "ppo", "eval")}
    for stage, path in paths.items():
        write_jsonl(path, (_output(i.record, stage) for i in items if i.status == stage))
    overlaps = _check_disjoint(items)
    save_config(cfg, out / "config.yaml")
    report = _report(tables, items, sources, cfg, overlaps)
    paths["report"], paths["report_json"] = tables.write(out, "Dataset build", report)
    sizes = ", ".join(f"{s} {report['stages'][s]['records']:,}" for s in ("sft", "rm", "ppo", "eval"))
    tables.console.print(f"wrote {sizes} -> {out}; report {paths['report']}")
    return paths


def _items(sources, cfg: Config) -> list[_Item]:
    items = []
    for source in sources:
        for i, record in enumerate(source.records):
            where = f"{source.path}:{source.lines[i]}" if i < len(source.lines) and source.lines[i] else \
                f"{source.path}: record {i + 1}"
            for name, text in nz.texts_of(record):
                if nz.is_nfd(text):
                    raise KorlhfError(f"{where}: {name} is NFD text (decomposed Hangul jamo, as macOS writes it); "
                                      "a tokenizer sees different tokens for it. Run `korlhf data clean` first "
                                      "(it normalises to NFC)")
            kind = nz.record_kind(record)
            single = kind == "sft" and "messages" not in record
            stages = {"sft": ("sft",) + (("ppo",) if cfg.ppo_from_sft and single else ()),
                      "preference": ("rm",), "prompt": ("ppo",)}[kind]
            if single and (not cfg.eval_sources or record["source"] in cfg.eval_sources):
                stages = ("eval", *stages)
            items.append(_Item(record, record["source"], where, nz.prompt_key(nz.prompt_of(record)), stages))
    return items


def _assign(items: list[_Item], cfg: Config, stage_w: dict) -> None:
    """Give every prompt key one stage, then one record of that key the stage; the rest are unused."""
    groups: dict[str, list[_Item]] = defaultdict(list)
    for item in items:
        if not item.status:
            groups[item.key].append(item)
    eligible = sorted(k for k, g in groups.items() if any("eval" in i.stages for i in g))
    ranked = sorted(eligible, key=lambda k: _uniform(cfg.seed, "eval", k))
    held_out = set(ranked[:cfg.eval_size])
    for key, group in groups.items():
        if key in held_out:
            stage = "eval"
        else:
            options = sorted({s for i in group for s in i.stages if s != "eval"})
            stage = _weighted_choice(options, stage_w, _uniform(cfg.seed, "stage", key)) if options else None
        chosen = next((i for i in group if stage in i.stages), None)
        for item in group:
            if item is chosen:
                item.status = stage
            else:
                item.status = "duplicate_prompt" if stage in item.stages else "prompt_in_other_stage"


def _weighted_choice(options: list[str], weights: dict, u: float) -> str:
    w = [max(0.0, weights.get(o, 1.0)) for o in options]
    if sum(w) == 0:
        w = [1.0] * len(options)
    total, acc = sum(w), 0.0
    for option, wi in zip(options, w, strict=True):
        acc += wi / total
        if u < acc:
            return option
    return options[-1]


def _cap(items: list[_Item], stage: str, caps: dict, seed: int) -> None:
    by_source: dict[str, list[_Item]] = defaultdict(list)
    for item in items:
        if item.status == stage:
            by_source[item.source].append(item)
    for source, group in by_source.items():
        cap = caps.get(source)
        if cap is not None and len(group) > cap:
            for item in sorted(group, key=lambda i: _uniform(seed, "cap", i.key))[int(cap):]:
                item.status = "cap"


def _limit(items: list[_Item], stage: str, limit: int, weights: dict, seed: int) -> None:
    """Keep ``limit`` records of ``stage``: weighted sampling without replacement (Efraimidis &
    Spirakis 2006: keep the largest u ** (1 / weight))."""
    pool = [i for i in items if i.status == stage]
    if len(pool) <= limit:
        return
    ranked = sorted(pool, key=lambda i: -_uniform(seed, "limit", i.key) ** (1.0 / weights.get(i.source, 1.0)))
    for item in ranked[limit:]:
        item.status = "stage_full"


def _uniform(seed: int, purpose: str, key: str) -> float:
    """A number in [0, 1) fixed by (seed, purpose, key): draws that do not depend on file order."""
    digest = hashlib.blake2b(f"{seed}\x00{purpose}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2 ** 64


def _output(record: dict, stage: str) -> dict:
    if stage == "ppo":
        return {"prompt": record["prompt"], "source": record["source"], "id": record["id"]}
    return record


def _check_disjoint(items: list[_Item]) -> dict:
    keys = {s: {i.key for i in items if i.status == s} for s in STAGES}
    overlaps = {f"{a}/{b}": len(keys[a] & keys[b]) for a, b in combinations(STAGES, 2)}
    if any(overlaps.values()):
        raise RuntimeError(f"bug: prompts shared between stages: {overlaps}")
    return overlaps


def _numbers(mapping: dict, name: str) -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in mapping.items()}
    except (TypeError, ValueError):
        raise KorlhfError(f"config field '{name}' needs numbers (source=number), got {mapping!r}") from None


def _report(tables: Tables, items: list[_Item], sources, cfg: Config, overlaps: dict) -> dict:
    stages = {s: {"records": sum(1 for i in items if i.status == s),
                  "by_source": dict(Counter(i.source for i in items if i.status == s))} for s in STAGES}
    names = sorted({i.source for i in items})
    per_source = {n: dict(Counter(i.status for i in items if i.source == n)) for n in names}
    tables.table("Outputs", ["file", "records", "from"],
                 [[f"{s}.jsonl", v["records"], ", ".join(f"{k} {n:,}" for k, n in sorted(v["by_source"].items()))]
                  for s, v in stages.items()])
    tables.table("Sources: where every record went", ["source", "read", *STAGES, "unused"],
                 [[n, sum(c.values()), *(c.get(s, 0) for s in STAGES),
                   ", ".join(f"{r} {c[r]:,}" for r in UNUSED if c.get(r)) or "0"] for n, c in per_source.items()])
    tables.table("Prompts shared between outputs (must be 0)", ["pair", "shared prompts"],
                 [[k, v] for k, v in overlaps.items()])
    criteria = _criteria(cfg)
    tables.text("## Criteria\n\n" + "\n".join(f"- {c}" for c in criteria) + "\n\n## Unused reasons\n\n" +
                "\n".join(f"- `{k}`: {v}" for k, v in UNUSED.items()) + "\n\n## Sources and rationale\n\n" +
                "\n".join(f"- `{n}`: {cfg.rationale.get(n, '(no rationale given in the config)')}" for n in names))
    cleaning = {str(s.path): _clean_report(s.path) for s in sources}
    return {"seed": cfg.seed, "stages": stages, "sources": per_source, "overlap": overlaps, "criteria": criteria,
            "rationale": {n: cfg.rationale.get(n) for n in names}, "cleaning": cleaning,
            "config": dataclasses.asdict(cfg)}


def _criteria(cfg: Config) -> list[str]:
    return [
        "prompts are disjoint across sft, rm, ppo and eval: compared after NFC, case-folding and removing "
        "spaces and punctuation",
        f"eval: {cfg.eval_size} single-turn prompts with reference answers, drawn first (seed {cfg.seed}) from "
        + (", ".join(cfg.eval_sources) if cfg.eval_sources else "every source of single-turn sft records"),
        f"a prompt several stages could use goes to one, drawn with stage weights {cfg.stage_weights}",
        "sft: prompt -> answer and multi-turn dialogues; rm: ranked answers (best first); ppo: prompts only"
        + (" (also from sft prompts)" if cfg.ppo_from_sft else ""),
        f"per-source caps {cfg.caps or 'none'}; stage limits sft {cfg.max_sft or 'none'}, rm {cfg.max_rm or 'none'}, "
        f"ppo {cfg.max_ppo or 'none'}, filled by weighted sampling with per-source weights {cfg.weights or 'all 1'}",
    ]


def _clean_report(path: Path) -> dict | None:
    """The `korlhf data clean` totals and reasons for a kept.jsonl, when its report.json sits beside it."""
    report = path.parent / "report.json"
    if path.name != "kept.jsonl" or not report.is_file():
        return None
    data = json.loads(report.read_text(encoding="utf-8"))
    return {"totals": data.get("totals"), "files": [{k: f.get(k) for k in ("path", "read", "kept", "reasons")}
                                                    for f in data.get("files", [])]}
