"""Data: read Korean sources, inspect them, clean them, build disjoint SFT / RM / PPO sets.

Python API: `korlhf.data.readers.read_source` / `read_records` (any supported file -> canonical
records); `korlhf.data.clean.main(Config(...))` and `korlhf.data.build.main(Config(...))` return
the paths they wrote. Commands: `korlhf data inspect | clean | build`.
"""
