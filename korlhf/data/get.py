"""`korlhf data get NAME...`: well-known Korean data sets from the Hugging Face Hub, by name.

Each file is fetched with ``huggingface_hub.hf_hub_download`` into the Hugging Face cache (shared
with every other tool, resumable: an interrupted download goes on from its ``.incomplete`` part)
and linked into ``<out>/<NAME>/`` under a plain name that `korlhf data inspect/clean/build`,
`korlhf eval kobest` and `korlhf label` read. When every file of a set is cached, no request is
made at all (``--update`` asks the hub for a newer revision). With ``HF_HUB_OFFLINE=1`` only the
cache is used, and a missing file is named with the command that fetches it. ``HF_ENDPOINT``
points it at a mirror.
"""

from __future__ import annotations

import difflib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from korlhf.errors import KorlhfError


@dataclass(frozen=True)
class Known:
    repo: str  # dataset repo on the hub
    files: dict  # file in the repo -> name under <out>/<NAME>/
    reader: str  # the korlhf reader (--format) the files are read with
    what: str


_KOBEST_TASKS = {"boolq": "BoolQ", "copa": "COPA", "hellaswag": "HellaSwag", "sentineg": "SentiNeg", "wic": "WiC"}

# Only ids and file names confirmed from public documentation:
# - koalpaca: the repo's file listing (huggingface.co/datasets/beomi/KoAlpaca-v1.1a/tree/main/data) shows
#   the one parquet file below; its rows are KoAlpaca v1.1's (instruction, output, url).
# - kobest: the dataset card of skt/kobest_v1 (README.md at commit a5ea15e) declares every config's
#   data_files as <task>/{train,validation,test}.jsonl; the field names (paragraph, premise,
#   alternative_1, ending_1, sentence, word, context_1, label) are lm-evaluation-harness's
#   (lm_eval/tasks/kobest/utils.py). "validation" is linked as dev, the release's name for it.
# No hub copy of KoChatGPT's files (SFT / RM / PPO) could be confirmed: it is published on GitHub only.
KNOWN = {
    "koalpaca": Known(
        "beomi/KoAlpaca-v1.1a", {"data/train-00000-of-00001-21df739eb88d711e.parquet": "train.parquet"},
        "koalpaca", "KoAlpaca v1.1a: 21.2k Korean questions answered by ChatGPT (sft records)"),
    "kobest": Known(
        "skt/kobest_v1",
        {f"{task}/{split}.jsonl": f"{name}/{'dev' if split == 'validation' else split}.jsonl"
         for task, name in _KOBEST_TASKS.items() for split in ("train", "validation", "test")},
        "kobest", "KoBEST v1: BoolQ, COPA, HellaSwag, SentiNeg, WiC (preference records; korlhf eval kobest)"),
}


@dataclass
class Config:
    names: list[str] = field(default_factory=list, metadata={
        "help": f"data sets to fetch, given as arguments: korlhf data get NAME... (known: {', '.join(KNOWN)})"})
    out: str = field(default="data", metadata={"help": "each set is linked into OUT/NAME/"})
    cache_dir: str | None = field(default=None, metadata={
        "help": "Hugging Face cache folder (default: HF_HUB_CACHE, ~/.cache/huggingface/hub)"})
    update: bool = field(default=False, metadata={
        "help": "ask the hub for a newer revision even when every file is cached"})
    copy: bool = field(default=False, metadata={"help": "copy the files instead of linking them to the cache"})


def main(cfg: Config) -> dict[str, list[Path]]:
    """Fetch every named set and link it into ``cfg.out``; returns name -> the files written."""
    from rich.console import Console

    console = Console()
    if not cfg.names:
        _print_known(console)
        return {}
    for name in cfg.names:
        if name not in KNOWN:
            close = difflib.get_close_matches(name, list(KNOWN), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise KorlhfError(f"unknown data set {name!r}; {hint}known: {', '.join(KNOWN)} "
                              "(`korlhf data get` with no name lists them)")
    cached = {name: _cached(KNOWN[name], cfg.cache_dir) for name in cfg.names}
    _check_offline(cfg, cached)
    written = {}
    for name in cfg.names:
        known, paths = KNOWN[name], cached[name]
        fresh = [f for f in known.files if cfg.update or f not in paths]
        for filename in fresh:
            paths[filename] = _download(known.repo, filename, cfg.cache_dir)
        folder = Path(cfg.out) / name
        written[name] = [_place(Path(paths[f]), folder / local, cfg.copy) for f, local in known.files.items()]
        how = f"{len(fresh)} downloaded, {len(known.files) - len(fresh)} from the cache"
        console.print(f"{name}: {len(known.files)} file(s) of {known.repo} ({how}) -> {folder}/ "
                      f"(read as {known.reader})", highlight=False, soft_wrap=True)
        console.print(f"  next: korlhf data inspect {written[name][0]}", highlight=False, soft_wrap=True)
    return written


def _print_known(console) -> None:
    from rich.table import Table

    table = Table("name", "hub id", "files", "reader", "what", title="Known data sets (korlhf data get NAME...)",
                  title_justify="left")
    for name, known in KNOWN.items():
        table.add_row(name, known.repo, str(len(known.files)), known.reader, known.what)
    console.print(table)


def _cached(known: Known, cache_dir: str | None) -> dict[str, str]:
    """The files of ``known`` already in the cache (for the revision last fetched), without a request."""
    from huggingface_hub import try_to_load_from_cache

    found = {}
    for filename in known.files:
        path = try_to_load_from_cache(known.repo, filename, cache_dir=cache_dir, repo_type="dataset")
        if isinstance(path, str):
            found[filename] = path
    return found


def _check_offline(cfg: Config, cached: dict[str, dict]) -> None:
    """With HF_HUB_OFFLINE=1 a file not in the cache cannot be had: say which, and how to get it."""
    from huggingface_hub import constants

    missing = {n: [f for f in KNOWN[n].files if f not in cached[n]] for n in cfg.names}
    missing = {n: files for n, files in missing.items() if files}
    if not constants.is_offline_mode() or not missing:
        return
    listed = "; ".join(f"{KNOWN[n].repo}: {', '.join(files)}" for n, files in missing.items())
    again = " ".join([*missing, *(["--cache_dir", cfg.cache_dir] if cfg.cache_dir else [])])
    raise KorlhfError(f"HF_HUB_OFFLINE=1 and the Hugging Face cache ({cfg.cache_dir or constants.HF_HUB_CACHE}) lacks "
                      f"{listed}. Fetch them once with network: HF_HUB_OFFLINE=0 korlhf data get {again}")


def _download(repo: str, filename: str, cache_dir: str | None) -> str:
    """One file into the cache (resumed if a part is there); hub errors become one-line messages."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    endpoint = os.environ.get("HF_ENDPOINT") or None  # read now, so a mirror set after import still counts
    where = endpoint or "https://huggingface.co"
    try:
        return hf_hub_download(repo, filename, repo_type="dataset", cache_dir=cache_dir, endpoint=endpoint)
    except RepositoryNotFoundError:
        raise KorlhfError(f"{where} has no dataset {repo} (or it is private or gated: log in with `hf auth login`)") \
            from None
    except EntryNotFoundError:
        raise KorlhfError(f"{where}: dataset {repo} has no file {filename}; the hub copy changed since korlhf's "
                          "table (korlhf/data/get.py) was written") from None
    except LocalEntryNotFoundError as exc:  # no connection, and not cached
        cause = exc.__cause__ or exc
        raise KorlhfError(f"cannot download {filename} of {repo}: {where} is unreachable ({type(cause).__name__}); "
                          "connect to the network, or set HF_ENDPOINT to a mirror") from None
    except HfHubHTTPError as exc:
        raise KorlhfError(f"cannot download {filename} of {repo} from {where}: {str(exc).splitlines()[0]}") from None


def _place(cached: Path, target: Path, copy: bool) -> Path:
    """``target`` becomes a link to the cached file (a copy with --copy, or where links are refused)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    source = cached.absolute()  # the cache's snapshot path: `ls -l` shows the repo and revision
    if not copy:
        try:
            target.symlink_to(source)
            return target
        except OSError:  # Windows without developer mode, or a file system without links
            pass
    shutil.copyfile(source, target)
    return target
