"""Training stages: SFT, reward model, PPO, and DPO / GRPO / RLOO on TRL."""
