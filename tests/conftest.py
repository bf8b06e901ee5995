"""Shared fixtures: tiny local Korean models built once per test session (no hub, no network)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

REPO = Path(__file__).resolve().parents[1]
# KORLHF_HIDE_SHARED=1 runs the suite as a user's clone sees it, without ../shared beside it
# (.ci/run does so once): tests that read the real data skip, every other test must pass.
SHARED = REPO.parent / "shared" / "data" if not os.environ.get("KORLHF_HIDE_SHARED") else REPO / "no-shared-data"


def korean_texts() -> list[str]:
    """Real Korean questions from the shared KoChatGPT seed file, plus korlhf's own demo corpus."""
    from korlhf.demo_data import demo_corpus

    texts = list(demo_corpus(seed=0, n=2000))
    seed_file = SHARED / "kochatgpt" / "kochatgpt_seed_data.txt"
    if seed_file.exists():
        texts += [line.strip() for line in seed_file.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    return texts


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.exists():
        pytest.skip("../shared/data is not beside the checkout")
    return SHARED


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from korlhf.tiny import train_tokenizer

    return train_tokenizer(korean_texts(), vocab_size=3000)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, tiny_tokenizer) -> dict[str, Path]:
    """Paths of saved tiny models: ``gpt2`` and ``llama`` causal LMs and a ``reward`` model."""
    from korlhf.tiny import save_tiny

    root = tmp_path_factory.mktemp("tiny")
    return {
        "gpt2": save_tiny(root / "gpt2", None, arch="gpt2", tokenizer=tiny_tokenizer),
        "llama": save_tiny(root / "llama", None, arch="llama", tokenizer=tiny_tokenizer),
        "reward": save_tiny(root / "reward", None, arch="gpt2", kind="reward", tokenizer=tiny_tokenizer),
    }


@pytest.fixture(scope="session")
def tiny_gpt2(tiny_models) -> Path:
    return tiny_models["gpt2"]


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads; on the shared 2-core machine two torch threads
    spin against other processes (the 6 s rule test once took 6 minutes). One thread keeps it steady.
    Modules that train ask for it: ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- headless Chromium for the web pages (serve's chat page, eval sheet's rating page) ---------------
CHROMIUM = os.environ.get("KORLHF_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("KORLHF_CHROMEDRIVER", "/usr/bin/chromedriver")
# Flags that work on a closed network: nothing phones home, no GPU, no sandbox (we may run as root).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=900,900", "--lang=ko-KR"]


def _has_korean_font() -> bool:
    if not shutil.which("fc-list"):
        return True  # cannot tell; the DOM checks do not depend on fonts anyway
    return bool(subprocess.run(["fc-list", ":lang=ko"], capture_output=True, text=True).stdout.strip())


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver, installing Debian's packages (and a Korean font) if needed."""
    missing = [pkg for pkg, path in (("chromium", CHROMIUM), ("chromium-driver", CHROMEDRIVER)) if not os.path.exists(path)]
    if missing and (os.geteuid() != 0 or not shutil.which("apt-get")):
        pytest.fail(f"the web page test needs {' and '.join(missing)}: run `sudo apt-get install chromium "
                    "chromium-driver fonts-nanum` (Debian/Ubuntu), or point KORLHF_CHROMIUM and KORLHF_CHROMEDRIVER "
                    "at a Chromium/Chrome binary and its matching chromedriver")
    if missing or (not _has_korean_font() and os.geteuid() == 0 and shutil.which("apt-get")):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-qq"],
                        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, "fonts-nanum"]):
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
            if result.returncode != 0 and missing:
                pytest.fail(f"`{' '.join(command)}` failed:\n{result.stderr[-2000:]}")
    return CHROMIUM, CHROMEDRIVER
