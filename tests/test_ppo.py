"""`korlhf train ppo` on tiny local models: it learns, it uses the trained reward head, it resumes exactly.

The policy is a tiny random GPT-2 whose tokenizer was trained on Korean *and* English text, so
about 40% of the letters it writes are Hangul: room for a reward that prefers Korean to move.
"""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest
import torch
from conftest import korean_texts

from korlhf.demo_data import demo_tasks
from korlhf.errors import KorlhfError
from korlhf.records import write_jsonl
from korlhf.train import ppo
from korlhf.train.ppo import checkpoint as ppo_checkpoint

ENGLISH = ("the of and to in is you that it he was for on are as with his they at be this have from or one had by "
           "word but not what all were we when your can said there use an each which she do how their if will up other "
           "about out many then them these so some her would make like him into time has look two more write go see "
           "number no way could people my than first water been call who oil its now find long down day did get come "
           "made may part").split()
METRICS = ["reward/mean", "reward/std", "kl/mean", "kl/coef", "policy/entropy", "policy/clipfrac", "policy/approx_kl",
           "loss/policy", "loss/value", "value/explained_variance", "response/length", "time/generation_s",
           "time/scoring_s", "time/update_s"]


pytestmark = pytest.mark.usefixtures("one_thread")


def english(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(ENGLISH) for _ in range(rng.randint(low, high)))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A bilingual tiny policy, a reward model with the same tokenizer, prompt and sft files."""
    from korlhf.tiny import save_tiny, train_tokenizer

    root = tmp_path_factory.mktemp("ppo")
    rng = random.Random(0)
    tokenizer = train_tokenizer(korean_texts()[:2000] + [english(rng, 5, 15) for _ in range(2000)], vocab_size=1000)
    paths = SimpleNamespace(root=root, policy=save_tiny(root / "policy", None, tokenizer=tokenizer),
                            reward=save_tiny(root / "reward", None, kind="reward", tokenizer=tokenizer),
                            train=root / "train.jsonl", eval=root / "eval.jsonl", sft=root / "sft.jsonl")
    write_jsonl(paths.train, [{"prompt": t["prompt"], "source": "demo"} for t in demo_tasks(seed=0, n=160)])
    write_jsonl(paths.eval, [{"prompt": t["prompt"], "source": "demo"} for t in demo_tasks(seed=7, n=32)])
    write_jsonl(paths.sft, [{"prompt": t["prompt"], "response": t["response"]} for t in demo_tasks(seed=3, n=32)])
    return paths


@pytest.fixture(scope="module")
def trained_rm(tmp_path_factory, tiny_models):
    """A reward model trained with `korlhf train rm` to rank more-Korean answers above more-English ones.

    It starts from the Korean-only tiny model, so its tokenizer differs from the policy's: PPO must
    hand it text, not token ids.
    """
    from korlhf.train import rm

    root = tmp_path_factory.mktemp("rm")
    rng = random.Random(1)

    def mixed(answer: str, share: float) -> str:
        words = answer.split()
        return " ".join(rng.choice(words) if rng.random() < share else rng.choice(ENGLISH) for _ in range(rng.randint(4, 10)))

    records = []
    for task in demo_tasks(seed=1, n=300):
        shares = sorted(rng.sample([0.0, 0.25, 0.5, 0.75, 1.0], 3), reverse=True)
        records.append({"prompt": task["prompt"], "responses": [mixed(task["response"], s) for s in shares]})
    write_jsonl(root / "prefs.jsonl", records)
    metrics = rm.main(rm.Config(model_name_or_path=str(tiny_models["reward"]), train_files=[str(root / "prefs.jsonl")],
                                output_dir=str(root / "rm"), max_steps=40, batch_size=8, learning_rate=1e-3,
                                eval_fraction=0.1, lr_scheduler="constant", warmup_ratio=0.0, save_steps=1000,
                                logging_steps=20))
    assert metrics["eval_pairwise_accuracy"] >= 0.8
    return root / "rm"


def config(world, out, **fields) -> ppo.Config:
    base = dict(model_name_or_path=str(world.policy), train_files=[str(world.train)], output_dir=str(out),
                eval_fraction=0.0, rollout_batch_size=32, batch_size=16, max_new_tokens=16,
                learning_rate=5e-4, kl_coef=0.01, sample_steps=0, logging_steps=10)
    return ppo.Config(**{**base, **fields})


def read_log(out) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text(encoding="utf-8").splitlines()]


def test_rule_reward_rises_while_kl_stays_bounded(world, tmp_path):
    from korlhf.models import load_causal_lm, load_tokenizer

    out = tmp_path / "ppo"
    metrics = ppo.main(config(world, out, reward_rules=["hangul"], max_steps=30))
    # Hangul share of the answers: ~0.40 over the first 5 steps; PPO must add 0.15 within 30 steps,
    # with the summed per-answer KL to the reference (16 tokens) under 8 nats.
    assert metrics["reward_end"] >= metrics["reward_start"] + 0.15, metrics
    assert metrics["kl_end"] < 8.0, metrics

    # The output folder contract: HF policy + tokenizer with template, config, log, card, metrics.
    tokenizer = load_tokenizer(out)
    assert tokenizer.chat_template == load_tokenizer(world.policy).chat_template
    trained, start = load_causal_lm(out, tokenizer), load_causal_lm(world.policy, tokenizer)
    changed = [n for n, p in trained.named_parameters() if not torch.equal(p, start.state_dict()[n])]
    assert "transformer.wte.weight" in changed and len(changed) > 10
    assert (out / "value_head.safetensors").is_file() and (out / "config.yaml").is_file()
    rows = read_log(out)
    assert [r["step"] for r in rows] == list(range(1, 31))
    assert all(key in row for row in rows for key in METRICS)
    assert "hangul" in (out / "README.md").read_text(encoding="utf-8")
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8")) == metrics


def test_trained_reward_model_score_rises_on_held_out_prompts(world, trained_rm, tmp_path):
    out = tmp_path / "ppo"
    metrics = ppo.main(config(world, out, reward_model=str(trained_rm), eval_files=[str(world.eval)], max_steps=25,
                              sample_steps=5, num_samples=8))
    # The reward model's tokenizer is not the policy's, so `auto` gives a value head on the policy.
    assert (out / "value_head.safetensors").is_file()
    assert metrics["eval_reward_end"] >= metrics["eval_reward_start"] + 0.5, metrics


def test_ppo_scores_with_the_trained_reward_head(world, trained_rm, tmp_path):
    """The original KoChatGPT lost the trained head on the way to PPO; ours must score with it.

    Re-score the logged samples with the reward model loaded independently: equal scores. With a
    re-initialised head the same texts score differently, so this test fails if PPO ever uses one.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from korlhf.templates import render_example

    out = tmp_path / "ppo"
    ppo.main(config(world, out, reward_model=str(trained_rm), max_steps=1, rollout_batch_size=8, batch_size=8,
                    sample_steps=1, num_samples=8, ppo_epochs=1))
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(samples) == 8
    tokenizer = AutoTokenizer.from_pretrained(trained_rm)
    model = AutoModelForSequenceClassification.from_pretrained(trained_rm).eval()

    def scores():
        with torch.no_grad():
            return torch.tensor([model(**tokenizer(render_example(tokenizer, s["prompt"], s["response"]),
                                                  return_tensors="pt", add_special_tokens=False)).logits[0, 0].item()
                                 for s in samples])

    logged = torch.tensor([s["score"] for s in samples])
    assert torch.allclose(scores(), logged, atol=1e-3)
    torch.manual_seed(0)
    model.score.reset_parameters()
    assert not torch.allclose(scores(), logged, atol=0.05)


def test_lora_layout_one_policy_base_one_reward_base(world, tmp_path):
    """LoRA: reference = policy with adapters off; reward = value model with adapters off (its trained head)."""
    from korlhf.models import load_causal_lm, load_reward_model, load_tokenizer
    from korlhf.train.ppo.models import load_ppo_models, sequence_values
    from korlhf.train.rl.rewards import RewardScorer

    cfg = config(world, tmp_path, reward_model=str(world.reward), use_lora=True, lora_r=4)
    models = load_ppo_models(cfg)
    ac, tokenizer = models.actor_critic, models.tokenizer
    assert models.reference is None and models.reward_model is ac.value_model
    inputs = tokenizer(["### Instruction(명령어):\n서울은 어디? ### Response(응답): 한국의 수도입니다.</s>"], return_tensors="pt")
    sft, rm = load_causal_lm(world.policy, tokenizer), load_reward_model(world.reward, load_tokenizer(world.reward))
    with torch.no_grad():
        # InstructGPT: before training, the value at the last token is the reward model's score.
        values = sequence_values(ac.value_model, dict(inputs))
        assert torch.allclose(values[0, -1], rm(**inputs).logits[0, 0], atol=1e-5)
        for param in ac.parameters():
            if param.requires_grad:  # stand-in for training: move every adapter and the value head copy
                param.add_(0.05 * torch.randn_like(param))
        reference, context = models.reference_context(ac)
        with context:
            reference_logits = reference(**inputs).logits
        assert torch.allclose(reference_logits, sft(**inputs).logits, atol=1e-5)
        assert not torch.allclose(ac.policy(**inputs).logits, reference_logits, atol=1e-3)
        assert not torch.allclose(sequence_values(ac.value_model, dict(inputs))[0, -1], values[0, -1], atol=1e-3)
        scorer = RewardScorer(models.reward_model, models.reward_tokenizer, context=models.reward_context)
        direct = RewardScorer(rm, load_tokenizer(world.reward))
        assert torch.allclose(scorer(["서울은 어디?"], ["한국의 수도입니다."]), direct(["서울은 어디?"], ["한국의 수도입니다."]))


class Killed(Exception):
    pass


def test_resume_after_a_kill_gives_the_same_following_steps(world, tmp_path, monkeypatch):
    """Stop right after step 2's checkpoint, resume: steps 3-4 match the uninterrupted run exactly.

    The run exercises the stateful parts: adaptive KL controller, LoRA (shared-base layout), value
    model from the reward model, k3 KL, reward whitening, PPO-ptx, gradient accumulation.
    """
    fields = dict(reward_model=str(world.reward), use_lora=True, lora_r=4, value_model="reward", target_kl=0.5,
                  kl_horizon=100, kl_estimator="k3", whiten_rewards=True, ptx_coef=0.5, ptx_files=[str(world.sft)],
                  max_steps=4, save_steps=2, rollout_batch_size=8, batch_size=2, grad_accum=2,
                  max_new_tokens=8, learning_rate=1e-3, lr_scheduler="linear")
    full, cut = tmp_path / "full", tmp_path / "cut"
    ppo.main(config(world, full, **fields))

    save = ppo_checkpoint.save_checkpoint

    def save_then_die(*args, **kwargs):
        save(*args, **kwargs)
        raise Killed

    monkeypatch.setattr(ppo_checkpoint, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        ppo.main(config(world, cut, **fields))
    monkeypatch.undo()
    assert (cut / "checkpoint-2").is_dir() and not (cut / "metrics.json").exists()
    with open(cut / "log.jsonl", "a", encoding="utf-8") as f:  # a row of the step that was cut short
        f.write(json.dumps({"step": 3, "reward/mean": 123.0}) + "\n")
    with pytest.raises(KorlhfError, match="--resume to continue it"):
        ppo.main(config(world, cut, **fields))
    ppo.main(config(world, cut, **fields, resume=True))

    def steady(rows):  # timings differ between runs; everything else must not
        return [{k: v for k, v in r.items() if not k.startswith("time/") and k != "samples_per_s"} for r in rows]

    full_rows, cut_rows = steady(read_log(full)), steady(read_log(cut))
    assert [r["step"] for r in cut_rows] == [1, 2, 3, 4]
    assert cut_rows == full_rows
    assert full_rows[3]["kl/coef"] != full_rows[0]["kl/coef"]  # the controller did move
    assert "loss/ptx" in full_rows[3]
    from safetensors.torch import load_file

    assert all(torch.equal(a, b) for a, b in zip(load_file(full / "adapter_model.safetensors").values(),
                                                  load_file(cut / "adapter_model.safetensors").values(), strict=True))


def test_reward_rules():
    from korlhf.train.rl.rewards import RewardScorer, parse_rule

    assert parse_rule("contains:서울")("수도는?", "서울입니다") == 1.0
    assert parse_rule("contains:서울")("수도는?", "부산입니다") == 0.0
    assert parse_rule("no_refusal")("", "저는 AI 언어 모델로서 답할 수 없습니다") == 0.0
    # module:function(prompt, response): operator.contains(prompt, response) is 1 when the answer repeats the prompt.
    scorer = RewardScorer(rules=["hangul", "operator:contains"])
    assert scorer(["a b 한글 c"], ["b 한글"]).tolist() == [pytest.approx(2 / 3 + 1.0)]  # b, 한, 글: 2/3 Hangul
    with pytest.raises(KorlhfError) as err:
        parse_rule("hanguel")
    assert str(err.value) == ("unknown reward rule 'hanguel'; use one of hangul, no_refusal, complete, contains:WORD, "
                              "or package.module:function (a function of (prompt, response) returning a float)")
    with pytest.raises(KorlhfError, match="no reward: set reward_model"):
        RewardScorer()


def test_bad_configs_say_what_to_do():
    """Config-only checks run when the config is built: before anything is loaded, and in the pipeline's check."""
    from korlhf.config import load_config

    def error(*flags) -> str:
        with pytest.raises(KorlhfError) as err:
            load_config(ppo.Config, None, ["--model_name_or_path", "m", "--train_files", "t", "--output_dir", "o",
                                           *flags], command="korlhf train ppo")
        return str(err.value)

    assert error("--value_model", "reward", "--reward_rules", "hangul") == (
        "korlhf train ppo: value_model: reward needs reward_model (a `korlhf train rm` output); "
        "with rule rewards only, set value_model: shared")
    assert error("--reward_rules", "hangul", "--batch_size", "6", "--grad_accum", "4") == (
        "korlhf train ppo: rollout_batch_size (16) must be a multiple of batch_size x grad_accum (6 x 4 = 24)")
    assert error() == "korlhf train ppo: no reward: set reward_model (a `korlhf train rm` output) and/or reward_rules"
    assert error("--reward_rules", "hangul", "--reward_weights", "1,2") == (
        "korlhf train ppo: reward_weights has 2 weights for 1 rewards (the reward model first, then each rule)")
    # One vocabulary for PPO, GRPO and RLOO: the old names point to the new ones.
    assert error("--mini_batch_size", "6") == ("korlhf train ppo: 'mini_batch_size' (--mini_batch_size) was renamed: "
                                               "it is now batch_size (sequences per micro-batch; x grad_accum = "
                                               "PPO's mini-batch)")
    assert error("--gradient_accumulation_steps", "2") == (
        "korlhf train ppo: 'gradient_accumulation_steps' (--gradient_accumulation_steps) was renamed: it is now grad_accum")


def test_the_rl_stages_share_one_vocabulary():
    import dataclasses

    from korlhf.train import grpo, rloo

    shared = ["max_steps", "batch_size", "grad_accum", "lr_scheduler", "warmup_ratio", "max_new_tokens", "kl_coef",
              "cliprange", "learning_rate", "save_steps", "reward_weights", "eval_steps"]
    defaults = [{f.name: (f.default, f.metadata["help"]) for f in dataclasses.fields(module.Config) if f.name in shared}
                for module in (ppo, grpo, rloo)]
    assert sorted(defaults[0]) == sorted(shared)
    # GRPO/RLOO describe batch_size per answer group; every other shared field means and defaults the same.
    assert all({k: v for k, v in d.items() if k != "batch_size"} == {k: v for k, v in defaults[0].items()
                                                                      if k != "batch_size"} for d in defaults)


def test_value_model_learns_ten_times_faster_unless_told():
    """At the policy's rate a fresh value head stayed at explained variance 0 for 40 demo steps."""
    from torch import nn

    from korlhf.train.ppo.trainer import make_optimizer

    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.policy, self.value_head = nn.Linear(2, 2), nn.Linear(2, 1)

    cfg = ppo.Config(model_name_or_path="m", train_files=["p"], output_dir="o", reward_rules=["hangul"],
                     learning_rate=2e-5, max_steps=1, rollout_batch_size=8, batch_size=8)
    optimizer, _ = make_optimizer(cfg, Pair(), 1)
    assert [g["lr"] for g in optimizer.param_groups] == [2e-5, pytest.approx(2e-4)]
    cfg.value_learning_rate = 5e-6
    optimizer, _ = make_optimizer(cfg, Pair(), 1)
    assert [g["lr"] for g in optimizer.param_groups] == [2e-5, 5e-6]
