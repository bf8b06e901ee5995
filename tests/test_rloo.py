"""`korlhf train rloo` on the tiny local model with LoRA: adapters train, the merged copy loads."""

import pytest
import torch

from korlhf.demo_data import demo_tasks
from korlhf.records import write_jsonl
from korlhf.train import rloo

pytestmark = pytest.mark.usefixtures("one_thread")  # steady on a shared 2-core machine


def test_rloo_few_steps_lora_merge(tiny_gpt2, tmp_path):
    from korlhf.models import is_adapter_dir, load_causal_lm, load_tokenizer

    write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": t["prompt"]} for t in demo_tasks(seed=6, n=24)])
    out = tmp_path / "rloo"
    metrics = rloo.main(rloo.Config(model_name_or_path=str(tiny_gpt2), train_files=[str(tmp_path / "prompts.jsonl")],
                                    eval_fraction=0.0, output_dir=str(out), reward_rules=["hangul", "contains:입니다"],
                                    use_lora=True, lora_r=4, merge=True, max_steps=2, batch_size=4, num_generations=2,
                                    max_new_tokens=8, learning_rate=1e-2, lr_scheduler="constant",
                                    warmup_ratio=0.0, logging_steps=1))
    assert metrics["steps"] == 2 and metrics["reward_start"] is not None
    assert is_adapter_dir(out) and (out / "merged" / "config.json").is_file()
    tokenizer = load_tokenizer(out)
    merged, start = load_causal_lm(out / "merged", tokenizer), load_causal_lm(tiny_gpt2, tokenizer)
    changed = [n for n, p in merged.named_parameters() if not torch.equal(p, start.state_dict()[n])]
    assert any("attn" in n for n in changed)  # LoRA on all linear layers moved the attention weights
    assert torch.equal(load_causal_lm(out, tokenizer).transformer.h[0].attn.c_attn.weight,
                       merged.transformer.h[0].attn.c_attn.weight)
