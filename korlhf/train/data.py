"""Records -> TRL datasets, shared by every training stage (sft, rm, dpo, grpo, rloo).

Records come from `korlhf.records.load_records`. We hand TRL *conversational* rows
(``{"role", "content"}`` messages) and let the tokenizer's chat template render them, so training
sees exactly the text that generation, chat and serving later build with `render_prompt`:

- sft: ``{"messages": [...]}``; with TRL's ``assistant_only_loss`` every assistant turn is learned
  and everything else (system, user turns, template markup) gets label -100.
- preference: ``{"prompt": [user], "chosen": [assistant], "rejected": [assistant], "margin"}``,
  one row per known pair (`korlhf.records.ranking_pairs`), TRL's explicit-prompt format.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from korlhf.errors import KorlhfError
from korlhf.records import load_records, ranking_pairs
from korlhf.templates import to_messages

ROLES = ("system", "user", "assistant")


def load_split(train_files: Sequence[str], eval_files: Sequence[str], eval_fraction: float, kind: str,
               seed: int) -> tuple[list[dict], list[dict]]:
    """Train and eval records: ``eval_files`` if given, else a seeded ``eval_fraction`` of the train files.

    The split is by record (one prompt with all its answers), so no prompt is on both sides.
    """
    if not train_files:
        raise KorlhfError(f"no training data: set train_files to one or more {kind} JSON Lines files")
    records = load_records(train_files, kind)
    if eval_files:
        return records, load_records(eval_files, kind)
    n_eval = round(len(records) * eval_fraction)
    if eval_fraction > 0 and n_eval == 0 and len(records) > 1:
        n_eval = 1
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    return ([r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held])


def source_counts(records: Sequence[dict]) -> dict[str, int]:
    """Records per ``source`` (``unknown`` when absent), largest first: the model card's data table."""
    return dict(Counter(r.get("source") or "unknown" for r in records).most_common())


def record_name(record: dict, index: int) -> str:
    return f"record {index + 1}" + (f" (id {record['id']})" if record.get("id") is not None else "")


def sft_messages(record: dict, index: int = 0) -> list[dict]:
    """The conversation of an sft record: its ``messages``, or system? + prompt(+input) + response."""
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise KorlhfError(f"{record_name(record, index)}: 'messages' must be a list of {{role, content}} objects")
        for m in messages:
            if m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                raise KorlhfError(f"{record_name(record, index)}: every message needs a role ({', '.join(ROLES)}) "
                                  f"and a text content; got {m!r}")
        if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
            raise KorlhfError(f"{record_name(record, index)}: no assistant turn to learn from")
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    prompt, response = record["prompt"], record["response"]
    if not isinstance(response, str) or not response.strip():
        raise KorlhfError(f"{record_name(record, index)}: empty 'response'; drop it or clean the data first "
                          "(korlhf data clean)")
    if record.get("input"):
        # KoAlpaca-style records carry the material to work on separately from the instruction.
        prompt = f"{prompt}\n\n{record['input']}"
    return to_messages(prompt, response, record.get("system"))


def sft_dataset(records: Sequence[dict]):
    """A ``datasets.Dataset`` with one ``messages`` column, ready for TRL's SFTTrainer."""
    from datasets import Dataset

    return Dataset.from_list([{"messages": sft_messages(r, i)} for i, r in enumerate(records)])


def preference_pairs(records: Sequence[dict], margin_scale: float = 0.0) -> list[dict]:
    """One ``{"prompt", "chosen", "rejected", "margin"}`` row (plain strings) per known pair.

    ``margin`` is ``margin_scale * (score of chosen - score of rejected)`` from the record's
    ``scores`` (0.0 when ``margin_scale`` is 0), the Llama-2 style margin of the pairwise loss.
    """
    rows = []
    for i, record in enumerate(records):
        scores = record.get("scores")
        if margin_scale and (not isinstance(scores, list) or len(scores) != len(record["responses"])):
            raise KorlhfError(f"{record_name(record, i)}: a margin needs 'scores' (one number per response); "
                              "set margin_scale 0 or add scores")
        index = {r: k for k, r in reversed(list(enumerate(record["responses"])))}
        for chosen, rejected in ranking_pairs(record):
            margin = margin_scale * (scores[index[chosen]] - scores[index[rejected]]) if margin_scale else 0.0
            rows.append({"prompt": record["prompt"], "chosen": chosen, "rejected": rejected, "margin": float(margin)})
    return rows


def preference_dataset(records: Sequence[dict], margin_scale: float = 0.0):
    """Pairs in TRL's conversational explicit-prompt format (DPOTrainer, RewardTrainer)."""
    from datasets import Dataset

    rows = [{"prompt": [{"role": "user", "content": p["prompt"]}],
             "chosen": [{"role": "assistant", "content": p["chosen"]}],
             "rejected": [{"role": "assistant", "content": p["rejected"]}],
             "margin": p["margin"]} for p in preference_pairs(records, margin_scale)]
    return Dataset.from_list(rows)
