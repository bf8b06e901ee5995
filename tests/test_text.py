import pytest

from korlhf.text import distinct_n, hangul_ratio, is_refusal, looks_truncated, rep_n, sounds_like_assistant


def test_hangul_ratio_counts_letters_only():
    assert hangul_ratio("서울은 2024년!") == 1.0
    assert hangul_ratio("AI 모델") == pytest.approx(2 / 4)  # 모, 델 of A, I, 모, 델
    assert hangul_ratio("1234 ...") == 0.0


@pytest.mark.parametrize("text", ["저는 인공지능 챗봇이며, 직접적으로 답할 수 없습니다.", "죄송하지만 그 요청은 도와드릴 수 없습니다.",
                                  "개인 정보는 제공할 수 없습니다.", "그 질문에는 답변드리기 어렵습니다.",
                                  "저는 AI 언어 모델이기 때문에 감정을 느낄 수 없습니다.",
                                  "As an AI language model, I cannot help with that."])
def test_refusals_decline(text):
    assert is_refusal(text)


@pytest.mark.parametrize("text", [
    "서울은 한국의 수도입니다.", "죄송합니다라는 말은 사과할 때 씁니다.",
    # Self-description is not declining (issue 18: the old pattern dropped this whole dialogue).
    "저는 인공지능, 머신러닝, 블록체인 등 다양한 주제에 대해 알고 있습니다.",
    "저는 인공지능이라는 주제를 여러 가지 관점에서 이해하고 이에 대한 정보를 제공해 드릴 수 있습니다.",
    "AI 언어 모델로서 말씀드리면, 김치는 배추를 절여 만듭니다.",
    "그러나 여전히 AI가 인간과 동일한 정도로 생각할 수 없는 부분도 있겠습니다.",  # about AI, not declining
])
def test_not_refusals(text):
    assert not is_refusal(text)


def test_assistant_lines_in_a_user_turn():
    assert sounds_like_assistant("괜찮습니다. 무엇을 도와드릴까요?")  # KoChatGPT dialogue 1, the human's turn
    assert sounds_like_assistant("그렇게 하죠. 무엇이 궁금하신가요?")
    assert not sounds_like_assistant("기계 학습에 대한 정보를 찾고 싶습니다.")
    assert not sounds_like_assistant("제가 뭘 도와드리면 될까요? 이사 날짜 정하면 알려 줘.")


@pytest.mark.parametrize("text, kind", [
    ("응 알겠어", "answer"), ("배고파", "answer"), ("해운대구", "answer"), ("150원", "answer"),  # issue 18
    ("한반도 중부", "answer"), ("약 27개 단지", "answer"), ("부산에서 서울까지의 거리", "answer"),
    ("서울입니다", "answer"), ("좋아요! ", "answer"), ("정말 좋아요 😀", "answer"), ("네, 알겠습니다", "answer"),
    ("- 사과\n- 배", "answer"), ("바이에른 지명 기원을 알려줘", "question"), ("잊지마", "question"),
    ("1113년 2월 15일 교황 파스칼 2세가 발표한 교서는", "question"),  # KorQuAD's elliptical question
    ("욕먹었어 여자친구한테", "question"), ("이혼만은 막고싶은데", "question"), ("헤어진지 1년 뭐하는건지ㅋ", "question"),
    ("사랑이 쉬운 사람", "question"), ("체납금 그거는 언제 나와요 고지서가", "question"), ("네", "answer"), ("그건 좀 비싼데", "turn"), ("아 진짜", "turn"), ("그래 ㅋㅋ", "turn"),
])
def test_finished_korean(text, kind):
    assert not looks_truncated(text, kind)


@pytest.mark.parametrize("text, kind", [
    ("", "answer"), ("이날 목송에서 구글상위노", "answer"),  # ada's cut-off garbage in KoChatGPT RM row 2
    ("배추를 소금에 절인 뒤 양념을 버무", "answer"), ("오늘 날씨가 좋아서", "answer"), ("그건 좀 비싼데", "answer"),
    ("개포주공아파트는 총 27개 단지로 이루어져 있습니다. 가장 오래된 단지는 1단지", "answer"),
    ("수코타이는 면적이 얼마나 되", "question"), ("파스타 메뉴는 있어요? 혼자 먹을 수 있는", "question"),
    ("차주분의 성함과", "question"), ("경복궁의", "turn"), ("제 생각에는 이것이 가장 좋은 방법일", "turn"),
    # KoChatGPT answers cut at random points (docs/data_quality.md): a comma, half a word, a bare 여/해.
    ("현재 공기 상태는 괜찮습니다. 미세먼지 수치는 평균보다 조금 높지만, ", "answer"),
    ("머신 러닝은 데이터로 배우는 방법입니다. 프로젝트는 데이터 수집, 전처리, 모", "answer"),
    ("방역 대책이 중요합니다. 또한 건강한 생활 습관을 이루는 등의 방법을 이용하여", "answer"),
    ("사람들과 소통함으로써 생각할 수 있게 됩니다. 또한, 다양한 상황에 대해", "answer"),
    ("평창 스페셜올림픽 대회에 세계각국에서 온 선수단이", "question"),
])
def test_truncated_korean(text, kind):
    assert looks_truncated(text, kind)


def test_truncation_kind_is_checked():
    with pytest.raises(ValueError, match="question, answer, turn"):
        looks_truncated("배고파", "prompt")


def test_repetition_by_hand():
    # bigrams of 가나가나가나: 가나, 나가, 가나, 나가, 가나 -> 2 unique of 5
    assert rep_n("가나가나가나", 2) == pytest.approx(1 - 2 / 5)
    assert rep_n(["a", "b", "c"], 2) == 0.0
    assert rep_n("가", 2) == 0.0
    # unigrams a, b, a, c -> 3 unique of 4
    assert distinct_n([["a", "b"], ["a", "c"]], 1) == pytest.approx(3 / 4)
    assert distinct_n([], 2) == 0.0
