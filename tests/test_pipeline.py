"""`korlhf pipeline` / `korlhf demo` at micro scale: every stage runs, reruns skip, --force redoes
a stage and what depends on it, an interrupted run resumes, and the report has its sections."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from helpers import micro

from korlhf import demo, pipeline, pipeline_eval, stages
from korlhf.config import load_config
from korlhf.errors import KorlhfError
from korlhf.pipeline_stages import stage_config

REPO = Path(__file__).resolve().parents[1]
STAGES = ("data", "sft", "label", "rm", "ppo", "generate", "eval")


def ppo_config():
    from korlhf.train import ppo

    return ppo.Config


def stamps(run: Path) -> dict[str, int]:
    return {s: (run / s / "metrics.json").stat().st_mtime_ns for s in STAGES}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models gain nothing from threads on the shared 2-core machine
    runs = tmp_path_factory.mktemp("runs")
    report = demo.main(micro(runs))
    yield runs, report
    torch.set_num_threads(threads)


def test_every_stage_writes_its_folder_and_metrics(demo_run):
    runs, report = demo_run
    run = runs / "demo"
    assert report == run / "report.html"
    for stage in STAGES:
        assert (run / stage / "metrics.json").is_file(), stage
        assert (run / stage / "stage.log").stat().st_size > 0, stage
    assert (run / "sft" / "config.yaml").is_file() and (run / "rm" / "log.jsonl").is_file()
    assert json.loads((run / "data" / "metrics.json").read_text()) == {"sft": 70, "rm": 24, "ppo": 1200, "eval": 12}
    models = json.loads((run / "eval" / "models.json").read_text())
    assert list(models) == ["base", "sft", "ppo"]
    for scores in models.values():
        assert scores["n"] == 6 and 0.0 <= scores["answer_accuracy"] <= 1.0 and "reward" in scores
        assert 0.0 <= scores["rl_prompt_accuracy"] <= 1.0  # the checker scores the prompts PPO trained on too
    assert len((run / "generate" / "rl_prompts" / "ppo.jsonl").read_text().splitlines()) == 6
    assert (run / "label" / "preferences.jsonl").is_file()  # AI feedback: SFT answers ranked by the checker
    assert load_config(ppo_config(), run / "ppo" / "config.yaml").reward_rules == ["korlhf.demo_data:correct"]
    answers = [json.loads(line) for line in (run / "generate" / "sft.jsonl").read_text().splitlines()]
    assert [a["prompt"] for a in answers] == [json.loads(line)["prompt"] for line in
                                              (run / "data" / "build" / "eval.jsonl").read_text().splitlines()[:6]]


def test_report_is_self_contained_with_every_section(demo_run):
    text = (demo_run[1]).read_text(encoding="utf-8")
    for heading in ("Base model pretraining (demo)", "Data", "SFT", "Reward model", "PPO", "Models side by side (held-out prompts)",
                    "Decoding sweep", "Sample answers"):
        assert f"<h2>{heading}</h2>" in text, heading
    assert "toy" in text and "answer_accuracy" in text
    assert len(re.findall(r"<img src='data:image/png;base64,", text)) == 5  # pretraining, SFT, RM, PPO curves, the sweep overview
    assert not re.search(r"(src|href)=['\"]?(http|/|\.\.)", text)  # nothing loaded from elsewhere


def test_rerun_skips_finished_stages(demo_run, capsys):
    runs, _ = demo_run
    before = stamps(runs / "demo")
    demo.main(micro(runs))
    assert stamps(runs / "demo") == before
    out = capsys.readouterr().out
    assert all(f"{stage}: done earlier" in out for stage in STAGES)


def test_a_changed_base_says_what_it_keeps_and_force_base_redoes_everything(demo_run, capsys):
    runs, _ = demo_run
    before = stamps(runs / "demo")
    demo.main(micro(runs, pretrain_steps=6))
    out = " ".join(capsys.readouterr().out.split())
    assert ("base: settings changed since it was built (pretrain_steps); the base model and every stage after it "
            "are kept as they were: pass --force base to rebuild it and redo every stage") in out
    assert stamps(runs / "demo") == before
    demo.main(micro(runs, force=["base"]))
    after = stamps(runs / "demo")
    assert [s for s in STAGES if after[s] != before[s]] == ["sft", "label", "rm", "ppo", "generate", "eval"]


def test_force_redoes_a_stage_and_what_depends_on_it(demo_run):
    runs, _ = demo_run
    before = stamps(runs / "demo")
    demo.main(micro(runs, force=["rm"]))
    after = stamps(runs / "demo")
    assert [s for s in STAGES if after[s] != before[s]] == ["rm", "ppo", "generate", "eval"]


def test_an_interrupted_pipeline_resumes(demo_run, monkeypatch):
    runs, _ = demo_run
    run = runs / "demo"
    for stage in ("ppo", "generate", "eval"):
        (run / stage / "metrics.json").unlink()  # as if the run stopped during PPO, after a checkpoint
    before = stamps_of(run, ("data", "sft", "rm"))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline_eval, "answer_eval_prompts", crash)
    with pytest.raises(KeyboardInterrupt):
        demo.main(micro(runs))
    assert (run / "ppo" / "metrics.json").is_file() and not (run / "generate" / "metrics.json").exists()
    monkeypatch.undo()
    demo.main(micro(runs))
    assert (run / "eval" / "metrics.json").is_file()
    assert stamps_of(run, ("data", "sft", "rm")) == before


def test_cut_off_training_stage_resumes_and_forced_one_starts_over(monkeypatch, tmp_path):
    from korlhf.train import rm

    seen = []
    monkeypatch.setattr(rm, "main", lambda cfg: seen.append((cfg.resume, cfg.overwrite, cfg.output_dir)))
    cfg = pipeline.Config(model_name_or_path="m")
    pipeline.run_stage(stages.get("rm"), cfg, tmp_path, fresh=False)
    pipeline.run_stage(stages.get("rm"), cfg, tmp_path, fresh=True)
    assert seen == [(True, False, str(tmp_path / "rm")), (False, True, str(tmp_path / "rm"))]


def stamps_of(run: Path, stages) -> dict:
    return {s: (run / s / "metrics.json").stat().st_mtime_ns for s in stages}


def test_downstream_of_forced_stages():
    assert pipeline.downstream({"rm"}) == {"rm", "ppo", "grpo", "rloo", "generate", "eval"}
    assert pipeline.downstream({"label"}) == {"label", "rm", "ppo", "dpo", "grpo", "rloo", "generate", "eval"}
    assert pipeline.downstream({"data"}) == set(stages.names())
    assert pipeline.downstream({"generate"}) == {"generate", "eval"}


def test_bad_pipeline_configs_are_named(tmp_path):
    with pytest.raises(KorlhfError) as err:
        load_config(pipeline.Config, None, ["--model_name_or_path", "m", "--stages", "data,sft,ppp"])
    assert str(err.value) == "unknown stage 'ppp'; stages are data, sft, label, rm, ppo, dpo, grpo, rloo, generate, eval"
    cfg = pipeline.Config(model_name_or_path="m", sft={"output_dir": "elsewhere", "learning_rate": 1e-4})
    with pytest.raises(KorlhfError) as err:
        pipeline.check(cfg, tmp_path)
    assert str(err.value) == ("pipeline sft: output_dir is set by the pipeline (it chains the stages); "
                              "remove it from `sft:`")
    cfg = pipeline.Config(model_name_or_path="m", sft={"learning_rat": 1e-4})
    with pytest.raises(KorlhfError) as err:
        pipeline.check(cfg, tmp_path)
    assert str(err.value) == ("korlhf pipeline (sft): unknown key 'learning_rat' in pipeline config `sft:`; "
                              "did you mean 'learning_rate'?")
    cfg = pipeline.Config(model_name_or_path="m", ppo={"steps": 10})
    with pytest.raises(KorlhfError) as err:
        pipeline.check(cfg, tmp_path)
    assert str(err.value) == "korlhf pipeline (ppo): 'steps' (pipeline config `ppo:`) was renamed: it is now max_steps"
    cfg = pipeline.Config(model_name_or_path="m", ppo={"value_model": "reward", "reward_model": None,
                                                       "reward_rules": ["hangul"]})
    with pytest.raises(KorlhfError) as err:  # a config-only check: refused before anything is loaded
        pipeline.check(cfg, tmp_path)
    assert str(err.value) == ("korlhf pipeline (ppo): value_model: reward needs reward_model (a `korlhf train rm` "
                              "output); with rule rewards only, set value_model: shared")


def test_shipped_demo_yaml_is_the_demo_default():
    assert load_config(demo.Config, REPO / "configs" / "demo.yaml") == demo.Config()


PIPELINE_YAMLS = sorted((REPO / "configs").glob("pipeline*.yaml")) + [REPO / "configs" / "demo.yaml"]


@pytest.mark.parametrize("path", PIPELINE_YAMLS, ids=lambda p: p.name)
def test_shipped_pipeline_yamls_build_every_stage_config(path, tmp_path):
    cls = demo.Config if path.name == "demo.yaml" else pipeline.Config
    pipeline.check(load_config(cls, path), tmp_path)


def test_demo_runs_on_a_folder_of_the_users_files(demo_run, tmp_path):
    runs, _ = demo_run
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("sft.jsonl", "rm.jsonl", "ppo.jsonl"):
        (mine / name).write_bytes((runs / "demo" / "world" / name).read_bytes())
    report = demo.main(micro(runs, name="mine", data=str(mine), stages=["data", "sft", "generate", "eval"]))
    run = runs / "mine"
    assert not (run / "world").exists() and (run / "base" / "metrics.json").is_file()
    assert json.loads((run / "data" / "metrics.json").read_text())["sft"] > 0
    assert list(json.loads((run / "eval" / "models.json").read_text())) == ["base", "sft"]
    assert "<h2>PPO</h2>" not in report.read_text(encoding="utf-8")


def test_demo_data_must_be_a_folder(tmp_path):
    with pytest.raises(KorlhfError) as err:
        demo.main(micro(tmp_path, data=str(tmp_path / "nope")))
    assert str(err.value) == (f"--data {tmp_path / 'nope'}: not a folder; give a folder of data files "
                              "(jsonl, json, csv, tsv, parquet)")


def test_dpo_grpo_and_rloo_take_the_place_of_ppo(demo_run):
    runs, _ = demo_run
    group = dict(max_steps=1, batch_size=4, num_generations=4, max_new_tokens=8, eval_fraction=0.0)
    cfg = micro(runs, name="alt", stages=["data", "sft", "rm", "dpo", "grpo", "rloo", "generate", "eval"],
                dpo=dict(max_steps=2, batch_size=4, max_length=64, eval_fraction=0.0), grpo=group, rloo=group)
    report = demo.main(cfg)
    models = json.loads((runs / "alt" / "eval" / "models.json").read_text())
    assert list(models) == ["base", "sft", "dpo", "grpo", "rloo"]
    text = report.read_text(encoding="utf-8")
    assert all(f"<h2>{name}</h2>" in text for name in ("DPO", "GRPO", "RLOO")) and "<h2>PPO</h2>" not in text


def test_compare_trains_each_method_per_seed_and_tabulates(demo_run, capsys):
    from korlhf import compare

    runs, _ = demo_run
    run = runs / "demo"
    ppo = dict(max_steps=1, rollout_batch_size=4, batch_size=4, ppo_epochs=1, max_new_tokens=8, sample_steps=0,
               eval_fraction=0.0, learning_rate=1e-2)
    cfg = compare.Config(run_dir=str(run), seeds=[0, 1], answer_rule="korlhf.demo_data:correct", eval_limit=4,
                         train_limit=4, max_new_tokens=8, batch_size=8, methods=[
                             {"name": "ppo-rule", "stage": "ppo", "reward_rules": ["korlhf.demo_data:correct"],
                              "value_model": "shared", **ppo},
                             {"name": "ppo-rm", "stage": "ppo", "reward_model": "{run}/rm", **ppo}])
    summary = compare.main(cfg)
    assert [row["method"] for row in summary] == ["sft", "ppo-rule", "ppo-rm"]
    assert [row["seeds"] for row in summary] == [1, 2, 2]
    # ppo-rule's checker finds no right answer in one step: no advantage, no update; the RM gives a signal.
    assert summary[0]["kl"] == 0.0 and summary[2]["kl"] != 0.0
    for row in summary:
        assert 0.0 <= row["eval_accuracy"] <= 1.0 and 0.0 <= row["train_accuracy"] <= 1.0 and "reward" in row
    for seed in (0, 1):
        policy = run / "compare" / "ppo-rm" / f"seed{seed}"
        assert (policy / "metrics.json").is_file() and (policy / "compare.json").is_file()
        assert load_config(__import__("korlhf.train.ppo", fromlist=["Config"]).Config,
                           policy / "config.yaml").reward_model == str(run / "rm")
    table = (run / "compare" / "results.md").read_text(encoding="utf-8")
    assert table.splitlines()[0].startswith("| method | seeds | held-out right answers (%)")
    assert (run / "compare" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    stamp = (run / "compare" / "ppo-rm" / "seed0" / "compare.json").stat().st_mtime_ns
    capsys.readouterr()
    assert compare.main(cfg) == summary  # a rerun measures nothing again
    assert (run / "compare" / "ppo-rm" / "seed0" / "compare.json").stat().st_mtime_ns == stamp
    assert "Alignment methods compared" in pipeline_report_text(run)


def pipeline_report_text(run: Path) -> str:
    from korlhf.report import pipeline_report

    return pipeline_report(run, micro(run.parent)).read_text(encoding="utf-8")


def test_compare_refuses_unusable_methods(tmp_path):
    from korlhf import compare

    path = tmp_path / "compare.yaml"
    path.write_text("run_dir: runs/demo\nmethods:\n- {name: x, stage: sft}\n", encoding="utf-8")
    with pytest.raises(KorlhfError) as err:
        load_config(compare.Config, path)
    assert "method {'name': 'x', 'stage': 'sft'}: needs a name and a stage (ppo, dpo, grpo, rloo)" in str(err.value)
    path.write_text("run_dir: runs/demo\nmethods:\n- {name: x, stage: ppo}\n- {name: x, stage: dpo}\n", encoding="utf-8")
    with pytest.raises(KorlhfError, match=r"method names repeat: \['x', 'x'\]"):
        load_config(compare.Config, path)


def test_shipped_compare_yaml_builds_every_method(tmp_path):
    from korlhf import compare

    cfg = load_config(compare.Config, REPO / "configs" / "compare_demo.yaml")
    assert len(cfg.seeds) >= 3 and {m["stage"] for m in cfg.methods} >= {"ppo", "grpo", "rloo", "dpo"}
    for method in cfg.methods:
        module, stage_cfg = compare.stage_config(method, tmp_path, tmp_path / "compare", 1)
        assert stage_cfg.seed == 1 and stage_cfg.model_name_or_path == str(tmp_path / "sft")


def test_ppo_block_may_replace_the_runs_reward_model_by_rules(tmp_path):
    cfg = pipeline.Config(model_name_or_path="m", ppo={"reward_model": None, "reward_rules": ["korlhf.demo_data:correct"]})
    ppo_cfg = stage_config(stages.get("ppo"), cfg, tmp_path)
    assert ppo_cfg.reward_model is None and ppo_cfg.reward_rules == ["korlhf.demo_data:correct"]
    default = stage_config(stages.get("ppo"), pipeline.Config(model_name_or_path="m"), tmp_path)
    assert default.reward_model == str(tmp_path / "rm")


def test_dotted_flags_change_one_field_of_a_block():
    cfg = load_config(demo.Config, None, ["--ppo.kl_coef", "0.1", "--ppo.reward_rules", "hangul", "--sft.seed", "3"])
    assert cfg.ppo == {**demo.Config().ppo, "kl_coef": 0.1, "reward_rules": "hangul"}
    assert cfg.sft == {**demo.Config().sft, "seed": 3}
    assert stage_config(stages.get("ppo"), cfg, Path("runs/x")).reward_rules == ["hangul"]
    with pytest.raises(KorlhfError) as err:
        load_config(pipeline.Config, None, ["--model_name_or_path", "m", "--name.x", "1"], command="korlhf pipeline")
    assert str(err.value) == "korlhf pipeline: --name.x: 'name' is not a block of settings"


def test_users_data_gets_no_checker_but_keeps_settings_they_chose():
    cfg = demo.Config(data="mine")
    demo.without_checker(cfg)
    assert "label" not in cfg.stages and cfg.answer_rule is None
    assert "reward_rules" not in cfg.ppo and "reward_model" not in cfg.ppo and cfg.ppo["max_steps"] == 60
    mine = demo.Config(data="mine", ppo={"reward_rules": ["hangul"], "reward_model": None}, answer_rule="my:rule")
    demo.without_checker(mine)
    assert mine.ppo == {"reward_rules": ["hangul"], "reward_model": None} and mine.answer_rule == "my:rule"
