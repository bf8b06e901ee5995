"""Readers: every Korean source into canonical records, checked on real files and format fixtures."""

import json
from pathlib import Path

import pytest

from korlhf.data.readers import read_records, read_source
from korlhf.errors import KorlhfError


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_kochatgpt_rm_ranking_is_slot_of_kth_best(shared_data):
    # ranking[k] is the slot of the k-th best answer; row 2 has ranking [2, 0, 1].
    src = read_source(shared_data / "kochatgpt" / "kochatgpt_2_RM.sample.jsonl")
    assert src.format == "kochatgpt-rm" and len(src.records) == 3
    row2 = src.records[1]
    assert row2["prompt"] == "개포주공아파트는 몇 단지로 이루어져 있나?"
    assert "총 27개 단지" in row2["responses"][0]
    assert row2["responses"][1] == "개포주공아파트는 다섯 단지로 이루어져 있습니다."
    assert row2["responses"][-1] == "이날 목송에서 구글상위노"
    # Row 1, ranking [2, 1, 0]: the English ada answer in slot 0 is worst.
    assert src.records[0]["responses"] == ["라이언에게 말했다.", "번디는 다양한 인터뷰자들과 뉴스홍보 담당자들과의 면담 때 밝혔다.",
                                           "Allow me to answer your question. I know that you are curious about me."]


def test_kochatgpt_rm_ranking_direction_without_the_shared_data(tmp_path):
    """The same trap on a row written here (the layout of kochatgpt_2_RM.jsonl: a JSON array with a BOM
    under a .jsonl name): ranking [2, 0, 1] means completion_2 is best, completion_1 worst. Read as
    "the rank of completion_k" it would put completion_1 first."""
    rows = [{"prompt": "개포주공아파트는 몇 단지로 이루어져 있나?", "completion_0": "다섯 단지입니다.",
             "completion_1": "이날 목송에서", "completion_2": "총 27개 단지로 이루어져 있습니다.", "ranking": [2, 0, 1]}]
    path = write(tmp_path / "kochatgpt_2_RM.jsonl", "\ufeff" + json.dumps(rows, ensure_ascii=False, indent=4))
    src = read_source(path)
    assert src.format == "kochatgpt-rm"
    assert src.records[0]["responses"] == ["총 27개 단지로 이루어져 있습니다.", "다섯 단지입니다.", "이날 목송에서"]


def test_kochatgpt_sft_is_read_faithfully(shared_data):
    path = shared_data / "kochatgpt" / "kochatgpt_1_SFT.sample.jsonl"
    src = read_source(path)
    assert src.format == "kochatgpt-sft" and src.kinds == ["sft"]
    first = src.records[0]
    assert first["prompt"] == "불고기용 고기 한우에요?" and first["response"].startswith("'저는 인공지능 챗봇이며")
    assert "tokens" not in first and first["id"] == "kochatgpt-sft-1"
    assert src.lines == [2, 7, 12]
    assert src.notes == [f"{path}: starts with a UTF-8 byte-order mark (BOM); ignored it",
                         f"{path}: is one JSON array despite its .jsonl name; read it as json"]


def test_kochatgpt_ppo_and_seed_lines(shared_data):
    ppo = read_source(shared_data / "kochatgpt" / "kochatgpt_3_PPO.jsonl")
    assert ppo.format == "kochatgpt-ppo" and len(ppo.records) == 12000 and ppo.kinds == ["prompt"]
    seed = read_source(shared_data / "kochatgpt" / "kochatgpt_seed_data.txt")
    assert len(seed.records) == 12000  # blank lines are (empty) records, not skipped
    assert sum(1 for r in seed.records if not r["prompt"]) == 3
    assert seed.records[0] == {"prompt": "불고기용 고기 한우에요?", "source": "kochatgpt_seed_data",
                               "id": "kochatgpt_seed_data-1"}


def test_kochatgpt_conversation(shared_data, tmp_path):
    src = read_source(shared_data / "kochatgpt" / "kochatgpt_1_SFT_conversation.jsonl")
    assert src.format == "kochatgpt-conversation" and len(src.records) == 439
    roles = [m["role"] for m in src.records[0]["messages"]]
    assert roles == ["user", "assistant"] * 4
    path = write(tmp_path / "conv.txt", "<<start conversation>>\n<사람>: 목록을 줘\n<챗봇>: 1. 사과\n2. 배\n<챗봇>: 끝입니다.\n\n"
                                        "<<start conversation>>\n<챗봇>: 안녕하세요!\n<사람>: 안녕\n")
    records = read_source(path).records
    assert records[0]["messages"] == [{"role": "user", "content": "목록을 줘"},
                                      {"role": "assistant", "content": "1. 사과\n2. 배\n끝입니다."}]
    assert [m["role"] for m in records[1]["messages"]] == ["assistant", "user"]


def test_koalpaca_v10_and_v11(tmp_path):
    v10 = tmp_path / "ko_alpaca_data.json"
    v10.write_text(json.dumps([{"instruction": "다음 문장을 요약하세요.", "input": "오늘은 날씨가 맑고 따뜻했다.",
                                "output": "날씨가 좋았다."},
                               {"instruction": "건강을 유지하는 세 가지 방법은?", "input": "",
                                "output": "운동, 식단, 수면입니다."}], ensure_ascii=False), encoding="utf-8")
    src = read_source(v10)
    assert src.name == "koalpaca-v1.0" and src.format == "koalpaca"
    assert src.records[0] == {"prompt": "다음 문장을 요약하세요.", "input": "오늘은 날씨가 맑고 따뜻했다.",
                              "response": "날씨가 좋았다.", "source": "koalpaca-v1.0", "id": "koalpaca-v1.0-1"}
    assert "input" not in src.records[1]
    v11 = tmp_path / "KoAlpaca_v1.1.jsonl"
    v11.write_text(json.dumps({"instruction": "양파는 어떤 식물 부위인가요?", "output": "양파는 잎이 변형된 비늘줄기입니다.",
                               "url": "https://kin.naver.com/qna/detail.naver?d1id=11"}, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    rec = read_source(v11).records[0]
    assert rec["source"] == "koalpaca-v1.1" and rec["url"].startswith("https://kin.naver.com")


NIKL = {
    "id": "SDRW2000000001", "metadata": {"title": "국립국어원 일상 대화 말뭉치"},
    "document": [{
        "id": "SDRW2000000001.1",
        "metadata": {"speaker": [{"id": "SD2000001"}, {"id": "SD2000002"}], "topic": "여행"},
        "utterance": [
            {"id": "SDRW2000000001.1.1.1", "form": "주말에 뭐 했어?", "original_form": "주말에 뭐 했어?", "speaker_id": "SD2000001"},
            {"id": "SDRW2000000001.1.1.2", "form": "부산 갔다 왔어.", "original_form": "부산 갔다 왔어.", "speaker_id": "SD2000002"},
            {"id": "SDRW2000000001.1.1.3", "form": "바다가 정말 좋더라.", "original_form": "바다가 정말 좋더라.", "speaker_id": "SD2000002"},
            {"id": "SDRW2000000001.1.1.4", "form": "부럽다.", "original_form": "부럽다.", "speaker_id": "SD2000001"},
        ],
    }],
}


def test_nikl_dialogue_merges_one_speakers_utterances(tmp_path):
    path = tmp_path / "SDRW2000000001.json"
    path.write_text(json.dumps(NIKL, ensure_ascii=False, indent=2), encoding="utf-8")
    src = read_source(path)
    assert src.format == "nikl" and len(src.records) == 1
    assert src.records[0] == {"messages": [{"role": "user", "content": "주말에 뭐 했어?"},
                                           {"role": "assistant", "content": "부산 갔다 왔어. 바다가 정말 좋더라."},
                                           {"role": "user", "content": "부럽다."}],
                              "source": "nikl", "id": "SDRW2000000001.1"}


def test_aihub_layouts(tmp_path):
    mrc = {"version": "v1.0", "data": [{"title": "한강", "paragraphs": [{
        "context": "한강은 한반도 중부를 흐르는 강이다.",
        "qas": [{"id": "m1", "question": "한강은 어디를 흐르나?", "answers": [{"text": "한반도 중부", "answer_start": 4}]}]}]}]}
    sns = {"numberOfItems": 1, "data": [{"header": {"dialogueInfo": {"dialogueID": "d1"}}, "body": [
        {"utterance": "점심 먹었어?", "participantID": "P01", "turnID": "T1"},
        {"utterance": "아직", "participantID": "P02", "turnID": "T2"},
        {"utterance": "같이 먹자", "participantID": "P02", "turnID": "T2"}]}]}
    emotion = [{"profile": {"emotion": {"type": "E18"}}, "talk": {"id": {"talk-id": "t1"}, "content": {
        "HS01": "일이 끝이 없어서 화가 나.", "SS01": "많이 힘드시겠어요.", "HS02": "응.", "SS02": "", "HS03": "", "SS03": ""}}}]
    for name, data in (("mrc", mrc), ("sns", sns), ("emotion", emotion)):
        (tmp_path / f"{name}.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    src = read_source(tmp_path / "mrc.json")
    assert src.format == "aihub-mrc"
    assert src.records == [{"source": "aihub-mrc", "id": "m1", "prompt": "한강은 어디를 흐르나?",
                            "input": "한강은 한반도 중부를 흐르는 강이다.", "response": "한반도 중부"}]
    src = read_source(tmp_path / "sns.json")
    assert src.format == "aihub-dialogue"
    assert src.records[0]["messages"] == [{"role": "user", "content": "점심 먹었어?"},
                                          {"role": "assistant", "content": "아직 같이 먹자"}]
    src = read_source(tmp_path / "emotion.json")
    assert src.format == "aihub-emotion"
    assert src.records[0]["messages"] == [{"role": "user", "content": "일이 끝이 없어서 화가 나."},
                                          {"role": "assistant", "content": "많이 힘드시겠어요."},
                                          {"role": "user", "content": "응."}]
    # A layout declared on the command line: --format aihub --map records=... --map prompt=...
    custom = {"items": [{"q": "서울의 인구는?", "a": "약 940만 명입니다."}]}
    (tmp_path / "custom.json").write_text(json.dumps(custom, ensure_ascii=False), encoding="utf-8")
    src = read_source(tmp_path / "custom.json", "aihub", {"records": "items[]", "prompt": "q", "response": "a"})
    assert src.records == [{"source": "aihub", "id": "aihub-1", "prompt": "서울의 인구는?", "response": "약 940만 명입니다."}]


def test_kobest_becomes_preference(shared_data):
    src = read_source(shared_data / "kobest" / "HellaSwag" / "dev.tsv")
    assert src.format == "kobest" and src.name == "kobest-HellaSwag" and len(src.records) == 500
    rec = src.records[0]
    assert len(rec["responses"]) == 4 and rec["tied_after_first"] is True
    copa = read_source(shared_data / "kobest" / "COPA" / "dev.tsv").records[0]
    # dev row 1: "전쟁이 시작되었다." 결과, Answer 2: the right answer comes first.
    assert copa["prompt"] == "전쟁이 시작되었다. 그래서"  # the harness prompt, spaces collapsed
    assert copa["responses"] == ["병사들이 전투에 파견되었다.", "병사들이 집으로 돌아왔다."]


def test_generic_files_with_column_map(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    write(tmp_path / "qa.csv", '질문,답변\n"서울, 부산 중 수도는?",서울입니다.\n한국의 국화는?,무궁화입니다.\n')
    m = {"prompt": "질문", "response": "답변"}
    records = read_records(tmp_path / "qa.csv", column_map=m)
    assert records[0] == {"질문": "서울, 부산 중 수도는?", "답변": "서울입니다.", "prompt": "서울, 부산 중 수도는?",
                          "response": "서울입니다.", "source": "qa", "id": "qa-1"}
    write(tmp_path / "qa.tsv", '질문\t답변\n"따옴표" 질문\t답변입니다.\n')
    assert read_records(tmp_path / "qa.tsv", column_map=m)[0]["prompt"] == '"따옴표" 질문'
    pq.write_table(pa.table({"질문": ["하늘은 왜 파란가?"], "답변": ["빛의 산란 때문입니다."]}), tmp_path / "qa.parquet")
    assert read_records(tmp_path / "qa.parquet", column_map=m)[0]["response"] == "빛의 산란 때문입니다."
    write(tmp_path / "pairs.jsonl", json.dumps({"q": "인사말은?", "good": "안녕하세요.", "ok": "안녕", "bad": "몰라"},
                                               ensure_ascii=False) + "\n")
    rec = read_records(tmp_path / "pairs.jsonl", column_map={"prompt": "q", "responses": "good+ok+bad"})[0]
    assert rec["responses"] == ["안녕하세요.", "안녕", "몰라"]
    write(tmp_path / "dpo.jsonl", json.dumps({"prompt": "p", "chosen": "좋은 답", "rejected": "나쁜 답"}, ensure_ascii=False))
    assert read_records(tmp_path / "dpo.jsonl")[0]["responses"] == ["좋은 답", "나쁜 답"]


def test_own_records_round_trip(tmp_path):
    from korlhf.records import write_jsonl

    records = [{"prompt": "질문", "response": "답", "source": "s", "id": "1"},
               {"prompt": "질문2", "responses": ["좋음", "나쁨"], "source": "s", "id": "2"},
               {"messages": [{"role": "user", "content": "안녕"}, {"role": "assistant", "content": "안녕하세요"}],
                "source": "t", "id": "3"},
               {"prompt": "질문3", "source": "u", "id": "4"}]
    write_jsonl(tmp_path / "kept.jsonl", records)
    src = read_source(tmp_path / "kept.jsonl")
    assert src.format == "records" and src.records == records and src.kinds == ["preference", "prompt", "sft"]


@pytest.mark.parametrize("fmt", ["kochatgpt-sft", "json"])
def test_forced_format(shared_data, fmt):
    src = read_source(shared_data / "kochatgpt" / "kochatgpt_1_SFT.sample.jsonl", fmt)
    assert src.records[0]["prompt"] == "불고기용 고기 한우에요?"


FIXTURES = Path(__file__).parent / "fixtures" / "corpora"


def test_mrc_unanswerable_and_object_answers_are_skipped_or_read_not_fatal():
    src = read_source(FIXTURES / "aihub_mrc.json")
    assert [(r["id"], r["response"]) for r in src.records] == [("q1", "해운대구"), ("q2", "150원"), ("q4", "부산광역시")]
    assert [(r["id"], r["reasons"]) for r in src.rejected] == [("q3", ["unanswerable"])]
    assert src.rejected[0]["record"]["is_impossible"] is True
    assert any("skipped 1 record(s), unanswerable" in n for n in src.notes)


def test_a_layout_that_fits_no_record_is_still_an_error(tmp_path):
    path = tmp_path / "custom.json"
    path.write_text(json.dumps({"items": [{"q": "서울의 인구는?", "answer": "약 940만 명입니다."}]}, ensure_ascii=False))
    with pytest.raises(KorlhfError, match=r"record 1: malformed: 'a' not found for response .*no record"):
        read_source(path, "aihub", {"records": "items[]", "prompt": "q", "response": "a"})


def test_dialogue_roles_by_speaker_and_multi_party():
    sns = read_source(FIXTURES / "aihub_sns.json")
    two, three = sns.records
    assert [m["role"] for m in two["messages"]] == ["user", "assistant", "user"]
    # Three speakers: P02 (the second speaker) is the assistant, P01 and P03 together the user.
    assert three["messages"] == [{"role": "user", "content": "이사 날짜 정했어?"},
                                 {"role": "assistant", "content": "다음 주 토요일 #@주소#로 가"},
                                 {"role": "user", "content": "나도 도와줄게 #@이모티콘#"},
                                 {"role": "assistant", "content": "고마워 짜장면 살게"}]
    chosen = read_source(FIXTURES / "nikl_messenger.json", column_map={"assistant": "P1"}).records[0]["messages"]
    assert [m["role"] for m in chosen] == ["assistant", "user", "assistant", "user"]
    assert chosen[1]["content"] == "세 시요 &company-name1& 사람들도 온대요 아 그럼 저도 들어갈게요"
    strict = read_source(FIXTURES / "aihub_sns.json", column_map={"multi_party": "reject"})
    assert [r["id"] for r in strict.records] == ["aihub-dialogue-1"]
    assert strict.rejected[0]["reasons"] == ["multi_party"] and strict.rejected[0]["detail"].endswith("record 2: multi_party: 3 speakers (multi_party=reject)")
