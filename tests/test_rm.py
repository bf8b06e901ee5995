"""`korlhf train rm` on the tiny local model: it learns fluent > corrupted Korean, the saved head comes back."""

from __future__ import annotations

import json
import random

import pytest
import torch
from transformers import TrainerCallback

from korlhf.config import load_config
from korlhf.errors import KorlhfError
from korlhf.records import write_jsonl


def corrupt(text: str, style: str, rng: random.Random) -> str:
    """A broken version of a fluent answer: shuffled words, English, repetition or truncation."""
    words = text.split()
    if style == "shuffle":
        order = list(range(len(words)))
        while order[-1] == len(words) - 1:  # the last word must move, or the sentence still ends well
            rng.shuffle(order)
        return " ".join(words[i] for i in order)
    if style == "english":
        return rng.choice(["I am not sure about that.", "The answer is probably something else.", "Sorry, no idea."])
    if style == "repeat":
        return " ".join([words[0]] * rng.randint(4, 7))
    return text[: max(2, len(text) // 3)]


def fluent_vs_corrupted(seed: int, n: int) -> list[dict]:
    """Preference records: the fluent answer first, two corruptions after (not ranked among themselves)."""
    from korlhf.demo_data import demo_tasks

    rng = random.Random(seed)
    records = []
    for task in demo_tasks(seed=seed, n=n):
        styles = rng.sample(["shuffle", "english", "repeat", "truncate"], 2)
        records.append({"prompt": task["prompt"], "source": "demo-corrupted", "id": task["id"],
                        "responses": [task["response"], *(corrupt(task["response"], s, rng) for s in styles)],
                        "tied_after_first": True})
    return records


class KeepModel(TrainerCallback):
    """Holds on to the trained (in-memory) model, to compare with what is reloaded from disk."""

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.model = model


def config(model, train, out, *flags, eval_file=None):
    from korlhf.train import rm

    extra = ["--eval_files", str(eval_file)] if eval_file else ["--eval_fraction", "0"]
    return load_config(rm.Config, None, ["--model_name_or_path", str(model), "--train_files", str(train),
                                         "--output_dir", str(out), *extra, *flags])


@pytest.fixture(scope="module")
def rm_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("rm")
    write_jsonl(root / "train.jsonl", fluent_vs_corrupted(seed=11, n=320))
    write_jsonl(root / "eval.jsonl", fluent_vs_corrupted(seed=12, n=60))
    return root / "train.jsonl", root / "eval.jsonl"


def test_reward_model_learns_fluent_over_corrupted(tiny_gpt2, rm_files, tmp_path):
    """K-wise loss from the tiny causal LM (new score head): held-out pairwise accuracy >= 0.9 (measured 0.99)."""
    from korlhf.models import load_reward_model, load_tokenizer
    from korlhf.records import load_records
    from korlhf.train import rm

    train, held_out = rm_files
    out, keep = tmp_path / "rm", KeepModel()
    metrics = rm.main(config(tiny_gpt2, train, out, "--max_steps", "30", "--batch_size", "16",
                              "--learning_rate", "3e-3", "--logging_steps", "10", eval_file=held_out),
                       callbacks=[keep])
    assert metrics["eval_pairwise_accuracy_start"] < 0.75
    assert metrics["eval_pairwise_accuracy"] >= 0.9
    assert metrics["eval_top1_accuracy"] >= 0.8  # K = 3, tied: top-1 is well defined, Kendall tau is not
    assert metrics["eval_kendall_tau"] is None
    saved = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert saved["eval_pairwise_accuracy"] == metrics["eval_pairwise_accuracy"]
    assert "| train | demo-corrupted | 320 |" in (out / "README.md").read_text(encoding="utf-8")
    # Full fine-tuning: the reloaded model gives exactly the trained model's scores.
    tokenizer = load_tokenizer(out)
    records = load_records(held_out, "preference")[:8]
    prompts, answers = [r["prompt"] for r in records for _ in range(3)], [a for r in records for a in r["responses"]]
    before = rm.reward_scores(keep.model, tokenizer, prompts, answers)
    assert rm.reward_scores(load_reward_model(out, tokenizer), tokenizer, prompts, answers) == before


def test_lora_reward_model_saves_its_head(tiny_gpt2, rm_files, tmp_path):
    """The original pipeline lost its trained head between stages; here a reload scores exactly the same."""
    from safetensors.torch import load_file

    from korlhf.models import load_reward_model, load_tokenizer
    from korlhf.records import load_records
    from korlhf.train import rm

    train, held_out = rm_files
    out, keep = tmp_path / "rm-lora", KeepModel()
    rm.main(config(tiny_gpt2, train, out, "--use_lora", "--lora_r", "4", "--max_steps", "4",
                    "--learning_rate", "1e-2", "--merge"), callbacks=[keep])
    adapter = load_file(out / "adapter_model.safetensors")
    assert any("score" in name for name in adapter), "the trained score head is not in the adapter"
    tokenizer = load_tokenizer(out)
    records = load_records(held_out, "preference")[:6]
    prompts, answers = [r["prompt"] for r in records for _ in range(3)], [a for r in records for a in r["responses"]]
    before = torch.tensor(rm.reward_scores(keep.model, tokenizer, prompts, answers))
    unmerged = torch.tensor(rm.reward_scores(load_reward_model(out, tokenizer, merge_adapter=False), tokenizer,
                                             prompts, answers))
    assert torch.equal(unmerged, before)  # bit for bit
    for merged_path in (out, out / "merged"):  # merging reorders float sums: equal to ~1e-7
        merged = torch.tensor(rm.reward_scores(load_reward_model(merged_path, tokenizer), tokenizer, prompts, answers))
        torch.testing.assert_close(merged, before, atol=1e-5, rtol=0)
    fresh = load_reward_model(tiny_gpt2, tokenizer, new_head=True)  # what a lost head would give
    assert not torch.allclose(torch.tensor(rm.reward_scores(fresh, tokenizer, prompts, answers)), before, atol=1e-3)


def test_pairwise_with_margin_and_listwise_train(tiny_gpt2, tmp_path):
    from korlhf.train import rm

    records = [{"prompt": f"질문 {i}", "responses": ["좋은 답입니다.", "보통 답.", "ㅋ"], "scores": [7, 4, 1]}
               for i in range(12)]
    write_jsonl(tmp_path / "scored.jsonl", records)
    cfg = config(tiny_gpt2, tmp_path / "scored.jsonl", tmp_path / "pair", "--loss", "pairwise", "--margin_scale",
                 "0.5", "--center_rewards_coefficient", "0.01", "--max_steps", "2", "--batch_size", "4")
    metrics = rm.main(cfg)
    assert metrics["train_rows"] == 36  # 12 records x C(3,2) pairs
    assert metrics["loss"] == "pairwise"
    from korlhf.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_gpt2)
    rows = rm.pairwise_dataset(records[:1], tokenizer, 512, 0.5)
    assert rows["margin"] == [1.5, 3.0, 1.5]  # 0.5 x (7-4, 7-1, 4-1)
    listwise = rm.main(config(tiny_gpt2, tmp_path / "scored.jsonl", tmp_path / "pl", "--loss", "listwise",
                               "--max_steps", "2", "--batch_size", "4", "--logging_steps", "1"))
    assert listwise["steps"] == 2 and listwise["train_loss"] > 0


def test_tied_after_first_records_give_only_first_vs_other_pairs(tiny_tokenizer):
    from korlhf.data.kobest import to_preference
    from korlhf.train import rm
    from korlhf.train.data import preference_pairs

    item = {"id": "h1", "task": "HellaSwag", "context": "아침에 일어나서", "choices": ["a", "b", "c", "d"], "label": 2}
    record = to_preference(item)
    pairs = [(p["chosen"], p["rejected"]) for p in preference_pairs([record])]
    assert pairs == [("c", "a"), ("c", "b"), ("c", "d")]
    assert len(rm.pairwise_dataset([record], tiny_tokenizer, 512, 0.0)) == 3
    ranked = dict(record, tied_after_first=False)
    assert len(preference_pairs([ranked])) == 6
    row = rm.ranking_dataset([record], tiny_tokenizer, 512)[0]
    assert len(row["responses_ids"]) == 4 and row["tied_after_first"] is True


def test_bad_rm_settings_are_clear(tiny_gpt2, tmp_path):
    from korlhf.train import rm

    write_jsonl(tmp_path / "p.jsonl", [{"prompt": "질문", "responses": ["좋은 답", "나쁜 답"]}])
    with pytest.raises(KorlhfError) as err:
        config(tiny_gpt2, tmp_path / "p.jsonl", tmp_path / "o", "--margin_scale", "1")
    assert str(err.value) == "margin_scale needs loss: pairwise (loss is kwise)"
    with pytest.raises(KorlhfError) as err:
        rm.main(config(tiny_gpt2, tmp_path / "p.jsonl", tmp_path / "o", "--loss", "pairwise", "--margin_scale", "1"))
    assert str(err.value) == ("record 1: a margin needs 'scores' (one number per response); "
                              "set margin_scale 0 or add scores")
    with pytest.raises(KorlhfError) as err:
        rm.main(config(tiny_gpt2, tmp_path / "p.jsonl", tmp_path / "o", "--max_length", "3"))
    assert str(err.value) == "every one of the 1 records is longer than max_length=3 tokens; raise max_length"
