"""korlhf: Korean RLHF toolkit."""
__version__ = "0.1.0"
