"""`korlhf train grpo` on the tiny local model, rewarded by a reward model and a rule at once."""

import json

import pytest
import torch

from korlhf.demo_data import demo_tasks
from korlhf.records import write_jsonl
from korlhf.train import grpo

pytestmark = pytest.mark.usefixtures("one_thread")  # steady on a shared 2-core machine


def test_grpo_few_steps_with_reward_model_and_rule(tiny_gpt2, tiny_models, tmp_path):
    from korlhf.models import load_causal_lm, load_tokenizer

    write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": t["prompt"]} for t in demo_tasks(seed=4, n=40)])
    out = tmp_path / "grpo"
    metrics = grpo.main(grpo.Config(model_name_or_path=str(tiny_gpt2), train_files=[str(tmp_path / "prompts.jsonl")],
                                    eval_fraction=0.1, output_dir=str(out), reward_model=str(tiny_models["reward"]),
                                    reward_rules=["hangul"], max_steps=2, batch_size=8, num_generations=4,
                                    max_new_tokens=8, learning_rate=1e-3, lr_scheduler="constant",
                                    warmup_ratio=0.0, logging_steps=1))
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    trained = [r for r in rows if "reward" in r]
    assert len(trained) == 2 and all("rewards/reward_model/mean" in r and "rewards/hangul/mean" in r for r in trained)
    assert rows[0] == {"step": 0, "eval/reward": metrics["eval_reward_start"]}  # PPO's held-out measure
    assert metrics["steps"] == 2 and "eval_reward_end" in metrics
    tokenizer = load_tokenizer(out)
    changed, start = load_causal_lm(out, tokenizer), load_causal_lm(tiny_gpt2, tokenizer)
    assert not torch.equal(changed.transformer.wte.weight, start.transformer.wte.weight)
    assert (out / "metrics.json").is_file() and (out / "README.md").is_file()


def test_grpo_scores_with_mask_positions(tiny_gpt2, tmp_path, monkeypatch):
    """Every forward of the run, TRL's scoring of policy and reference included, numbers positions from
    each row's first real token (as generate does), not from the first pad column."""
    from transformers.models.gpt2.modeling_gpt2 import GPT2Model

    from korlhf.train.positions import mask_position_ids

    calls = []  # (model, whether position_ids were given and right)
    forward = GPT2Model.forward

    def spy(self, input_ids=None, past_key_values=None, attention_mask=None, position_ids=None, **kwargs):
        if attention_mask is not None:  # generate's cached steps hold the new columns only
            length = (input_ids if input_ids is not None else kwargs["inputs_embeds"]).shape[1]
            real = attention_mask[:, -length:].bool()
            right = position_ids is not None and torch.equal(position_ids.expand_as(real)[real],
                                                             mask_position_ids(attention_mask, length)[real])
            calls.append((id(self), right))
        return forward(self, input_ids=input_ids, past_key_values=past_key_values, attention_mask=attention_mask,
                       position_ids=position_ids, **kwargs)

    monkeypatch.setattr(GPT2Model, "forward", spy)
    write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": t["prompt"]} for t in demo_tasks(seed=5, n=16)])
    grpo.main(grpo.Config(model_name_or_path=str(tiny_gpt2), train_files=[str(tmp_path / "prompts.jsonl")],
                          eval_fraction=0.0, output_dir=str(tmp_path / "grpo"), reward_rules=["hangul"], kl_coef=0.04,
                          max_steps=2, batch_size=4, num_generations=2, max_new_tokens=6, logging_steps=1))
    assert len({model for model, _ in calls}) >= 2  # the policy and TRL's reference model
    assert calls and all(right for _, right in calls)
