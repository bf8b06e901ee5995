"""Can the demo's reward model check answers? Accuracy per pair type, and AUC on the policy's own answers.

    .venv/bin/python benchmarks/rm_diagnosis.py runs/demo [--policy runs/demo/sft] [--samples 4]

1. **Per pair type**, on the world's held-out questions (never in any training set): the right
   answer against (a) the same sentence with a wrong value (a near miss: what a checker must catch),
   (b) a true sentence about another fact, (c) a broken answer. Chance is 50%.
2. **AUC on the policy's own answers**: ``--samples`` sampled answers of the policy per held-out
   question, labelled right/wrong by the world's checker (`korlhf.demo_data.correct`); AUC is the
   chance that a right answer scores above a wrong one. This is what PPO actually meets: a reward
   model that separates the policy's right and wrong answers poorly cannot teach it to answer right.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path


def pair_accuracy(rm_path: str, items: list[dict], seed: int = 0) -> dict[str, float]:
    from korlhf.demo_data import world_mistake, world_wrong_values
    from korlhf.evaluation.score import reward_scores

    rng = random.Random(seed)
    kinds = {"near-miss value": [], "other fact": [], "broken": []}
    for item in items:
        head, _, tail = item["response"].rpartition(item["answer"])
        kinds["near-miss value"].append(head + world_wrong_values(item, 1, rng)[0] + tail)
        kinds["other fact"].append(world_mistake(item, "other", rng))
        kinds["broken"].append(world_mistake(item, "broken", rng))
    prompts = [i["prompt"] for i in items]
    right = reward_scores(rm_path, prompts, [i["response"] for i in items])
    result = {}
    for kind, wrong in kinds.items():
        scores = reward_scores(rm_path, prompts, wrong)
        result[kind] = sum(r > w for r, w in zip(right, scores, strict=True)) / len(items)
    return result


def policy_auc(rm_path: str, policy: str, items: list[dict], samples: int, seed: int = 0) -> tuple[float, float]:
    """(AUC of the RM on the policy's sampled answers, share of those answers that are right)."""
    from korlhf.decoding import Decoding
    from korlhf.demo_data import correct
    from korlhf.evaluation.score import reward_scores
    from korlhf.generate import generate
    from korlhf.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(policy)
    model = load_causal_lm(policy, tokenizer)
    decoding = Decoding.from_preset("sample", temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=24,
                                    num_return_sequences=samples, seed=seed)
    gens = generate(model, tokenizer, [i["prompt"] for i in items], decoding, batch_size=50)
    prompts = [i["prompt"] for i, g in zip(items, gens, strict=True) for _ in g.responses]
    answers = [a for g in gens for a in g.responses]
    labels = [correct(p, a) for p, a in zip(prompts, answers, strict=True)]
    scores = reward_scores(rm_path, prompts, answers)
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return float("nan"), sum(labels) / len(labels)
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg)), sum(labels) / len(labels)


def main() -> None:
    from korlhf.records import read_jsonl

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a `korlhf demo` run folder")
    parser.add_argument("--policy", help="policy whose answers are scored (default: RUN/sft)")
    parser.add_argument("--rm", help="reward model (default: RUN/rm)")
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()
    run = Path(args.run)
    rm_path = args.rm or str(run / "rm")
    items = [r for _, r in read_jsonl(run / "data" / "build" / "eval.jsonl")]
    print(f"reward model {rm_path}, {len(items)} held-out world questions")
    for kind, acc in pair_accuracy(rm_path, items).items():
        print(f"  right answer > {kind:<16} {acc:6.1%}")
    auc, right = policy_auc(rm_path, args.policy or str(run / "sft"), items, args.samples)
    print(f"  AUC on the policy's own sampled answers: {auc:.3f} ({right:.1%} of them right)")
    print(f"reproduce: .venv/bin/python benchmarks/rm_diagnosis.py {args.run} --samples {args.samples}")


if __name__ == "__main__":
    main()
