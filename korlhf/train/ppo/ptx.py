"""PPO-ptx (InstructGPT): SFT examples whose language-model loss is mixed into each PPO update."""

from __future__ import annotations


class PtxData:
    """SFT examples for PPO-ptx, tokenized once; loss only on assistant tokens (the template's generation markers)."""

    def __init__(self, files: list[str], tokenizer, max_length: int, seed: int, rank: int):
        import torch

        from korlhf.records import load_records
        from korlhf.train.data import sft_messages

        self.examples = []
        for i, record in enumerate(load_records(files, "sft")):
            encoded = tokenizer.apply_chat_template(sft_messages(record, i), tokenize=True, return_dict=True,
                                                    return_assistant_tokens_mask=True)
            ids = torch.tensor(encoded["input_ids"][:max_length])
            labels = ids.masked_fill(torch.tensor(encoded["assistant_masks"][:max_length]) == 0, -100)
            self.examples.append((ids, labels))
        self.pad_id, self.seed, self.rank = tokenizer.pad_token_id, seed, rank

    def batch(self, step: int, micro_step: int, size: int, device) -> dict:
        """``size`` examples drawn with a seed fixed by (seed, rank, step, micro_step); right-padded."""
        import torch
        from torch.nn.utils.rnn import pad_sequence

        generator = torch.Generator().manual_seed(hash((self.seed, self.rank, step, micro_step)) % 2**63)
        picks = torch.randint(len(self.examples), (size,), generator=generator).tolist()
        ids = pad_sequence([self.examples[i][0] for i in picks], batch_first=True, padding_value=self.pad_id)
        labels = pad_sequence([self.examples[i][1] for i in picks], batch_first=True, padding_value=-100)
        return {"input_ids": ids.to(device), "attention_mask": (ids != self.pad_id).long().to(device),
                "labels": labels.to(device)}
