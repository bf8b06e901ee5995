"""`korlhf data build`: prompts disjoint across sft / rm / ppo / eval, caps, weights, seed, full accounting."""

import json

import pytest

from korlhf.data import build
from korlhf.data.normalize import prompt_key, prompt_of
from korlhf.records import read_jsonl, write_jsonl

QUESTIONS = [f"{topic} {k}번에 대해 알려줘" for topic in ("김치", "한강", "세종대왕", "태권도", "한복") for k in range(40)]


def sources(tmp_path):
    """Three stage pools over the same 200 questions (as KoChatGPT did), spelled a little differently."""
    sft = [{"prompt": q, "response": f"{q}에 대한 답입니다.", "source": "sft-a", "id": f"s{i}"} for i, q in enumerate(QUESTIONS)]
    sft += [{"messages": [{"role": "user", "content": "안녕?"}, {"role": "assistant", "content": "안녕하세요!"}],
             "source": "chat", "id": "c1"}]
    rm = [{"prompt": q.upper() + "?", "responses": ["좋은 답입니다.", "나쁜 답"], "source": "rm-a", "id": f"r{i}"}
          for i, q in enumerate(QUESTIONS[:150])]
    ppo = [{"prompt": "  " + q.replace(" ", "  "), "source": "ppo-a", "id": f"p{i}"} for i, q in enumerate(QUESTIONS)]
    ppo += [{"prompt": f"새 질문 {k}", "source": "ppo-b", "id": f"n{k}"} for k in range(30)]
    paths = []
    for name, rows in (("sft", sft), ("rm", rm), ("ppo", ppo)):
        write_jsonl(tmp_path / f"{name}.jsonl", rows)
        paths.append(str(tmp_path / f"{name}.jsonl"))
    return paths


def outputs(paths) -> dict[str, list[dict]]:
    return {s: [r for _, r in read_jsonl(paths[s])] for s in ("sft", "rm", "ppo", "eval")}


def test_prompts_are_disjoint_and_every_record_is_accounted_for(tmp_path):
    paths = build.main(build.Config(sources=sources(tmp_path), out=str(tmp_path / "out"), eval_size=20))
    out = outputs(paths)
    keys = {s: [prompt_key(prompt_of(r)) for r in rows] for s, rows in out.items()}
    for a in keys:
        assert len(keys[a]) == len(set(keys[a]))  # one record per prompt
        for b in keys:
            if a < b:
                assert not set(keys[a]) & set(keys[b]), (a, b)
    assert len(out["eval"]) == 20 and all("response" in r for r in out["eval"])
    assert {r["id"] for r in out["sft"]} >= {"c1"}
    assert all(set(r) == {"prompt", "source", "id"} for r in out["ppo"])
    report = json.loads(paths["report_json"].read_text(encoding="utf-8"))
    read = {"sft-a": 200, "chat": 1, "rm-a": 150, "ppo-a": 200, "ppo-b": 30}
    assert {s: sum(c.values()) for s, c in report["sources"].items()} == read
    used = sum(report["stages"][s]["records"] for s in build.STAGES)
    assert used == 200 + 1 + 30  # 200 shared questions used once each, plus the dialogue and 30 new prompts
    assert report["overlap"] == {"eval/sft": 0, "eval/rm": 0, "eval/ppo": 0, "sft/rm": 0, "sft/ppo": 0, "rm/ppo": 0}
    assert all(report["stages"][s]["records"] > 20 for s in build.TRAIN_STAGES)
    assert "prompts are disjoint" in paths["report"].read_text(encoding="utf-8")


def test_seed_makes_it_deterministic(tmp_path):
    files = sources(tmp_path)
    a = build.main(build.Config(sources=files, out=str(tmp_path / "a"), eval_size=10, seed=1))
    b = build.main(build.Config(sources=list(reversed(files)), out=str(tmp_path / "b"), eval_size=10, seed=1))
    c = build.main(build.Config(sources=files, out=str(tmp_path / "c"), eval_size=10, seed=2))
    ids = {k: {s: sorted(r["id"] for r in rows) for s, rows in outputs(p).items()} for k, p in zip("abc", (a, b, c), strict=True)}
    assert ids["a"] == ids["b"]  # file order does not matter
    assert ids["a"] != ids["c"]


def test_caps_weights_limits_and_stage_weights(tmp_path):
    files = sources(tmp_path)
    cfg = build.Config(sources=files, out=str(tmp_path / "o"), eval_size=0, caps={"ppo-b": 5},
                       weights={"chat": 0}, max_rm=10, stage_weights={"sft": 1, "rm": 0, "ppo": 1})
    paths = build.main(cfg)
    out = outputs(paths)
    report = json.loads(paths["report_json"].read_text(encoding="utf-8"))
    assert out["eval"] == [] and out["rm"] == []  # rm weight 0: shared prompts never go to rm
    assert report["sources"]["rm-a"] == {"prompt_in_other_stage": 150}
    assert report["sources"]["chat"] == {"weight_0": 1}
    assert report["sources"]["ppo-b"] == {"ppo": 5, "cap": 25}
    cfg.stage_weights, cfg.max_rm = {"rm": 1, "sft": 0, "ppo": 0}, 10
    report = json.loads(build.main(cfg)["report_json"].read_text(encoding="utf-8"))
    assert report["sources"]["rm-a"] == {"rm": 10, "stage_full": 140}


def test_weighted_limit_prefers_heavier_sources(tmp_path):
    rows = [{"prompt": f"{src} 질문 {k}", "source": src, "id": f"{src}{k}"} for src in ("a", "b") for k in range(200)]
    write_jsonl(tmp_path / "p.jsonl", rows)
    cfg = build.Config(sources=[str(tmp_path / "p.jsonl")], out=str(tmp_path / "o"), max_ppo=100, weights={"a": 4})
    report = json.loads(build.main(cfg)["report_json"].read_text(encoding="utf-8"))
    by_source = report["stages"]["ppo"]["by_source"]
    assert sum(by_source.values()) == 100 and by_source["a"] > 2 * by_source["b"]


def test_config_errors(tmp_path):
    from korlhf.errors import KorlhfError

    with pytest.raises(KorlhfError, match="no sources"):
        build.main(build.Config(out=str(tmp_path)))
    write_jsonl(tmp_path / "p.jsonl", [{"prompt": "질문", "source": "s", "id": "1"}])
    with pytest.raises(KorlhfError) as exc:
        build.main(build.Config(sources=[str(tmp_path / "p.jsonl")], out=str(tmp_path / "o"), caps={"s": "many"}))
    assert str(exc.value) == "config field 'caps' needs numbers (source=number), got {'s': 'many'}"


def test_shipped_config_builds_from_clean_output(tmp_path, shared_data):
    """The README's two steps on the real KoChatGPT files: clean, then build with configs/data.yaml."""
    from korlhf.config import load_config
    from korlhf.data import clean

    kochat = shared_data / "kochatgpt"
    files = [str(kochat / n) for n in ("kochatgpt_2_RM.sample.jsonl", "kochatgpt_1_SFT.sample.jsonl",
                                       "kochatgpt_1_SFT_conversation.jsonl")]
    kept = clean.main(clean.Config(files=files, out=str(tmp_path / "clean")))["kept"]
    cfg = load_config(build.Config, build.__file__.replace("korlhf/data/build.py", "configs/data.yaml"),
                      ["--sources", str(kept), "--out", str(tmp_path / "build")])
    paths = build.main(cfg)
    report = json.loads(paths["report_json"].read_text(encoding="utf-8"))
    assert report["stages"]["rm"]["records"] == 3 and report["stages"]["sft"]["records"] > 400
    assert report["cleaning"][str(kept)]["totals"]["read"] == 445
    assert report["rationale"]["kochatgpt-rm"].startswith("KoChatGPT RM")


def test_help_teaches_every_field():
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "korlhf", "data", "build", "--help"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0
    assert "stage_weights" in result.stdout and "per-source maximum records per stage" in result.stdout
