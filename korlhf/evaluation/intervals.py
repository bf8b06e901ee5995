"""95% bootstrap confidence intervals for the metrics of one system's answers.

A mean of per-answer values (accuracy, reward, ROUGE, repetition, length...) is resampled here:
1,000 resamples of the answers with a fixed seed, the 2.5th and 97.5th percentiles of their means.
Corpus BLEU and chrF are not means of per-answer scores; sacrebleu resamples their sufficient
statistics itself (``corpus_score(..., n_bootstrap=1000)``, its documented option) and reports mean ±
half-width. Distinct-n and self-BLEU get none (they are about the whole set of answers).
"""

from __future__ import annotations

import json
import math
from functools import cache

RESAMPLES = 1000
MEAN_METRICS = ("accuracy", "reward", "rouge1", "rouge2", "rougeL", "rouge1_char", "rouge2_char", "rougeL_char",
                "rep_2", "rep_4", "len_chars", "len_morphs", "hangul_ratio", "refusal", "empty", "invalid_text")
CORPUS_METRICS = ("bleu", "bleu_char", "chrf", "chrf++")


def mean_interval(values: list[float], resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """(low, high) of the 95% percentile bootstrap interval of the mean of ``values``."""
    import numpy as np

    data = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if data.size == 0:
        return math.nan, math.nan
    picks = np.random.default_rng(seed).integers(0, data.size, size=(resamples, data.size))
    means = data[picks].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def corpus_interval(metric, predictions: list[str], references: list[str]) -> tuple[float, float]:
    """(low, high) of sacrebleu's bootstrap for a corpus metric object (BLEU, chrF)."""
    try:
        score = metric.corpus_score(predictions, [references], n_bootstrap=RESAMPLES)
    except TypeError:
        # sacrebleu's own interval code fails when resampled scores mix float and numpy float32
        # (statistics.mean refuses them); then resample the answers and re-score the corpus here.
        return _resampled_corpus_interval(metric, predictions, references)
    fields = json.loads(score.format(width=4, signature=metric.get_signature().format(), is_json=True))
    # sacrebleu leaves the interval out when every resample scores 0: the interval is then [0, 0].
    mean, half = fields.get("confidence_mean", fields["score"]), fields.get("confidence_var", 0.0)
    return mean - half, mean + half


def _resampled_corpus_interval(metric, predictions, references, resamples: int = 200, seed: int = 0):
    """The percentile interval of ``resamples`` corpus scores of answers drawn with replacement
    (fewer than `RESAMPLES`: each is a whole corpus score, ~10 ms for 150 answers)."""
    import numpy as np

    picks = np.random.default_rng(seed).integers(0, len(predictions), size=(resamples, len(predictions)))
    scores = [float(metric.corpus_score([predictions[i] for i in rows], [[references[i] for i in rows]]).score)
              for rows in picks]
    return float(np.percentile(scores, 2.5)), float(np.percentile(scores, 97.5))


@cache
def bootstrap_metrics() -> dict:
    """BLEU / chrF objects of their own, built once: a bootstrap run marks an object's signature
    (``bs:1000``), which the scores' own signatures must not show."""
    from korlhf.evaluation.metrics import corpus_metrics

    return corpus_metrics()


def intervals(samples: list[dict], predictions: list[str], references: list[str] | None,
              extra: dict[str, list[float]] | None = None) -> dict[str, tuple[float, float]]:
    """{metric: (low, high)} for every metric of `korlhf.evaluation.metrics.score`'s per-answer rows
    that is a mean, the corpus metrics when there are references, and ``extra`` per-answer lists."""
    columns = {key: [row[key] for row in samples] for key in MEAN_METRICS if samples and key in samples[0]}
    columns.update(extra or {})
    result = {key: mean_interval(values) for key, values in columns.items() if values}
    if references is not None:
        metrics = bootstrap_metrics()
        result.update({key: corpus_interval(metrics[key], predictions, references) for key in CORPUS_METRICS})
    return result
