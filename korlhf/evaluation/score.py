"""`korlhf eval`: score predictions against references with Korean-correct metrics.

Predictions and references come from JSON Lines or a JSON array (a field, by default ``response``
and ``reference``; `korlhf generate` writes both when its prompts were SFT records) or text files
with one text per line, blank lines included; multi-turn answers are scored turn by turn (see
`korlhf.evaluation.inputs` for how entries pair up). Without references only the reference-free
metrics are reported. Prints the corpus table and sacrebleu's signatures; ``--out DIR`` also writes
``metrics.json`` and per-sample ``samples.jsonl`` / ``samples.csv`` (each row names its file:line).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from korlhf.errors import KorlhfError
from korlhf.evaluation.metrics import METRICS, Scores, score


@dataclass
class Config:
    predictions: str = field(metadata={"help": "generations: JSON Lines (see prediction_field) or one text per line"})
    references: str | None = field(default=None, metadata={
        "help": "references: JSON Lines or text lines; default: the reference_field of the predictions file"})
    prediction_field: str = field(default="response", metadata={"help": "JSON field holding the prediction"})
    reference_field: str = field(default="reference", metadata={"help": "JSON field holding the reference"})
    prompt_field: str = field(default="prompt", metadata={"help": "JSON field holding the prompt (reward model)"})
    reward_model: str | None = field(default=None, metadata={"help": "reward model directory: adds its mean score"})
    batch_size: int = field(default=16, metadata={"help": "reward model batch size"})
    limit: int | None = field(default=None, metadata={"help": "only the first N predictions"})
    unpaired: str = field(default="error", metadata={
        "help": "a record without a reference: error, or skip (score only the records that have one)"})
    out: str | None = field(default=None, metadata={"help": "directory for metrics.json, samples.jsonl, samples.csv"})
    device: str | None = field(default=None, metadata={"help": "device for the reward model (default: cuda if available)"})

    def __post_init__(self):
        if self.unpaired not in ("error", "skip"):
            raise ValueError(f"config field 'unpaired' must be one of error, skip; got {self.unpaired!r}")


def read_column(path: str | Path, key: str, limit: int | None = None, required: bool = True) -> list | None:
    """One value per record: ``record[key]`` of a JSON Lines file, or each line of a text file.

    A list value (several answers per prompt) gives its first element. Returns None when
    ``required`` is false and no record has ``key``.
    """
    from korlhf.records import read_jsonl

    path = Path(path)
    if not path.is_file():
        raise KorlhfError(f"file not found: {path}")
    if path.suffix != ".jsonl":
        from korlhf.data.io import read_text

        values = [line for line in read_text(path)[0].splitlines() if line.strip()]
        return values[:limit] if limit is not None else values
    values, missing = [], []
    for lineno, record in read_jsonl(path):
        if limit is not None and len(values) >= limit:
            break
        value = record.get(key)
        if value is None:
            missing.append(lineno)
        values.append(value[0] if isinstance(value, list) and value and isinstance(value[0], str) else value)
    if missing and (required or len(missing) < len(values)):
        raise KorlhfError(f"{path}:{missing[0]}: no '{key}' field ({len(missing)} of {len(values)} records lack it); "
                          f"name the field with --{'prediction' if required else 'reference'}_field")
    return None if missing else values


def reward_scores(model_path: str, prompts: list, responses: list[str], batch_size: int = 16,
                  device: str | None = None) -> list[float]:
    """The reward model's score of each (prompt, response), rendered with its own chat template."""
    import torch
    from tqdm.auto import tqdm

    from korlhf.models import default_device, load_reward_model, load_tokenizer
    from korlhf.templates import render_example

    tokenizer = load_tokenizer(model_path)
    model = load_reward_model(model_path, tokenizer, device=default_device(device))
    model.eval()
    texts = [render_example(tokenizer, p, r) if isinstance(p, str)
             else tokenizer.apply_chat_template([*p, {"role": "assistant", "content": r}], tokenize=False)
             for p, r in zip(prompts, responses, strict=True)]
    out: list[float] = []
    for start in tqdm(range(0, len(texts), batch_size), desc="reward", unit="batch"):
        batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True, truncation=True,
                          add_special_tokens=False).to(model.device)
        with torch.no_grad():
            out.extend(model(**batch).logits[:, 0].float().tolist())
    return out


def main(cfg: Config) -> Scores:
    from korlhf.evaluation.inputs import read_pairs

    pairs, has_refs = read_pairs(cfg.predictions, cfg.references, prediction_field=cfg.prediction_field,
                                 reference_field=cfg.reference_field, prompt_field=cfg.prompt_field,
                                 limit=cfg.limit, unpaired=cfg.unpaired, with_prompts=bool(cfg.reward_model))
    predictions = [p.prediction for p in pairs]
    rewards = None
    if cfg.reward_model:
        prompts = [p.prompt for p in pairs]
        if any(p is None for p in prompts):
            raise KorlhfError(f"a reward model needs the prompts: no '{cfg.prompt_field}' field in "
                              f"{cfg.predictions} (name it with --prompt_field)")
        rewards = reward_scores(cfg.reward_model, prompts, predictions, cfg.batch_size, cfg.device)
    result = score(predictions, [p.reference for p in pairs] if has_refs else None, rewards=rewards)
    for row, pair in zip(result.samples, pairs, strict=True):
        row.update(where=pair.where, **({"turn": pair.turn} if pair.turn is not None else {}))
    records = len({p.where.rsplit(" turn ", 1)[0] for p in pairs})
    turns = f", {len(pairs)} turns" if len(pairs) != records else ""
    print_scores(result, title=f"{cfg.predictions} ({records} predictions{turns}"
                              f"{', no references' if not has_refs else ''})")
    if cfg.out:
        write_scores(result, cfg.out)
    return result


def print_scores(result: Scores, title: str = "scores") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("metric", "value", "meaning", title=title)
    for key, value in result.corpus.items():
        table.add_row(key, format_value(value), METRICS.get(key, ""))
    console = Console()
    console.print(table)
    for name, signature in result.signatures.items():
        console.print(f"[dim]{name} signature:[/dim] {signature}")


def format_value(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    return str(value)


def write_scores(result: Scores, out_dir: str | Path) -> None:
    from korlhf.records import write_jsonl

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"corpus": result.corpus, "signatures": result.signatures}
    (out / "metrics.json").write_text(json.dumps(payload, ensure_ascii=False, indent=2), encoding="utf-8")
    write_jsonl(out / "samples.jsonl", result.samples)
    if result.samples:
        with open(out / "samples.csv", "w", encoding="utf-8-sig", newline="") as f:  # BOM: Excel reads Hangul
            writer = csv.DictWriter(f, fieldnames=list(result.samples[0]))
            writer.writeheader()
            writer.writerows(result.samples)
