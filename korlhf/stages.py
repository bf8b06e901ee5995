"""The stages of the recipe, in pipeline order: the one list the CLI, the pipeline, the report and the demo read.

Each entry says what a stage is (its module: a config dataclass and ``main``), how a user starts it
(``korlhf train NAME`` for a training stage), what it reads (the stages before it, and the fields
the pipeline fills with their outputs), which blocks of settings the pipeline config holds for it
and what the report draws from its ``log.jsonl``. Adding a stage (KTO, ORPO...) is one entry here
plus its module; nothing else lists stages (torchtune's ``_recipe_registry.py`` is the model).

Readers take ``stages.STAGES`` when they run (not at import), so a test can add a toy stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

POLICIES = "policies"  # in `needs`: every stage that trains a policy (ppo, dpo, grpo, rloo, ...)


@dataclass(frozen=True)
class Stage:
    name: str
    module: str  # a `Config` dataclass and `main(cfg)`
    help: str = ""  # the command's one-line help (training stages)
    train: bool = False  # `korlhf train NAME`; in the pipeline its Config is built from its block + `inputs`
    needs: tuple[str, ...] = ()  # stages whose output it reads: `--force X` redoes every stage that needs X
    inputs: dict = field(default_factory=dict)  # fields the pipeline fills: {run} run folder, {base} base
    # model, {template}, {preferences} (label's ranked answers, else the data's rm.jsonl)
    own: tuple[str, ...] = ()  # of `inputs`, those the stage's block may set itself (reward_model: null)
    policy: bool = False  # trains the policy that answers: compared in generate/eval, the last one swept
    optional: bool = False  # left out of the pipeline's default stages
    blocks: tuple = ()  # (field, help, default) of the pipeline config; default: one block named after it
    runner: str = ""  # stages that are not a plain training run: "module:function(cfg, run, fresh)"
    check: str = ""  # and their up-front check: "module:function(cfg, run)", before anything runs
    report: str = ""  # title of its report section ("" none)
    curves: tuple[str, ...] = ()  # log.jsonl keys the report draws against step

    def settings_blocks(self) -> tuple:
        """(field, help, default) of each block of settings the pipeline config holds for this stage."""
        if self.blocks or not self.train:
            return self.blocks
        return ((self.name, f"fields of `korlhf train {self.name}`", {}),)


_RL_INPUTS = {"model_name_or_path": "{run}/sft", "reward_model": "{run}/rm",
              "train_files": ["{run}/data/build/ppo.jsonl"]}
_PREFERENCE_INPUTS = {"model_name_or_path": "{run}/sft", "train_files": ["{preferences}"]}
_RL_CURVES = ("reward/mean", "reward", "eval/reward", "kl/mean", "kl", "response/length")

STAGES: list[Stage] = [
    Stage("data", "korlhf.data.build", needs=(), runner="korlhf.pipeline_stages:run_data",
          check="korlhf.pipeline_stages:check_data", report="Data", blocks=(
              ("data_clean", "fields of `korlhf data clean` (e.g. near_dedup: false)", {}),
              ("data_build", "fields of `korlhf data build` (e.g. eval_size: 200, max_sft: 20000)", {}))),
    Stage("sft", "korlhf.train.sft", train=True, needs=("data",), report="SFT",
          help="Supervised fine-tuning on sft records (loss on the answers only), on TRL's SFTTrainer.",
          inputs={"model_name_or_path": "{base}", "template": "{template}",
                  "train_files": ["{run}/data/build/sft.jsonl"]},
          curves=("loss", "eval_loss", "mean_token_accuracy")),
    Stage("label", "korlhf.label.stage", needs=("data", "sft"), optional=True,
          runner="korlhf.pipeline_stages:run_label", check="korlhf.pipeline_stages:label_config", blocks=(
              ("label", "fields of `korlhf label` (judge, base_url, ...); candidates come from the SFT model", {}),)),
    Stage("rm", "korlhf.train.rm", train=True, needs=("data", "sft", "label"), report="Reward model",
          help="Reward model from ranked answers: kwise (InstructGPT), pairwise (Bradley-Terry) or listwise loss.",
          inputs=_PREFERENCE_INPUTS, curves=("loss", "accuracy")),
    Stage("ppo", "korlhf.train.ppo", train=True, needs=("data", "sft", "rm"), policy=True, report="PPO",
          help="PPO (InstructGPT step 3) from a reward model and/or rule rewards, with a KL penalty to the SFT model.",
          inputs=_RL_INPUTS, own=("reward_model",), curves=_RL_CURVES),
    Stage("dpo", "korlhf.train.dpo", train=True, needs=("data", "sft", "label"), policy=True, optional=True,
          help="DPO from preference records (K-wise rankings expanded to pairs), on TRL's DPOTrainer.",
          inputs=_PREFERENCE_INPUTS, report="DPO", curves=("loss", "rewards/accuracies", "rewards/margins")),
    Stage("grpo", "korlhf.train.grpo", train=True, needs=("data", "sft", "rm"), policy=True, optional=True,
          help="GRPO (group-relative advantages, no value model) with a reward model and/or rules, on TRL's GRPOTrainer.",
          inputs=_RL_INPUTS, own=("reward_model",), report="GRPO", curves=_RL_CURVES),
    Stage("rloo", "korlhf.train.rloo", train=True, needs=("data", "sft", "rm"), policy=True, optional=True,
          help="RLOO (leave-one-out baseline, no value model) with a reward model and/or rules, on TRL's RLOOTrainer.",
          inputs=_RL_INPUTS, own=("reward_model",), report="RLOO", curves=_RL_CURVES),
    Stage("generate", "korlhf.generate", needs=("data", "sft", POLICIES),
          runner="korlhf.pipeline_eval:answer_eval_prompts", check="korlhf.pipeline_eval:check_generate", blocks=(
              ("generate", "decoding of the side-by-side answers (a preset plus `korlhf generate` knobs)",
               {"preset": "greedy", "max_new_tokens": 128}),)),
    Stage("eval", "korlhf.evaluation.score", needs=("generate", "rm"), runner="korlhf.pipeline_eval:score_and_sweep",
          check="korlhf.pipeline_eval:sweep_check", blocks=(
              ("sweep", "fields of `korlhf eval sweep` for the final model ({} = its default strategies)", {}),)),
]


def fill(text, /, **values):
    """``text`` (a string, or a list of them) with each ``{key}`` replaced by ``values[key]``; other
    braces are left alone (a user's own strings pass through here too)."""
    if isinstance(text, list):
        return [fill(t, **values) for t in text]
    if not isinstance(text, str):
        return text
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def get(name: str) -> Stage:
    return next(s for s in STAGES if s.name == name)


def names() -> list[str]:
    """Every stage name, in pipeline order."""
    return [s.name for s in STAGES]


def policies() -> list[str]:
    """Stages that train a policy, in pipeline order."""
    return [s.name for s in STAGES if s.policy]


def needs(stage: Stage) -> tuple[str, ...]:
    """What ``stage`` reads, with `POLICIES` spelled out."""
    return tuple(n for need in stage.needs for n in (policies() if need == POLICIES else [need]))
