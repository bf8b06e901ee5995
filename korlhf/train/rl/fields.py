"""The config fields every online RL stage (ppo, grpo, rloo) shares: one name, one meaning, one default.

Combined with `korlhf.train.fields.OptimFields` (steps, batch, learning rate, saving, resuming),
whose RL defaults are set here, a setting means the same in `korlhf train ppo`, `grpo` and `rloo`:

- ``max_steps``: training steps as the progress bar counts them (PPO: one rollout batch and its
  ``ppo_epochs`` of updates; GRPO/RLOO: one TRL optimizer step); -1: ``epochs`` over the prompts;
- ``batch_size`` x ``grad_accum``: sequences per optimizer step and process (PPO's mini-batch);
- ``max_new_tokens``, ``temperature``: how answers are sampled; ``kl_coef``: the KL penalty to the
  SFT model; ``cliprange``: the policy-ratio clip.

Older names (PPO's ``steps``, ``mini_batch_size``..., GRPO's ``beta``, ``epsilon``...) are
refused with the new one named (`RENAMED`, read by `korlhf.config.build_config`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

RENAMED = {
    "steps": "max_steps", "gradient_accumulation_steps": "grad_accum", "lr_scheduler_type": "lr_scheduler",
    "warmup_steps": "warmup_ratio", "max_completion_length": "max_new_tokens", "beta": "kl_coef",
    "epsilon": "cliprange", "mini_batch_size": "batch_size (sequences per micro-batch; x grad_accum = PPO's mini-batch)",
}


@dataclass(kw_only=True)
class RLFields:
    RENAMED = RENAMED  # a class attribute, not a field: `korlhf.config.build_config` reads it

    train_files: list[str] = field(metadata={"help": "prompt records (JSON Lines with 'prompt'); sft/preference files work too"})
    eval_files: list[str] = field(default_factory=list, metadata={
        "help": "held-out prompts, whose mean reward is measured before, every eval_steps and after training; "
                "default: a seeded eval_fraction of train_files"})
    eval_fraction: float = field(default=0.05, metadata={"help": "share of train prompts held out when eval_files is empty (0: none)"})
    max_prompt_length: int = field(default=256, metadata={"help": "longer prompts (in tokens, templated) are skipped and listed"})
    reward_model: str | None = field(default=None, metadata={"help": "`korlhf train rm` output (loaded with its trained head)"})
    reward_rules: list[str] = field(default_factory=list, metadata={
        "help": "rule rewards added to the reward model's score: hangul, no_refusal, complete, contains:WORD, module:function"})
    reward_weights: list[float] = field(default_factory=list, metadata={
        "help": "weight of each reward (reward_model first, then the rules); default: all 1"})
    max_new_tokens: int = field(default=128, metadata={"help": "answer length limit in tokens"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (log-probs use the same)"})
    kl_coef: float = field(default=0.05, metadata={"help": "KL penalty coefficient to the SFT model (beta; 0: no reference model in GRPO/RLOO)"})
    cliprange: float = field(default=0.2, metadata={"help": "policy ratio clip epsilon"})
    # OptimFields' settings with RL defaults: small constant learning rates, checkpoints as in SFT.
    learning_rate: float = field(default=1e-6, metadata={"help": "peak policy learning rate (LoRA usually wants ~10x more)"})
    lr_scheduler: str = field(default="constant", metadata={"help": "learning-rate schedule: constant, linear, cosine..."})
    warmup_ratio: float = field(default=0.0, metadata={"help": "share of optimizer steps spent warming the learning rate up"})

    def __post_init__(self):
        # Config-only checks live here, so `korlhf pipeline` refuses a bad run before loading anything.
        super().__post_init__()  # OptimFields: every number in range
        if not self.reward_model and not self.reward_rules:
            raise ValueError("no reward: set reward_model (a `korlhf train rm` output) and/or reward_rules")
        n_rewards = bool(self.reward_model) + len(self.reward_rules)
        if self.reward_weights and len(self.reward_weights) != n_rewards:
            raise ValueError(f"reward_weights has {len(self.reward_weights)} weights for {n_rewards} rewards "
                             "(the reward model first, then each rule)")
