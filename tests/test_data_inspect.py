"""`korlhf data inspect`: counts and examples of every check, on the real PPO file and on a crafted one."""

import json
import unicodedata

import pytest

from korlhf.data import inspect


@pytest.fixture(scope="module")
def ppo_report(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("inspect")
    files = [str(shared_data / "kochatgpt" / n) for n in ("kochatgpt_3_PPO.jsonl", "kochatgpt_2_RM.sample.jsonl")]
    return inspect.main(inspect.Config(files=files, out=str(out))), out


def test_ppo_duplicates_and_empties(ppo_report):
    report, _ = ppo_report
    checks = report["files"][0]["checks"]
    assert report["files"][0]["records"] == 12000
    assert checks["duplicate_prompt"]["count"] == 54
    assert checks["empty_prompt"]["count"] == 3
    assert checks["empty_prompt"]["examples"][0] == {"id": "kochatgpt-ppo-6331", "text": "''"}
    assert checks["placeholder"]["count"] > 0 and checks["mostly_english"]["count"] > 0
    assert checks["leaked_field"]["count"] > 0
    # Questions judged as questions: 14 of 11,997 end mid-sentence (the old rule: 4,048), shown with
    # how each ends so a user can judge the flag.
    assert checks["truncated"]["count"] == 14
    assert checks["truncated"]["examples"] == [
        {"id": "kochatgpt-ppo-944", "text": "[particle] 이사때문에 지금 수도요금 그거 어떻게 해야 되는지 그 말씀 좀 여쭤볼라고 제가"},
        {"id": "kochatgpt-ppo-1837", "text": "[linking_particle] 버스 멀미나"},
        {"id": "kochatgpt-ppo-3160", "text": "[stem] 면도하기 귀찮"}]


def test_rm_sample_and_overlap(ppo_report):
    report, out = ppo_report
    rm = report["files"][1]["checks"]
    assert rm["truncated"]["examples"] == [{"id": "kochatgpt-rm-2", "text": "[noun] 이날 목송에서 구글상위노"}]
    # The RM prompts are a subset of the PPO prompts: nothing was held out between stages.
    assert report["overlap"] == [{"a": "#1", "b": "#2", "shared_prompts": 3}]
    written = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert written["files"][0]["checks"]["duplicate_prompt"]["count"] == 54
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "| duplicate_prompt | 54 (0.5%) | 0 |" in markdown


def test_each_check_on_crafted_records(tmp_path):
    rows = [
        {"prompt": "김치 만드는 법", "response": "'저는 인공지능 챗봇이라 요리를 할 수 없습니다."},
        {"prompt": "연락처", "response": "010-1234-5678로 전화 주세요. 메일은 a@b.com입니다."},
        {"prompt": "#이름#님 예약", "response": "네, 확인했습니다."},
        {"prompt": unicodedata.normalize("NFD", "한국어"), "response": "The answer is in English, sorry about that."},
        {"prompt": "질문", "response": "답변이 중간에 끊"},
        {"prompt": "반복", "response": "좋아요 정말 좋아요 " * 8 + "끝."},
    ]
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    rm = tmp_path / "rm.jsonl"
    rm.write_text(json.dumps({"prompt": "p", "responses": ["같다", "같다"]}, ensure_ascii=False) + "\n", encoding="utf-8")
    report = inspect.main(inspect.Config(files=[str(path), str(rm)], near_dedup=False))
    counts = {c: v["count"] for c, v in report["files"][0]["checks"].items() if v["count"]}
    assert counts == {"refusal": 1, "stray_quote": 1, "pii": 1, "placeholder": 1, "nfd": 1, "mostly_english": 1,
                      "truncated": 1, "repetitive": 1}
    assert report["files"][0]["checks"]["pii"]["by_type"] == {"mobile": 1, "email": 1}
    assert report["files"][1]["checks"]["tied_responses"]["count"] == 1


def test_role_confusion_and_skipped_records_are_shown(tmp_path):
    from pathlib import Path

    dialogue = {"messages": [{"role": "user", "content": "괜찮습니다. 무엇을 도와드릴까요?"},
                             {"role": "assistant", "content": "기분 괜찮으셨나요?"}]}
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(dialogue, ensure_ascii=False) + "\n", encoding="utf-8")
    mrc = Path(__file__).parent / "fixtures" / "corpora" / "aihub_mrc.json"
    report = inspect.main(inspect.Config(files=[str(path), str(mrc)], near_dedup=False))
    confused = report["files"][0]["checks"]["role_confusion"]
    assert confused == {"count": 1, "examples": [{"id": "d-1", "text": "괜찮습니다. 무엇을 도와드릴까요?"}]}
    skipped = report["files"][1]["checks"]["skipped"]
    assert skipped["count"] == 1 and skipped["examples"][0]["id"] == "q3"
    assert skipped["examples"][0]["text"].startswith("record 3: unanswerable: the question has no answer")
    assert report["files"][1]["notes"][-1].endswith("skipped 1 record(s), unanswerable (kept in rejected.jsonl by data clean)")
    assert report["files"][1]["checks"]["truncated"]["count"] == 0  # "해운대구", "150원" are whole answers


def test_token_lengths_with_a_tokenizer(tmp_path, tiny_tokenizer):
    tiny_tokenizer.save_pretrained(tmp_path / "tok")
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "한국어 문장입니다"}\n{"prompt": "두 번째 질문이에요"}\n', encoding="utf-8")
    report = inspect.main(inspect.Config(files=[str(path)], tokenizer=str(tmp_path / "tok")))
    lengths = {(x["field"], x["unit"]): x for x in report["files"][0]["lengths"]}
    assert lengths[("prompt", "chars")]["max"] == 10
    # exactly the tokenizer's own count (its vocabulary depends on whether ../shared was there to train on)
    expected = max(len(tiny_tokenizer(t, add_special_tokens=False)["input_ids"]) for t in ("한국어 문장입니다", "두 번째 질문이에요"))
    assert lengths[("prompt", "tokens")]["max"] == expected
