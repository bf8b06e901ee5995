"""`korlhf train rloo`: REINFORCE Leave-One-Out (Ahmadian et al. 2024) on TRL's RLOOTrainer, with our rewards.

Each prompt gets ``num_generations`` answers; an answer's baseline is the mean reward of the
*other* answers to the same prompt, so no value model is trained. Everything else (prompt
records, chat template, rewards, held-out measure, output folder) is `korlhf.train.grpo`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from korlhf.train.common import ModelFields, RunFields
from korlhf.train.fields import OptimFields
from korlhf.train.grpo import GroupFields, train
from korlhf.train.rl.fields import RLFields


@dataclass(kw_only=True)
class Config(GroupFields, RLFields, OptimFields, RunFields, ModelFields):
    num_generations: int = field(default=4, metadata={"help": "answers sampled per prompt (k in RLOO)"})
    normalize_advantages: bool = field(default=False, metadata={"help": "divide advantages by their std over the batch"})


def main(cfg: Config) -> dict:
    from trl import RLOOConfig, RLOOTrainer

    return train(cfg, "rloo", RLOOConfig, RLOOTrainer, {"normalize_advantages": cfg.normalize_advantages})
