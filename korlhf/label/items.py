"""What gets labelled: items of a prompt and its candidate answers, from files and from models.

An item is ``{"id", "prompt", "candidates": [{"response", "source"}], "reference", "truth", "source"}``:

- a prompt record (``prompt``) gives a prompt; its candidates come from ``models``;
- an sft record (``prompt`` + ``response``, or ``messages`` ending with the assistant) gives one
  candidate (``input_responses: candidates``) or the reference answer the judge compares with
  (``input_responses: reference``);
- a preference record (``responses`` best -> worst) gives its answers as candidates and its
  ranking as the known ``truth`` the judge is measured against;
- a `korlhf generate` output line (``responses`` + ``finish_reasons``) gives unranked candidates
  and its ``reference``;
- a KoBEST ``.tsv`` (or skt/kobest_v1 ``.jsonl``, `korlhf data get kobest`) gives each item's choices as candidates and the right answer as the truth.

Unranked records with the same prompt are merged into one item (one generate file per system
gives one item per prompt with every system's answer).

Generated candidates go through `korlhf.generate` (the same decoding code as `korlhf generate`).
"""

from __future__ import annotations

from pathlib import Path

from korlhf.errors import KorlhfError


def load_items(paths: list[str], input_responses: str = "candidates", limit: int | None = None) -> list[dict]:
    """Items from every input file, in order; ``limit`` keeps the first N in all."""
    from korlhf.data.kobest import is_hub_file, read_kobest, to_preference
    from korlhf.generate import read_prompts

    if not paths:
        raise KorlhfError("no inputs: set inputs to prompt/sft/preference JSON Lines files or KoBEST .tsv files")
    items: list[dict] = []
    for path in map(Path, paths):
        left = None if limit is None else limit - len(items)
        if left is not None and left <= 0:
            break
        if path.suffix == ".tsv" or is_hub_file(path):  # the release's TSV or skt/kobest_v1's JSON Lines
            for kobest in read_kobest(path, limit=left):
                truth = to_preference(kobest)
                items.append(_item(truth["id"], truth["prompt"], truth["source"],
                                   [_cand(c, "kobest") for c in kobest["choices"]], truth=truth))
            continue
        for n, record in enumerate(read_prompts(path, left)):
            items.append(_from_record(record, f"{path.name}#{n + 1}", input_responses))
    if not items:
        raise KorlhfError(f"no items in {', '.join(paths)}")
    return _merge_same_prompt(items)


def _merge_same_prompt(items: list[dict]) -> list[dict]:
    """One item per prompt: unranked records that ask the same prompt (say, one `korlhf generate`
    file per system) pool their candidates; a record with a known ranking stays on its own."""
    from korlhf.label.prompts import prompt_text

    merged: list[dict] = []
    by_prompt: dict[str, dict] = {}
    for item in items:
        key = prompt_text(item["prompt"])
        first = by_prompt.get(key)
        if item["truth"] or first is None:
            merged.append(item)
            if not item["truth"]:
                by_prompt[key] = item
            continue
        first["candidates"] += _unique(item["candidates"], {c["response"].strip() for c in first["candidates"]})
        first["reference"] = first["reference"] or item["reference"]
    return merged


def _from_record(record: dict, where: str, input_responses: str) -> dict:
    if "turns" in record:
        raise KorlhfError(f"{where}: MT-Bench turn lists cannot be labelled; give one prompt per record")
    prompt, response = record["prompt"], record.get("response")
    if isinstance(prompt, list) and prompt and prompt[-1].get("role") == "assistant":
        prompt, response = prompt[:-1], prompt[-1]["content"]  # an sft `messages` record
    item = _item(record.get("id", where), prompt, record.get("source"), [], reference=record.get("reference"))
    responses = record.get("responses")
    if responses is not None:
        if not isinstance(responses, list) or not all(isinstance(r, str) for r in responses):
            raise KorlhfError(f"{where}: 'responses' must be a list of answers (strings)")
        generated = "finish_reasons" in record  # a `korlhf generate` line: samples, not a ranking
        source = (record.get("settings") or {}).get("model", "input") if generated else "input"
        if input_responses != "ignore":
            item["candidates"] = _unique([_cand(r, source) for r in responses])
        if not generated and len(responses) >= 2:
            item["truth"] = {"responses": responses, "tied_after_first": bool(record.get("tied_after_first"))}
    elif isinstance(response, str):
        if input_responses == "candidates":
            item["candidates"] = [_cand(response, "input")]
        elif input_responses == "reference":
            item["reference"] = response
    return item


def _item(item_id, prompt, source, candidates, reference=None, truth=None) -> dict:
    return {"id": item_id, "prompt": prompt, "source": source, "candidates": candidates,
            "reference": reference, "truth": truth}


def _cand(response: str, source: str) -> dict:
    return {"response": response, "source": source}


def _unique(candidates: list[dict], seen: set | None = None) -> list[dict]:
    """Candidates whose text (stripped) is not in ``seen`` or earlier: identical answers cannot be ranked."""
    seen = set() if seen is None else seen
    out = []
    for c in candidates:
        if c["response"].strip() not in seen:
            seen.add(c["response"].strip())
            out.append(c)
    return out


def add_generated(cfg, items: list[dict], progress: bool = True) -> None:
    """Append ``cfg.samples_per_model`` answers of every model in ``cfg.models`` to each item's candidates.

    Empty answers and answers already among an item's candidates are dropped (identical texts
    cannot be ranked against each other).
    """
    import gc

    from korlhf.generate import decoding_from, generate
    from korlhf.models import default_device, load_causal_lm, load_tokenizer

    decoding = decoding_from({"preset": cfg.preset, "max_new_tokens": cfg.max_new_tokens,
                              "temperature": cfg.temperature, "num_return_sequences": cfg.samples_per_model,
                              "seed": cfg.seed})
    prompts = [item["prompt"] for item in items]
    device = default_device(cfg.device)
    for name in cfg.models:
        tokenizer = load_tokenizer(name)
        model = load_causal_lm(name, tokenizer, dtype=cfg.dtype, device=device)
        gens = generate(model, tokenizer, prompts, decoding, batch_size=cfg.batch_size, progress=progress,
                        desc=f"candidates from {Path(name).name}")
        for item, gen in zip(items, gens, strict=True):
            new = [_cand(text, name) for text in gen.responses if text.strip()]
            item["candidates"] += _unique(new, {c["response"].strip() for c in item["candidates"]})
        del model
        gc.collect()
