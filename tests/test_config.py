import dataclasses
import importlib
from pathlib import Path

import pytest

from korlhf.config import load_config
from korlhf.errors import KorlhfError

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Example:
    learning_rate: float = 1e-4
    epochs: int = 1
    use_lora: bool = False
    data_files: list[str] = dataclasses.field(default_factory=list)
    template: str | None = None
    column_map: dict = dataclasses.field(default_factory=dict)


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_then_flags_override(tmp_path):
    path = write(tmp_path, "learning_rate: 1e-5\nepochs: 3\ndata_files: [a.jsonl]\n")
    cfg = load_config(Example, path, ["--epochs", "5", "--use_lora", "--data-files", "x.jsonl,y.jsonl"])
    assert cfg == Example(learning_rate=1e-5, epochs=5, use_lora=True, data_files=["x.jsonl", "y.jsonl"])


def test_flag_forms(tmp_path):
    cfg = load_config(Example, None, ["--epochs=2", "--no-use_lora", "--template", "none",
                                      "--data_files", "a", "--data_files", "b", "--column_map", "prompt=질문,response=답변"])
    assert cfg.epochs == 2 and cfg.use_lora is False and cfg.template is None
    assert cfg.data_files == ["a", "b"]
    assert cfg.column_map == {"prompt": "질문", "response": "답변"}


def test_config_flag_loads_file(tmp_path):
    path = write(tmp_path, "epochs: 7\n")
    assert load_config(Example, None, ["--config", str(path)]).epochs == 7


def test_unknown_yaml_key_suggests_closest(tmp_path):
    path = write(tmp_path, "lerning_rate: 0.1\n")
    with pytest.raises(KorlhfError) as err:
        load_config(Example, path)
    assert str(err.value) == (
        f"unknown key in {path}: 'lerning_rate' is not a field of Example; did you mean 'learning_rate'?"
    )


def test_unknown_flag_suggests_closest():
    with pytest.raises(KorlhfError) as err:
        load_config(Example, None, ["--epoch", "3"])
    assert str(err.value) == "unknown flag: --epoch is not a field of Example; did you mean 'epochs'?"


def test_bad_type():
    with pytest.raises(KorlhfError) as err:
        load_config(Example, None, ["--epochs", "three"])
    assert str(err.value) == "config field 'epochs' expects an integer, got 'three' (--epochs)"


def test_bad_type_in_yaml(tmp_path):
    path = write(tmp_path, "use_lora: maybe\n")
    with pytest.raises(KorlhfError) as err:
        load_config(Example, path)
    assert str(err.value) == f"config field 'use_lora' expects a boolean (true/false), got 'maybe' ({path})"


def test_missing_file(tmp_path):
    with pytest.raises(KorlhfError) as err:
        load_config(Example, tmp_path / "nope.yaml")
    assert str(err.value) == f"config file not found: {tmp_path / 'nope.yaml'}"


def test_yaml_must_be_mapping(tmp_path):
    path = write(tmp_path, "- a\n- b\n")
    with pytest.raises(KorlhfError, match="must be a flat mapping"):
        load_config(Example, path)


# Which config dataclass each shipped YAML belongs to, by file-name prefix. A new YAML under
# configs/ must match one of these, so every shipped file is validated.
STAGE_MODULES = {
    "demo": "korlhf.demo",
    "pipeline": "korlhf.pipeline",
    "sft": "korlhf.train.sft",
    "rm": "korlhf.train.rm",
    "ppo": "korlhf.train.ppo",
    "dpo": "korlhf.train.dpo",
    "grpo": "korlhf.train.grpo",
    "rloo": "korlhf.train.rloo",
    "data": "korlhf.data.build",
    "data_clean": "korlhf.data.clean",
    "label": "korlhf.label.stage",
    "generate": "korlhf.generate",
    "eval": "korlhf.evaluation.score",
    "eval_kobest": "korlhf.evaluation.kobest",
    "eval_judge": "korlhf.evaluation.judge",
    "sweep": "korlhf.evaluation.sweep",
    "compare": "korlhf.compare",
}


def _stage_module(path: Path) -> str:
    for prefix, module in sorted(STAGE_MODULES.items(), key=lambda kv: -len(kv[0])):
        if path.stem == prefix or path.stem.startswith(prefix + "_"):
            return module
    raise AssertionError(f"{path} matches no stage in STAGE_MODULES; add it there")


SHIPPED = sorted(p for p in (REPO / "configs").rglob("*.yaml") if "accelerate" not in p.parts)


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(REPO)) for p in SHIPPED])
def test_every_shipped_yaml_parses(path):
    module = importlib.import_module(_stage_module(path))
    cfg = load_config(module.Config, path)
    assert dataclasses.is_dataclass(cfg)


def test_shipped_configs_exist():
    assert SHIPPED, "configs/ should ship YAML files"


def test_numbers_out_of_range_are_refused_when_the_config_is_built():
    from korlhf.train import dpo, grpo, ppo, sft

    base = ["--model_name_or_path", "m", "--train_files", "t", "--output_dir", "o"]
    cases = [(sft, ["--batch_size", "0"], "korlhf train sft: batch_size must be at least 1; got 0"),
             (sft, ["--learning_rate", "0"], "korlhf train sft: learning_rate must be more than 0; got 0.0"),
             (dpo, ["--eval_fraction", "1"], "korlhf train dpo: eval_fraction must be at least 0 and less than 1; got 1.0"),
             (ppo, ["--reward_rules", "hangul", "--max_new_tokens", "0"],
              "korlhf train ppo: max_new_tokens must be at least 1; got 0"),
             (grpo, ["--reward_rules", "hangul", "--num_generations", "1"],
              "korlhf train grpo: num_generations must be at least 2; got 1"),
             (ppo, ["--reward_rules", "hangul", "--temperature", "0"],
              "korlhf train ppo: temperature must be more than 0; got 0.0")]
    for module, flags, message in cases:
        command = "korlhf train " + module.__name__.split(".")[2]
        with pytest.raises(KorlhfError) as err:
            load_config(module.Config, None, [*base, *flags], command=command)
        assert str(err.value) == message
