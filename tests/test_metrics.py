"""Korean-correct metrics: checked against sacrebleu called directly, rouge_score and hand counts."""

import math
import random

import pytest
import sacrebleu

from korlhf.evaluation import metrics
from korlhf.evaluation.metrics import characters, lcs_length, morphemes, rouge, score, self_bleu

PAIRS = [
    ("오늘 서울의 날씨는 맑고 기온은 영상 10도입니다.", "오늘 서울 날씨는 맑으며 기온은 10도 정도입니다."),
    ("김치찌개는 돼지고기와 김치를 넣고 끓이면 됩니다.", "김치찌개를 만들려면 김치와 돼지고기를 넣고 푹 끓이세요."),
    ("저는 인공지능 챗봇이라서 답변드릴 수 없습니다.", "세종대왕은 훈민정음을 창제했습니다."),
    ("한국의 수도는 서울입니다.", "대한민국의 수도는 서울이다."),
]
PREDS = [p for p, _ in PAIRS]
REFS = [r for _, r in PAIRS]


@pytest.fixture(scope="module")
def result():
    return score(PREDS, REFS)


def test_identical_korean_pair_scores_perfect():
    text = "세종대왕은 1443년에 훈민정음을 창제하여 백성들이 쉽게 글을 읽고 쓸 수 있게 했습니다."
    s = score([text], [text])
    assert s.corpus["bleu"] == pytest.approx(100.0)
    assert s.corpus["bleu_char"] == pytest.approx(100.0)
    assert s.corpus["chrf"] == pytest.approx(100.0)
    assert s.corpus["chrf++"] == pytest.approx(100.0)
    for key in ("rouge1", "rouge2", "rougeL", "rouge1_char", "rouge2_char", "rougeL_char"):
        assert s.corpus[key] == pytest.approx(1.0), key
    assert s.samples[0]["bleu"] == pytest.approx(100.0)


def test_bleu_and_chrf_match_sacrebleu_called_directly(result):
    assert result.corpus["bleu"] == pytest.approx(sacrebleu.corpus_bleu(PREDS, [REFS], tokenize="ko-mecab").score)
    assert result.corpus["bleu_char"] == pytest.approx(sacrebleu.corpus_bleu(PREDS, [REFS], tokenize="char").score)
    assert result.corpus["chrf"] == pytest.approx(sacrebleu.corpus_chrf(PREDS, [REFS]).score)
    assert result.corpus["chrf++"] == pytest.approx(sacrebleu.corpus_chrf(PREDS, [REFS], word_order=2).score)
    for row, (p, r) in zip(result.samples, PAIRS, strict=True):
        assert row["bleu"] == pytest.approx(sacrebleu.sentence_bleu(p, [r], tokenize="ko-mecab").score)
        assert row["chrf"] == pytest.approx(sacrebleu.sentence_chrf(p, [r]).score)
    assert 0 < result.corpus["bleu"] < 100  # the pairs share words: a Korean BLEU of 0.0 would be the old bug


def test_signatures_name_the_korean_tokenizer(result):
    assert "tok:ko-mecab" in result.signatures["bleu"]
    assert "tok:char" in result.signatures["bleu_char"]
    assert result.signatures["chrf++"].startswith("nrefs:1") and "nw:2" in result.signatures["chrf++"]
    bleu_fields = result.signatures["bleu"].split("|")[1:]
    assert result.signatures["self_bleu"].split("|") == ["nrefs:all-others", *bleu_fields]


def test_rouge_by_hand_on_characters():
    # 고양이가 잔다 / 고양이는 잔다: 6 characters each (spaces dropped), 5 shared; bigrams 3 of 5 shared;
    # longest common subsequence 고양이잔다 = 5.
    got = rouge(characters("고양이가 잔다"), characters("고양이는 잔다"))
    assert got == {"rouge1": pytest.approx(5 / 6), "rouge2": pytest.approx(3 / 5), "rougeL": pytest.approx(5 / 6)}


def test_rouge_by_hand_on_kiwi_morphemes():
    pred, ref = morphemes(["사과를 먹었다.", "배를 먹었다"])
    assert pred == ["사과", "를", "먹", "었", "다"]  # the full stop has no letter: dropped
    assert ref == ["배", "를", "먹", "었", "다"]
    # unigrams 4 of 5 shared; bigrams 를-먹, 먹-었, 었-다 = 3 of 4; LCS 4.
    assert rouge(pred, ref) == {"rouge1": pytest.approx(0.8), "rouge2": pytest.approx(0.75),
                                "rougeL": pytest.approx(0.8)}


def test_rouge_score_default_tokenizer_deletes_hangul_and_ours_does_not():
    from rouge_score import rouge_scorer

    default = rouge_scorer.RougeScorer(["rouge1"]).score("사과를 먹었다", "사과를 먹었다")
    assert default["rouge1"].fmeasure == 0.0  # why KoChatGPT reported Korean ROUGE = 0
    assert score(["사과를 먹었다"], ["사과를 먹었다"]).corpus["rouge1"] == 1.0


def test_rouge_matches_rouge_score_on_pretokenized_text():
    from rouge_score import rouge_scorer

    class Whitespace:
        def tokenize(self, text):
            return text.split()

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=Whitespace())
    for p, r in PAIRS:
        for pred, ref in (morphemes([p, r]), (characters(p), characters(r))):
            expected = scorer.score(" ".join(ref), " ".join(pred))  # rouge_score takes (target, prediction)
            got = rouge(pred, ref)
            for key in ("rouge1", "rouge2", "rougeL"):
                assert got[key] == pytest.approx(expected[key].fmeasure)


def test_lcs_matches_dynamic_programming():
    from rouge_score.rouge_scorer import _lcs_table

    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("가나다라") for _ in range(rng.randint(0, 40))]
        b = [rng.choice("가나다라") for _ in range(rng.randint(0, 40))]
        assert lcs_length(a, b) == _lcs_table(b, a)[-1][-1]


def test_self_bleu_equals_sacrebleu_with_all_others_as_references():
    texts = PREDS + REFS[:2] + ["한국의 수도는 서울입니다."]  # includes a near-duplicate
    tokenizer = metrics.sacrebleu_metrics()["bleu"].tokenizer
    others = [[t for j, t in enumerate(texts) if j != i] for i in range(len(texts))]
    streams = [list(col) for col in zip(*others, strict=True)]
    expected = sacrebleu.corpus_bleu(texts, streams, tokenize="ko-mecab").score
    assert self_bleu([tokenizer(t) for t in texts]) == pytest.approx(expected)
    assert math.isnan(self_bleu(["하나뿐"]))


def test_repetitive_output_scores_worse_than_varied():
    varied = "서울은 한국의 수도이고 부산은 항구 도시이며 제주도는 아름다운 섬입니다."
    looping = "서울은 좋아요 서울은 좋아요 서울은 좋아요 서울은 좋아요 서울은 좋아요"
    v, r = score([varied]), score([looping])
    assert r.corpus["rep_2"] > 0.5 > v.corpus["rep_2"] == 0.0
    assert r.corpus["rep_4"] > v.corpus["rep_4"]
    assert r.corpus["distinct_1"] < v.corpus["distinct_1"]
    assert r.corpus["distinct_2"] < v.corpus["distinct_2"]


def test_reference_free_metrics():
    metrics.sacrebleu_metrics.cache_clear()  # as in a fresh process where no BLEU was computed yet
    s = score(["안녕하세요 반갑습니다", "저는 AI 언어 모델로서 답변드릴 수 없습니다", ""], rewards=[1.0, -1.0, 0.5])
    assert "bleu" not in s.corpus and "rouge1" not in s.corpus
    assert s.corpus["refusal"] == pytest.approx(1 / 3)
    assert s.corpus["empty"] == pytest.approx(1 / 3)
    assert s.corpus["reward"] == pytest.approx(0.5 / 3)
    assert s.samples[0]["hangul_ratio"] == 1.0 and s.samples[0]["len_chars"] == 11  # the space counts
    assert s.corpus["len_chars_median"] == 11


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        score(["가", "나"], ["가"])


def test_kiwi_loads_once_and_each_text_is_analysed_once(monkeypatch):
    import kiwipiepy

    analyser = metrics.kiwi()  # the process's analyser (already loaded by earlier tests, or now)
    built, seen = [], []
    real_tokenize = analyser.tokenize

    def counting_tokenize(text, *args, **kwargs):
        text = text if isinstance(text, str) else list(text)
        seen.extend([text] if isinstance(text, str) else text)
        return real_tokenize(text, *args, **kwargs)

    monkeypatch.setattr(kiwipiepy, "Kiwi", lambda *a, **k: built.append(1))
    monkeypatch.setattr(analyser, "tokenize", counting_tokenize)
    score(["같은 문장", "같은 문장", "다른 문장"], ["같은 문장", "참조 문장", "다른 문장"])
    score(["또 다른 문장"], ["참조"])
    assert built == [] and metrics.kiwi() is analyser
    assert sorted(seen) == sorted(["같은 문장", "다른 문장", "참조 문장", "또 다른 문장", "참조"])
