"""The api judge against a real chat-completions server on 127.0.0.1 (tests/judge_server.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from judge_server import JudgeServer, always_a, hangul_judge

from korlhf.errors import KorlhfError
from korlhf.label.cache import JudgeCache
from korlhf.label.prompts import parse_pairwise, parse_score
from korlhf.label.stage import Config, main
from korlhf.records import load_records, read_jsonl

KEY = "sk-korlhf-test-7f3a9c-SECRET"
KOREAN, MIXED, ENGLISH = "서울은 대한민국의 수도입니다.", "Seoul은 대한민국의 capital입니다.", "Seoul is the capital of Korea."


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("KORLHF_TEST_KEY", KEY)


def write(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return str(path)


def config(tmp_path, server, inputs, **kw) -> Config:
    fields = dict(inputs=[inputs], output_dir=str(tmp_path / "run"), base_url=server.base_url, judge_model="judge-1",
                  api_key_env="KORLHF_TEST_KEY", concurrency=2, timeout=0.5, max_retries=3, backoff_base=0.01,
                  backoff_max=2.0, price_input=1.0, price_output=2.0)
    return Config(**{**fields, **kw})


def generated(tmp_path, n=4) -> str:
    """`korlhf generate`-style lines: unranked samples in a shuffled order, distinct prompts."""
    orders = [[ENGLISH, KOREAN, MIXED], [MIXED, ENGLISH, KOREAN], [KOREAN, MIXED, ENGLISH], [ENGLISH, MIXED, KOREAN]]
    return write(tmp_path / "gen.jsonl", [
        {"id": f"q{i}", "prompt": f"{i}번 질문: 한국의 수도는?", "responses": orders[i % 4],
         "finish_reasons": ["eos"] * 3, "settings": {"model": "runs/sft"}} for i in range(n)])


def test_parsers():
    assert parse_pairwise("설명... 최종 판정: [[A]]") == "A"
    assert parse_pairwise("형식은 [[A]] 또는 [[B]]입니다. 판정: [[ b ]]") == "B"  # the last marker counts
    assert parse_pairwise("비슷합니다 [[C]]") == "tie" and parse_pairwise("［［B］］") == "B"
    assert parse_pairwise("A가 낫습니다") is None and parse_pairwise("") is None and parse_pairwise(None) is None
    assert parse_score("점수: [[7]]") == 7.0 and parse_score("점수：[[ 8.5 ]]") == 8.5 and parse_score("[[6/10]]") == 6.0
    assert parse_score("점수: 7") is None and parse_score("점수: [[11]]") is None and parse_score("[[0]]") is None


def test_hangul_judge_ranks_end_to_end_and_counts_tokens(tmp_path):
    with JudgeServer(hangul_judge, key=KEY) as server:
        metrics = main(config(tmp_path, server, generated(tmp_path)))
        assert server.outcomes() == {"ok": 4 * 3 * 2}  # 4 prompts x 3 pairs x both orders
    prefs = load_records(tmp_path / "run" / "preferences.jsonl", "preference")
    assert [r["id"] for r in prefs] == ["q0", "q1", "q2", "q3"]
    for record in prefs:
        assert record["responses"] == [KOREAN, MIXED, ENGLISH]
        assert record["scores"] == [2.0, 1.0, 0.0]  # Copeland: wins + 1/2 per tie
        assert {c["source"] for c in record["candidates"]} == {"runs/sft"}
        assert all(j["position_consistent"] and "한글 비율" in j["rationale"][0] for j in record["judgments"])
        assert record["judge"].startswith("api:judge-1 (pairwise")
    api = metrics["api"]
    assert (api["requests"], api["cache_hits"], api["prompt_tokens"], api["completion_tokens"]) == (24, 0, 2400, 240)
    assert api["cost_usd"] == pytest.approx((2400 * 1.0 + 240 * 2.0) / 1e6)


def test_pointwise_mode_and_agreement_with_input_ranking(tmp_path):
    # Preference inputs carry a ranking: two records ranked right, two reversed -> agreement 1/2.
    records = [{"id": f"p{i}", "prompt": f"{i}번: 수도는?", "responses": [KOREAN, MIXED, ENGLISH][:: 1 if i < 2 else -1]}
               for i in range(4)]
    with JudgeServer(hangul_judge, key=KEY) as server:
        metrics = main(config(tmp_path, server, write(tmp_path / "pref.jsonl", records), mode="pointwise"))
        assert server.outcomes() == {"ok": 4 * 3}  # one request per candidate
    prefs = load_records(tmp_path / "run" / "preferences.jsonl", "preference")
    assert all(r["responses"] == [KOREAN, MIXED, ENGLISH] for r in prefs)
    assert prefs[0]["scores"][0] == 10.0 and prefs[0]["scores"][2] == 1.0
    agreement = json.loads((tmp_path / "run" / "agreement.json").read_text(encoding="utf-8"))
    assert agreement["pairs_compared"] == 12 and agreement["agreement"] == 0.5
    assert metrics["agreement_with_input_ranking"]["agreement"] == 0.5
    assert "Cohen's kappa" in (tmp_path / "run" / "agreement.md").read_text(encoding="utf-8")


def test_always_a_judge_is_debiased_into_ties(tmp_path):
    with JudgeServer(always_a, key=KEY) as server:
        main(config(tmp_path, server, generated(tmp_path, n=2)))
    run = tmp_path / "run"
    assert load_records(run / "unranked.jsonl", "prompt") and not list(read_jsonl(run / "preferences.jsonl"))
    for _, record in read_jsonl(run / "unranked.jsonl"):
        assert record["reason"] == "the judge found no difference between the 3 candidates"
        assert all(j["verdicts"] == ["A", "A"] and j["winner"] is None and not j["position_consistent"]
                   for j in record["judgments"])
        assert [c["score"] for c in record["candidates"]] == [1.0, 1.0, 1.0]


def test_faults_are_retried_and_cached_and_rerun_pays_nothing(tmp_path):
    faults = ["429", "500", "timeout", "malformed", "empty"]
    with JudgeServer(hangul_judge, key=KEY, faults=faults, retry_after="1", slow_s=1.0) as server:
        metrics = main(config(tmp_path, server, generated(tmp_path, n=2)))
        answered = server.answered()
        assert len(answered) == 12 and set(answered.values()) == {1}  # each question answered once
        assert server.outcomes() == {"ok": 12, "429": 1, "500": 1, "timeout": 1, "malformed": 1, "empty": 1}
        rate_limited = next(k for k, outcome, _ in server.log if outcome == "429")
        times = [t for k, _, t in server.log if k == rate_limited]
        assert times[1] - times[0] >= 0.9  # Retry-After: 1 was honoured
        assert metrics["api"]["retries"] == {"HTTP 429": 1, "HTTP 500": 1, "timeout": 1, "malformed response": 1,
                                             "empty content": 1}
        assert metrics["preferences"] == 2 and metrics["failed"] == 0
        before = len(server.log)
        again = main(config(tmp_path, server, generated(tmp_path, n=2), overwrite=True))
        assert len(server.log) == before  # everything came from the cache
        assert again["api"]["cache_hits"] == 12 and again["api"]["requests"] == 0
        assert again["api"]["saved_by_cache"]["prompt_tokens"] == 1200
    assert len(JudgeCache(tmp_path / "run" / "judge_cache.jsonl")) == 12


def test_unparseable_answer_is_retried_then_failed_never_guessed(tmp_path):
    with JudgeServer(lambda body: "두 답변 모두 좋습니다.", key=KEY) as server:
        with pytest.raises(KorlhfError) as err:
            main(config(tmp_path, server, generated(tmp_path, n=1), parse_retries=1))
        assert server.outcomes() == {"ok": 3 * 2 * 2}  # each question asked twice, then given up
        run = tmp_path / "run"
        assert str(err.value) == (
            "the judge failed on 1 of 1 item(s) (first: no verdict in the judge's answer after 2 tries: "
            "'두 답변 모두 좋습니다.'); "
            f"they are in {run / 'failed.jsonl'}. Run the same command again to ask only what failed (answers "
            "already given are cached), or accept a share with --max_failed_share 0.1")
        assert not (run / "metrics.json").exists()  # not finished: the same command asks again
        metrics = main(config(tmp_path, server, generated(tmp_path, n=1), parse_retries=1, max_failed_share=1.0))
    failed = [r for _, r in read_jsonl(tmp_path / "run" / "failed.jsonl")]
    assert metrics["failed"] == 1 and metrics["preferences"] == 0 and len(failed) == 1
    assert "no verdict in the judge's answer after 2 tries: '두 답변 모두 좋습니다.'" in failed[0]["error"]
    assert JudgeCache(tmp_path / "run" / "judge_cache.jsonl").entries == {}  # failures are not cached


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_endpoint_fails_at_once_naming_the_url(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    began = time.monotonic()
    with pytest.raises(KorlhfError) as err:
        main(config(tmp_path, JudgeServer(), generated(tmp_path, n=1), base_url=url))
    assert time.monotonic() - began < 20  # not minutes of backoff
    assert str(err.value) == (f"cannot reach the judge endpoint {url}: connection refused; is the server running "
                              "(ollama: `ollama serve`, vLLM: `vllm serve MODEL`) and is the port in base_url right?")
    with pytest.raises(KorlhfError, match="base_url 'localhost:11434/v1' is not a usable URL"):
        main(config(tmp_path, JudgeServer(), generated(tmp_path, n=1), base_url="localhost:11434/v1"))


def test_some_failed_requests_exit_non_zero_unless_tolerated(tmp_path, capsys):
    with JudgeServer(hangul_judge, key=KEY, faults=["500"]) as server:
        with pytest.raises(KorlhfError, match=r"^the judge failed on 1 of 2 item\(s\) \(first: gave up after 1 tries: "
                                              r"HTTP 500\)"):
            main(config(tmp_path, server, generated(tmp_path, n=2), max_retries=0))
        assert f"judge {server.base_url}: a request failed: gave up after 1 tries: HTTP 500" in capsys.readouterr().err
        server.faults = ["500"]
        metrics = main(config(tmp_path, server, generated(tmp_path, n=2), max_retries=0, max_failed_share=0.5))
        assert server.outcomes() == {"ok": 11, "500": 2}  # the rerun asked only what failed (and it failed again)
    assert metrics["failed"] == 1 and metrics["preferences"] == 1


def test_dead_endpoint_stops_the_run_with_an_error_exit(tmp_path):
    # Every request fails (the 36 of 36 that exited 0): the run stops after 2 x concurrency.
    inputs = generated(tmp_path, n=6)
    with JudgeServer(hangul_judge, faults=["500"] * 100) as server:
        args = [f"--{k}={v}" for k, v in [("inputs", inputs), ("output_dir", tmp_path / "run"), ("api_key_env", ""),
                                          ("base_url", server.base_url), ("judge_model", "judge-1"),
                                          ("concurrency", 2), ("max_retries", 1), ("backoff_base", 0.01)]]
        proc = subprocess.run([sys.executable, "-m", "korlhf", "label", *args], capture_output=True, text=True,
                              env={**os.environ, "TQDM_DISABLE": "1"}, timeout=120)
        assert server.outcomes()["500"] <= 2 * (4 + 2)  # 4 given up (2 tries each), at most 2 more in flight
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"judge {server.base_url}: HTTP 500; retrying (at most 1 times per request)" in proc.stderr
    assert (f"error: the judge endpoint {server.base_url} failed 4 requests in a row (last: gave up after 2 tries: "
            "HTTP 500); stopped. Answers so far are cached: run the same command again once the endpoint works "
            "(or raise --max_retries / --timeout)") in proc.stderr


def test_wrong_key_stops_with_a_clear_error_that_hides_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("KORLHF_TEST_KEY", "sk-wrong-SECRET-42")
    with JudgeServer(hangul_judge, key=KEY) as server, pytest.raises(KorlhfError) as err:
        main(config(tmp_path, server, generated(tmp_path, n=1)))
    assert "refused the API key from $KORLHF_TEST_KEY (HTTP 401" in str(err.value)
    assert "SECRET-42" not in str(err.value) and "***" in str(err.value)
    monkeypatch.delenv("KORLHF_TEST_KEY")
    with pytest.raises(KorlhfError, match="environment variable KORLHF_TEST_KEY, which is not set"):
        main(config(tmp_path, JudgeServer(), generated(tmp_path, n=1), overwrite=True))


def test_killed_run_resumes_without_paying_twice_and_key_never_written(tmp_path):
    inputs = generated(tmp_path, n=6)  # 6 x 3 pairs x 2 orders = 36 questions
    with JudgeServer(hangul_judge, key=KEY, gate_after=10) as server:
        cfg = config(tmp_path, server, inputs)
        args = [f"--{k}={v}" for k, v in [("inputs", inputs), ("output_dir", cfg.output_dir), ("base_url", cfg.base_url),
                                          ("judge_model", cfg.judge_model), ("api_key_env", cfg.api_key_env),
                                          ("concurrency", 2), ("timeout", 30)]]
        env = {**os.environ, "TQDM_DISABLE": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "korlhf", "label", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while server.outcomes()["held"] < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)  # mid-run: 10 answers given, 2 requests in flight
        proc.wait(timeout=10)
        proc.stderr.close()
        server.release()
        cached_at_kill = set(JudgeCache(tmp_path / "run" / "judge_cache.jsonl").entries)
        assert 8 <= len(cached_at_kill) <= 10 and not (tmp_path / "run" / "metrics.json").exists()
        resumed_from = len(server.log)
        metrics = main(cfg)
        asked_again = [k for k, outcome, _ in server.log[resumed_from:]]
        assert not set(asked_again) & cached_at_kill  # nothing cached was asked again
        assert len(asked_again) == 36 - len(cached_at_kill)
        assert metrics["api"]["cache_hits"] == len(cached_at_kill)
    ids = [r["id"] for r in load_records(tmp_path / "run" / "preferences.jsonl", "preference")]
    assert sorted(ids) == [f"q{i}" for i in range(6)]  # every record labelled exactly once
    assert metrics["failed"] == 0 and metrics["unranked"] == 0
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
