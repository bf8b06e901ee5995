"""Training samplers whose order in each epoch is a function of (seed, epoch), so resume is exact.

A Trainer resumed inside epoch 2+ rebuilds its data loader and calls ``set_epoch``; a sampler that
instead draws its order from a generator (or the global RNG) as it goes hands the resumed run
another order than the run it continues. Two such samplers are made epoch-seeded here:

- transformers' ``LengthGroupedSampler`` (SFT's default ``group_by_length``): built without a
  generator, each epoch's order came from the global RNG at the start of that epoch;
- TRL's ``RepeatSampler`` (GRPO, RLOO): one generator seeded once, so a resumed run replays the
  first epoch's order where the second was due.

Any other sampler (HF's random sampler is already seeded per epoch) is returned unchanged.
"""

from __future__ import annotations

from functools import lru_cache


def epoch_seeded(sampler, seed: int):
    from transformers.trainer_pt_utils import LengthGroupedSampler
    from trl.trainer.utils import RepeatSampler

    grouped_cls, repeat_cls = _classes()
    if isinstance(sampler, LengthGroupedSampler):
        grouped = grouped_cls(sampler.batch_size, lengths=sampler.lengths)
        grouped.seed = seed
        return grouped
    if isinstance(sampler, RepeatSampler) and sampler.shuffle:
        return repeat_cls(sampler.data_source, sampler.mini_repeat_count, sampler.batch_size, sampler.repeat_count,
                          shuffle=True, seed=seed)
    return sampler


def _generator(seed: int, epoch: int):
    import torch

    return torch.Generator().manual_seed(seed * 1000003 + epoch)


@lru_cache(maxsize=1)
def _classes():
    """The two samplers, subclasses of transformers' and TRL's: built on first use, so importing this
    module stays light."""
    from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices
    from trl.trainer.utils import RepeatSampler

    class EpochSeededLengthGrouped(LengthGroupedSampler):
        seed, epoch = 0, 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):
            generator = _generator(self.seed, self.epoch)
            return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))

    class EpochSeededRepeat(RepeatSampler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.set_epoch(0)

        def set_epoch(self, epoch: int) -> None:
            self.generator = _generator(self.seed, epoch)

    return EpochSeededLengthGrouped, EpochSeededRepeat

