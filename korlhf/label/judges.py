"""The judges: each turns labelling items into one score per candidate answer, with its reasons.

An item is ``{"id", "prompt", "candidates": [{"response", "source"}], "reference"}`` (see
`korlhf.label.items`). Every judge returns, per item, ``{"scores": [...], "judgments": [...],
"error": None | str}``; `korlhf.label.ranking` turns scores into a ranked preference record.

- ``api`` pairwise: every pair of candidates is asked twice, (i as A, j as B) and (j as A, i as B).
  The same winner both times wins; anything else (a tie, or each order preferring its first answer)
  is a tie, which removes the judge's position bias. A candidate's score is its wins + 1/2 per tie
  (Copeland), so K candidates cost K(K-1) requests.
- ``api`` pointwise: one 1-10 rubric score per candidate (K requests, no position to be biased by).
- ``reward-model``: the reward of (prompt, answer) from a `korlhf train rm` model.
- ``rules``: `rule_score`, a deterministic smoke-test judge (it proves plumbing, not quality).
"""

from __future__ import annotations

from itertools import combinations

from korlhf.label.prompts import (
    pairwise_messages,
    parse_pairwise,
    parse_score,
    pointwise_messages,
    prompt_text,
)
from korlhf.text import hangul_ratio, is_refusal, looks_truncated, ngrams, rep_n


def api_judgments(judge, items: list[dict], mode: str, progress: bool = True) -> list[dict]:
    """Ask ``judge`` (an `ApiJudge`) about every item: ``mode`` is ``pairwise`` or ``pointwise``."""
    from korlhf.label.api import Request

    plans = []  # per item: list of (what, Request) in the order the results are read back
    for item in items:
        answers, ref, prompt = [c["response"] for c in item["candidates"]], item.get("reference"), item["prompt"]
        if mode == "pairwise":
            plan = [((i, j), Request(judge.body(pairwise_messages(prompt, answers[i], answers[j], ref)), parse_pairwise),
                     Request(judge.body(pairwise_messages(prompt, answers[j], answers[i], ref)), parse_pairwise))
                    for i, j in combinations(range(len(answers)), 2)]
        else:
            plan = [(i, Request(judge.body(pointwise_messages(prompt, a, ref)), parse_score))
                    for i, a in enumerate(answers)]
        plans.append(plan)
    requests = [r for plan in plans for step in plan for r in step[1:]]
    answers = judge.ask_all(requests, progress=progress)
    reduce = _pairwise_result if mode == "pairwise" else _pointwise_result
    return [reduce(item, plan, answers) for item, plan in zip(items, plans, strict=True)]


def _pairwise_result(item: dict, plan: list, answers: dict) -> dict:
    k = len(item["candidates"])
    scores = [0.0] * k
    judgments, errors = [], []
    for (i, j), first, second in plan:
        a, b = answers[first.key], answers[second.key]
        errors += [e for e in (a.error, b.error) if e]
        if a.error or b.error:
            continue
        # Map both verdicts to a candidate index (None = tie): in `second`, A is candidate j.
        one = {"A": i, "B": j}.get(a.verdict)
        two = {"A": j, "B": i}.get(b.verdict)
        winner = one if one == two else None
        for c in (i, j):
            scores[c] += 1.0 if winner == c else 0.5 if winner is None else 0.0
        judgments.append({"pair": [i, j], "verdicts": [a.verdict, b.verdict], "winner": winner,
                          "position_consistent": one == two, "rationale": [a.content, b.content]})
    return {"scores": None if errors else scores, "judgments": judgments, "error": "; ".join(errors) or None}


def _pointwise_result(item: dict, plan: list, answers: dict) -> dict:
    scores, judgments, errors = [], [], []
    for i, request in plan:
        answer = answers[request.key]
        if answer.error:
            errors.append(answer.error)
            continue
        scores.append(answer.verdict)
        judgments.append({"candidate": i, "score": answer.verdict, "rationale": answer.content})
    return {"scores": None if errors else scores, "judgments": judgments, "error": "; ".join(errors) or None}


def rule_score(prompt: str, response: str, reference: str | None = None) -> tuple[float, list[str]]:
    """A deterministic score of one answer and the reasons (Korean), from `korlhf.text` checks.

    +2 x Hangul share (-3 more below one half: not a Korean answer); -3 x repeated character
    4-grams; -2 refusal boilerplate; -1 cut off mid-sentence; -2 under 5 characters, -1 over 4000;
    +1 x share of the prompt's character bigrams the answer takes up (on topic), but -1 for an
    answer that only repeats the prompt; +3 x character-bigram F1 with a reference answer.
    """
    text = response.strip()
    hangul, rep = hangul_ratio(text), rep_n(text, 4)
    score, notes = 2.0 * hangul - 3.0 * rep, [f"한글 비율 {hangul:.2f}", f"반복 {rep:.2f}"]
    checks = [(hangul < 0.5, -3.0, "한국어 답변이 아님"), (is_refusal(text), -2.0, "거절/상투 문구"),
              (looks_truncated(text), -1.0, "문장이 끊김"), (len(text) < 5, -2.0, "너무 짧음"),
              (len(text) > 4000, -1.0, "너무 김")]
    for hit, points, note in checks:
        if hit:
            score += points
            notes.append(note)
    answer_grams, prompt_grams = _bigrams(text), _bigrams(prompt)
    if answer_grams and prompt_grams:
        if len(answer_grams & prompt_grams) / len(answer_grams) > 0.9:
            score -= 1.0
            notes.append("질문을 되풀이함")
        else:
            coverage = len(answer_grams & prompt_grams) / len(prompt_grams)
            score += coverage
            notes.append(f"질문 겹침 {coverage:.2f}")
    if reference:
        f1 = _f1(answer_grams, _bigrams(reference))
        score += 3.0 * f1
        notes.append(f"참고 답변 겹침 {f1:.2f}")
    return round(score, 4), notes


def _bigrams(text: str) -> set:
    return set(ngrams("".join(text.split()), 2))


def _f1(a: set, b: set) -> float:
    common = len(a & b)
    return 2 * common / (len(a) + len(b)) if common else 0.0


def rules_judgments(items: list[dict], reward_rules: list[str] = ()) -> list[dict]:
    """Scores from `rule_score` (the smoke test), or the sum of ``reward_rules`` (a checker: real labels)."""
    from korlhf.train.rl.rewards import parse_rule

    rules = [(name, parse_rule(name)) for name in reward_rules]

    def score(prompt: str, response: str, reference) -> tuple[float, list[str]]:
        if not rules:
            return rule_score(prompt, response, reference)
        values = [(name, float(rule(prompt, response))) for name, rule in rules]
        return sum(v for _, v in values), [f"{name} {v:g}" for name, v in values]

    results = []
    for item in items:
        prompt = prompt_text(item["prompt"])
        scored = [score(prompt, c["response"], item.get("reference")) for c in item["candidates"]]
        results.append({"scores": [s for s, _ in scored], "error": None,
                        "judgments": [{"candidate": i, "score": s, "rationale": ", ".join(notes)}
                                      for i, (s, notes) in enumerate(scored)]})
    return results


def reward_model_judgments(cfg, items: list[dict], progress: bool = True) -> list[dict]:
    """Scores from a trained reward model (loaded with its head by `korlhf.models.load_reward_model`).

    Scored by PPO's `RewardScorer`, so a label run and a PPO run read the same reward for the same text.
    """
    from tqdm.auto import tqdm

    from korlhf.models import load_reward_model, load_tokenizer
    from korlhf.train.rl.rewards import RewardScorer

    tokenizer = load_tokenizer(cfg.reward_model)
    model = load_reward_model(cfg.reward_model, tokenizer, device=cfg.device).eval()
    scorer = RewardScorer(model, tokenizer, batch_size=cfg.batch_size, max_length=cfg.max_length)
    flat = [(n, item["prompt"], c["response"]) for n, item in enumerate(items) for c in item["candidates"]]
    rewards: list[float] = []
    chunk = cfg.batch_size * 8  # a progress step: several full batches
    for start in tqdm(range(0, len(flat), chunk), desc="reward model", disable=not progress):
        part = flat[start:start + chunk]
        rewards += scorer([p for _, p, _ in part], [r for _, _, r in part]).tolist()
    results = [{"scores": [], "judgments": [], "error": None} for _ in items]
    for (n, _, _), reward in zip(flat, rewards, strict=True):
        results[n]["judgments"].append({"candidate": len(results[n]["scores"]), "score": reward})
        results[n]["scores"].append(reward)
    return results
