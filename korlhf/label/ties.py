"""Ranked records that keep every comparison a judge established, ties included.

A judge's scores put the candidates in groups (equal scores tie); every answer of a higher group
beats every answer of a lower one, and two answers of one group are not compared. The trainers read
two shapes (`korlhf.records.ranking_pairs`): a strict order (every pair) and ``tied_after_first``
(the first beats each other one, nothing else). Dropping a candidate tied with a better-placed one
lost comparisons (one run: 193 established, 98 kept), so here the groups are written as one strict
record of the first answer of each group plus ``tied_after_first`` parts for every pair it misses:
together they give each established pair exactly once.
"""

from __future__ import annotations


def score_groups(scores: list[float]) -> list[list[int]]:
    """Candidate indices grouped by equal score, best group first (candidate order inside a group)."""
    levels = sorted(set(scores), reverse=True)
    return [[i for i, s in enumerate(scores) if s == level] for level in levels]


def established_pairs(scores: list[float]) -> int:
    """How many (better, worse) pairs the scores establish: pairs of candidates with different scores."""
    return sum(1 for i in range(len(scores)) for j in range(i + 1, len(scores)) if scores[i] != scores[j])


def ranked_records(base: dict, candidates: list[dict], scores: list[float]) -> list[dict]:
    """Preference records for one judged prompt (see the module doc); [] with fewer than two groups.

    The first record is the main one (the strict order of each group's first answer, or, for one
    best answer over a single tied group, ``tied_after_first`` with all of them: a checker's
    right / wrong verdict); the others are parts (``part_of``: the main record's id).
    """
    groups = score_groups(scores)
    if len(groups) < 2:
        return []
    text = lambda i: candidates[i]["response"]  # noqa: E731
    if len(groups) == 2 and len(groups[0]) == 1:  # one best answer, every other one below it
        order = groups[0] + groups[1]
        main = {**base, "responses": [text(i) for i in order], "scores": [scores[i] for i in order]}
        if len(order) > 2:
            main["tied_after_first"] = True
        return [main]
    heads = [g[0] for g in groups]
    main = {**base, "responses": [text(i) for i in heads], "scores": [scores[i] for i in heads]}
    tied = [{"response": text(i), "score": scores[i], "tied_with": g[0]} for g in groups for i in g[1:]]
    if tied:
        main["tied"] = tied
    parts = []
    for level, group in enumerate(groups[:-1]):
        below = [i for g in groups[level + 1:] for i in g]
        for i in group:
            # A group head already beats the heads below in the main record; it needs the others.
            losers = [j for j in below if j not in heads] if i == group[0] else below
            if losers:
                parts.append([i, *losers])
    return [main, *(_part(base, n, order, text, scores) for n, order in enumerate(parts, 2))]


def _part(base: dict, n: int, order: list[int], text, scores: list[float]) -> dict:
    # Parts repeat neither the candidates nor the verdicts: the main record holds them once.
    part = {**{k: v for k, v in base.items() if k not in ("id", "candidates", "judgments")}, "id": f"{base['id']}#{n}", "part_of": base["id"],
            "responses": [text(i) for i in order], "scores": [scores[i] for i in order]}
    if len(order) > 2:
        part["tied_after_first"] = True
    return part
