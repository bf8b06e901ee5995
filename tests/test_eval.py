"""`korlhf eval`: scoring files, the decoding sweep, blind sheets, agreement with ratings (KoBEST: test_kobest.py)."""

import csv
import json
import shutil
import subprocess

import pytest

from korlhf.errors import KorlhfError
from korlhf.evaluation import agree, score, sheet, sweep


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# --- korlhf eval (score) ---------------------------------------------------------------------------

def test_score_reads_predictions_and_references_from_one_file(tmp_path):
    gen = write_jsonl(tmp_path / "gen.jsonl", [
        {"prompt": "수도는?", "response": "서울입니다.", "responses": ["서울입니다."], "reference": "서울입니다."},
        {"prompt": "색은?", "response": "파란색이에요.", "reference": "하늘은 파란색입니다."}])
    result = score.main(score.Config(predictions=str(gen), out=str(tmp_path / "ev")))
    assert result.corpus["n"] == 2 and result.samples[0]["bleu"] == pytest.approx(100.0)
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text(encoding="utf-8"))
    assert saved["corpus"]["rouge1"] == pytest.approx(result.corpus["rouge1"]) and "tok:ko-mecab" in saved["signatures"]["bleu"]
    with open(tmp_path / "ev" / "samples.csv", encoding="utf-8-sig") as f:
        assert len(list(csv.DictReader(f))) == 2


def test_score_text_files_and_their_errors(tmp_path):
    (tmp_path / "p.txt").write_text("안녕하세요\n반갑습니다\n", encoding="utf-8")
    (tmp_path / "r.txt").write_text("안녕하세요\n", encoding="utf-8")
    with pytest.raises(KorlhfError, match="has 2 predictions but .*r.txt has 1 references"):
        score.main(score.Config(predictions=str(tmp_path / "p.txt"), references=str(tmp_path / "r.txt")))
    gen = write_jsonl(tmp_path / "g.jsonl", [{"answer": "하나"}])
    with pytest.raises(KorlhfError) as err:
        score.main(score.Config(predictions=str(gen)))
    assert str(err.value) == (f"{gen}:1: no 'response' field (1 of 1 records lack it); "
                              "name the field with --prediction_field")
    only = score.main(score.Config(predictions=str(gen), prediction_field="answer"))
    assert "bleu" not in only.corpus and only.corpus["hangul_ratio"] == 1.0


def test_reward_model_mean_score(tmp_path, tiny_models):
    gen = write_jsonl(tmp_path / "gen.jsonl", [{"prompt": "수도는?", "response": "서울"},
                                               {"prompt": "색은?", "response": "파랑"}])
    result = score.main(score.Config(predictions=str(gen), reward_model=str(tiny_models["reward"])))
    rewards = [row["reward"] for row in result.samples]
    assert len(set(rewards)) == 2 and result.corpus["reward"] == pytest.approx(sum(rewards) / 2)


# --- sweep ---------------------------------------------------------------------------------------

def test_sweep_writes_one_table_and_a_plot_per_metric(tmp_path, tiny_gpt2):
    prompts = write_jsonl(tmp_path / "eval.jsonl", [{"prompt": "김치찌개 끓이는 법", "response": "김치를 넣고 끓여요."},
                                                    {"prompt": "서울은?", "response": "한국의 수도입니다."}])
    cfg = sweep.Config(model=str(tiny_gpt2), prompts=str(prompts), max_new_tokens=3, out=str(tmp_path / "sw"),
                       strategies=[{"preset": "greedy"}, {"preset": "top-k", "top_k": 5, "name": "top5"}])
    rows = sweep.main(cfg)
    out = tmp_path / "sw"
    assert [r["strategy"] for r in rows] == ["greedy", "top5"] and rows[1]["settings"]["top_k"] == 5
    with open(out / "results.csv", encoding="utf-8-sig") as f:
        table = list(csv.DictReader(f))
    assert [r["strategy"] for r in table] == ["greedy", "top5"] and "bleu" in table[0] and "self_bleu" in table[0]
    assert "| strategy | n | bleu |" in (out / "results.md").read_text(encoding="utf-8")
    assert (out / "plots" / "bleu.png").stat().st_size > 1000 and (out / "plots" / "overview.png").is_file()
    assert len((out / "generations" / "top5.jsonl").read_text(encoding="utf-8").splitlines()) == 2


def test_sweep_rejects_unknown_strategy_keys():
    cfg = sweep.Config(model="m", prompts="p", strategies=[{"preset": "top-p", "nucleus": 0.9}])
    with pytest.raises(KorlhfError) as err:
        sweep.decodings(cfg)
    assert str(err.value) == ("strategy 1 (top-p+nucleus=0.9): unknown key(s) nucleus; "
                              "use a preset and `korlhf generate` knobs")


def test_best_strategy_follows_the_metrics_direction():
    bounds = {"bleu": (8.0, 12.0), "rep_2": (0.4, 0.6), "len_chars": (2, 4)}
    rows = [{"strategy": "a", "bleu": 10.0, "rep_2": 0.5, "len_chars": 3, "intervals": bounds},
            {"strategy": "b", "bleu": 20.0, "rep_2": 0.1, "len_chars": 9,
             "intervals": {"bleu": (18.0, 22.0), "rep_2": (0.05, 0.15), "len_chars": (8, 10)}}]
    assert sweep.best_strategy(rows, "bleu") == "b" and sweep.best_strategy(rows, "rep_2") == "b"
    assert sweep.best_strategy(rows, "len_chars") is None  # no better direction


# --- sheet and agree -------------------------------------------------------------------------------

@pytest.fixture()
def systems(tmp_path):
    prompts = ["수도는?", "색은?", "숫자는?", "동물은?"]
    refs = ["서울입니다.", "파란색입니다.", "셋입니다.", "고양이입니다."]
    good = ["서울입니다.", "파란색입니다.", "셋입니다.", "고양이입니다."]
    bad = ["모르겠어요 모르겠어요", "빨강", "다섯", "고양이요"]
    a = write_jsonl(tmp_path / "sysgood.jsonl", [{"id": f"q{i}", "prompt": p, "response": g, "reference": r}
                                              for i, (p, g, r) in enumerate(zip(prompts, good, refs, strict=True))])
    b = write_jsonl(tmp_path / "sysbad.jsonl", [{"id": f"q{i}", "prompt": p, "response": x, "reference": r}
                                             for i, (p, x, r) in enumerate(zip(prompts, bad, refs, strict=True))])
    return a, b


def test_sheet_hides_and_shuffles_systems(tmp_path, systems):
    key = sheet.main(sheet.Config(systems=[str(s) for s in systems], out=str(tmp_path / "sheet"), seed=3))
    out = tmp_path / "sheet"
    text = (out / "sheet.csv").read_text(encoding="utf-8-sig") + (out / "sheet.html").read_text(encoding="utf-8")
    assert "sysgood" not in text and "sysbad" not in text  # system names hidden
    assert "모르겠어요 모르겠어요" in text and "&lt;" not in key["items"][0]["prompt"]
    orders = [tuple(item["slots"].values()) for item in key["items"]]
    assert set(orders) == {("sysgood", "sysbad"), ("sysbad", "sysgood")}  # shuffled per item, not once
    assert all(set(o) == {"sysgood", "sysbad"} for o in orders)


def test_sheet_refuses_systems_answering_different_prompts(tmp_path, systems):
    other = write_jsonl(tmp_path / "other.jsonl", [{"id": "q0", "prompt": "다른 질문", "response": "x"}])
    with pytest.raises(KorlhfError, match="answer different prompts"):
        sheet.main(sheet.Config(systems=[str(systems[0]), str(other)], out=str(tmp_path / "s")))
    with pytest.raises(KorlhfError, match="at least two systems"):
        sheet.main(sheet.Config(systems=[str(systems[0])], out=str(tmp_path / "s")))


@pytest.mark.skipif(shutil.which("node") is None, reason="node runs the page's script")
def test_html_page_saves_ratings_that_agree_reads(tmp_path, systems):
    key = sheet.main(sheet.Config(systems=[str(s) for s in systems], out=str(tmp_path / "sheet")))
    page = (tmp_path / "sheet" / "sheet.html").read_text(encoding="utf-8")
    script = page[page.index("<script>") + 8:page.index("</script>")]
    names = [f"{item['item']}|{slot}" for item in key["items"] for slot in item["slots"]]
    harness = """
const allRadios = NAMES.flatMap(n => [1, 2, 3, 4, 5].map(v => ({name: n, value: String(v), checked: false})));
const allComments = NAMES.map(n => ({dataset: {key: n}, value: ""}));
const el = {rater: {value: "민지"}, save: {}, progress: {}};
globalThis.localStorage = {m: {}, getItem(k) { return this.m[k] ?? null; }, setItem(k, v) { this.m[k] = v; }};
globalThis.document = {getElementById: id => el[id], addEventListener() {},
  querySelectorAll: s => s.startsWith("input[type=radio]") ? allRadios : allComments,
  createElement: () => ({click() {}})};
globalThis.Blob = class { constructor(parts) { this.text = parts.join(""); } };
globalThis.URL = {createObjectURL: b => { globalThis.saved = b.text; return "blob:"; }};
SCRIPT
allRadios.filter(r => r.value === "4" && r.name.endsWith("|A")).forEach(r => r.checked = true);
allRadios.filter(r => r.value === "2" && r.name.endsWith("|B")).forEach(r => r.checked = true);
allComments[0].value = "좋아요, \\"정확\\"";
el.save.onclick();
process.stdout.write(globalThis.saved);
""".replace("NAMES", json.dumps(names, ensure_ascii=False)).replace("SCRIPT", script)
    saved = subprocess.run(["node", "-e", harness], capture_output=True, text=True, check=True).stdout
    (tmp_path / "ratings.csv").write_text(saved, encoding="utf-8")
    ratings = agree.read_ratings([str(tmp_path / "ratings.csv")], key)
    assert len(ratings) == 8 and {r[0] for r in ratings} == {"민지"}
    first = key["items"][0]
    assert ("민지", first["item"], first["slots"]["A"], 4.0, 5, False) in ratings
    assert '"좋아요, ""정확"""' in saved


def test_agree_correlates_metrics_with_ratings_and_raters(tmp_path, systems):
    key = sheet.main(sheet.Config(systems=[str(s) for s in systems], out=str(tmp_path / "sheet")))
    rows = []
    for item in key["items"]:  # minji: good 5, bad 1; judge agrees except on the last item
        for slot, system in item["slots"].items():
            rows.append({"rater": "minji", "item": item["item"], "slot": slot, "rating": 5 if system == "sysgood" else 1})
    with open(tmp_path / "minji.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["rater", "item", "slot", "rating"])
        writer.writeheader()
        writer.writerows(rows)
    judge = [{"rater": "judge", "item": item["item"], "system": system,
              "rating": (5 if system == "sysgood" else 1) if item["item"] != "q3" else 3}
             for item in key["items"] for system in item["answers"]]
    write_jsonl(tmp_path / "judge.jsonl", judge)
    result = agree.main(agree.Config(ratings=[str(tmp_path / "minji.csv"), str(tmp_path / "judge.jsonl")],
                                     sheet=str(tmp_path / "sheet"), metrics=["bleu", "chrf", "rep_2"],
                                     out=str(tmp_path / "ag")))
    corr = {c["metric"]: c for c in result["correlations"]}
    assert corr["bleu"]["spearman"] > 0.7 and corr["bleu"]["n"] == 8  # the good system copies the references
    pair = result["rater_agreement"][0]
    assert pair["raters"] == "judge vs minji" and pair["answers"] == 8
    assert pair["exact"] == pytest.approx(6 / 8)  # q3: 3 vs 5 and 3 vs 1
    assert pair["items"] == 4 and pair["preference"] == pytest.approx(3 / 4)  # q3: judge ties
    systems_table = {s["system"]: s for s in result["systems"]}
    assert systems_table["sysgood"]["rating"] == pytest.approx((5 * 3 + 5 + 5 * 3 + 3) / 8)
    assert "### agreement between raters" in (tmp_path / "ag" / "agree.md").read_text(encoding="utf-8")


def judgment(question_id, model, score, turn=1):
    """One line of `korlhf eval judge`'s single-mode judgment file (FastChat's format)."""
    return {"question_id": question_id, "category": "general", "model": model, "judge": ["gpt-4o", "single-v1"],
            "user_prompt": "...", "judgment": f"[[{score}]]", "score": score, "turn": turn, "tstamp": 0}


def test_agree_reads_judge_judgments_as_a_rater(tmp_path, systems):
    import math

    key = sheet.main(sheet.Config(systems=[str(s) for s in systems], out=str(tmp_path / "sheet")))
    with open(tmp_path / "minji.csv", "w", encoding="utf-8", newline="") as f:  # minji: good 5, bad 1
        f.write("rater,item,slot,rating\n" + "".join(
            f"minji,{item['item']},{slot},{5 if system == 'sysgood' else 1}\n"
            for item in key["items"] for slot, system in item["slots"].items()))
    # The judge (1-10): q1 has two turns (8 and 6 -> 7, as the sheet rates the whole answer);
    # sysbad's q2 turn 2 failed (score -1, left out) so q2 is 5.
    scores = {"sysgood": [9, (8, 6), 10, 4], "sysbad": [2, (3, 5), 5, 6]}
    rows = []
    for model, per_item in scores.items():
        for i, s in enumerate(per_item):
            rows += [judgment(f"q{i}", model, v, t) for t, v in enumerate(s if isinstance(s, tuple) else (s,), 1)]
    rows.append(judgment("q2", "sysbad", -1, 2))
    write_jsonl(tmp_path / "gpt-4o_single.jsonl", rows)
    result = agree.main(agree.Config(ratings=[str(tmp_path / "minji.csv"), str(tmp_path / "gpt-4o_single.jsonl")],
                                     sheet=str(tmp_path / "sheet"), metrics=["len_chars"]))
    # Judge per answer: good 9 7 10 4, bad 2 4 5 6 -> ranks good 7 6 8 2.5, bad 1 2.5 4 5 (mean 4.5,
    # sum of squared deviations 41.5). minji: ranks 6.5 / 2.5 (deviations +-2, squares 32).
    # Covariance sum: 2 * (23.5 - 18) - 2 * (12.5 - 18) = 22.
    pair = result["rater_agreement"][0]
    assert pair["raters"] == "gpt-4o vs minji" and pair["answers"] == 8
    assert pair["spearman"] == pytest.approx(22 / math.sqrt(32 * 41.5))
    assert math.isnan(pair["exact"]) and math.isnan(pair["kappa"])  # 1-10 vs 1-5: no exact agreement
    assert pair["items"] == 4 and pair["preference"] == pytest.approx(3 / 4)  # q3: the judge prefers sysbad
    # len_chars: good 6 7 5 7, bad 11 2 2 4 -> ranks good 5 6.5 4 6.5, bad 8 1.5 1.5 3 (squares 41);
    # against the judge's ranks the deviation products sum to -7.
    corr = {(c["rating"], c["metric"]): c for c in result["correlations"]}
    assert corr[("gpt-4o (1-10)", "len_chars")]["spearman"] == pytest.approx(-7 / math.sqrt(41 * 41.5))
    # Against minji (the sheet's mean rating): 2 * (22 - 18) - 2 * (14 - 18) = 16.
    assert corr[("rating", "len_chars")]["spearman"] == pytest.approx(16 / math.sqrt(41 * 32))
    by_system = {s["system"]: s for s in result["systems"]}
    assert by_system["sysgood"]["gpt-4o (1-10)"] == 7.5 and by_system["sysbad"]["rating"] == 1.0


def test_agree_names_judgment_lines_it_cannot_match(tmp_path, systems):
    sheet.main(sheet.Config(systems=[str(s) for s in systems], out=str(tmp_path / "sheet")))
    cases = [(judgment("q9", "sysgood", 7), "question_id 'q9' is not an item of this sheet (4 items); judge the "
              "generation files the sheet was made from, or give the right --sheet"),
             (judgment("q0", "other", 7), "model 'other' is not a system of this sheet (sysgood, sysbad); name the "
              "answer files as the sheet names its systems (NAME=PATH)"),
             (judgment("q0", "sysgood", 11), "score 11 is outside 1..10"),
             ({"question_id": "q0", "model_1": "sysgood", "model_2": "sysbad", "g1_winner": "model_1", "turn": 1},
              "a pairwise judgment (no 'model'); eval agree reads ratings, which `korlhf eval judge --mode single` "
              "writes")]
    for row, message in cases:
        path = write_jsonl(tmp_path / "judge.jsonl", [judgment("q0", "sysbad", 3), row])
        with pytest.raises(KorlhfError) as err:
            agree.main(agree.Config(ratings=[str(path)], sheet=str(tmp_path / "sheet")))
        assert str(err.value) == f"{path}:2: {message}"


def test_agree_names_the_bad_rating_line(tmp_path, systems):
    sheet.main(sheet.Config(systems=[str(s) for s in systems], out=str(tmp_path / "sheet")))
    bad = tmp_path / "r.csv"
    bad.write_text("item,slot,rating\nq0,A,4\nq1,A,9\n", encoding="utf-8")
    with pytest.raises(KorlhfError) as err:
        agree.main(agree.Config(ratings=[str(bad)], sheet=str(tmp_path / "sheet")))
    assert str(err.value) == f"{bad}:3: rating 9 is outside 1..5"


def test_bootstrap_intervals_of_a_mean():
    from korlhf.evaluation.intervals import mean_interval

    assert mean_interval([0.7] * 20) == (pytest.approx(0.7), pytest.approx(0.7))
    low, high = mean_interval([0.0, 1.0] * 50)  # p = 0.5, n = 100: half-width ~1.96 x 0.05
    assert low < 0.5 < high and 0.08 < (high - low) / 2 < 0.115
    assert mean_interval([0.0, 1.0] * 50) == (low, high)  # seeded: the same every run


def test_corpus_bleu_interval_surrounds_the_score():
    from korlhf.evaluation.intervals import corpus_interval
    from korlhf.evaluation.metrics import corpus_metrics

    preds = ["서울은 한국의 수도입니다.", "김치를 넣고 끓여요.", "모르겠어요.", "부산은 항구 도시입니다."] * 5
    refs = ["서울은 대한민국의 수도입니다.", "김치를 넣고 끓입니다.", "답은 서울입니다.", "부산은 항구 도시다."] * 5
    bleu = corpus_metrics()["bleu"].corpus_score(preds, [refs]).score
    low, high = corpus_interval(corpus_metrics()["bleu"], preds, refs)
    assert low < bleu < high
    # Where sacrebleu's own interval code fails (mixed float types), the answers are resampled here.
    from korlhf.evaluation.intervals import _resampled_corpus_interval

    low, high = _resampled_corpus_interval(corpus_metrics()["chrf"], preds, refs, resamples=50)
    assert low < corpus_metrics()["chrf"].corpus_score(preds, [refs]).score < high


def test_best_strategy_is_marked_only_where_its_interval_clears_the_others():
    rows = [{"strategy": "greedy", "accuracy": 0.48, "rep_2": 0.10, "intervals": {"accuracy": (0.40, 0.56),
                                                                                     "rep_2": (0.05, 0.15)}},
            {"strategy": "beam", "accuracy": 0.47, "rep_2": 0.30, "intervals": {"accuracy": (0.39, 0.55),
                                                                                   "rep_2": (0.25, 0.35)}},
            {"strategy": "top-p", "accuracy": 0.35, "rep_2": 0.20, "intervals": {"accuracy": (0.27, 0.43),
                                                                                    "rep_2": (0.16, 0.24)}}]
    assert sweep.best_strategy(rows, "accuracy") is None  # greedy vs beam: a tie within the noise
    assert sweep.best_strategy(rows, "rep_2") == "greedy"  # lower is better, and clearly so
    assert sweep.best_strategy(rows[::2], "accuracy") is None  # 0.40 < 0.43: still overlapping
    rows[2]["intervals"]["accuracy"] = (0.27, 0.39)
    assert sweep.best_strategy(rows[::2], "accuracy") == "greedy"
    assert sweep.cell(rows[0], "accuracy") == "0.4800 [0.4000, 0.5600]"


def test_sweep_reports_accuracy_with_intervals(tmp_path, tiny_gpt2):
    prompts = write_jsonl(tmp_path / "eval.jsonl", [{"prompt": "서울은?", "response": "서울입니다.", "answer": "서울"},
                                                    {"prompt": "2 더하기 3은?", "response": "5입니다.", "answer": "5"}])
    cfg = sweep.Config(model=str(tiny_gpt2), prompts=str(prompts), max_new_tokens=3, out=str(tmp_path / "sw"),
                       strategies=[{"preset": "greedy"}, {"preset": "sample"}])
    rows = sweep.main(cfg)
    assert all(0.0 <= r["accuracy"] <= 1.0 and set(r["intervals"]) >= {"accuracy", "bleu", "chrf", "rougeL"}
               for r in rows)
    table = (tmp_path / "sw" / "results.md").read_text(encoding="utf-8")
    assert table.startswith("| strategy | accuracy | n |") and "95% bootstrap interval" in table
    with open(tmp_path / "sw" / "results.csv", encoding="utf-8-sig") as f:
        header = next(csv.reader(f))
    assert "accuracy_low" in header and "bleu_high" in header
