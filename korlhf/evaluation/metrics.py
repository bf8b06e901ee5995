"""Korean-correct text metrics, corpus-level and per sample: the scoring API of `korlhf eval`.

Python API (stable; the sweep, the pipeline and the labelling stage call it)::

    from korlhf.evaluation.metrics import score
    result = score(predictions, references)          # references optional (then no BLEU/ROUGE/chrF)
    result.corpus["bleu"], result.corpus["rougeL"]    # corpus numbers
    result.samples[0]["chrf"]                          # one row per prediction
    result.signatures["bleu"]                          # sacrebleu's reproducibility signature

``score(predictions, references=None, *, rewards=None) -> Scores`` with
``Scores(corpus: dict[str, float], samples: list[dict], signatures: dict[str, str])``.

Metrics (`METRICS` lists them with one line each):

- BLEU with sacrebleu, ``tokenize="ko-mecab"`` (MeCab-ko morphemes) and ``"char"``; corpus BLEU from
  summed statistics, per-sample BLEU with effective order (as ``sacrebleu.sentence_bleu``).
- chrF and chrF++ (sacrebleu): character n-grams, ++ adds word uni/bigrams.
- ROUGE-1/2/L F1 on Kiwi morphemes and on characters. rouge_score's default tokenizer keeps only
  ``[a-z0-9]`` and so deletes all Hangul (KoChatGPT's reported ROUGE of 0); we tokenize with Kiwi,
  lowercase and drop tokens without a letter or digit, as rouge_score does for English.
  ROUGE-N and ROUGE-L are computed here (a Counter intersection and a bit-parallel LCS) because
  rouge_score's pure-Python LCS table takes minutes on 10k character-level pairs; tests check both
  against rouge_score on pre-tokenized text.
- distinct-1/2 (corpus), rep-2/rep-4 (per sample, Welleck et al.), self-BLEU (each prediction
  against all the others, MeCab tokens), lengths, Hangul ratio, refusal rate, empty rate, the share
  of predictions with U+FFFD (``invalid_text``), and the mean reward when ``rewards`` are given.

Both sides are put in `scoring_form` first (NFC, the data stage's whitespace handling): the same
Korean text in NFD and NFC would otherwise score BLEU 9 against itself.

Kiwi and MeCab load once per process (`kiwi()`, `sacrebleu_metrics()`), and each distinct text is
analysed once: Kiwi over all texts in one multi-threaded call; MeCab through sacrebleu, whose
tokenizer caches its output, so self-BLEU reuses BLEU's tokens.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from functools import cache

from korlhf.endings import kiwi  # the process's one analyser, shared with the text checks
from korlhf.streaming import REPLACEMENT
from korlhf.text import distinct_n, hangul_ratio, is_refusal, ngrams, rep_n

METRICS = {
    "bleu": "sacrebleu BLEU, ko-mecab tokens (0-100)",
    "bleu_char": "sacrebleu BLEU, characters (0-100)",
    "chrf": "sacrebleu chrF (0-100)",
    "chrf++": "sacrebleu chrF++ (0-100)",
    "rouge1": "ROUGE-1 F1, Kiwi morphemes (0-1)",
    "rouge2": "ROUGE-2 F1, Kiwi morphemes (0-1)",
    "rougeL": "ROUGE-L F1, Kiwi morphemes (0-1)",
    "rouge1_char": "ROUGE-1 F1, characters (0-1)",
    "rouge2_char": "ROUGE-2 F1, characters (0-1)",
    "rougeL_char": "ROUGE-L F1, characters (0-1)",
    "distinct_1": "unique / all morpheme unigrams over all predictions",
    "distinct_2": "unique / all morpheme bigrams over all predictions",
    "rep_2": "share of repeated morpheme bigrams within a prediction (lower = less repetitive)",
    "rep_4": "share of repeated morpheme 4-grams within a prediction",
    "self_bleu": "BLEU of each prediction against all the others (lower = more diverse)",
    "len_chars": "characters per prediction (mean)",
    "len_chars_median": "characters per prediction (median)",
    "len_chars_p90": "characters per prediction (90th percentile)",
    "len_morphs": "Kiwi morphemes per prediction",
    "len_ratio": "prediction characters / reference characters (corpus)",
    "hangul_ratio": "share of Hangul among letters",
    "refusal": "share of refusal / 'as an AI' boilerplate",
    "empty": "share of empty predictions",
    "invalid_text": "share of predictions holding U+FFFD (the model emitted an invalid byte sequence)",
    "reward": "reward model score (mean)",
}
REFERENCE_METRICS = ("bleu", "bleu_char", "chrf", "chrf++", "rouge1", "rouge2", "rougeL",
                     "rouge1_char", "rouge2_char", "rougeL_char", "len_ratio")


@dataclass
class Scores:
    corpus: dict[str, float]
    samples: list[dict]
    signatures: dict[str, str] = field(default_factory=dict)


@cache
def sacrebleu_metrics() -> dict:
    """sacrebleu metric objects, built once (MeCab loads with the ko-mecab BLEU)."""
    return corpus_metrics(effective_order=False) | {
        f"sentence_{name}": metric for name, metric in corpus_metrics(effective_order=True).items()
        if name.startswith("bleu")}


def corpus_metrics(effective_order: bool = False) -> dict:
    """New BLEU (ko-mecab, char) and chrF / chrF++ objects as korlhf scores with them.

    Per-sample BLEU uses effective order, as sacrebleu.sentence_bleu does (a short answer without
    any 4-gram match would otherwise score 0); corpus BLEU does not.
    """
    from sacrebleu.metrics import BLEU, CHRF

    return {"bleu": BLEU(tokenize="ko-mecab", effective_order=effective_order),
            "bleu_char": BLEU(tokenize="char", effective_order=effective_order),
            "chrf": CHRF(), "chrf++": CHRF(word_order=2)}


def morphemes(texts: list[str]) -> list[list[str]]:
    """Kiwi morphemes of each text, lowercased, tokens without a letter or digit dropped."""
    unique = list(dict.fromkeys(texts))
    analysed = kiwi().tokenize(unique) if unique else []
    table = {text: [t.form.lower() for t in tokens if any(ch.isalnum() for ch in t.form)]
             for text, tokens in zip(unique, analysed, strict=True)}
    return [table[text] for text in texts]


def characters(text: str) -> list[str]:
    return [ch for ch in text if not ch.isspace()]


def lcs_length(a, b) -> int:
    """Length of the longest common subsequence of two sequences of hashables.

    Bit-parallel (Allison-Dix / Hyyro 2004): one big-integer update per element of ``b``.
    """
    masks: dict = {}
    for i, x in enumerate(a):
        masks[x] = masks.get(x, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for y in b:
        m = masks.get(y)
        if m is not None:
            u = v & m
            v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def _f1(overlap: int, n_pred: int, n_ref: int) -> float:
    if overlap == 0:
        return 0.0
    precision, recall = overlap / n_pred, overlap / n_ref
    return 2 * precision * recall / (precision + recall)


def rouge(pred: list, ref: list) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F1 of two token lists (rouge_score's definitions)."""
    out = {}
    for n in (1, 2):
        p, r = Counter(ngrams(pred, n)), Counter(ngrams(ref, n))
        out[f"rouge{n}"] = _f1(sum((p & r).values()), sum(p.values()), sum(r.values()))
    out["rougeL"] = _f1(lcs_length(pred, ref), len(pred), len(ref))
    return out


def self_bleu(tokenized: list[str]) -> float:
    """Corpus BLEU of each text against all the others as references (0-100); nan below 2 texts.

    Equal to sacrebleu's multi-reference corpus BLEU, in linear time: a hypothesis n-gram's clip
    count is the largest count among the *other* texts, so we keep each n-gram's top two counts.
    """
    from sacrebleu.metrics import BLEU

    if len(tokenized) < 2:
        return math.nan
    counts = [Counter(g for n in range(1, 5) for g in ngrams(t.split(), n)) for t in tokenized]
    top: dict[tuple, list] = {}  # n-gram -> [best count, its text, second best count]
    for i, grams in enumerate(counts):
        for g, c in grams.items():
            entry = top.get(g)
            if entry is None:
                top[g] = [c, i, 0]
            elif c > entry[0]:
                entry[:] = [c, i, entry[0]]
            elif c > entry[2]:
                entry[2] = c
    lengths = [len(t.split()) for t in tokenized]
    ordered = sorted(lengths)
    correct, total, sys_len, ref_len = [0] * 4, [0] * 4, 0, 0
    for i, grams in enumerate(counts):
        for g, c in grams.items():
            best, owner, second = top[g]
            total[len(g) - 1] += c
            correct[len(g) - 1] += min(c, second if owner == i else best)
        sys_len += lengths[i]
        ref_len += _closest_other(ordered, lengths[i])
    return BLEU.compute_bleu(correct, total, sys_len, ref_len, smooth_method="exp").score


def self_bleu_signature() -> str:
    """sacrebleu's signature fields for self-BLEU (sacrebleu builds one only after a scored corpus)."""
    import sacrebleu

    tok = sacrebleu_metrics()["bleu"].tokenizer.signature()
    return f"nrefs:all-others|case:mixed|eff:no|tok:{tok}|smooth:exp|version:{sacrebleu.__version__}"


def _closest_other(ordered: list[int], length: int) -> int:
    """The closest length among the others (ties -> shorter), as sacrebleu picks a reference length."""
    pos = bisect.bisect_left(ordered, length)
    rest = ordered[:pos] + ordered[pos + 1:]  # drop one copy of this text's own length
    j = bisect.bisect_left(rest, length)
    options = rest[max(0, j - 1):j + 1]
    return min(options, key=lambda x: (abs(x - length), x))


def score(predictions: list[str], references: list[str] | None = None, *,
          rewards: list[float] | None = None) -> Scores:
    """Every metric for ``predictions`` (and ``references``, one per prediction, if given)."""
    from korlhf.data.normalize import scoring_form

    predictions = [scoring_form(p or "") for p in predictions]
    if references is not None:
        if len(references) != len(predictions):
            raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
        references = [scoring_form(r or "") for r in references]
    rows = [{"index": i} for i in range(len(predictions))]
    corpus: dict[str, float] = {"n": len(predictions)}
    signatures: dict[str, str] = {}
    texts = predictions + (references or [])
    morph = morphemes(texts)
    pred_morph = morph[:len(predictions)]
    if references is not None:
        _reference_metrics(predictions, references, pred_morph, morph[len(predictions):], rows, corpus, signatures)
    _free_metrics(predictions, pred_morph, rows, corpus)
    tokenizer = sacrebleu_metrics()["bleu"].tokenizer  # cached: texts BLEU already saw are not re-analysed
    corpus["self_bleu"] = self_bleu([tokenizer(p.rstrip()) for p in predictions])
    signatures["self_bleu"] = self_bleu_signature()
    if rewards is not None:
        for row, value in zip(rows, rewards, strict=True):
            row["reward"] = value
        corpus["reward"] = _mean(rewards)
    return Scores(corpus=corpus, samples=rows, signatures=signatures)


def _reference_metrics(preds, refs, pred_morph, ref_morph, rows, corpus, signatures) -> None:
    metrics = sacrebleu_metrics()
    for name in ("bleu", "bleu_char", "chrf", "chrf++"):
        metric = metrics[name]
        corpus[name] = metric.corpus_score(preds, [refs]).score
        signatures[name] = metric.get_signature().format()
        sentence = metrics.get(f"sentence_{name}", metric)
        for row, p, r in zip(rows, preds, refs, strict=True):
            row[name] = sentence.sentence_score(p, [r]).score
    for row, p, r, pm, rm in zip(rows, preds, refs, pred_morph, ref_morph, strict=True):
        row.update(rouge(pm, rm))
        row.update({f"{k}_char": v for k, v in rouge(characters(p), characters(r)).items()})
    for key in ("rouge1", "rouge2", "rougeL", "rouge1_char", "rouge2_char", "rougeL_char"):
        corpus[key] = _mean([row[key] for row in rows])
    corpus["len_ratio"] = sum(map(len, preds)) / max(1, sum(map(len, refs)))


def _free_metrics(preds, pred_morph, rows, corpus) -> None:
    """Metrics that need no reference."""
    for row, p, m in zip(rows, preds, pred_morph, strict=True):
        row.update(rep_2=rep_n(m, 2), rep_4=rep_n(m, 4), len_chars=len(p), len_morphs=len(m),
                   hangul_ratio=hangul_ratio(p), refusal=float(is_refusal(p)), empty=float(not p.strip()),
                   invalid_text=float(REPLACEMENT in p))
    corpus["distinct_1"] = distinct_n(pred_morph, 1)
    corpus["distinct_2"] = distinct_n(pred_morph, 2)
    lengths = sorted(row["len_chars"] for row in rows) or [math.nan]
    for key in ("rep_2", "rep_4", "len_chars", "len_morphs", "hangul_ratio", "refusal", "empty", "invalid_text"):
        corpus[key] = _mean([row[key] for row in rows])
        if key == "len_chars":
            corpus["len_chars_median"] = statistics.median(lengths)
            corpus["len_chars_p90"] = lengths[min(len(lengths) - 1, int(0.9 * len(lengths)))]


def _mean(values) -> float:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(values) / len(values) if values else math.nan
