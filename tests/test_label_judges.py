"""The rules, reward-model and benchmark judges, model candidates, the agreement report and the CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from korlhf.errors import KorlhfError
from korlhf.label import agree
from korlhf.label.judges import rule_score
from korlhf.label.stage import Config, main
from korlhf.records import load_records, read_jsonl

KOREAN = "김치찌개는 김치와 돼지고기를 넣고 끓이면 됩니다."


def write(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return str(path)


def test_rule_score_prefers_a_finished_korean_answer():
    prompt = "김치찌개 끓이는 법을 알려줘"
    good, good_notes = rule_score(prompt, KOREAN)
    english, notes = rule_score(prompt, "Put kimchi and pork in a pot and boil it.")
    refusal, refusal_notes = rule_score(prompt, "죄송하지만 저는 AI 언어 모델로서 요리를 할 수 없습니다.")
    cut, cut_notes = rule_score(prompt, "김치찌개는 김치와 돼지고기를 넣고")
    assert good > cut > english and good > refusal
    assert "한국어 답변이 아님" in notes and "거절/상투 문구" in refusal_notes and "문장이 끊김" in cut_notes
    assert good_notes[0] == "한글 비율 1.00"
    repeated, rep_notes = rule_score(prompt, "김치 김치 김치 김치 김치 김치 김치 김치 김치입니다.")
    assert repeated < good
    with_ref, ref_notes = rule_score(prompt, KOREAN, reference=KOREAN)
    assert with_ref == pytest.approx(good + 3.0) and ref_notes[-1] == "참고 답변 겹침 1.00"


def test_rules_judge_writes_smoke_test_records_with_ties_left_out(tmp_path):
    records = [{"id": "a", "prompt": "김치찌개 끓이는 법", "responses": ["Boil it.", KOREAN, "Cook it.", "Boil", KOREAN + " "]},
               {"id": "b", "prompt": "질문", "response": "답변입니다."}]
    metrics = main(Config(inputs=[write(tmp_path / "in.jsonl", records)], output_dir=str(tmp_path / "run"),
                          judge="rules"))
    record, *parts = load_records(tmp_path / "run" / "preferences.jsonl", "preference")
    assert record["smoke_test"] is True and record["judge"] == "rules (smoke test)"
    assert record["responses"][0] == KOREAN and len(record["responses"]) == 3
    assert record["responses"] == [KOREAN, "Boil it.", "Boil"]  # KOREAN + " " was the same answer
    assert record["tied"] == [{"response": "Cook it.", "score": record["scores"][1], "tied_with": 0}]
    assert record["scores"] == sorted(record["scores"], reverse=True)
    # "Cook it." ties "Boil it.": its comparisons are kept in parts, not dropped.
    assert [(p["id"], p["part_of"], p["responses"]) for p in parts] == [
        ("a#2", "a", [KOREAN, "Cook it."]), ("a#3", "a", ["Cook it.", "Boil"])]
    assert metrics["pairs_established"] == metrics["pairs_kept"] == 5
    (single,) = [r for _, r in read_jsonl(tmp_path / "run" / "unranked.jsonl")]
    assert single["reason"] == "fewer than 2 candidates"
    assert metrics["agreement_with_input_ranking"]["pairs_compared"] == 6  # record a's input order vs the judge


def test_reward_model_judge_ranks_by_reward_and_padding_does_not_change_scores(tmp_path, tiny_models):
    answers = ["서울입니다.", "부산은 항구 도시입니다. 바다가 아름답습니다.", "잘 모르겠어요", "Seoul"]
    inputs = write(tmp_path / "in.jsonl", [{"id": "x", "prompt": "한국의 수도는?", "responses": answers}])
    runs = {}
    for batch_size in (1, 8):
        out = tmp_path / f"rm{batch_size}"
        main(Config(inputs=[inputs], output_dir=str(out), judge="reward-model", reward_model=str(tiny_models["reward"]),
                    batch_size=batch_size, device="cpu"))
        runs[batch_size] = [r for _, r in read_jsonl(out / "preferences.jsonl")][0]
    record = runs[8]
    assert record["scores"] == sorted(record["scores"], reverse=True) and len(set(record["scores"])) == 4
    assert [c["score"] for c in runs[1]["candidates"]] == pytest.approx([c["score"] for c in record["candidates"]],
                                                                         abs=1e-5)
    with pytest.raises(ValueError, match="needs reward_model"):
        Config(inputs=[inputs], judge="reward-model")


def test_benchmark_judge_and_rules_agreement_with_kobest_truth(tmp_path, shared_data):
    copa = str(shared_data / "kobest" / "COPA" / "dev.tsv")
    truth = main(Config(inputs=[copa], output_dir=str(tmp_path / "truth"), judge="benchmark", limit=20))
    assert truth["preferences"] == 20 and "api" not in truth
    first = next(read_jsonl(tmp_path / "truth" / "preferences.jsonl"))[1]
    assert first["responses"] == ["병사들이 전투에 파견되었다.", "병사들이 집으로 돌아왔다."]
    assert first["tied_after_first"] is True and first["source"] == "kobest-COPA"
    rules = main(Config(inputs=[copa], output_dir=str(tmp_path / "rules"), judge="rules", limit=20))
    auto = rules["agreement_with_input_ranking"]
    assert auto["pairs_compared"] == 20
    report = agree.main(agree.Config(files=[str(tmp_path / "rules"), str(tmp_path / "truth" / "preferences.jsonl")],
                                     output=str(tmp_path / "agreement")))
    assert report["pairs_compared"] == 20 and report["agreement"] == auto["agreement"]
    assert report["tie_rate"]["preferences.jsonl"] == 0.0  # the truth never ties
    assert (tmp_path / "agreement.md").is_file() and json.loads((tmp_path / "agreement.json").read_text())
    with pytest.raises(KorlhfError, match="the benchmark judge needs inputs with known answers"):
        main(Config(inputs=[write(tmp_path / "p.jsonl", [{"prompt": "질문"}])], output_dir=str(tmp_path / "b"),
                    judge="benchmark"))


def test_agreement_by_hand(tmp_path):
    # Rater A (a people's sheet, CSV) labels A, B, tie, A; rater B labels A, B, A, B (one row given
    # with its answers swapped). Agreement 2/4; without ties 2/3; kappa: p_o = 1/2,
    # p_e = (2*2 + 1*2 + 1*0) / 16 = 3/8, kappa = (1/2 - 3/8) / (5/8) = 1/5.
    pairs = [("가1", "나1"), ("가2", "나2"), ("가3", "나3"), ("가4", "나4")]
    with open(tmp_path / "minji.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["prompt", "response_a", "response_b", "label"])
        for (x, y), label in zip(pairs, ["A", "b", "tie", "A"], strict=True):
            writer.writerow(["질문", x, y, label])
    rows_b = [("가1", "나1", "A"), ("나2", "가2", "A"), ("가3", "나3", "A"), ("가4", "나4", "B")]
    write(tmp_path / "judge.jsonl", [{"prompt": "질문", "response_a": a, "response_b": b, "label": lab}
                                     for a, b, lab in rows_b])
    report = agree.main(agree.Config(files=[str(tmp_path / "minji.csv"), str(tmp_path / "judge.jsonl")],
                                     names=["minji", "judge"], output=str(tmp_path / "out")))
    assert report["pairs_compared"] == 4 and report["agreement"] == 0.5
    assert report["agreement_without_ties"] == pytest.approx(2 / 3) and report["pairs_without_ties"] == 3
    assert report["cohen_kappa"] == pytest.approx(0.2)
    assert report["tie_rate"] == {"minji": 0.25, "judge": 0.0}
    assert report["position_consistency"] == {"minji": None, "judge": None}
    assert report["confusion"]["tie"]["A"] == 1 and report["confusion"]["A"]["B"] == 1
    text = (tmp_path / "out.md").read_text(encoding="utf-8")
    assert "| Cohen's kappa | 0.200 |" in text and "| agreement (A / B / tie) | 0.500 |" in text


def test_agreement_bad_sheet_row_is_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("prompt,response_a,response_b,label\n질문,가,나,maybe\n", encoding="utf-8")
    with pytest.raises(KorlhfError) as err:
        agree.read_rater(path)
    assert str(err.value) == (f"{path}:2: a pairwise sheet row needs prompt, response_a, response_b and label "
                              "A, B or tie (got label 'maybe')")
    with pytest.raises(KorlhfError, match="compares two raters; got 1 file"):
        agree.main(agree.Config(files=["a"]))


def test_model_candidates_through_generate_and_reused_on_rerun(tmp_path, tiny_gpt2, monkeypatch):
    inputs = write(tmp_path / "in.jsonl", [{"id": "s1", "prompt": "한국의 수도는?", "response": "서울입니다."},
                                           {"id": "s2", "prompt": "김치찌개 끓이는 법", "response": KOREAN}])
    cfg = Config(inputs=[inputs], output_dir=str(tmp_path / "run"), judge="rules", models=[str(tiny_gpt2)],
                 samples_per_model=2, max_new_tokens=8, preset="sample", device="cpu")
    metrics = main(cfg)
    items = [r for _, r in read_jsonl(tmp_path / "run" / "candidates.jsonl")]
    sources = [[c["source"] for c in item["candidates"]] for item in items]
    assert all(s[0] == "input" and s[1:] == [str(tiny_gpt2)] * (len(s) - 1) for s in sources)
    assert metrics["candidates"] == sum(map(len, sources)) > 2

    def no_generation(*args, **kwargs):
        raise AssertionError("candidates should come from candidates.jsonl")

    monkeypatch.setattr("korlhf.label.items.add_generated", no_generation)
    again = main(Config(**{**vars(cfg), "overwrite": True}))
    assert again["candidates"] == metrics["candidates"]


def test_cli_label_help_and_bad_value():
    korlhf = [sys.executable, "-m", "korlhf", "label"]
    group = subprocess.run([*korlhf, "--help"], capture_output=True, text=True)
    assert group.returncode == 0 and "run" in group.stdout and "agree" in group.stdout
    fields = subprocess.run([*korlhf, "run", "--help"], capture_output=True, text=True)
    assert fields.returncode == 0 and "judge_model" in fields.stdout and "api_key_env" in fields.stdout
    bad = subprocess.run([*korlhf, "--inputs", "x.jsonl", "--judge", "gpt"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == ("error: korlhf label run: config field 'judge' must be one of api, reward-model, rules, benchmark; "
                                  "got 'gpt'")


def test_same_prompt_merges_across_files_and_agrees_with_eval_sheet_ratings(tmp_path):
    from korlhf.evaluation import sheet

    prompts = ["한국의 수도는?", "김치찌개 끓이는 법", "가장 긴 강은?"]
    answers = {"ko": ["서울입니다.", KOREAN, "나일강입니다."], "en": ["Seoul.", "Boil kimchi.", "The Nile."]}
    files = {name: write(tmp_path / f"{name}.jsonl", [
        {"id": str(i), "prompt": p, "response": a, "responses": [a], "finish_reasons": ["eos"],
         "settings": {"model": name}} for i, (p, a) in enumerate(zip(prompts, texts, strict=True))])
        for name, texts in answers.items()}
    key = sheet.main(sheet.Config(systems=[f"{n}={p}" for n, p in files.items()], out=str(tmp_path / "sheet")))
    with open(tmp_path / "ratings_minji.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["rater", "item", "slot", "rating", "comment"])
        for n, item in enumerate(key["items"]):  # Korean 5, English 1; the last item a tie (3, 3)
            for slot, system in item["slots"].items():
                writer.writerow(["minji", item["item"], slot, 3 if n == 2 else 5 if system == "ko" else 1, ""])
    metrics = main(Config(inputs=list(files.values()), output_dir=str(tmp_path / "run"), judge="rules"))
    assert metrics["items"] == 3 and metrics["preferences"] == 3  # one item per prompt, both systems' answers
    prefs = load_records(tmp_path / "run" / "preferences.jsonl", "preference")
    assert [[c["source"] for c in r["candidates"]] for r in prefs] == [["ko", "en"]] * 3
    report = agree.main(agree.Config(files=[str(tmp_path / "run"), str(tmp_path / "ratings_minji.csv")],
                                     sheet=str(tmp_path / "sheet"), output=str(tmp_path / "agree")))
    assert report["pairs_compared"] == 3 and report["agreement"] == pytest.approx(2 / 3)
    assert report["tie_rate"]["ratings_minji.csv"] == pytest.approx(1 / 3) and report["agreement_without_ties"] == 1.0


def test_a_checker_verdict_keeps_every_wrong_answer_below_the_right_one(tmp_path):
    """RLAIF with a checker: right / wrong is two score levels, so every wrong answer is a pair with the right one."""
    from korlhf.records import ranking_pairs

    right = "4 더하기 3은 7입니다."
    wrong = ["4 더하기 3은 6입니다.", "4 더하기 3은 8입니다.", "2 더하기 5는 7입니다.", "4 더하기"]
    record = {"id": "q", "prompt": "4 더하기 3의 값은?", "responses": [wrong[0], right, *wrong[1:]]}
    main(Config(inputs=[write(tmp_path / "in.jsonl", [record])], output_dir=str(tmp_path / "run"), judge="rules",
                reward_rules=["korlhf.demo_data:correct"]))
    (out,) = load_records(tmp_path / "run" / "preferences.jsonl", "preference")
    assert out["judge"] == "rules:korlhf.demo_data:correct" and "smoke_test" not in out
    assert out["responses"] == [right, *wrong] and out["scores"] == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert out["tied_after_first"] is True and "tied" not in out
    assert ranking_pairs(out) == [(right, w) for w in wrong]


def _ranked(scores):
    from korlhf.label.ties import ranked_records

    candidates = [{"response": f"답{i}"} for i in range(len(scores))]
    return ranked_records({"id": "q", "prompt": "질문"}, candidates, scores)


def test_one_right_over_three_equally_wrong_stays_one_four_answer_record():
    from korlhf.records import ranking_pairs

    # A pairwise judge: the right answer wins its 3 comparisons, the wrong ones tie with each other.
    (record,) = _ranked([3.0, 1.0, 1.0, 1.0])
    assert record["responses"] == ["답0", "답1", "답2", "답3"] and record["tied_after_first"] is True
    assert ranking_pairs(record) == [("답0", "답1"), ("답0", "답2"), ("답0", "답3")]


@pytest.mark.parametrize("scores", [[3.0, 2.0, 2.0, 0.0], [1.0, 1.0, 0.0], [2.0, 2.0, 1.0, 1.0, 0.0],
                                    [5.0, 4.0, 3.0, 2.0], [0.5, 3.0, 3.0, 0.5, 1.0]])
def test_every_established_pair_is_kept_exactly_once(scores):
    from korlhf.label.ties import established_pairs
    from korlhf.records import ranking_pairs

    records = _ranked(scores)
    kept = [pair for r in records for pair in ranking_pairs(r)]
    better = {(f"답{i}", f"답{j}") for i in range(len(scores)) for j in range(len(scores)) if scores[i] > scores[j]}
    assert sorted(kept) == sorted(better) and len(kept) == established_pairs(scores)


def test_three_two_two_zero_by_hand():
    main_record, *parts = _ranked([3.0, 2.0, 2.0, 0.0])
    assert main_record["responses"] == ["답0", "답1", "답3"] and "tied_after_first" not in main_record
    assert main_record["tied"] == [{"response": "답2", "score": 2.0, "tied_with": 1}]
    assert [p["responses"] for p in parts] == [["답0", "답2"], ["답2", "답3"]]
    assert _ranked([1.0, 1.0]) == []  # no difference: unranked
