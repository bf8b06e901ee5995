"""`korlhf eval kobest`: KoBEST accuracy by the log-likelihood of each answer choice.

Scored as lm-evaluation-harness's ``kobest_*`` tasks score a Hugging Face causal LM zero-shot, so
the numbers sit beside published ones: the prompts are the harness's (`korlhf.data.kobest`), each
choice is scored as ``log p(" " + choice | context)`` tokenized the harness's way (`encode_pair`),
and the most likely choice is the prediction. Reports accuracy and macro-F1 (sklearn's
``f1_score(average="macro")``, as the harness aggregates it) per task (BoolQ, COPA, HellaSwag,
SentiNeg, WiC), HellaSwag's ``acc_norm``, and their means. The data directory has the layout of
the public KoBEST release, ``DIR/<Task>/<split>.tsv``, or ``DIR/<Task>/<split>.jsonl`` (skt/kobest_v1
on the Hub, as `korlhf data get kobest` writes it).

Python API: ``choice_logprobs(model, tokenizer, items, batch_size=16) -> list[list[float]]``,
``accuracy(items, logprobs) -> {"n", "accuracy", "macro_f1"}`` and ``macro_f1(gold, predicted)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from korlhf.data.kobest import TARGET_DELIMITER, TASKS
from korlhf.errors import KorlhfError


@dataclass
class Config:
    model: str = field(metadata={"help": "model directory or hub id"})
    data: str = field(metadata={"help": "KoBEST directory (<Task>/<split>.tsv or .jsonl, as korlhf data get kobest writes into data/kobest) or one file"})
    tasks: list[str] = field(default_factory=lambda: list(TASKS), metadata={"help": f"tasks among {', '.join(TASKS)}"})
    split: str = field(default="test", metadata={"help": "train, dev or test"})
    limit: int | None = field(default=None, metadata={"help": "only the first N items of each task (quick runs)"})
    batch_size: int = field(default=16, metadata={"help": "sequences per forward pass"})
    dtype: str = field(default="auto", metadata={"help": "auto, float32, bfloat16 or float16"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, ... (default: cuda if available)"})
    out: str | None = field(default=None, metadata={"help": "write the results to this JSON file"})


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of a context and its continuation, as the harness's ``TemplateLM._encode_pair``.

    Trailing spaces of the context move to the continuation, the continuation's ids are what the
    whole string has beyond the context's, and no special token is added (the harness's HF model
    adds none unless ``add_bos_token``): tokenizing the two apart would split the join differently.
    """
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    return context_ids, whole[len(context_ids):]


def choice_logprobs(model, tokenizer, items: list[dict], batch_size: int = 16, progress: bool = False,
                    desc: str = "kobest") -> list[list[float]]:
    """Sum of log-probabilities of each choice's tokens after its item's context."""
    import torch
    from tqdm.auto import tqdm

    from korlhf.generate import _max_positions

    limit = _max_positions(model) or 10**9
    requests = []  # (item index, choice index, input ids, number of choice tokens)
    for i, item in enumerate(items):
        for j, choice in enumerate(item["choices"]):
            context, cont = encode_pair(tokenizer, item["context"], TARGET_DELIMITER + choice)
            # As the harness: keep the last limit + 1 tokens and feed all but the last one, whose
            # log-probability comes from the position before it. Too long: the oldest context goes.
            requests.append((i, j, (context + cont)[-(limit + 1):], len(cont)))
    requests.sort(key=lambda r: -len(r[2]))
    out = [[0.0] * len(item["choices"]) for item in items]
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    quiet = {} if progress else {"disable": True}
    for start in tqdm(range(0, len(requests), batch_size), desc=desc, unit="batch", **quiet):
        batch = requests[start:start + batch_size]
        width = max(len(r[2]) for r in batch) - 1
        ids = torch.tensor([r[2][:-1] + [pad] * (width + 1 - len(r[2])) for r in batch], device=device)
        mask = torch.tensor([[1] * (len(r[2]) - 1) + [0] * (width + 1 - len(r[2])) for r in batch], device=device)
        with torch.no_grad():
            logp = model(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1)
        for row, (i, j, seq, n_cont) in enumerate(batch):
            targets = torch.tensor(seq[len(seq) - n_cont:], device=device)
            positions = torch.arange(len(seq) - 1 - n_cont, len(seq) - 1, device=device)
            out[i][j] = logp[row, positions, targets].sum().item()
    return out


def macro_f1(gold: list[int], predicted: list[int]) -> float:
    """sklearn's ``f1_score(gold, predicted, average="macro")``: the mean F1 over every class seen in
    either list, so a class never predicted counts F1 0 and so does one predicted but never right."""
    f1s = []
    for label in sorted(set(gold) | set(predicted)):
        tp = sum(p == g == label for p, g in zip(predicted, gold, strict=True))
        fp = sum(p == label != g for p, g in zip(predicted, gold, strict=True))
        fn = sum(g == label != p for p, g in zip(predicted, gold, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return sum(f1s) / len(f1s) if f1s else 0.0


def accuracy(items: list[dict], logprobs: list[list[float]]) -> dict:
    """Accuracy and macro-F1 of picking the most likely choice (the first one on a tie, as argmax)."""
    predicted = [max(range(len(lp)), key=lp.__getitem__) for lp in logprobs]
    gold = [item["label"] for item in items]
    n = len(items)
    return {"n": n, "accuracy": sum(p == g for p, g in zip(predicted, gold, strict=True)) / n if n else 0.0,
            "macro_f1": macro_f1(gold, predicted)}


def acc_norm(items: list[dict], logprobs: list[list[float]]) -> float:
    """lm-evaluation-harness's ``acc_norm``: the choice with the highest log-likelihood per character
    of the choice text (``len(choice)``, the delimiter space not counted; the harness's byte-length
    variant is the separate ``acc_bytes``), so long endings are not penalised; HellaSwag reports it."""
    right = 0
    for item, lp in zip(items, logprobs, strict=True):
        per_char = [v / max(1, len(choice)) for v, choice in zip(lp, item["choices"], strict=True)]
        right += max(range(len(per_char)), key=per_char.__getitem__) == item["label"]
    return right / len(items) if items else 0.0


def task_files(data: str | Path, tasks: list[str], split: str) -> dict[str, Path]:
    data = Path(data)
    if data.is_file():
        return {"file": data}
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise KorlhfError(f"unknown KoBEST task(s) {', '.join(unknown)}; choose among {', '.join(TASKS)}")
    # The release's TSV, else skt/kobest_v1's JSON Lines as `korlhf data get kobest` lays them out.
    files = {t: next((p for p in (data / t / f"{split}.tsv", data / t / f"{split}.jsonl") if p.is_file()),
                     data / t / f"{split}.tsv") for t in tasks}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise KorlhfError(f"KoBEST file(s) not found: {', '.join(missing)}; --data should hold <Task>/{split}.tsv "
                          "as the public KoBEST release, or <Task>/{split}.jsonl as `korlhf data get kobest` writes "
                          "into data/kobest")
    return files


def main(cfg: Config) -> dict:
    from rich.console import Console
    from rich.table import Table

    from korlhf.data.kobest import read_kobest
    from korlhf.models import default_device, load_causal_lm, load_tokenizer

    files = task_files(cfg.data, cfg.tasks, cfg.split)
    tokenizer = load_tokenizer(cfg.model)
    model = load_causal_lm(cfg.model, tokenizer, dtype=cfg.dtype, device=default_device(cfg.device)).eval()
    results = {}
    for task, path in files.items():
        items = read_kobest(path, None if task == "file" else task, limit=cfg.limit)
        task = items[0]["task"] if items else task
        logprobs = choice_logprobs(model, tokenizer, items, cfg.batch_size, progress=True, desc=task)
        results[task] = accuracy(items, logprobs)
        if task == "HellaSwag":
            results[task]["acc_norm"] = acc_norm(items, logprobs)
    scored = [r for r in results.values() if r["n"]]
    summary = {"tasks": results, "mean_accuracy": sum(r["accuracy"] for r in scored) / max(1, len(scored)),
               "mean_macro_f1": sum(r["macro_f1"] for r in scored) / max(1, len(scored)),
               "model": cfg.model, "split": cfg.split, "limit": cfg.limit}
    table = Table("task", "n", "accuracy", "macro-F1", "acc_norm", title=f"KoBEST {cfg.split} ({cfg.model})")
    for task, r in results.items():
        norm = f"{r['acc_norm']:.4f}" if "acc_norm" in r else ""
        table.add_row(task, str(r["n"]), f"{r['accuracy']:.4f}", f"{r['macro_f1']:.4f}", norm)
    table.add_row("mean", "", f"{summary['mean_accuracy']:.4f}", f"{summary['mean_macro_f1']:.4f}", "", style="bold")
    Console().print(table)
    if cfg.out:
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.out).write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    return summary
