"""`korlhf train grpo` on the tiny local model, rewarded by a reward model and a rule at once."""

import json

import torch
from test_ppo import one_thread  # noqa: F401  (one torch thread: steady on a shared machine)

from korlhf.demo_data import demo_tasks
from korlhf.records import write_jsonl
from korlhf.train import grpo


def test_grpo_few_steps_with_reward_model_and_rule(tiny_gpt2, tiny_models, tmp_path):
    from korlhf.models import load_causal_lm, load_tokenizer

    write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": t["prompt"]} for t in demo_tasks(seed=4, n=40)])
    out = tmp_path / "grpo"
    metrics = grpo.main(grpo.Config(model_name_or_path=str(tiny_gpt2), train_files=[str(tmp_path / "prompts.jsonl")],
                                    eval_fraction=0.1, output_dir=str(out), reward_model=str(tiny_models["reward"]),
                                    reward_rules=["hangul"], max_steps=2, batch_size=8, num_generations=4,
                                    max_completion_length=8, learning_rate=1e-3, lr_scheduler="constant",
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
