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

import torch
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices
from trl.trainer.utils import RepeatSampler

# Imported only inside the training stages' functions, so `import korlhf` stays light.


def with_epoch_seeded_sampler(trainer_cls):
    """``trainer_cls`` (SFT, GRPO, RLOO) drawing its training order from (seed, epoch): exact resume."""

    class EpochSeeded(trainer_cls):
        def _get_train_sampler(self, dataset=None):
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed  # as HF's sampler
            return epoch_seeded(super()._get_train_sampler(dataset), seed)

    EpochSeeded.__name__ = trainer_cls.__name__
    return EpochSeeded


def epoch_seeded(sampler, seed: int):
    if isinstance(sampler, LengthGroupedSampler):
        grouped = EpochSeededLengthGrouped(sampler.batch_size, lengths=sampler.lengths)
        grouped.seed = seed
        return grouped
    if isinstance(sampler, RepeatSampler) and sampler.shuffle:
        return EpochSeededRepeat(sampler.data_source, sampler.mini_repeat_count, sampler.batch_size,
                                 sampler.repeat_count, shuffle=True, seed=seed)
    return sampler


def _generator(seed: int, epoch: int):
    return torch.Generator().manual_seed(seed * 1000003 + epoch)


class EpochSeededLengthGrouped(LengthGroupedSampler):
    seed, epoch = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):  # a fresh generator per pass: the order depends on (seed, epoch) alone
        generator = _generator(self.seed, self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class EpochSeededRepeat(RepeatSampler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator = _generator(self.seed, epoch)
