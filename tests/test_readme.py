"""Every `korlhf` command of README.md's command blocks runs, or is skipped for a reason this test checks.

Commands come from ```bash blocks and the `$ ` lines of ```console blocks. Each runs in-process
through the typer app, in order, in one working folder where `runs/demo` is a micro demo run
(built once, seconds) and the files the README takes from earlier steps are stand-ins (below),
shortened by the SHORTEN table. A command that is neither runnable nor listed in SKIP fails.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from korlhf import demo
from korlhf.cli import app

REPO = Path(__file__).resolve().parents[1]

# Shortening substitutions, applied to every command that runs (pattern -> replacement).
SHORTEN = [
    (r"--max_steps \d+", "--max_steps 2"),
    (r"--logging_steps \d+", "--logging_steps 1"),
    (r"--max_new_tokens \d+", "--max_new_tokens 8"),
    (r"--num_return_sequences \d+", "--num_return_sequences 2"),
    (r"--samples_per_model \d+", "--samples_per_model 2"),
]

# Files a section asks the reader to prepare by hand, or builds outside korlhf (its text says how).
HAND_MADE = ("rm_answers.jsonl", "ratings_minji.csv", "question.jsonl", "/tmp/")
FULL_SIZE = ("skt/kogpt2-base-v2", "EleutherAI/polyglot-ko-1.3b")


def _config_text(command: str) -> str:
    words = shlex.split(command)
    if "--config" not in words:
        return ""
    return (REPO / words[words.index("--config") + 1]).read_text(encoding="utf-8")


def _full_size(command: str) -> bool:
    """The command (or its --config) loads a hub model, or a runs/ folder trained from one by a shipped config."""
    settings = yaml.safe_load(_config_text(command) or "{}") or {}
    model = str(settings.get("model_name_or_path", ""))
    return any(m in command or m == model for m in FULL_SIZE) or model.startswith(("runs/sft", "runs/rm"))


def _endpoint(command: str) -> bool:
    settings = yaml.safe_load(_config_text(command) or "{}") or {}
    return "base_url" in settings or "--base_url" in command


# Why a command cannot run here, and the check that the reason holds for it.
REASONS = {
    "accelerate launches several processes (tests/test_ddp.py runs one on two CPU processes)":
        lambda c: c.startswith("accelerate launch"),
    "loads a full-size hub model (network, GPU-sized); tests/test_shipped_configs.py runs every shipped config on a tiny model":
        _full_size,
    "reads ../shared/data, beside this checkout only (the README says where each file comes from)":
        lambda c: "../shared/" in c,
    "reads runs/data/clean, which the data clean example above writes from ../shared/data":
        lambda c: "runs/data/clean/" in c + _config_text(c),
    "needs `korlhf data get` (network), or the label runs made from its files; tests/test_data_get.py fetches "
    "from a fake hub":
        lambda c: shlex.split(c)[1:3] == ["data", "get"] or re.search(r"(^|\s)(data|runs)/(kobest|koalpaca)", c) is not None,
    "asks a judge or API endpoint (tests/test_label_api.py, test_judge.py use a fake one)":
        _endpoint,
    "a whole run of minutes; tests/test_pipeline.py runs it shrunk":
        lambda c: shlex.split(c)[1] in ("demo", "compare", "pipeline") and "--help" not in c,
    "interactive or a server that runs until stopped (tests/test_chat.py, test_serve.py drive them)":
        lambda c: shlex.split(c)[1] in ("chat", "serve"),
    "reads files the section prepares by hand":
        lambda c: any(name in c for name in HAND_MADE),
}
SKIP = {
    "korlhf demo --config configs/demo.yaml --arch llama --pretrain_steps 600": "a whole run",
    "korlhf data inspect ../shared/data/kochatgpt/kochatgpt_3_PPO.jsonl ../shared/data/kochatgpt/kochatgpt_2_RM.sample.jsonl": "beside this checkout",
    "korlhf data clean ../shared/data/kochatgpt/kochatgpt_3_PPO.jsonl": "beside this checkout",
    "korlhf data build --config configs/data.yaml": "runs/data/clean",
    "korlhf train sft --config configs/sft.yaml": "full-size",
    "korlhf train sft --config configs/sft_lora.yaml": "full-size",
    "korlhf train rm --config configs/rm.yaml": "full-size",
    "korlhf train rm --config configs/rm_lora.yaml": "full-size",
    "accelerate launch": "accelerate",
    "korlhf train ppo --config configs/ppo.yaml": "full-size",
    "korlhf train ppo --config configs/ppo_lora.yaml": "full-size",
    "korlhf train ppo --config configs/ppo_rules.yaml": "full-size",
    "korlhf train dpo --config configs/dpo.yaml": "full-size",
    "korlhf train grpo --config configs/grpo.yaml": "full-size",
    "korlhf train rloo --config configs/rloo.yaml": "full-size",
    "korlhf demo": "a whole run",
    "korlhf compare --config configs/compare_demo.yaml": "a whole run",
    "korlhf eval --predictions rm_answers.jsonl": "by hand",
    "korlhf eval agree ratings_minji.csv": "by hand",
    "korlhf eval kobest --model /tmp/tinygpt2": "by hand",
    "korlhf label --config configs/label.yaml": "endpoint",
    "korlhf label --config configs/label_ollama.yaml": "endpoint",
    "korlhf label --config configs/label_kobest.yaml --inputs data/kobest/COPA/dev.jsonl": "data get",
    "korlhf label --judge rules --inputs data/kobest/COPA/dev.jsonl": "data get",
    "korlhf label agree runs/kobest_rules": "data get",
    "korlhf generate --model runs/demo/sft --prompts question.jsonl": "by hand",
    "korlhf generate --model runs/demo/ppo --prompts question.jsonl": "by hand",
    "korlhf eval judge --answers sft.jsonl": "endpoint",
    "korlhf chat": "interactive",
    "korlhf serve": "interactive",
    "korlhf pipeline --config configs/pipeline.yaml": "full-size",
    "korlhf data get kobest": "data get",
}
# SKIP's values name a REASONS entry by a word of it; a key is the start of the commands it covers.


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands, variables = [], {}
    for kind, body in re.findall(r"^```(bash|console)\n(.*?)^```", text, re.S | re.M):
        for line in body.replace("\\\n", " ").splitlines():
            line = line.strip()
            if kind == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            line = re.sub(r"\s+#.*$", "", re.sub(r"\s+", " ", line))
            if re.fullmatch(r"(\w+=\S+?;? ?)+", line):  # `K=../shared/data/kochatgpt; B=...`: shell variables
                variables.update(re.findall(r"(\w+)=([^;\s]+)", line))
            line = re.sub(r"\$(\w+)", lambda m: variables.get(m.group(1), m.group(0)), line)
            if line.startswith("korlhf ") or " -m korlhf " in line:
                commands.append(line)
    return commands


def skip_key(command: str) -> str | None:
    """The SKIP entry covering ``command`` (the longest that starts it); --help always runs."""
    keys = [k for k in SKIP if command == k or command.startswith(k + " ")]
    return None if "--help" in command.split() or not keys else max(keys, key=len)


def skip_reason(command: str) -> str | None:
    key = skip_key(command)
    if key is None:
        return None
    word = SKIP[key]
    reasons = [r for r in REASONS if word in r]
    assert len(reasons) == 1, f"SKIP[{key!r}] = {word!r} names {len(reasons)} reasons"
    assert REASONS[reasons[0]](command), f"{command!r} is skipped as '{reasons[0]}', which does not hold for it"
    return reasons[0]


def test_every_command_runs_or_has_a_checked_reason():
    commands = readme_commands()
    assert len(commands) > 30
    for command in commands:
        if skip_reason(command) is None:
            assert command in RUNNABLE, f"README command neither runs here nor is listed in SKIP: {command}"
    stale = [k for k in SKIP if not any(c == k or c.startswith(k + " ") for c in commands)]
    assert stale == [], f"SKIP entries no README command matches: {stale}"


RUNNABLE = [c for c in readme_commands() if c.startswith("korlhf ") and skip_key(c) is None]


def dialogue(i: int) -> dict:
    """KoChatGPT-like records as `data build` writes them; the longer ones exceed the demo model's 128
    positions (with more than 128 as max_length, they would index past its position table)."""
    return {"messages": [{"role": "user", "content": f"{i}번째 질문: 서울에 대해 알려 주세요."},
                         {"role": "assistant", "content": "서울은 한국의 수도이며 음식이 다양합니다. " * (1 + i % 8)}],
            "source": "stand-in", "id": f"stand-in-{i}"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """runs/demo: a micro demo run; runs/sft: its SFT model (what configs/sft.yaml would write);
    runs/data/build: stand-ins for `korlhf data build` on the real data (long dialogues, rankings)."""
    from helpers import micro

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("readme")
    demo.main(micro(root / "runs"))
    (root / "runs" / "sft").symlink_to(root / "runs" / "demo" / "sft")
    build = root / "runs" / "data" / "build"
    build.mkdir(parents=True)
    (build / "sft.jsonl").write_text("".join(json.dumps(dialogue(i), ensure_ascii=False) + "\n"
                                             for i in range(16)), encoding="utf-8")
    rm = [{"prompt": f"{i}번째 질문: 서울은 어느 나라의 수도인가요?", "responses": ["서울은 한국의 수도입니다. " * (5 if i in (2, 11) else 1),
           "몰라요."], "source": "stand-in", "id": f"stand-in-{i}"} for i in range(16)]
    (build / "rm.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rm), encoding="utf-8")
    (build / "eval.jsonl").write_text((root / "runs" / "demo" / "data" / "build" / "eval.jsonl").read_text())
    yield root
    torch.set_num_threads(threads)


def shorten(command: str) -> list[str]:
    for pattern, replacement in SHORTEN:
        command = re.sub(pattern, replacement, command)
    return shlex.split(command)[1:]


@pytest.mark.parametrize("command", RUNNABLE)
def test_readme_command_runs(command, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    result = CliRunner().invoke(app, shorten(command), catch_exceptions=True)
    assert result.exit_code == 0, f"{command}\n{result.output[-2000:]}\n{result.exception!r}"
