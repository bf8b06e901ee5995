"""`korlhf eval judge` against a real chat-completions server on 127.0.0.1 (tests/judge_server.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from judge_server import JudgeServer, always_a, hangul_judge

from korlhf.errors import KorlhfError
from korlhf.evaluation import judge
from korlhf.evaluation.judge_data import parse_rating, parse_winner
from korlhf.label.cache import JudgeCache
from korlhf.records import read_jsonl

KEY = "sk-korlhf-judge-test-SECRET"
KOREAN, ENGLISH = "서울은 대한민국의 수도입니다.", "Seoul is the capital of Korea."
TWO_SYSTEM_NOTE = "두 번째 사용자 질문에 대한 어시스턴트의 답변에 집중하여 평가하세요."


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("KORLHF_TEST_KEY", KEY)


def write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def bench(tmp_path):
    """Three questions (FastChat format) and two models' answers: korlhf generate and FastChat formats."""
    questions = write(tmp_path / "question.jsonl", [
        {"question_id": 81, "category": "writing", "turns": ["여행 블로그 글을 써 줘.", "모든 문장을 ㅎ으로 시작해 줘."]},
        {"question_id": 111, "category": "math", "turns": ["2+3은?", "거기에 4를 곱하면?"],
         "reference": ["5입니다.", "20입니다."]},
        {"question_id": 7, "category": "humanities", "turns": ["한글을 만든 사람은?"]}])
    sft = write(tmp_path / "sft.jsonl", [  # korlhf generate output: the question's keys, then choices
        {"question_id": 81, "category": "writing", "turns": ["여행 블로그 글을 써 줘.", "모든 문장을 ㅎ으로 시작해 줘."],
         "choices": [{"index": 0, "turns": [KOREAN, KOREAN]}], "response": KOREAN},
        {"question_id": 111, "category": "math", "turns": ["2+3은?", "거기에 4를 곱하면?"],
         "reference": ["5입니다.", "20입니다."], "choices": [{"index": 0, "turns": ["5입니다.", "20입니다."]}],
         "response": "20입니다."},
        {"question_id": 7, "category": "humanities", "turns": ["한글을 만든 사람은?"],
         "choices": [{"index": 0, "turns": ["세종대왕입니다."]}], "response": "세종대왕입니다."}])
    base = write(tmp_path / "base.jsonl", [  # FastChat model_answer
        {"question_id": qid, "answer_id": f"a{qid}", "model_id": "base", "tstamp": 0.0,
         "choices": [{"index": 0, "turns": turns}]}
        for qid, turns in [(81, [KOREAN, ENGLISH]), (111, [ENGLISH, "스물입니다."]), (7, ["Sejong the Great."])]])
    return {"questions": questions, "sft": sft, "base": base}


def config(tmp_path, server, answers, **kw) -> judge.Config:
    fields = dict(answers=answers, output_dir=str(tmp_path / "judge"), base_url=server.base_url,
                  judge_model="judge-1", api_key_env="KORLHF_TEST_KEY", concurrency=2, timeout=0.5, max_retries=3,
                  backoff_base=0.01, backoff_max=2.0)
    return judge.Config(**{**fields, **kw})


def test_parsers_read_verdicts_as_fastchat_does():
    assert parse_rating("점수: [[7]]") == 7.0 and parse_rating("[[8.5]] 그리고 [[2]]") == 8.5
    assert parse_rating("점수: [6]") == 6.0 and parse_rating("[[11]]") is None and parse_rating("점수: 7") is None
    assert parse_winner("판정: [[B]]") == "B" and parse_winner("[[C]]") == "tie" and parse_winner("B가 낫다") is None
    assert parse_winner("[[B]] ... [[A]]") == "A"  # FastChat checks [[A]] first


def test_single_grading_per_turn_with_references_and_exact_prompts(tmp_path, bench):
    with JudgeServer(hangul_judge, key=KEY) as server:
        results = judge.main(config(tmp_path, server, [bench["sft"], bench["base"]], questions=bench["questions"]))
        # 2 models x (2 + 2 + 1 turns), less one: both models answered turn 1 of question 81 alike,
        # and the identical request is asked once
        assert server.outcomes() == {"ok": 2 * 5 - 1}
    rows = {r["model"]: r for r in results["table"]["rows"]}
    assert results["table"]["columns"] == ["writing", "math", "humanities", "turn 1", "turn 2", "average", "judged",
                                           "failed"]
    assert rows["sft"] == {"model": "sft", "writing": 10.0, "math": 10.0, "humanities": 10.0, "turn 1": 10.0,
                           "turn 2": 10.0, "average": 10.0, "judged": 5, "failed": 0}
    # base: 81 -> 10, 1; 111 -> 1 (English), 10; 7 -> 1 (English)
    assert rows["base"] == {"model": "base", "writing": 5.5, "math": 5.5, "humanities": 1.0, "turn 1": 4.0,
                            "turn 2": 5.5, "average": 4.6, "judged": 5, "failed": 0}
    lines = [r for _, r in read_jsonl(tmp_path / "judge" / "judge-1_single.jsonl")]
    assert set(lines[0]) == {"question_id", "category", "model", "judge", "user_prompt", "judgment", "score", "turn",
                             "tstamp"}
    got = {(r["question_id"], r["turn"], r["model"]): r for r in lines}
    general = got[(7, 1, "sft")]
    assert general["judge"] == ["judge-1", "single-v1"]
    assert general["user_prompt"].endswith("[질문]\n한글을 만든 사람은?\n\n[어시스턴트 답변 시작]\n세종대왕입니다.\n"
                                           "[어시스턴트 답변 끝]")
    assert general["user_prompt"].startswith("[지시]\n공정한 심판으로서 아래에 표시된 사용자 질문에 대한 AI")
    math = got[(111, 1, "base")]
    assert math["judge"] == ["judge-1", "single-math-v1"] and math["score"] == 1.0
    assert math["user_prompt"].endswith("[질문]\n2+3은?\n\n[참고 답변 시작]\n5입니다.\n[참고 답변 끝]\n\n"
                                        f"[어시스턴트 답변 시작]\n{ENGLISH}\n[어시스턴트 답변 끝]")
    second = got[(81, 2, "base")]
    assert second["judge"] == ["judge-1", "single-v1-multi-turn"] and second["score"] == 1.0
    assert second["user_prompt"] == (
        "<|어시스턴트 A와 사용자의 대화 시작|>\n\n### 사용자:\n여행 블로그 글을 써 줘.\n\n### 어시스턴트 A:\n"
        f"{KOREAN}\n\n### 사용자:\n모든 문장을 ㅎ으로 시작해 줘.\n\n### 어시스턴트 A:\n{ENGLISH}\n\n"
        "<|어시스턴트 A와 사용자의 대화 끝|>")
    math_two = got[(111, 2, "base")]
    assert math_two["judge"] == ["judge-1", "single-math-v1-multi-turn"] and math_two["score"] == 10.0
    assert math_two["user_prompt"] == (
        "<|참고 답변 시작|>\n\n### 사용자:\n2+3은?\n\n### 참고 답변:\n5입니다.\n\n### 사용자:\n거기에 4를 곱하면?\n\n"
        "### 참고 답변:\n20입니다.\n\n<|참고 답변 끝|>\n\n\n<|어시스턴트 A와 사용자의 대화 시작|>\n\n### 사용자:\n"
        f"2+3은?\n\n### 어시스턴트 A:\n{ENGLISH}\n\n### 사용자:\n거기에 4를 곱하면?\n\n### 어시스턴트 A:\n"
        "스물입니다.\n\n<|어시스턴트 A와 사용자의 대화 끝|>")
    out = tmp_path / "judge"
    assert "| sft | 10.00 | 10.00 | 10.00 |" in (out / "results.md").read_text(encoding="utf-8")
    assert (out / "results.png").stat().st_size > 0 and (out / "results.csv").is_file()


def test_pairwise_both_orders_and_win_rate_against_a_baseline(tmp_path, bench):
    with JudgeServer(hangul_judge, key=KEY) as server:
        results = judge.main(config(tmp_path, server, [bench["sft"], bench["base"]], mode="pairwise",
                                    baseline="base"))
        # 5 turns x both orders, less one: turn 1 of question 81 has the same answer twice, so both orders
        # are one identical request
        assert server.outcomes() == {"ok": 5 * 2 - 1}
    [row] = results["table"]["rows"]  # the baseline's own row is left out
    # sft vs base: 81 t1 tie (both Korean), 81 t2 win, 111 t1 win, 111 t2 tie, 7 win
    assert row == {"model": "sft", "win": 3, "loss": 0, "tie": 2, "win_rate": 0.6, "loss_rate": 0.0,
                   "win_rate_adjusted": 0.8, "writing": 0.75, "math": 0.75, "humanities": 1.0, "turn 1": 0.8333,
                   "turn 2": 0.75, "failed": 0}
    lines = {(r["question_id"], r["turn"]): r for _, r in read_jsonl(tmp_path / "judge" / "judge-1_pair.jsonl")}
    first = lines[(7, 1)]
    assert (first["model_1"], first["model_2"], first["g1_winner"], first["g2_winner"]) == ("sft", "base", "model_1",
                                                                                              "model_1")
    assert first["judge"] == ["judge-1", "pair-v2"]
    assert first["g1_user_prompt"] == ("[사용자 질문]\n한글을 만든 사람은?\n\n[어시스턴트 A의 답변 시작]\n세종대왕입니다.\n"
                                       "[어시스턴트 A의 답변 끝]\n\n[어시스턴트 B의 답변 시작]\nSejong the Great.\n"
                                       "[어시스턴트 B의 답변 끝]")
    assert "[어시스턴트 A의 답변 시작]\nSejong the Great." in first["g2_user_prompt"]
    assert lines[(111, 2)]["judge"] == ["judge-1", "pair-math-v1-multi-turn"]
    assert "### 참고 답변:\n20입니다." in lines[(111, 2)]["g1_user_prompt"]


def test_a_judge_that_always_picks_a_gives_ties_only(tmp_path, bench):
    with JudgeServer(always_a, key=KEY) as server:
        results = judge.main(config(tmp_path, server, [bench["sft"], bench["base"]], mode="pairwise"))
    [row] = results["table"]["rows"][:1]
    assert (row["win"], row["loss"], row["tie"], row["win_rate_adjusted"]) == (0, 0, 5, 0.5)
    assert {r["g1_winner"] + "/" + r["g2_winner"] for _, r in read_jsonl(tmp_path / "judge" / "judge-1_pair.jsonl")} \
        == {"model_1/model_2"}


def test_faults_are_retried_and_bad_verdicts_never_guessed(tmp_path, bench):
    replies = iter(["점수: [[11]]", "점수를 매기기 어렵습니다.", "점수: [[0]]"])

    def sloppy(body):  # three bad verdicts first, then a real judge
        return next(replies, None) or hangul_judge(body)

    faults = ["429", "500", "malformed", "empty"]
    with JudgeServer(sloppy, key=KEY, faults=faults, retry_after="0") as server:
        results = judge.main(config(tmp_path, server, [bench["sft"]], questions=bench["questions"], concurrency=1))
        assert server.outcomes() == {"ok": 5, "429": 1, "500": 1, "malformed": 1, "empty": 1}
    assert results["api"]["retries"] == {"HTTP 429": 1, "HTTP 500": 1, "malformed response": 1, "empty content": 1}
    scores = [r["score"] for _, r in read_jsonl(tmp_path / "judge" / "judge-1_single.jsonl")]
    assert sorted(scores) == [-1, -1, -1, 10.0, 10.0] and results["failed"] == 3
    assert results["table"]["rows"][0]["judged"] == 2 and results["table"]["rows"][0]["average"] == 10.0
    # temperature 0: the bad verdicts are cached answers; a rerun asks nothing again
    with JudgeServer(hangul_judge, key=KEY) as server:
        again = judge.main(config(tmp_path, server, [bench["sft"]], questions=bench["questions"]))
        assert server.outcomes() == {} and again["api"]["cache_hits"] == 5


def test_above_temperature_zero_a_bad_verdict_is_asked_again(tmp_path, bench):
    with JudgeServer(lambda body: "점수: [[12]]", key=KEY) as server:
        results = judge.main(config(tmp_path, server, [bench["sft"]], questions=bench["questions"], limit=1,
                                    judge_temperature=0.7, parse_retries=1))
        assert server.outcomes() == {"ok": 2 * 2}  # 2 turns, each asked twice
    assert results["failed"] == 2 and results["api"]["retries"] == {"no verdict": 2}
    lines = [r for _, r in read_jsonl(tmp_path / "judge" / "judge-1_single.jsonl")]
    assert [r["score"] for r in lines] == [-1, -1]
    assert lines[0]["error"] == "no verdict in the judge's answer after 2 tries: '점수: [[12]]'"
    assert JudgeCache(tmp_path / "judge" / "judge_cache.jsonl").entries == {}


def test_killed_run_resumes_without_asking_twice(tmp_path, bench):
    many = write(tmp_path / "many.jsonl", [
        {"question_id": i, "category": "writing", "turns": [f"{i}번 질문"],
         "choices": [{"index": 0, "turns": [f"{i}번 답: {KOREAN}"]}]} for i in range(12)])
    with JudgeServer(hangul_judge, key=KEY, gate_after=5) as server:
        cfg = config(tmp_path, server, [many])
        args = [f"--{k}={v}" for k, v in [("answers", many), ("output_dir", cfg.output_dir),
                                          ("base_url", cfg.base_url), ("judge_model", cfg.judge_model),
                                          ("api_key_env", cfg.api_key_env), ("concurrency", 2), ("timeout", 30)]]
        proc = subprocess.Popen([sys.executable, "-m", "korlhf", "eval", "judge", *args],
                                env={**os.environ, "TQDM_DISABLE": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while server.outcomes()["held"] < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stderr.close()
        server.release()
        cached = set(JudgeCache(tmp_path / "judge" / "judge_cache.jsonl").entries)
        assert 3 <= len(cached) <= 5 and not (tmp_path / "judge" / "results.json").exists()
        start = len(server.log)
        results = judge.main(cfg)
        asked = [k for k, _, _ in server.log[start:]]
        assert not set(asked) & cached and len(asked) == 12 - len(cached)
    assert results["api"]["cache_hits"] == len(cached) and results["failed"] == 0
    assert results["table"]["rows"][0]["average"] == 10.0
    for path in (tmp_path / "judge").rglob("*"):
        assert KEY.encode() not in path.read_bytes(), path


def test_bad_inputs_are_named(tmp_path, bench):
    server = JudgeServer(hangul_judge, key=KEY)
    partial = write(tmp_path / "partial.jsonl", [{"question_id": 81, "choices": [{"turns": [KOREAN, KOREAN]}]}])
    with pytest.raises(KorlhfError) as err:
        judge.main(config(tmp_path, server, [bench["sft"], partial], questions=bench["questions"]))
    assert str(err.value) == (f"{partial}: no answer to question_id 111 ({bench['questions']}:2); every model must "
                              "answer every question (or judge fewer with --limit)")
    no_ref = write(tmp_path / "q.jsonl", [{"question_id": 1, "category": "coding", "turns": ["정렬 함수를 짜 줘."]}])
    with pytest.raises(KorlhfError) as err:
        judge.main(config(tmp_path, server, [bench["sft"]], questions=no_ref))
    assert str(err.value) == (f"{no_ref}:1: category 'coding' is judged against a reference answer, but the question "
                              "has 0 reference turn(s) for 1 turn(s); add 'reference' (one answer per turn), pass "
                              "--references FILE, or change reference_categories")
    with pytest.raises(KorlhfError) as err:
        judge.main(config(tmp_path, server, [bench["sft"], bench["base"]], mode="pairwise", baseline="gpt"))
    assert str(err.value) == "baseline 'gpt' is not one of the models: sft, base"


def test_answers_of_a_pipeline_run_are_judged_into_its_report(tmp_path):
    from types import SimpleNamespace

    from korlhf.report import pipeline_report

    run = tmp_path / "runs" / "demo"
    (run / "generate").mkdir(parents=True)
    (run / "pipeline.yaml").write_text("name: demo\n", encoding="utf-8")
    held_out = [("eval-1", "수도는?", "서울입니다."), ("eval-2", "색은?", "파란색입니다.")]
    sft = write(run / "generate" / "sft.jsonl", [{"id": i, "prompt": p, "response": r, "reference": r}
                                                 for i, p, r in held_out])
    base = write(run / "generate" / "base.jsonl", [{"id": "eval-1", "prompt": "수도는?", "response": ENGLISH,
                                                    "reference": "서울입니다."},
                                                   {"id": "eval-2", "prompt": "색은?", "response": KOREAN,
                                                    "reference": "파란색입니다."}])
    assert judge.default_output_dir([sft, f"base={base}"]) == run / "judge"
    assert judge.default_output_dir([str(tmp_path / "elsewhere.jsonl")]) == Path("runs/judge")
    with JudgeServer(hangul_judge, key=KEY) as server:
        results = judge.main(config(tmp_path, server, [sft, base], output_dir=None))
    assert results["judgment_file"] == str(run / "judge" / "judge-1_single.jsonl")
    assert "output_dir: " + str(run / "judge") in (run / "judge" / "config.yaml").read_text(encoding="utf-8")
    text = pipeline_report(run, SimpleNamespace(title="demo", note="")).read_text(encoding="utf-8")
    section = text[text.index("<h2>LLM judge (korlhf eval judge)</h2>"):]
    assert section.startswith("<h2>LLM judge (korlhf eval judge)</h2><p>single judging by judge-1 (korlhf (Korean) "
                              "prompts): 2 questions, 4 judgments, 0 without a verdict. Judgments: <code>")
    # sft: Korean twice -> 10, 10; base: English -> 1, Korean -> 10
    assert ("<table><tr><th>model</th><th>general</th><th>turn 1</th><th>average</th><th>judged</th><th>failed</th>"
            "</tr><tr><td>sft</td><td>10.00</td><td>10.00</td><td>10.00</td><td>2</td><td>0</td></tr>"
            "<tr><td>base</td><td>5.50</td><td>5.50</td><td>5.50</td><td>2</td><td>0</td></tr></table>"
            "<img src='data:image/png;base64,") in section
