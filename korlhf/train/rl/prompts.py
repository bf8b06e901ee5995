"""What online RL reads: prompt conversations (rendered with the policy's chat template), and their order.

Which prompts a process samples at a step is a pure function of (seed, step, rank), so a resumed
run draws exactly the prompts the uninterrupted run would have, with no data-loader state.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from korlhf.errors import KorlhfError


def prompt_messages(record: dict) -> list[dict]:
    """The conversation a prompt record opens: optional system, then the user turn (prompt + input)."""
    from korlhf.templates import to_messages

    prompt = record["prompt"]
    if record.get("input"):  # KoAlpaca-style material, joined as `korlhf train sft` joins it
        prompt = f"{prompt}\n\n{record['input']}"
    return to_messages(prompt, system=record.get("system"))


def load_prompts(records: list[dict], tokenizer, max_length: int, output_dir: str, split: str) -> list[list[dict]]:
    """Prompt conversations of ``records``; those over ``max_length`` templated tokens are set aside.

    Set-aside records go to ``output_dir/skipped_<split>_prompts.jsonl`` with the reason, so nothing
    is lost silently.
    """
    from korlhf.records import write_jsonl
    from korlhf.templates import render_prompt

    if not records:
        return []
    kept, skipped = [], []
    for record in records:
        messages = prompt_messages(record)
        n_tokens = len(tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"])
        if n_tokens > max_length:
            skipped.append({**record, "reason": f"{n_tokens} prompt tokens > max_prompt_length {max_length}"})
        else:
            kept.append(messages)
    if skipped:
        path = Path(output_dir) / f"skipped_{split}_prompts.jsonl"
        write_jsonl(path, skipped)
        print(f"{len(skipped)} {split} prompts longer than max_prompt_length={max_length} set aside -> {path}")
    if not kept:
        raise KorlhfError(f"no {split} prompts left: all {len(records)} are longer than "
                          f"max_prompt_length={max_length} tokens; raise max_prompt_length")
    return kept


@lru_cache(maxsize=4)
def _permutation(n: int, seed: int, epoch: int) -> list[int]:
    import torch

    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch)).tolist()


def prompt_indices(step: int, n: int, batch: int, world: int, rank: int, seed: int) -> list[int]:
    """Indices of the prompts process ``rank`` samples at ``step`` (1-based): a fresh seeded shuffle per epoch."""
    start = ((step - 1) * world + rank) * batch
    return [_permutation(n, seed, i // n)[i % n] for i in range(start, start + batch)]
