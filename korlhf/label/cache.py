"""The judge's on-disk answer cache: a rerun or a resumed run never pays for the same question twice.

One JSON line per answered request, appended and flushed under a lock as soon as the answer is
parsed, so a run killed at any moment keeps every answer it had (a line cut by the kill is
skipped on reading). The key is a hash of the exact request: judge model, rendered messages (the
prompt text, the answers in their order, the judge template) and sampling settings. Only parsed
answers are stored; failures are asked again on the next run. Nothing secret is written: the API
key is not part of a request body.

A plain JSON Lines file rather than sqlite: it is readable (``grep`` a prompt to see what the judge
said) and a cache can be shared between runs by pointing ``cache`` at one file.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path


def request_key(body: dict) -> str:
    """Hash of a chat-completions request body (``model``, ``messages``, ``temperature``, ``max_tokens``)."""
    keyed = {k: body.get(k) for k in ("model", "messages", "temperature", "max_tokens")}
    text = json.dumps(keyed, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class JudgeCache:
    """``get(key)`` -> the stored entry (dict with ``content`` and ``usage``) or None; ``put(key, entry)``."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.entries: dict[str, dict] = {}
        self.skipped = 0  # lines that could not be read (a write cut by a killed run)
        self._lock = threading.Lock()
        if self.path is not None and self.path.is_file():
            self._load()

    def _load(self) -> None:
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                    self.entries[entry["key"]] = entry
                except (json.JSONDecodeError, KeyError, TypeError):
                    self.skipped += 1

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, key: str, entry: dict) -> None:
        entry = {"key": key, **entry, "time": round(time.time(), 3)}
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self.entries[key] = entry
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # A killed run may have left half a line; start ours on a fresh one.
            broken = self.path.is_file() and self.path.stat().st_size > 0 and not _ends_with_newline(self.path)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(("\n" if broken else "") + line)
                f.flush()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, 2)
        return f.read(1) == b"\n"
