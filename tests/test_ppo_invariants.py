"""Invariants korlhf's PPO rests on, checked on a tiny GPT-2 (plain, with dropout 0.1 configured, with LoRA).

(a) the log-probs PPO scores a rollout with are those ``generate`` sampled it from; (b) before any
update the ratio pi / pi_old is exactly 1 (so clipping and approx KL start at 0); (c) the k1 KL
estimate is, on average over many samples, the true KL(policy || reference) >= 0. Also: the reward
model reads sampled answers exactly as `korlhf train rm` trained it, and `disable_dropout` leaves
no dropout on, float attention-dropout settings included.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from types import SimpleNamespace

import pytest
import torch
from helpers import PROMPTS, TEMPERATURE, sample_recorded

from korlhf.train.ppo.math import kl_estimate, masked_mean, policy_loss
from korlhf.train.ppo.models import ActorCritic, disable_dropout
from korlhf.train.ppo.scoring import keep_logits, score_tokens, token_logprobs
from korlhf.train.rl.rollout import generation_config, sample

pytestmark = pytest.mark.usefixtures("one_thread")  # steady on a shared 2-core machine

def load_gpt2(path, tokenizer, dropout: float):
    from korlhf.models import load_causal_lm

    return load_causal_lm(path, tokenizer, resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout)


@pytest.fixture(params=["plain", "dropout", "lora"])
def ppo_pair(request, tiny_gpt2, tiny_tokenizer):
    """(actor_critic, reference_context) set up as `load_ppo_models` does: dropout off everywhere."""
    from peft import LoraConfig, get_peft_model

    dropout = 0.0 if request.param == "plain" else 0.1
    policy = load_gpt2(tiny_gpt2, tiny_tokenizer, dropout)
    if request.param == "lora":  # random B, so the adapters (and their dropout) change the output
        policy = get_peft_model(policy, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1, init_lora_weights=False,
                                                   target_modules=["c_attn", "c_proj", "c_fc"]))
        reference_context = lambda: (policy, policy.disable_adapter())  # noqa: E731
    else:
        reference = load_gpt2(tiny_gpt2, tiny_tokenizer, dropout).eval().requires_grad_(False)
        disable_dropout(reference)
        reference_context = lambda: (reference, nullcontext())  # noqa: E731
    actor_critic = ActorCritic(policy)
    disable_dropout(actor_critic)
    return actor_critic, reference_context


def test_scored_logprobs_are_the_sampled_ones(ppo_pair, tiny_tokenizer):
    actor_critic, reference_context = ppo_pair
    actor_critic.eval()
    rollout, sampled = sample_recorded(actor_critic.policy, tiny_tokenizer, PROMPTS * 2, TEMPERATURE, seed=2)
    assert (rollout.query_mask == 0).any()  # left padding, the case that can go wrong
    tokens = score_tokens(actor_critic, reference_context, rollout, TEMPERATURE, batch_size=3)
    torch.testing.assert_close(tokens["logprobs"] * rollout.response_mask, sampled, atol=1e-4, rtol=0)


def test_ratio_is_one_before_the_first_update(ppo_pair, tiny_tokenizer):
    """PPO's first mini-batch sees pi == pi_old: train mode (dropout configured but disabled), other rows, grad on."""
    actor_critic, reference_context = ppo_pair
    actor_critic.eval()
    rollout, _ = sample_recorded(actor_critic.policy, tiny_tokenizer, PROMPTS * 2, TEMPERATURE, seed=3)
    old = score_tokens(actor_critic, reference_context, rollout, TEMPERATURE, batch_size=8)["logprobs"]

    actor_critic.train()  # as `ppo_update` does
    torch.manual_seed(0)
    rows = torch.randperm(len(PROMPTS) * 2)[:4]
    logits, _, _ = actor_critic(**rollout.model_inputs(rows, keep_logits(actor_critic.policy, rollout)))
    logprobs, _ = token_logprobs(logits, rollout, rows, TEMPERATURE)
    mask = rollout.response_mask[rows]
    loss, clipfrac, approx_kl = policy_loss(logprobs, old[rows], torch.randn_like(logprobs), mask, cliprange=0.2)
    ratio = torch.exp(logprobs - old[rows]).detach()
    torch.testing.assert_close(ratio * mask, mask, atol=1e-6, rtol=0)
    assert clipfrac.item() == 0.0 and approx_kl.item() < 1e-6
    assert loss.requires_grad  # it is the graph the optimizer steps on


def test_k1_kl_is_nonnegative_on_average(tiny_gpt2, tiny_tokenizer):
    """k1 = log p(x) - log q(x) with x ~ p: E_p[k1] = KL(p || q) >= 0, so k1 is unbiased, yet it is a
    difference of log-probs of *sampled* tokens and a single token (or a small batch) can be negative
    whenever q happens to like the sampled token more than p does. Averaged over many samples it must
    match the exact per-position KL (summed over the vocabulary), which is never negative."""
    reference = load_gpt2(tiny_gpt2, tiny_tokenizer, 0.0).eval()
    policy = copy.deepcopy(reference)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in policy.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    actor_critic = ActorCritic(policy).eval()
    rollout, _ = sample_recorded(policy, tiny_tokenizer, PROMPTS * 64, 1.0, seed=4, max_new_tokens=8)
    tokens = score_tokens(actor_critic, lambda: (reference, nullcontext()), rollout, 1.0, batch_size=64)
    mask = rollout.response_mask
    k1 = kl_estimate(tokens["logprobs"], tokens["ref_logprobs"], "k1")

    inputs = rollout.model_inputs()
    with torch.no_grad():
        logp = torch.log_softmax(policy(**inputs).logits[:, -(mask.shape[1] + 1):-1].float(), -1)
        logq = torch.log_softmax(reference(**inputs).logits[:, -(mask.shape[1] + 1):-1].float(), -1)
    exact = (logp.exp() * (logp - logq)).sum(-1)  # KL(p || q) at each sampled prefix
    assert (exact[mask.bool()] >= -1e-6).all()
    mean_k1 = masked_mean(k1, mask).item()
    stderr = (k1[mask.bool()].std() / mask.sum().sqrt()).item()
    assert mean_k1 > -0.01
    assert abs(mean_k1 - masked_mean(exact, mask).item()) < 4 * stderr + 1e-4
    assert (kl_estimate(tokens["logprobs"], tokens["ref_logprobs"], "k3")[mask.bool()] >= 0).all()  # k3 never < 0


class ScriptedPolicy:
    """A policy whose ``generate`` writes the given answer ids after each prompt (right-padded)."""

    def __init__(self, answers: list[list[int]], pad_id: int):
        self.answers, self.pad_id = answers, pad_id

    def generate(self, input_ids, attention_mask, generation_config):
        width = max(len(a) for a in self.answers)
        rows = [a + [self.pad_id] * (width - len(a)) for a in self.answers]
        return torch.cat([input_ids, torch.tensor(rows)], dim=1)


class RecordingRewardModel(torch.nn.Module):
    """Stands in for the reward model: keeps the (unpadded) token ids it is given, scores 0."""

    def __init__(self):
        super().__init__()
        self.weight, self.seen = torch.nn.Parameter(torch.zeros(1)), []

    def forward(self, input_ids, attention_mask):
        self.seen += [ids[mask.bool()].tolist() for ids, mask in zip(input_ids, attention_mask, strict=True)]
        return SimpleNamespace(logits=torch.zeros(len(input_ids), 1))


def test_reward_model_reads_rollout_answers_as_rm_trained_on_them(tiny_gpt2, tiny_tokenizer):
    """The templates render an answer as ``' ' + answer``, so generated text starts with a space: kept,
    the reward model would read two spaces, which `korlhf train rm` never showed it."""
    from korlhf.templates import render_example, render_prompt
    from korlhf.train.rl.rewards import RewardScorer
    from korlhf.train.rm import tokenize_answers

    tokenizer = tiny_tokenizer
    answers = ["김치찌개는 김치와 돼지고기를 넣고 끓입니다.", "서울입니다.", "네, 안녕하세요!", "모르겠어요"]
    generated = []
    for prompt, answer in zip(PROMPTS, answers, strict=True):
        prompt_ids = tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
        full = tokenizer(render_example(tokenizer, prompt, answer), add_special_tokens=False)["input_ids"]
        assert full[:len(prompt_ids)] == prompt_ids
        generated.append(full[len(prompt_ids):])  # ' ' + answer + EOS, as the SFT model learned to write it
    gen_config = generation_config(tokenizer, 32, 1.0)
    rollout = sample(ScriptedPolicy(generated, tokenizer.pad_token_id), tokenizer, PROMPTS, gen_config, "cpu")
    assert rollout.responses == answers

    reward_model = RecordingRewardModel()
    RewardScorer(reward_model, tokenizer)(rollout.prompts, rollout.responses)
    trained_on = [tokenize_answers(tokenizer, p, [a], 10**6)[0] for p, a in zip(PROMPTS, answers, strict=True)]
    assert reward_model.seen == trained_on

    torch.manual_seed(5)  # a real policy's text, too: no whitespace at either end
    policy = load_gpt2(tiny_gpt2, tokenizer, 0.0).eval()
    texts = sample(policy, tokenizer, PROMPTS * 8, gen_config, "cpu").responses
    assert all(text == text.strip() for text in texts)


def test_grpo_rewards_read_answers_as_rm_trained_on_them(tiny_tokenizer):
    """TRL decodes GRPO/RLOO completions with the template's leading space too; the reward functions drop it."""
    from korlhf.templates import to_messages
    from korlhf.train.rl.rewards import trl_rewards
    from korlhf.train.rm import tokenize_answers

    reward_model = RecordingRewardModel()
    reward = trl_rewards(reward_model, tiny_tokenizer)[0]
    reward([to_messages(p) for p in PROMPTS[:2]], [[{"role": "assistant", "content": " 서울입니다."}], " 네.\n"])
    assert reward_model.seen == [tokenize_answers(tiny_tokenizer, PROMPTS[0], ["서울입니다."], 10**6)[0],
                                 tokenize_answers(tiny_tokenizer, PROMPTS[1], ["네."], 10**6)[0]]


def tiny_with_attention_dropout(arch: str, path, tokenizer):
    """A tiny Llama or GPT-NeoX whose config applies dropout as floats (attention_dropout, hidden_dropout)."""
    from transformers import AutoModelForCausalLM, GPTNeoXConfig

    from korlhf.models import load_causal_lm

    if arch == "llama":
        return load_causal_lm(path, tokenizer, attention_dropout=0.5)
    torch.manual_seed(0)
    config = GPTNeoXConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=128, attention_dropout=0.5, hidden_dropout=0.5,
                           pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize("arch", ["llama", "gpt_neox"])
def test_disable_dropout_covers_float_attention_dropout(arch, tiny_models, tiny_tokenizer):
    model = tiny_with_attention_dropout(arch, tiny_models["llama"], tiny_tokenizer).train()
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]])
    with torch.no_grad():
        assert not torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)  # dropout is really on
        disable_dropout(model)
        assert torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)
    assert model.config.attention_dropout == 0.5  # the saved model keeps its own settings
