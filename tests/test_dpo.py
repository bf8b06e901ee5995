"""`korlhf train dpo` on the tiny local model: ranked records become the right pairs, and it learns."""

import json
import math

import pytest
import torch

from korlhf.demo_data import demo_tasks
from korlhf.records import write_jsonl
from korlhf.train import dpo

pytestmark = pytest.mark.usefixtures("one_thread")  # steady on a shared 2-core machine

WRONG = ["모르겠습니다.", "The answer is unknown.", "123 456 789", "네."]


def test_dpo_expands_rankings_and_learns(tiny_gpt2, tmp_path):
    from korlhf.models import load_causal_lm, load_tokenizer

    tasks = demo_tasks(seed=2, n=60)
    # 40 ranked records with K = 3 (3 pairs each) and 20 KoBEST-style records with K = 4 where only
    # "the first beats each other one" is known (3 pairs each, never a pair of two wrong answers).
    records = [{"prompt": t["prompt"], "responses": [t["response"], WRONG[i % 4], WRONG[(i + 1) % 4]]}
               for i, t in enumerate(tasks[:40])]
    records += [{"prompt": t["prompt"], "responses": [t["response"], *WRONG[:3]], "tied_after_first": True}
                for t in tasks[40:]]
    write_jsonl(tmp_path / "prefs.jsonl", records)
    out = tmp_path / "dpo"
    metrics = dpo.main(dpo.Config(model_name_or_path=str(tiny_gpt2), train_files=[str(tmp_path / "prefs.jsonl")],
                                  eval_fraction=0.1, output_dir=str(out), max_steps=4, batch_size=8,
                                  learning_rate=1e-3, lr_scheduler="constant", warmup_ratio=0.0, max_length=128,
                                  logging_steps=1))
    held_out = 6  # 10% of 60 records, 3 pairs each either way
    assert metrics["train_pairs"] == 3 * (60 - held_out) and metrics["eval_pairs"] == 3 * held_out
    # At the start the policy is the reference: every pair's margin is 0 and the loss is log 2.
    assert metrics["eval_loss_start"] == pytest.approx(math.log(2), abs=1e-6)
    assert metrics["eval_loss"] < metrics["eval_loss_start"]
    tokenizer = load_tokenizer(out)
    trained, start = load_causal_lm(out, tokenizer), load_causal_lm(tiny_gpt2, tokenizer)
    assert not torch.equal(trained.transformer.wte.weight, start.transformer.wte.weight)
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8")) == metrics
    assert (out / "README.md").is_file() and (out / "config.yaml").is_file()
