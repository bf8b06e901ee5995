import pytest

from korlhf.text import distinct_n, hangul_ratio, is_refusal, looks_truncated, rep_n


def test_hangul_ratio_counts_letters_only():
    assert hangul_ratio("서울은 2024년!") == 1.0
    assert hangul_ratio("AI 모델") == pytest.approx(2 / 4)  # 모, 델 of A, I, 모, 델
    assert hangul_ratio("1234 ...") == 0.0


@pytest.mark.parametrize("text", ["저는 인공지능 챗봇이며, 직접적으로 답할 수 없습니다.", "AI 언어 모델로서 말씀드리면",
                                  "죄송하지만 그 요청은 도와드릴 수 없습니다.", "As an AI language model, I"])
def test_refusals(text):
    assert is_refusal(text)


def test_not_refusals():
    assert not is_refusal("서울은 한국의 수도입니다.")
    assert not is_refusal("죄송합니다라는 말은 사과할 때 씁니다.")


def test_truncation():
    assert looks_truncated("이날 목송에서 구글상위노")
    assert looks_truncated("")
    assert not looks_truncated("서울입니다")
    assert not looks_truncated("좋아요! ")
    assert not looks_truncated("정말 좋아요 😀")


def test_repetition_by_hand():
    # bigrams of 가나가나가나: 가나, 나가, 가나, 나가, 가나 -> 2 unique of 5
    assert rep_n("가나가나가나", 2) == pytest.approx(1 - 2 / 5)
    assert rep_n(["a", "b", "c"], 2) == 0.0
    assert rep_n("가", 2) == 0.0
    # unigrams a, b, a, c -> 3 unique of 4
    assert distinct_n([["a", "b"], ["a", "c"]], 1) == pytest.approx(3 / 4)
    assert distinct_n([], 2) == 0.0
