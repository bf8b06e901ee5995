"""Every command group refuses bad input the same way: one line `error: ...` naming what is wrong, exit
status 2, no traceback, and nothing loaded first (a missing file is found before any model is).
The encoding cases (CP949, UTF-16, empty files) of every reader are in test_bad_inputs.py."""

from __future__ import annotations

import sys

import pytest

from korlhf import cli

CASES = {
    "data inspect": ["data", "inspect", "{tmp}/nope.jsonl"],
    "data clean": ["data", "clean", "{tmp}/nope.jsonl", "--out", "{tmp}/clean"],
    "data build": ["data", "build", "{tmp}/nope.jsonl", "--out", "{tmp}/build"],
    "data get": ["data", "get", "no-such-set"],
    "train sft": ["train", "sft", "--model_name_or_path", "{tmp}/m", "--train_files", "{tmp}/nope.jsonl",
                  "--output_dir", "{tmp}/o"],
    "train rm": ["train", "rm", "--model_name_or_path", "{tmp}/m", "--train_files", "{tmp}/nope.jsonl",
                 "--output_dir", "{tmp}/o"],
    "train ppo": ["train", "ppo", "--model_name_or_path", "{tmp}/m", "--train_files", "{tmp}/nope.jsonl",
                  "--output_dir", "{tmp}/o", "--reward_rules", "hangul"],
    "train dpo": ["train", "dpo", "--model_name_or_path", "{tmp}/m", "--train_files", "{tmp}/nope.jsonl",
                  "--output_dir", "{tmp}/o"],
    "train grpo": ["train", "grpo", "--model_name_or_path", "{tmp}/m", "--train_files", "{tmp}/nope.jsonl",
                   "--output_dir", "{tmp}/o", "--reward_rules", "hangul"],
    "train rloo": ["train", "rloo", "--model_name_or_path", "{tmp}/m", "--train_files", "{tmp}/nope.jsonl",
                   "--output_dir", "{tmp}/o", "--reward_rules", "hangul"],
    "label": ["label", "--inputs", "{tmp}/nope.jsonl", "--judge", "rules", "--output_dir", "{tmp}/l"],
    "label agree": ["label", "agree", "{tmp}/nope1.jsonl", "{tmp}/nope2.jsonl"],
    "generate": ["generate", "--model", "{tmp}/m", "--prompts", "{tmp}/nope.jsonl", "--out", "{tmp}/g.jsonl"],
    "eval": ["eval", "--predictions", "{tmp}/nope.jsonl", "--out", "{tmp}/e"],
    "eval sweep": ["eval", "sweep", "--model", "{tmp}/m", "--prompts", "{tmp}/nope.jsonl", "--out", "{tmp}/s"],
    "eval sheet": ["eval", "sheet", "{tmp}/nope1.jsonl", "{tmp}/nope2.jsonl", "--out", "{tmp}/sheet"],
    "eval agree": ["eval", "agree", "{tmp}/nope.csv", "--sheet", "{tmp}/nosheet"],
    "eval kobest": ["eval", "kobest", "--model", "{tmp}/m", "--data", "{tmp}/nokobest"],
    "eval judge": ["eval", "judge", "--answers", "{tmp}/nope.jsonl"],
    "chat": ["chat", "--model", "{tmp}/nomodel"],
    "serve": ["serve", "--model", "{tmp}/nomodel", "--port", "99999"],
    "pipeline": ["pipeline", "--config", "{tmp}/nope.yaml"],
    "demo": ["demo", "--data", "{tmp}/nofolder", "--runs_dir", "{tmp}/runs"],
    "compare": ["compare", "--config", "{tmp}/nope.yaml"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_command_refuses_bad_input_in_one_line(name, tmp_path, monkeypatch, capsys):
    (tmp_path / "m").mkdir()  # a model folder that holds nothing: it must never be reached
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["korlhf", *(a.format(tmp=tmp_path) for a in CASES[name])])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2, err
    assert "Traceback" not in err and err.startswith("error: "), err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) <= 3, err  # one message (long ones wrap at the terminal width)
    words = " ".join(err.split())
    assert any(bad in words for bad in ("nope", "no-such-set", "nomodel", "nofolder", "nokobest", "nosheet",
                                        "99999")), err
