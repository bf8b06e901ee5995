"""What every online RL stage (PPO, GRPO, RLOO) and `korlhf label` share.

``fields``: the config fields they spell the same way; ``prompts``: prompt conversations and their
seeded order; ``rollout``: sampling responses with the chat template; ``rewards``: reward model
and rule rewards; ``evaluate``: the held-out reward every stage reports before and after training.
"""
