"""Model names that cannot load fail at once with one message (korlhf.hub), never after minutes of retries."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from korlhf.errors import KorlhfError
from korlhf.models import load_causal_lm, load_tokenizer


def test_mistyped_local_folder_is_an_error_at_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "sft").mkdir(parents=True)
    (tmp_path / "runs" / "rm").mkdir()
    with pytest.raises(KorlhfError) as err:
        load_tokenizer("runs/stf")
    assert str(err.value) == "no such model folder: runs/stf (loading the tokenizer); did you mean runs/sft?"
    with pytest.raises(KorlhfError) as err:
        load_causal_lm("runs/nonexistent")
    assert str(err.value) == "no such model folder: runs/nonexistent (loading the model); runs holds: rm, sft"
    with pytest.raises(KorlhfError) as err:
        load_tokenizer("./outputs/sft")
    assert str(err.value) == ("no such model folder: ./outputs/sft (loading the tokenizer); give the folder a korlhf "
                              "stage wrote, or a hub id such as EleutherAI/polyglot-ko-1.3b")
    with pytest.raises(KorlhfError, match=r"^no such model folder: a/b/c \(loading the model\)"):
        load_causal_lm("a/b/c")  # two slashes: no hub id
    (tmp_path / "runs" / "sft" / "notes.txt").write_text("x")
    with pytest.raises(KorlhfError, match=r"^runs/sft/notes.txt is a file, not a model folder"):
        load_tokenizer("runs/sft/notes.txt")


def test_folder_of_a_failed_stage_is_named_as_such(tmp_path):
    run = tmp_path / "sft"
    run.mkdir()
    (run / "config.yaml").write_text("model_name_or_path: x\n")
    with pytest.raises(KorlhfError) as err:
        load_tokenizer(run)
    assert str(err.value) == (f"{run} holds no finished tokenizer (no config.json or adapter_config.json in it); a "
                              "korlhf stage started there but did not finish: see its log, then run it again")
    (run / "checkpoint-10").mkdir()
    (run / "checkpoint-200").mkdir()
    with pytest.raises(KorlhfError, match=r"see its log, then run it again \(it resumes from checkpoint-200\)$"):
        load_causal_lm(run)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(KorlhfError, match=r"empty holds no finished model \(no config.json or adapter_config.json in "
                                          r"it\); give the folder a korlhf stage wrote, or a hub id$"):
        load_causal_lm(empty)


def test_offline_hub_id_not_in_cache_is_one_message():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(KorlhfError) as err:
        load_tokenizer("korlhf-test/not-cached")
    assert str(err.value) == (
        "the tokenizer korlhf-test/not-cached is not in the local Hugging Face cache, and HF_HUB_OFFLINE=1 forbids "
        "downloading it: download it once with network (`hf download korlhf-test/not-cached`), unset "
        "HF_HUB_OFFLINE, or give a local model folder")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SCRIPT = """
import time
from korlhf.errors import KorlhfError
from korlhf.models import load_tokenizer
print(len(load_tokenizer("korlhf-test/cached")) > 0, flush=True)
began = time.monotonic()
try:
    load_tokenizer("korlhf-test/not-cached")
except KorlhfError as exc:
    print(exc)
print(f"took {time.monotonic() - began:.1f}")
"""


def test_unreachable_hub_uses_the_cache_or_says_why_at_once(tmp_path, tiny_gpt2):
    # A hub cache holding one model, and an HF_ENDPOINT where nothing listens (no network needed).
    repo = tmp_path / "cache" / "models--korlhf-test--cached"
    shutil.copytree(tiny_gpt2, repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    endpoint = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "HF_ENDPOINT": endpoint,
           "HF_HUB_CACHE": str(tmp_path / "cache")}
    began = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "True"  # loaded from the cache without a request
    assert lines[1] == (f"cannot download the tokenizer korlhf-test/not-cached: {endpoint} is unreachable ([Errno 111] "
                        "Connection refused) and the model is not in the local Hugging Face cache. Connect to the "
                        "network (or set HF_ENDPOINT to a mirror), or give a local model folder")
    # Only the failing load is timed (a loaded CI machine takes seconds to import transformers); without the
    # fast fail it took about a minute of retries.
    assert float(lines[2].split()[1]) < 10 and time.monotonic() - began < 90
    assert "Retrying" not in proc.stderr
