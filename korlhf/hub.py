"""Where a model name points, decided in a second before transformers is asked to load it.

Left to itself, ``from_pretrained("runs/nonexistent")`` takes a mistyped folder for a hub id, and
without network huggingface_hub retries every file with backoff (5 tries, up to 8 s apart) before
its error: about a minute of retry lines. `locate` answers at once instead:

- a folder with no saved model in it (a stage that failed or is still running): said so;
- a name that looks like a path (starts with ``/``, ``.`` or ``~``, is not a valid hub
  ``org/name``, or sits in a folder that exists) and is not a folder: "no such model folder";
- a hub id with ``HF_HUB_OFFLINE=1``: loaded from the local cache, or one message saying it is
  not there;
- a hub id with the hub unreachable (no network, a firewall): loaded from the local cache with no
  request made (``local_files_only``), or one message.
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path

from korlhf.errors import KorlhfError

# Files one of which every transformers model or tokenizer repo holds: enough to say "it is cached".
_MARKERS = ("config.json", "tokenizer_config.json")


def locate(name_or_path: str | Path, what: str = "model") -> dict:
    """Extra ``from_pretrained`` arguments for ``name_or_path``, or a KorlhfError when it cannot load.

    ``what`` ("model", "tokenizer") only words the message.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        if not any((path / name).is_file() for name in (*_MARKERS, "adapter_config.json", "tokenizer.json")):
            raise KorlhfError(_unfinished(path, what))
        return {}
    if path.exists():
        raise KorlhfError(f"{text} is a file, not a model folder: give the folder a korlhf stage wrote (with "
                          "config.json in it) or a hub id such as EleutherAI/polyglot-ko-1.3b")
    if _looks_local(text):
        raise KorlhfError(_no_such_folder(text, what))
    from huggingface_hub import constants

    if _cached(text):
        return {} if not constants.HF_HUB_OFFLINE and _hub_reachable(constants.ENDPOINT) is None \
            else {"local_files_only": True}
    if constants.HF_HUB_OFFLINE:
        raise KorlhfError(f"the {what} {text} is not in the local Hugging Face cache, and HF_HUB_OFFLINE=1 forbids "
                          f"downloading it: download it once with network (`hf download {text}`), unset "
                          "HF_HUB_OFFLINE, or give a local model folder")
    problem = _hub_reachable(constants.ENDPOINT)
    if problem is not None:
        raise KorlhfError(f"cannot download the {what} {text}: {constants.ENDPOINT} is unreachable ({problem}) and "
                          "the model is not in the local Hugging Face cache. Connect to the network (or set "
                          "HF_ENDPOINT to a mirror), or give a local model folder")
    return {}


def _looks_local(text: str) -> bool:
    """A path, not a hub id: see the module doc."""
    if text.startswith(("/", ".", "~")) or "\\" in text:
        return True
    if "/" not in text:
        return False
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        return True
    return Path(text).parent.is_dir() and not _cached(text)


def _no_such_folder(text: str, what: str) -> str:
    path = Path(text).expanduser()
    message = f"no such model folder: {text} (loading the {what})"
    if path.parent.is_dir():
        siblings = sorted(p.name for p in path.parent.iterdir() if p.is_dir())
        close = difflib.get_close_matches(path.name, siblings, n=1)
        if close:
            return f"{message}; did you mean {path.parent / close[0]}?"
        if siblings:
            shown = ", ".join(siblings[:8]) + (", ..." if len(siblings) > 8 else "")
            return f"{message}; {path.parent} holds: {shown}"
        return f"{message}; {path.parent} holds no folders"
    return f"{message}; give the folder a korlhf stage wrote, or a hub id such as EleutherAI/polyglot-ko-1.3b"


def _unfinished(path: Path, what: str) -> str:
    """A folder without a saved model: most often a stage that failed or is still running."""
    checkpoints = sorted(path.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])
                         if p.name.split("-")[-1].isdigit() else -1)
    message = f"{path} holds no finished {what} (no config.json or adapter_config.json in it)"
    if (path / "config.yaml").is_file():
        message += "; a korlhf stage started there but did not finish: see its log, then run it again"
        if checkpoints:
            message += f" (it resumes from {checkpoints[-1].name})"
        return message
    return message + "; give the folder a korlhf stage wrote, or a hub id"


def _cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError

    try:
        return any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in _MARKERS)
    except HFValidationError:
        return False


@functools.lru_cache(maxsize=4)
def _hub_reachable(endpoint: str) -> str | None:
    """None when the hub answers at all (any HTTP status), else why not. Asked once per process."""
    import httpx

    try:
        httpx.head(endpoint, timeout=5.0)
    except httpx.ConnectTimeout:
        return "no connection within 5s"
    except httpx.TransportError as exc:
        return str(exc) or type(exc).__name__
    return None
