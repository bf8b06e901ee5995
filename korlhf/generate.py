"""Generate answers with any causal LM: `korlhf generate`, and the Python API other stages use.

Python API (stable; the labelling stage and the pipeline call it)::

    from korlhf.decoding import Decoding
    from korlhf.generate import generate, generate_conversations
    from korlhf.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer("runs/sft")
    model = load_causal_lm("runs/sft", tokenizer)
    gens = generate(model, tokenizer, ["김치찌개 끓이는 법을 알려줘"],
                    Decoding.from_preset("top-p", num_return_sequences=4, max_new_tokens=128))
    gens[0].responses        # 4 answers (str), Korean never cut inside a character
    gens[0].response_tokens  # new tokens of each answer (EOS not counted)
    gens[0].finish_reasons   # "eos" | "stop" (a stop string) | "length" (max_new_tokens)

- ``generate(model, tokenizer, prompts, decoding=None, *, batch_size=8, system=None, chat_template=True,
  progress=False) -> list[Generation]``: one `Generation` per prompt, in input order. A prompt is a
  user message (str) or a message list (``[{"role": ..., "content": ...}]``); it is rendered with the
  tokenizer's chat template (``chat_template=False`` feeds plain strings as they are, for base models).
  Prompts are sorted by length and batched with left padding; EOS and pad come from the tokenizer.
- ``generate_conversations(model, tokenizer, conversations, decoding=None, **same) -> list[list[Generation]]``:
  multi-turn (MT-Bench style): each conversation is a list of user turns; turn t is answered with
  the earlier turns and that sample's own earlier answers in context. Per conversation one
  `Generation` per turn; ``responses[j]`` continues sample j.

`korlhf generate` reads prompt records (``{"prompt": ...}`` JSON Lines, or a JSON array), plain
text lines, or MT-Bench question files (``question_id``, ``category``, ``turns``) and writes JSON
Lines with the prompt, the response(s), the exact settings, token counts and timing.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from korlhf.decoding import PRESETS, Decoding
from korlhf.errors import KorlhfError
from korlhf.streaming import REPLACEMENT


@dataclass
class Generation:
    """The answers to one prompt. ``responses[0]`` is the best beam under beam search."""

    prompt: str | list[dict]
    responses: list[str]
    response_tokens: list[int]
    finish_reasons: list[str]
    prompt_tokens: int
    time_s: float
    scores: list[float] | None = None  # beam search: length-penalised sum of log-probs per response
    too_long: str | None = None  # "skipped" / "truncated from N tokens": the prompt did not fit the model

    @property
    def response(self) -> str:
        return self.responses[0]


def decode_response(tokenizer, token_ids: list[int], stop: list[str] | tuple = ()) -> tuple[str, str, int]:
    """(text, finish reason, token count) of one generated id sequence (prompt already removed).

    Cuts at the first EOS, then at the first stop string. A byte-level BPE token can end inside a
    Hangul syllable; a cut there (max_new_tokens) leaves an incomplete character, which is dropped
    rather than shown as U+FFFD.
    """
    reason = "length"
    if tokenizer.eos_token_id in token_ids:
        token_ids = token_ids[: token_ids.index(tokenizer.eos_token_id)]
        reason = "eos"
    token_ids = [t for t in token_ids if t != tokenizer.pad_token_id]
    text = tokenizer.decode(token_ids, skip_special_tokens=True).rstrip(REPLACEMENT)
    cuts = [i for i in (text.find(s) for s in stop) if i >= 0]
    if cuts:
        text, reason = text[: min(cuts)], "stop"
    return text.strip(), reason, len(token_ids)


def _render(tokenizer, prompt, system, chat_template: bool) -> str:
    from korlhf.templates import render_prompt

    if chat_template:
        return render_prompt(tokenizer, prompt, system=system)
    if not isinstance(prompt, str):
        raise KorlhfError("a message list needs a chat template; drop --raw or give plain-text prompts")
    return prompt


def _max_positions(model) -> int | None:
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def _fit(encoded: list[list[int]], limit: int | None, max_new_tokens: int, too_long: str) -> dict[int, str]:
    """Prompts that leave no room for ``max_new_tokens``: raise (``error``), or note each one as
    skipped / truncated (left: the end of a chat prompt holds the question and the answer cue)."""
    notes: dict[int, str] = {}
    room = None if limit is None else limit - max_new_tokens
    for i, ids in enumerate(encoded):
        if room is None or len(ids) <= room:
            continue
        if too_long == "error" or (too_long == "truncate" and room < 1):
            raise KorlhfError(f"prompt {i + 1} has {len(ids)} tokens; with max_new_tokens={max_new_tokens} "
                              f"that exceeds the model's {limit} positions (shorten it or lower max_new_tokens)")
        notes[i] = "skipped" if too_long == "skip" else f"truncated from {len(ids)} tokens"
        if too_long == "truncate":
            encoded[i] = ids[-room:]
    return notes


def generate(model, tokenizer, prompts: list, decoding: Decoding | None = None, *, batch_size: int = 8,
             system: str | None = None, chat_template: bool = True, progress: bool = False,
             desc: str = "generate", too_long: str = "error") -> list[Generation]:
    """Answer every prompt ``decoding.num_return_sequences`` times; see the module docstring.

    ``too_long``: a prompt with no room for ``max_new_tokens`` in the model's positions raises
    (``error``), gets empty answers marked ``too_long="skipped"`` (``skip``), or loses its oldest
    tokens (``truncate``); one long prompt never costs the answers to the others.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import set_seed

    decoding = decoding or Decoding()
    texts = [_render(tokenizer, p, system, chat_template) for p in prompts]
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    notes = _fit(encoded, _max_positions(model), decoding.max_new_tokens, too_long)
    if decoding.seed is not None:
        set_seed(decoding.seed)
    kwargs = decoding.generate_kwargs(tokenizer)
    beam = decoding.num_beams > 1 and not decoding.contrastive
    if beam:
        kwargs.update(return_dict_in_generate=True, output_scores=True)
    k = decoding.num_return_sequences
    results: list[Generation | None] = [None] * len(prompts)
    for i, note in notes.items():
        if note == "skipped":
            results[i] = Generation(prompt=prompts[i], responses=[""] * k, response_tokens=[0] * k,
                                    finish_reasons=["prompt_too_long"] * k, prompt_tokens=len(encoded[i]),
                                    time_s=0.0, too_long=note)
    order = sorted((i for i in range(len(prompts)) if results[i] is None), key=lambda i: -len(encoded[i]))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    quiet = {} if progress else {"disable": True}  # when shown, TQDM_DISABLE=1 still hides it
    with tqdm(total=len(prompts), desc=desc, unit="prompt", **quiet) as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, padding=True, padding_side="left",
                                  return_tensors="pt").to(device)
            began = time.perf_counter()
            with torch.no_grad():
                out = model.generate(**batch, **kwargs)
            elapsed = time.perf_counter() - began
            sequences = out if isinstance(out, torch.Tensor) else out.sequences
            new = sequences[:, batch["input_ids"].shape[1]:].tolist()
            beam_scores = out.sequences_scores.tolist() if beam else None
            for row, i in enumerate(idx):
                decoded = [decode_response(tokenizer, new[row * k + j], decoding.stop) for j in range(k)]
                results[i] = Generation(
                    prompt=prompts[i], responses=[d[0] for d in decoded], finish_reasons=[d[1] for d in decoded],
                    response_tokens=[d[2] for d in decoded], prompt_tokens=len(encoded[i]),
                    time_s=elapsed / len(idx), scores=beam_scores[row * k:(row + 1) * k] if beam else None,
                    too_long=notes.get(i))
            bar.update(len(idx))
    model.train(was_training)
    return results  # type: ignore[return-value]


def generate_conversations(model, tokenizer, conversations: list[list[str]], decoding: Decoding | None = None,
                           **kwargs) -> list[list[Generation]]:
    """Multi-turn answers: per conversation, one `Generation` per user turn (see the module docstring)."""
    decoding = decoding or Decoding()
    k = decoding.num_return_sequences
    later = dataclasses.replace(decoding, num_return_sequences=1)
    out: list[list[Generation]] = [[] for _ in conversations]
    histories = [[[] for _ in range(k)] for _ in conversations]  # histories[c][j]: messages of sample j
    for turn in range(max((len(c) for c in conversations), default=0)):
        active = [c for c, conv in enumerate(conversations) if turn < len(conv)]
        if turn == 0:  # every sample shares the first prompt: ask once for k answers
            prompts = [[{"role": "user", "content": conversations[c][0]}] for c in active]
            gens = generate(model, tokenizer, prompts, decoding, desc=f"turn {turn + 1}", **kwargs)
            per_conv = dict(zip(active, gens, strict=True))
        else:
            prompts = [histories[c][j] + [{"role": "user", "content": conversations[c][turn]}]
                       for c in active for j in range(k)]
            gens = generate(model, tokenizer, prompts, later, desc=f"turn {turn + 1}", **kwargs)
            per_conv = {c: _merge(gens[n * k:(n + 1) * k]) for n, c in enumerate(active)}
        for c in active:
            gen = per_conv[c]
            for j in range(k):
                # U+FFFD (invalid bytes the model emitted) stays in the answer but not in the history
                # the next turn reads: the model would be conditioned on text no one wrote.
                answer = gen.responses[j].replace(REPLACEMENT, "")
                histories[c][j] = histories[c][j] + [{"role": "user", "content": conversations[c][turn]},
                                                     {"role": "assistant", "content": answer}]
            out[c].append(gen)
    return out


def _merge(gens: list[Generation]) -> Generation:
    """k one-answer generations (one per sample) as one k-answer `Generation`."""
    return Generation(prompt=gens[0].prompt, responses=[g.response for g in gens],
                      response_tokens=[g.response_tokens[0] for g in gens],
                      finish_reasons=[g.finish_reasons[0] for g in gens], prompt_tokens=gens[0].prompt_tokens,
                      time_s=sum(g.time_s for g in gens), too_long=next((g.too_long for g in gens if g.too_long), None))


# --- `korlhf generate` -----------------------------------------------------------------------------

_KNOBS = [f.name for f in dataclasses.fields(Decoding) if f.name not in ("preset", "seed")]


def _knob(help_text: str):
    return field(default=None, metadata={"help": help_text + " (default: the preset's)"})


@dataclass
class Config:
    model: str = field(metadata={"help": "model directory or hub id (an adapter directory loads on its base)"})
    prompts: str = field(metadata={"help": "prompt records (.jsonl/.json with 'prompt'), MT-Bench questions "
                                           "('turns'), or a text file with one prompt per line"})
    out: str = field(default="generations.jsonl", metadata={"help": "JSON Lines file to write"})
    preset: str = field(default="greedy", metadata={"help": f"decoding preset: {', '.join(PRESETS)}"})
    max_new_tokens: int | None = _knob("most new tokens per answer")
    do_sample: bool | None = _knob("sample instead of taking the most likely token")
    num_beams: int | None = _knob("beam width (1 = no beam search)")
    length_penalty: float | None = _knob("beam score = sum log-prob / length**length_penalty")
    early_stopping: bool | None = _knob("beam search stops once num_beams answers are finished")
    temperature: float | None = _knob("divide logits by this before sampling")
    top_k: int | None = _knob("sample among the k most likely tokens (0 = off); contrastive: candidates")
    top_p: float | None = _knob("nucleus sampling mass (1.0 = off)")
    typical_p: float | None = _knob("locally typical sampling mass (1.0 = off)")
    min_p: float | None = _knob("drop tokens with p < min_p * p(top token) (0 = off)")
    penalty_alpha: float | None = _knob("contrastive search degeneration penalty (0 = off)")
    repetition_penalty: float | None = _knob("CTRL repetition penalty (1.0 = off)")
    no_repeat_ngram_size: int | None = _knob("never repeat an n-gram of this size (0 = off)")
    num_return_sequences: int | None = _knob("answers per prompt")
    seed: int | None = field(default=0, metadata={"help": "random seed (same seed, batch size and prompts -> same output)"})
    stop: list[str] = field(default_factory=list, metadata={"help": "stop strings (repeat the flag for several)"})
    template: str | None = field(default=None, metadata={"help": "chat template name to use instead of the model's"})
    raw: bool = field(default=False, metadata={"help": "feed prompts as plain text, no chat template (base models)"})
    system: str | None = field(default=None, metadata={"help": "system message put before every prompt"})
    batch_size: int = field(default=8, metadata={"help": "prompts per batch"})
    limit: int | None = field(default=None, metadata={"help": "only the first N prompts"})
    too_long: str = field(default="skip", metadata={
        "help": "a prompt with no room for max_new_tokens: skip (empty answer, listed), truncate (oldest tokens "
                "dropped, listed) or error"})

    def __post_init__(self):
        if self.too_long not in ("skip", "truncate", "error"):
            raise ValueError(f"config field 'too_long' must be one of skip, truncate, error; got {self.too_long!r}")
    dtype: str = field(default="auto", metadata={"help": "auto, float32, bfloat16 or float16"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1 ... (default: cuda if available)"})


def decoding_from(cfg, preset: str | None = None) -> Decoding:
    """A `Decoding` from the preset and any knob set on ``cfg`` (a `Config` or a mapping)."""
    values = cfg if isinstance(cfg, dict) else vars(cfg)
    overrides = {name: values.get(name) for name in _KNOBS}
    try:
        decoding = Decoding.from_preset(preset or values.get("preset") or "greedy", **overrides)
        # seed=None (no seeding) is a real choice, unlike None for "the preset's value" above
        return dataclasses.replace(decoding, seed=values["seed"]) if "seed" in values else decoding
    except (TypeError, ValueError) as exc:
        raise KorlhfError(f"decoding settings: {exc}") from None


def read_prompts(path: str | Path, limit: int | None = None) -> list[dict]:
    """Items ``{"prompt": str | messages, ...}`` or ``{"turns": [...], ...}``, other keys kept.

    ``.jsonl``/``.json`` files hold records (a JSON array also works: KoChatGPT ships its prompts
    as one); any other file is one prompt per non-empty line.
    """
    from korlhf.data.io import read_text
    from korlhf.records import read_jsonl

    path = Path(path)
    if not path.is_file():
        raise KorlhfError(f"prompt file not found: {path}")
    text = read_text(path)[0]  # the data stage's diagnosis of CP949 / UTF-16 / empty files
    if path.suffix not in (".jsonl", ".json"):
        items = [{"prompt": line.strip()} for line in text.splitlines() if line.strip()]
    elif text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise KorlhfError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
        items = [dict(_check_item(r, f"{path}: item {i + 1}")) for i, r in enumerate(data)]
    else:
        items = [_check_item(r, f"{path}:{n}") for n, r in read_jsonl(path)]
    items = items[:limit] if limit is not None else items
    if not items:
        raise KorlhfError(f"no prompts in {path}")
    return items


def _check_item(record, where: str) -> dict:
    if not isinstance(record, dict):
        raise KorlhfError(f"{where}: expected a JSON object with 'prompt' or 'turns'")
    if "turns" in record:
        turns = record["turns"]
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) and t.strip() for t in turns):
            raise KorlhfError(f"{where}: 'turns' must be a non-empty list of user messages (strings)")
        return record
    prompt = record.get("prompt", record.get("messages"))
    if isinstance(prompt, str) and prompt.strip():
        return record
    if isinstance(prompt, list) and prompt and all(isinstance(m, dict) and "role" in m for m in prompt):
        return {**record, "prompt": prompt}
    raise KorlhfError(f"{where}: needs a non-empty 'prompt' (a string or a message list) or MT-Bench 'turns' "
                      f"(keys present: {', '.join(sorted(record)) or 'none'})")


def to_record(item: dict, gens: list[Generation], settings: dict) -> dict:
    """One output line: the input item's keys, then the answers, token counts, timing and settings."""
    last = gens[-1]
    record = {k: v for k, v in item.items() if k not in ("response", "responses")}
    if "response" in item and "reference" not in item:
        record["reference"] = item["response"]  # an SFT record's answer: `korlhf eval` scores against it
    if "turns" in item:
        record["choices"] = [{"index": j, "turns": [g.responses[j] for g in gens],
                              "tokens": [g.response_tokens[j] for g in gens]} for j in range(len(last.responses))]
    record.update(response=last.response, responses=last.responses, finish_reasons=last.finish_reasons,
                  prompt_tokens=sum(g.prompt_tokens for g in gens),
                  response_tokens=[sum(g.response_tokens[j] for g in gens) for j in range(len(last.responses))],
                  time_s=round(sum(g.time_s for g in gens), 4), settings=settings)
    if last.scores is not None:
        record["scores"] = last.scores
    notes = [f"turn {t} {g.too_long}" if "turns" in item else g.too_long
             for t, g in enumerate(gens, 1) if g.too_long]
    if notes:
        record["too_long"] = "; ".join(notes)
    return record


def main(cfg: Config) -> list[dict]:
    from rich.console import Console

    from korlhf.models import default_device, load_causal_lm, load_tokenizer
    from korlhf.records import write_jsonl

    decoding = decoding_from(cfg)
    items = read_prompts(cfg.prompts, cfg.limit)
    tokenizer = load_tokenizer(cfg.model, template=cfg.template)
    model = load_causal_lm(cfg.model, tokenizer, dtype=cfg.dtype, device=default_device(cfg.device))
    settings = {**decoding.to_dict(), "model": cfg.model, "chat_template": not cfg.raw, "system": cfg.system}
    options = dict(batch_size=cfg.batch_size, system=cfg.system, chat_template=not cfg.raw, progress=True,
                   too_long=cfg.too_long)
    began = time.perf_counter()
    single = [i for i, item in enumerate(items) if "turns" not in item]
    multi = [i for i, item in enumerate(items) if "turns" in item]
    per_item: dict[int, list[Generation]] = {}
    if single:
        gens = generate(model, tokenizer, [items[i]["prompt"] for i in single], decoding, **options)
        per_item.update({i: [g] for i, g in zip(single, gens, strict=True)})
    if multi:
        convs = generate_conversations(model, tokenizer, [items[i]["turns"] for i in multi], decoding, **options)
        per_item.update(dict(zip(multi, convs, strict=True)))
    records = [to_record(item, per_item[i], settings) for i, item in enumerate(items)]
    write_jsonl(cfg.out, records)
    elapsed = time.perf_counter() - began
    new_tokens = sum(sum(r["response_tokens"]) for r in records)
    console = Console(stderr=True)
    long = [(n, r["too_long"]) for n, r in enumerate(records, 1) if "too_long" in r]
    if long:
        console.print(f"[yellow]{len(long)} prompt(s) of {cfg.prompts} too long for the model with max_new_tokens="
                      f"{decoding.max_new_tokens} (marked 'too_long' in {cfg.out}):[/yellow]")
        for n, note in long:
            console.print(f"  prompt {n}: {note}")
    console.print(
        f"{len(records)} prompts, {sum(len(r['responses']) for r in records)} answers, {new_tokens} new tokens "
        f"in {elapsed:.1f}s ({new_tokens / max(elapsed, 1e-9):.1f} tokens/s) -> {cfg.out}")
    return records

