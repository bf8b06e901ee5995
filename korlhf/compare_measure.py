"""The measurements of `korlhf compare`: one model's accuracy, reward-model score and KL to SFT.

Every model is measured by the same code with the same prompts and seeds, so the numbers of
different methods (and of the SFT baseline) compare directly.
"""

from __future__ import annotations


def measure_model(bench, path: str, train_files: list[str]) -> dict:
    """{eval_accuracy, train_accuracy, reward, kl} of the model at ``path`` (None where not measurable)."""

    from korlhf.decoding import Decoding
    from korlhf.evaluation.accuracy import answer_accuracy
    from korlhf.generate import generate
    from korlhf.models import default_device, load_causal_lm, load_tokenizer

    cfg, run = bench.cfg, bench.run
    device = default_device()
    tokenizer = load_tokenizer(path)
    model = load_causal_lm(path, tokenizer, device=device)
    greedy = Decoding.from_preset("greedy", max_new_tokens=cfg.max_new_tokens)

    def answer(items: list[dict]) -> list[dict]:
        gens = generate(model, tokenizer, [i["prompt"] for i in items], greedy, batch_size=cfg.batch_size)
        return [{**item, "response": g.response} for item, g in zip(items, gens, strict=True)]

    held_out = answer(bench.eval_items)
    trained = answer(training_prompts(train_files, cfg.train_limit)) if train_files else []
    result = {"eval_accuracy": answer_accuracy(held_out, cfg.answer_rule),
              "train_accuracy": answer_accuracy(trained, cfg.answer_rule) if trained else None,
              "reward": None, "kl": 0.0 if path == str(run / "sft") else kl_to_sft(bench, model, tokenizer, device)}
    if bench.has_rm:
        from korlhf.evaluation.score import reward_scores

        scores = reward_scores(str(run / "rm"), [r["prompt"] for r in held_out], [r["response"] for r in held_out],
                               cfg.batch_size)
        result["reward"] = sum(scores) / len(scores)
    result["examples"] = [{k: r[k] for k in ("prompt", "response")} for r in held_out[:4]]
    return result


def training_prompts(files: list[str], limit: int) -> list[dict]:
    """The first ``limit`` single-turn prompts of the training files (prompt, sft or preference records)."""
    from korlhf.generate import read_prompts

    items = [item for path in files for item in read_prompts(path)
             if isinstance(item.get("prompt"), str) and not item.get("input")]
    return [{"prompt": i["prompt"], **({"answer": i["answer"]} if "answer" in i else {})} for i in items[:limit]]


def kl_to_sft(bench, model, tokenizer, device) -> float:
    """Mean over held-out prompts of sum_t log pi(y_t) - log pi_sft(y_t), y one seeded sample of pi.

    The k1 estimate of KL(pi || pi_sft) per answer, the quantity PPO's KL penalty bounds; the
    same prompts and seed for every model.
    """
    import torch

    from korlhf.train.ppo.scoring import token_logprobs
    from korlhf.train.rl.rollout import generation_config, sample

    reference = bench_reference(bench, tokenizer, device)
    gen_config = generation_config(tokenizer, bench.cfg.max_new_tokens, 1.0)
    prompts = [[{"role": "user", "content": item["prompt"]}] for item in bench.eval_items]
    total, count = 0.0, 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for start in range(0, len(prompts), bench.cfg.batch_size):
            rollout = sample(model, tokenizer, prompts[start:start + bench.cfg.batch_size], gen_config, device)
            rows = slice(None)
            with torch.no_grad():
                policy = token_logprobs(model(**rollout.model_inputs()).logits, rollout, rows, 1.0)[0]
                ref = token_logprobs(reference(**rollout.model_inputs()).logits, rollout, rows, 1.0)[0]
            total += ((policy - ref) * rollout.response_mask).sum().item()
            count += len(rollout.prompts)
    return total / count


def bench_reference(bench, tokenizer, device):
    """The SFT model, loaded once per comparison."""
    from korlhf.models import load_causal_lm

    if bench.reference is None:
        bench.reference = load_causal_lm(str(bench.run / "sft"), tokenizer, device=device).eval()
    return bench.reference
