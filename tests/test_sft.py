"""`korlhf train sft` on the tiny local model: labels, learning, resume after a kill, LoRA, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from korlhf.config import load_config
from korlhf.errors import KorlhfError
from korlhf.records import write_jsonl

MULTI_TURN = [
    {"messages": [{"role": "user", "content": "대한민국의 수도는 어디인가요?"},
                  {"role": "assistant", "content": "대한민국의 수도는 서울입니다."},
                  {"role": "user", "content": "일본은요?"},
                  {"role": "assistant", "content": "일본의 수도는 도쿄입니다."}], "source": "multi-turn"},
    {"messages": [{"role": "system", "content": "친절하게 답하세요."},
                  {"role": "user", "content": "개는 어떻게 우나요?"},
                  {"role": "assistant", "content": "개는 멍멍 하고 웁니다."}], "source": "multi-turn"},
]


@pytest.fixture(scope="module")
def sft_file(tmp_path_factory) -> Path:
    from korlhf.demo_data import demo_tasks

    path = tmp_path_factory.mktemp("sft") / "sft.jsonl"
    records = [{"prompt": t["prompt"], "response": t["response"], "source": "demo", "id": t["id"]}
               for t in demo_tasks(seed=3, n=120)]
    write_jsonl(path, records + MULTI_TURN)
    return path


def config(model, data, out, *flags):
    from korlhf.train import sft

    return load_config(sft.Config, None, ["--model_name_or_path", str(model), "--train_files", str(data),
                                          "--output_dir", str(out), *flags])


def test_labels_are_minus_100_exactly_on_prompt_tokens(tiny_gpt2, sft_file, tmp_path):
    from korlhf.models import load_causal_lm, load_tokenizer
    from korlhf.records import load_records
    from korlhf.templates import render_prompt
    from korlhf.train import sft
    from korlhf.train.data import sft_dataset

    cfg = config(tiny_gpt2, sft_file, tmp_path / "out", "--neftune_noise_alpha", "5")
    tokenizer = load_tokenizer(tiny_gpt2)
    records = load_records(sft_file, "sft")
    trainer = sft.build_trainer(cfg, load_causal_lm(tiny_gpt2, tokenizer), tokenizer, sft_dataset(records))
    assert trainer.args.neftune_noise_alpha == 5.0
    assert trainer.args.train_sampling_strategy == "group_by_length"
    rows = trainer.train_dataset
    assert len(rows) == len(records)
    for record, row in zip(records[:20], rows, strict=False):
        ids, labels = row["input_ids"], row["labels"]
        n_prompt = len(tokenizer(render_prompt(tokenizer, record["prompt"]), add_special_tokens=False)["input_ids"])
        assert labels[:n_prompt] == [-100] * n_prompt
        assert labels[n_prompt:] == ids[n_prompt:]
        assert ids[-1] == tokenizer.eos_token_id  # the answer's EOS is learned: the model learns to stop
    # Multi-turn: every assistant turn is learned, every other token (system, user, markup) is not.
    for record, row in zip(records[-2:], list(rows)[-2:], strict=True):
        expected = expected_assistant_mask(tokenizer, record["messages"])
        assert [label != -100 for label in row["labels"]] == expected


def expected_assistant_mask(tokenizer, messages):
    """Token mask of the assistant turns, from rendering the conversation one turn at a time."""
    mask, done = [], 0
    for i, m in enumerate(messages):
        text = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        mask += [m["role"] == "assistant"] * (n - done)
        done = n
    return mask


def test_sft_learns_in_30_steps(tiny_gpt2, sft_file, tmp_path):
    """Held-out answer loss falls by at least 1.5 nats in 30 steps (measured: ~8.0 -> ~5.0)."""
    from safetensors.torch import load_file

    from korlhf.models import load_causal_lm, load_tokenizer
    from korlhf.train import sft

    out = tmp_path / "sft"
    metrics = sft.main(config(tiny_gpt2, sft_file, out, "--max_steps", "30", "--learning_rate", "3e-3",
                              "--logging_steps", "5", "--eval_fraction", "0.1", "--batch_size", "8"))
    assert metrics["steps"] == 30
    assert metrics["eval_loss"] < metrics["eval_loss_start"] - 1.5
    log = [json.loads(line) for line in (out / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [row["step"] for row in log if "loss" in row] == [5, 10, 15, 20, 25, 30]
    assert log[0]["step"] == 0 and "eval_loss" in log[0]
    before, after = load_file(tiny_gpt2 / "model.safetensors"), load_file(out / "model.safetensors")
    changed = [name for name in before if not before[name].equal(after[name])]
    assert len(changed) >= 0.9 * len(before), f"only {len(changed)} of {len(before)} tensors changed"
    # The output directory: HF model + tokenizer with template, config, card, metrics written last.
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8")) == pytest.approx(metrics)
    assert (out / "metrics.json").stat().st_mtime_ns >= (out / "README.md").stat().st_mtime_ns
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "| train | **total** | **110** |" in card and "`kochatgpt`" in card and "eval_loss" in card
    assert load_config(sft.Config, out / "config.yaml").learning_rate == 3e-3
    assert not list(out.glob("checkpoint-*")) and not (out / ".checkpoint-staging").exists()
    tokenizer = load_tokenizer(out)
    assert tokenizer.chat_template == load_tokenizer(tiny_gpt2).chat_template
    load_causal_lm(out, tokenizer)


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from transformers import TrainerCallback
    from korlhf.config import load_config
    from korlhf.train import sft

    class KillAfterStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == int(os.environ["KILL_AT"]):  # after a checkpoint, before the next
                os.kill(os.getpid(), signal.SIGKILL)

    sft.main(load_config(sft.Config, None, sys.argv[1:]), callbacks=[KillAfterStep()])
""")


def test_resume_after_kill_gives_the_same_losses(tiny_gpt2, sft_file, tmp_path):
    """Killed inside epoch 2 (length-grouped batches, the default), resumed: every later loss, across the
    next epoch boundary too, and the final weights equal the uninterrupted run's."""
    from safetensors.torch import load_file

    from korlhf.records import read_jsonl, write_jsonl
    from korlhf.train import sft
    from korlhf.train.output import read_log

    small = tmp_path / "small.jsonl"  # 20 records, batch 4: 5 steps an epoch; 14 steps = 3 epochs
    write_jsonl(small, [r for _, r in read_jsonl(sft_file)][:20])
    flags = ["--max_steps", "14", "--save_steps", "4", "--logging_steps", "1", "--learning_rate", "3e-3",
             "--batch_size", "4", "--eval_fraction", "0"]
    sft.main(config(tiny_gpt2, small, tmp_path / "whole", *flags))
    killed = tmp_path / "killed"
    args = ["--model_name_or_path", str(tiny_gpt2), "--train_files", str(small), "--output_dir", str(killed), *flags]
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TQDM_DISABLE": "1", "KILL_AT": "9"})
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert [p.name for p in killed.glob("checkpoint-*")] == ["checkpoint-8"]  # step 8: inside epoch 2
    assert (killed / "checkpoint-8" / "trainer_state.json").is_file()
    assert max(row["step"] for row in read_log(killed)) == 8
    # A half-written checkpoint (no trainer_state.json) from some other tool must never be picked.
    (killed / "checkpoint-13").mkdir()
    (killed / "checkpoint-13" / "model.safetensors").write_bytes(b"truncated")

    sft.main(config(tiny_gpt2, small, killed, *flags, "--resume"))
    whole = [(r["step"], r["loss"]) for r in read_log(tmp_path / "whole") if "loss" in r]
    resumed = [(r["step"], r["loss"]) for r in read_log(killed) if "loss" in r]
    assert [s for s, _ in whole] == list(range(1, 15))
    assert resumed == whole  # exactly: same data order in every epoch, RNG, optimizer state
    before, after = load_file(tmp_path / "whole" / "model.safetensors"), load_file(killed / "model.safetensors")
    assert all(before[name].equal(after[name]) for name in before)


def test_lora_with_gradient_checkpointing_and_merge(tiny_models, sft_file, tmp_path):
    import torch

    from korlhf.models import load_causal_lm, load_tokenizer
    from korlhf.train import sft

    out = tmp_path / "lora"
    sft.main(config(tiny_models["llama"], sft_file, out, "--use_lora", "--lora_r", "4", "--gradient_checkpointing",
                    "--merge", "--max_steps", "3", "--learning_rate", "1e-2", "--eval_fraction", "0"))
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    tokenizer = load_tokenizer(out)
    ids = tokenizer("서울은 대한민국의 수도입니다.", return_tensors="pt")["input_ids"]
    adapter = load_causal_lm(out, tokenizer, merge_adapter=False).eval()
    merged = load_causal_lm(out / "merged", tokenizer).eval()
    base = load_causal_lm(tiny_models["llama"], tokenizer).eval()
    with torch.no_grad():
        a, m, b = adapter(ids).logits, merged(ids).logits, base(ids).logits
    torch.testing.assert_close(m, a, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a, b, atol=1e-4)  # the adapter learned something


def test_existing_run_needs_resume_or_overwrite(tiny_gpt2, sft_file, tmp_path):
    from korlhf.train import sft

    out = tmp_path / "run"
    (out / "checkpoint-3").mkdir(parents=True)
    (out / "log.jsonl").write_text('{"step": 1}\n', encoding="utf-8")
    with pytest.raises(KorlhfError) as err:
        sft.main(config(tiny_gpt2, sft_file, out))
    assert str(err.value) == (f"{out} already holds a run (checkpoint-3, log.jsonl); "
                              "pass --resume to continue it or --overwrite to start over")


def test_qlora_without_cuda_fails_before_loading(tiny_gpt2, sft_file, tmp_path):
    from korlhf.train import sft

    with pytest.raises(KorlhfError, match="load_in_4bit \\(QLoRA\\) needs a CUDA GPU"):
        sft.main(config(tiny_gpt2, sft_file, tmp_path / "q", "--load_in_4bit"))
    assert not (tmp_path / "q").exists()


def test_bad_record_names_the_record(tiny_gpt2, tmp_path):
    from korlhf.train import sft

    data = tmp_path / "bad.jsonl"
    write_jsonl(data, [{"prompt": "안녕?", "response": "안녕하세요."},
                       {"messages": [{"role": "user", "content": "질문만 있어요"}], "id": "x7"}])
    with pytest.raises(KorlhfError) as err:
        sft.main(config(tiny_gpt2, data, tmp_path / "o", "--eval_fraction", "0"))
    assert str(err.value) == "record 2 (id x7): no assistant turn to learn from"


def test_packing_without_flash_attention_is_refused(tiny_gpt2, sft_file, tmp_path):
    """With sdpa/eager attention the examples of a packed row would attend to each other."""
    for flag in ("--packing", "--padding_free"):
        with pytest.raises(KorlhfError) as err:
            config(tiny_gpt2, sft_file, tmp_path / "p", flag)
        assert str(err.value) == ("packing and padding_free need attn_implementation: flash_attention_2 (CUDA and "
                                  "flash-attn); with sdpa or eager attention packed examples would attend to each other")


def test_lora_on_a_tokenizer_without_pad_reloads(tmp_path, sft_file):
    """Llama-3-like: no pad token, so korlhf adds one and the embeddings grow under LoRA.

    peft saves the grown embedding matrices with the adapter; loading must grow the base first.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from korlhf.demo_data import demo_corpus
    from korlhf.models import load_causal_lm, load_tokenizer
    from korlhf.templates import KOCHATGPT
    from korlhf.tiny import build_causal_lm
    from korlhf.train import sft

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(demo_corpus(0, 300), trainers.BpeTrainer(
        vocab_size=800, special_tokens=["<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>")
    tokenizer.chat_template = KOCHATGPT
    base = build_causal_lm(tokenizer, "llama")
    base.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    rows = len(tokenizer)

    out = tmp_path / "lora"
    sft.main(config(tmp_path / "base", sft_file, out, "--use_lora", "--lora_r", "4", "--max_steps", "2",
                    "--eval_fraction", "0"))
    reloaded_tokenizer = load_tokenizer(out)
    assert reloaded_tokenizer.pad_token_id == rows  # the added <pad>
    model = load_causal_lm(out, reloaded_tokenizer).eval()
    assert model.get_input_embeddings().weight.shape[0] == rows + 1
    with torch.no_grad():
        ids = reloaded_tokenizer(["서울", "대한민국의 수도"], return_tensors="pt", padding=True)
        assert torch.isfinite(model(**ids).logits).all()


def test_lengths_the_model_cannot_take_are_clamped_before_anything_loads(tmp_path, capsys):
    """GPT-2's learned positions end at n_positions: a longer max_length used to crash inside the embedding."""
    from types import SimpleNamespace

    from transformers import GPT2Config

    from korlhf.errors import KorlhfError
    from korlhf.train.output import fit_context

    GPT2Config(n_positions=128, n_embd=8, n_layer=1, n_head=1).save_pretrained(tmp_path / "m")
    model = str(tmp_path / "m")
    cfg = SimpleNamespace(model_name_or_path=model, trust_remote_code=False, max_length=256)
    fit_context(cfg)
    assert cfg.max_length == 128
    assert " ".join(capsys.readouterr().err.split()) == (
        f"warning: max_length 256 is more than {model} can take (128 positions); using max_length 128")
    rl = SimpleNamespace(model_name_or_path=model, trust_remote_code=False, max_prompt_length=256, max_new_tokens=24)
    fit_context(rl)
    assert rl.max_prompt_length == 104
    rl.max_new_tokens = 128
    with pytest.raises(KorlhfError) as err:
        fit_context(rl)
    assert str(err.value) == f"max_new_tokens 128 leaves no room for a prompt in the 128 positions of {model}; lower max_new_tokens"
    unknown = SimpleNamespace(model_name_or_path=str(tmp_path / "nothing"), trust_remote_code=False, max_length=4096)
    fit_context(unknown)  # no config to read: the model load says what is wrong
    assert unknown.max_length == 4096
