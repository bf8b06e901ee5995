"""Data: read Korean sources, inspect them, clean them, build disjoint SFT / RM / PPO sets."""
