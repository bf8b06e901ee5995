"""K-wise reward training on TRL's RewardTrainer: one batch row = one prompt with all K answers.

RewardTrainer gives us model/peft/dropout/pad handling, logging and saving; we replace what it
does per pair: the dataset is already tokenized (``responses_ids``: K id lists, best first;
``tied_after_first``), the collator flattens a batch of prompts into sum(K_b) sequences, and
`compute_loss` regroups the rewards by prompt for the losses of `korlhf.train.ranking`.
This overrides RewardTrainer's ``_prepare_dataset`` and ``_set_signature_columns_if_needed``
(TRL 1.16; pinned < 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from korlhf.train.ranking import (
    center_penalty,
    group_rewards,
    kwise_ranking_loss,
    pair_mask,
    plackett_luce_loss,
)


@dataclass
class RankingCollator:
    """Rows -> ``input_ids``/``attention_mask`` (N, L) right-padded, ``num_responses`` and
    ``tied_after_first`` (B,)."""

    pad_token_id: int

    def __call__(self, rows: list[dict]) -> dict:
        seqs = [torch.tensor(ids) for row in rows for ids in row["responses_ids"]]
        input_ids = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=self.pad_token_id)
        lengths = torch.tensor([len(s) for s in seqs])
        attention_mask = (torch.arange(input_ids.shape[1])[None, :] < lengths[:, None]).long()
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "num_responses": torch.tensor([len(row["responses_ids"]) for row in rows]),
                "tied_after_first": torch.tensor([bool(row["tied_after_first"]) for row in rows])}


class RankingTrainerMixin:
    """Put between `AtomicCheckpoints` and ``RewardTrainer``; pass ``ranking_loss="kwise"|"listwise"``."""

    def __init__(self, *args, ranking_loss: str = "kwise", processing_class=None, **kwargs):
        if ranking_loss not in ("kwise", "listwise"):
            raise ValueError(f"ranking_loss must be kwise or listwise, got {ranking_loss!r}")
        self.ranking_loss = ranking_loss
        kwargs.setdefault("data_collator", RankingCollator(processing_class.pad_token_id))
        super().__init__(*args, processing_class=processing_class, **kwargs)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return dataset  # tokenized by korlhf.train.rm.ranking_dataset

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = ["responses_ids", "tied_after_first"]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        num, tied = inputs["num_responses"], inputs["tied_after_first"]
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False)
        rewards = group_rewards(outputs.logits.squeeze(-1), num)  # (B, K)
        mask = pair_mask(num, tied, rewards.shape[1])
        if self.ranking_loss == "kwise":
            loss = kwise_ranking_loss(rewards, mask)
        else:
            loss = plackett_luce_loss(rewards, num, tied)
        if self.args.center_rewards_coefficient is not None:
            loss = loss + self.args.center_rewards_coefficient * center_penalty(rewards, num)
        with torch.no_grad():
            diffs = (rewards[:, :, None] - rewards[:, None, :])[mask]
            gather = self.accelerator.gather_for_metrics
            self._metrics[mode]["accuracy"].append(gather((diffs > 0).float().mean()).mean().item())
            self._metrics[mode]["margin"].append(gather(diffs.mean()).mean().item())
            self._metrics[mode]["mean_reward"].append(gather(outputs.logits.mean()).mean().item())
        return (loss, outputs) if return_outputs else loss
