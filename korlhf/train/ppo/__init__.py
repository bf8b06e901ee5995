"""`korlhf train ppo`: PPO (InstructGPT step 3), our own code on torch + transformers + accelerate.

The stage is `korlhf.train.ppo.trainer`; PPO's own parts live beside it: ``math`` (pure tensor
functions), ``models`` (policy, reference, value and reward models), ``scoring`` (token log-probs
and values of a rollout), ``ptx`` (PPO-ptx), ``checkpoint`` and ``output``. What PPO shares with
GRPO and RLOO (prompts, rollouts, rewards, the held-out measure) is `korlhf.train.rl`.
"""

from korlhf.train.ppo.trainer import Config, main

__all__ = ["Config", "main"]
