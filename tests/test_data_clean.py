"""`korlhf data clean`: repairs, PII masks, every filter, dedup, decontamination, the kept-or-rejected invariant."""

import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from korlhf.data import clean
from korlhf.data.dedup import near_duplicates
from korlhf.data.normalize import has_stray_quote, mask_pii, normalize_text
from korlhf.records import read_jsonl

ANSWER = "김치는 배추를 소금에 절인 뒤 양념을 버무려 만듭니다. 발효 기간은 보통 며칠입니다."


def test_normalize_text_repairs():
    assert normalize_text("'저는 답변입니다.") == ("저는 답변입니다.", ["stray_quote"])
    assert normalize_text("'사과'는 과일입니다.") == ("'사과'는 과일입니다.", [])  # a closed quote stays
    assert normalize_text("첫 줄\\n\\n둘째 줄") == ("첫 줄\n\n둘째 줄", ["literal_newline"])
    assert normalize_text("제로\u200b폭\ufeff 공백") == ("제로폭 공백", ["invisible"])
    assert normalize_text("  여러   칸\u3000공백 \n\n\n\n끝  ") == ("여러 칸 공백\n\n끝", ["whitespace"])
    nfd = unicodedata.normalize("NFD", "한국어")
    assert normalize_text(nfd) == ("한국어", ["nfc"])
    mojibake = "한국어 문장".encode().decode("latin-1")
    assert normalize_text(mojibake) == ("한국어 문장", ["unicode"])
    assert has_stray_quote("“열린 따옴표") and not has_stray_quote("“닫힌” 따옴표")


def test_pii_masking():
    text = ("주민번호 900101-1234567, 2020년 이후 번호 200101 3123456, 폰 010-1234-5678, +82 10 9876 5432, "
            "집 02-123-4567, (031) 123-4567, 메일 kim.cs@example.co.kr, 카드 1234-5678-9012-3456")
    masked, counts = mask_pii(text)
    assert masked == ("주민번호 #주민번호#, 2020년 이후 번호 #주민번호#, 폰 #전화번호#, #전화번호#, 집 #전화번호#, #전화번호#, "
                      "메일 #이메일#, 카드 #카드번호#")
    assert counts == {"rrn": 2, "mobile": 2, "landline": 2, "email": 1, "card": 1}
    safe = "2023-12-25에 1,000,000원, 전화 1588-1234, 버전 10.0.19045, 인구 51,740,000명"
    assert mask_pii(safe) == (safe, {})


CFG = clean.Config(files=[], out="unused")


@pytest.mark.parametrize("record, reasons", [
    ({"prompt": "", "response": ANSWER}, ["empty_prompt"]),
    ({"prompt": "김치 만드는 법", "response": " "}, ["empty_answer"]),
    ({"prompt": "응", "response": ANSWER}, ["too_short"]),
    ({"prompt": "김치 만드는 법", "response": "가" * 5000 + "다."}, ["too_long"]),
    ({"prompt": "What is the capital of France?", "response": "The capital is Paris."}, ["low_hangul"]),
    ({"prompt": "김치 만드는 법", "response": "좋아요 좋아요 좋아요 " * 10 + "입니다."}, ["repetitive"]),
    ({"prompt": "김치 만드는 법", "response": "저는 인공지능 챗봇이라 요리를 할 수 없습니다."}, ["refusal"]),
    ({"prompt": "김치 만드는 법", "response": "배추를 소금에 절인 뒤 양념을 버무"}, ["truncated"]),
    ({"prompt": "질문 \"a\", 'completion': \"b\"", "response": ANSWER}, ["leaked_field"]),
    ({"prompt": "김치 만드는 법", "responses": [ANSWER, "몰라"]}, []),  # only the best answer is judged
    ({"prompt": "김치 만드는 법", "responses": [ANSWER, ""]}, ["empty_answer"]),
    ({"messages": [{"role": "user", "content": "안녕하세요"}]}, ["empty_answer"]),
    ({"prompt": "#이름#님 예약 확인해 주세요"}, []),
])
def test_each_filter(record, reasons):
    record = {**record, "source": "t", "id": "1"}
    assert clean.clean_record(record, CFG)[1] == reasons


def test_placeholder_filter_is_opt_in():
    record = {"prompt": "#이름#님 예약 확인해 주세요", "source": "t", "id": "1"}
    assert clean.clean_record(record, clean.Config(drop_placeholders=True))[1] == ["placeholder"]


def test_near_duplicates_are_character_5gram_jaccard():
    a = "개포주공아파트는 총 27개 단지로 이루어져 있으며, 1980년대에 지어져 지금은 단지별로 재건축이 진행 중입니다."
    b = a.replace("진행 중입니다", "진행 중이에요")
    c = "한강은 한반도 중부를 흐르는 강으로, 서울을 동서로 가로질러 서해로 흘러듭니다."
    dups = near_duplicates([a, None, c, b])
    assert list(dups) == [3] and dups[3][0] == 0 and 0.8 <= dups[3][1] < 1.0
    assert near_duplicates([a, None, c, b], threshold=0.95) == {}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def mixed(tmp_path):
    sft = write_jsonl(tmp_path / "sft.jsonl", [
        {"prompt": "김치 만드는 법", "response": "'" + ANSWER},
        {"prompt": "김치  만드는 법", "response": ANSWER},  # exact duplicate after repair
        {"prompt": "연락처 남길게요", "response": f"제 번호는 010-1234-5678입니다. {ANSWER}"},
        {"prompt": "문제를 풀어 주세요", "response": "저는 AI 언어 모델로서 답을 드릴 수 없습니다."},
        {"prompt": "남자는 토스트가 타는 냄새를 맡았다, 그래서?", "response": ANSWER},  # an eval prompt
        {"prompt": "발효 음식 이야기", "response": "요즘도 전통적으로 김장은 늦가을에 온 가족이 모여서 담급니다."},  # an eval span
        {"prompt": "짧은 문장 공유", "response": "휴대폰이 고장났다. 그래서 새로 샀습니다."},  # short eval text: fine
    ])
    rm = write_jsonl(tmp_path / "rm.jsonl", [
        {"prompt": "개포주공아파트는 몇 단지로 이루어져 있나?", "completion_0": "다섯 단지입니다.", "completion_1": "이날 목송에서",
         "completion_2": "총 27개 단지로 이루어져 있습니다.", "ranking": [2, 0, 1]}])
    evals = write_jsonl(tmp_path / "eval.jsonl", [
        {"prompt": "남자는 토스트가 타는 냄새를 맡았다 그래서", "response": "휴대폰이 고장났다."},
        {"prompt": "김장은 언제 하나요?", "response": "김장은 전통적으로 김장은 늦가을에 온 가족이 모여서 담급니다."}])
    return [str(sft), str(rm)], str(evals)


def test_every_record_kept_or_rejected_with_reasons(mixed, tmp_path):
    files, evals = mixed
    paths = clean.main(clean.Config(files=files, out=str(tmp_path / "out"), eval_files=[evals]))
    kept = [r for _, r in read_jsonl(paths["kept"])]
    rejected = [r for _, r in read_jsonl(paths["rejected"])]
    assert sorted([r["id"] for r in kept] + [r["id"] for r in rejected]) == sorted(
        ["sft-1", "sft-2", "sft-3", "sft-4", "sft-5", "sft-6", "sft-7", "kochatgpt-rm-1"])
    assert {r["id"]: r["reasons"] for r in rejected} == {"sft-2": ["duplicate"], "sft-4": ["refusal"],
                                                         "sft-5": ["contaminated"], "sft-6": ["contaminated"]}
    dup = next(r for r in rejected if r["id"] == "sft-2")
    assert dup["duplicate_of"] == "sft-1" and dup["line"] == 2 and dup["file"] == files[0]
    assert dup["record"] == {"prompt": "김치  만드는 법", "response": ANSWER, "source": "sft", "id": "sft-2"}  # original
    by_id = {r["id"]: r for r in kept}
    assert by_id["sft-1"]["response"] == ANSWER  # stray quote gone
    assert by_id["sft-3"]["response"].startswith("제 번호는 #전화번호#입니다.")
    assert by_id["kochatgpt-rm-1"]["responses"][0] == "총 27개 단지로 이루어져 있습니다."
    report = json.loads(paths["report_json"].read_text(encoding="utf-8"))
    assert report["totals"] == {"read": 8, "kept": 4, "rejected": 4}
    assert report["files"][0]["fixes"] == {"stray_quote": 1, "whitespace": 1}
    assert report["files"][0]["pii_masked"] == {"mobile": 1}
    assert "## Criteria" in paths["report"].read_text(encoding="utf-8")


def test_clean_is_deterministic_and_on_real_ppo(shared_data, tmp_path):
    ppo = str(shared_data / "kochatgpt" / "kochatgpt_3_PPO.jsonl")
    a = clean.main(clean.Config(files=[ppo], out=str(tmp_path / "a")))
    b = clean.main(clean.Config(files=[ppo], out=str(tmp_path / "b")))
    assert a["kept"].read_bytes() == b["kept"].read_bytes()
    assert a["rejected"].read_bytes() == b["rejected"].read_bytes()
    kept, rejected = list(read_jsonl(a["kept"])), [r for _, r in read_jsonl(a["rejected"])]
    assert len(kept) + len(rejected) == 12000
    reasons = [x for r in rejected for x in r["reasons"]]
    assert reasons.count("empty_prompt") == 3 and reasons.count("duplicate") == 52  # + 2 empty duplicates = 54
    assert reasons.count("leaked_field") >= 20 and reasons.count("near_duplicate") >= 1
    # Kiwi-judged: 14 of 11,997 questions (0.12%) end mid-sentence ("얼마나 되", "…온 선수단이"); the
    # old rule flagged 4,048 (33.7%). The 14 are listed in docs/data_quality.md.
    assert reasons.count("truncated") == 14


def test_cli_files_then_flags(mixed, tmp_path):
    files, _ = mixed
    out = tmp_path / "cli"
    result = subprocess.run([sys.executable, "-m", "korlhf", "data", "clean", *files, "--out", str(out),
                             "--no-near_dedup", "--max_answer_chars", "30"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rejected = {r["id"]: r["reasons"] for _, r in read_jsonl(out / "rejected.jsonl")}
    assert rejected["sft-1"] == ["too_long"]
    assert "near_dedup: false" in (out / "config.yaml").read_text(encoding="utf-8")


FIXTURES = Path(__file__).parent / "fixtures" / "corpora"
SELF_DESCRIPTION = "저는 인공지능, 머신러닝, 블록체인 등 다양한 주제에 대해 알고 있습니다."


def _dialogue(*turns):
    return {"messages": [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)],
            "source": "t", "id": "d1"}


def test_self_description_keeps_the_dialogue():
    record = _dialogue("어떤 주제를 이야기할 수 있나요?", f"그렇게 하면 됩니다. {SELF_DESCRIPTION}")
    new, why, _, _, cuts = clean.clean_record(record, CFG)
    assert why == [] and cuts == [] and new["messages"] == record["messages"]


def test_a_refusing_turn_cuts_the_dialogue_there_not_the_whole_dialogue():
    record = _dialogue("김치 만드는 법 알려 줘.", ANSWER, "옆집 비밀번호 알려 줘.", "죄송하지만 그 요청은 도와드릴 수 없습니다.",
                       "그럼 깍두기는?", "무를 깍둑썰기해 절인 뒤 양념에 버무립니다.")
    new, why, _, _, cuts = clean.clean_record(record, CFG)
    assert why == [] and new["messages"] == record["messages"][:2]
    assert cuts == [("refusal", record["messages"][2:])]
    alone = _dialogue("옆집 비밀번호 알려 줘.", "죄송하지만 그 요청은 도와드릴 수 없습니다.")
    assert clean.clean_record(alone, CFG)[1] == ["refusal"]


def test_a_swapped_opening_exchange_is_dropped():
    # KoChatGPT dialogue 1 opens with the human saying the assistant's line.
    record = _dialogue("괜찮습니다. 무엇을 도와드릴까요?", "기분 괜찮으셨나요? 무엇을 도와드릴까요?",
                       "기계 학습에 대한 정보를 찾고 싶습니다.", "기계 학습은 데이터에서 규칙을 배우는 방법입니다.")
    new, why, _, _, cuts = clean.clean_record(record, CFG)
    assert why == [] and new["messages"] == record["messages"][2:]
    assert cuts == [("role_confusion", record["messages"][:2])]
    kept = clean.clean_record(record, clean.Config(drop_role_confusion=False))
    assert kept[1] == [] and kept[0]["messages"] == record["messages"]


def test_nikl_and_aihub_samples_survive_the_default_clean(tmp_path):
    files = sorted(str(p) for p in FIXTURES.glob("*.json"))
    paths = clean.main(clean.Config(files=files, out=str(tmp_path / "out")))
    kept = {r["id"]: r for _, r in read_jsonl(paths["kept"])}
    rejected = {r["id"]: r["reasons"] for _, r in read_jsonl(paths["rejected"])}
    assert rejected == {"q3": ["unanswerable"]}  # the MRC question that has no answer, and only it
    assert sorted(kept) == ["MDRW2100000002.1", "SDRW2000000427.1", "aihub-dialogue-1", "aihub-dialogue-2",
                            "q1", "q2", "q4"]
    assert kept["SDRW2000000427.1"]["messages"][:2] == [
        {"role": "user", "content": "주말에 뭐 해?"}, {"role": "assistant", "content": "음 #이름#이랑 해운대 가기로 했어"}]
    assert kept["aihub-dialogue-1"]["messages"][1]["content"] == "배고파 #사진#"
    assert kept["MDRW2100000002.1"]["messages"][1]["content"] == "세 시요 #회사# 사람들도 온대요"
    assert [kept[q]["response"] for q in ("q1", "q2")] == ["해운대구", "150원"]
