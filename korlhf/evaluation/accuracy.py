"""Right answers, where answers can be checked: by a rule (a checker such as the demo world's), or
by a record's short ``answer`` appearing in the response. Used by the pipeline's eval, `korlhf
compare` and `korlhf eval sweep`."""

from __future__ import annotations


def right_answers(records: list[dict], rule: str | None = None) -> list[bool] | None:
    """Whether each checkable response is right; None if none can be checked.

    Right: ``rule(prompt, response) >= 1`` for a rule name (see `korlhf.train.rl.rewards.parse_rule`;
    the demo's checks the answer sentence), then every record counts; else the answer appears in
    the response, and only records with an ``answer`` count.
    """
    from korlhf.train.rl.rewards import parse_rule

    if rule:  # the rule knows the answers: every record counts
        check = parse_rule(rule)
        right = [check(r["prompt"], r["response"]) >= 1.0 for r in records]
    else:
        right = [r["answer"] in r["response"] for r in records if isinstance(r.get("answer"), str)]
    return right or None


def answer_accuracy(records: list[dict], rule: str | None = None) -> float | None:
    """Share of right responses (`right_answers`); None if nothing can be checked."""
    right = right_answers(records, rule)
    return sum(right) / len(right) if right else None
