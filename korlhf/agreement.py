"""Agreement between raters and between numbers: one home for `korlhf eval agree` and `korlhf label`.

Raters (people, LLM judges, a reward model, known benchmark truth) give labels such as ``A``,
``B``, ``tie`` per item, or scores. We report raw agreement, Cohen's kappa (agreement corrected for
chance), and Spearman / Kendall rank correlation (scipy) between a metric and ratings.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence


def _paired(a: Sequence, b: Sequence) -> list[tuple]:
    if len(a) != len(b):
        raise ValueError(f"raters labelled different numbers of items ({len(a)} vs {len(b)})")
    return [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]


def agreement_rate(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Share of items (both labelled) where the two raters gave the same label; nan if none."""
    pairs = _paired(a, b)
    return sum(x == y for x, y in pairs) / len(pairs) if pairs else math.nan


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa: (p_o - p_e) / (1 - p_e), p_e from each rater's own label frequencies.

    1.0 is perfect agreement, 0.0 what chance gives. When both raters always use one and the
    same label, p_e = 1 and kappa is undefined; we return 1.0 then (they agree on everything).
    """
    pairs = _paired(a, b)
    if not pairs:
        return math.nan
    n = len(pairs)
    p_o = sum(x == y for x, y in pairs) / n
    count_a, count_b = Counter(x for x, _ in pairs), Counter(y for _, y in pairs)
    p_e = sum(count_a[label] * count_b[label] for label in count_a) / (n * n)
    if p_e == 1.0:
        return 1.0
    return (p_o - p_e) / (1 - p_e)


def rank_correlations(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Spearman rho and Kendall tau-b (with p-values) between two score lists; nan if constant."""
    from scipy import stats

    pairs = _paired(x, y)
    if len(pairs) < 2:
        return {"spearman": math.nan, "spearman_p": math.nan, "kendall": math.nan, "kendall_p": math.nan, "n": len(pairs)}
    xs, ys = zip(*pairs, strict=True)
    rho = stats.spearmanr(xs, ys)
    tau = stats.kendalltau(xs, ys)
    return {"spearman": float(rho.statistic), "spearman_p": float(rho.pvalue),
            "kendall": float(tau.statistic), "kendall_p": float(tau.pvalue), "n": len(pairs)}
