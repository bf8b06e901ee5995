"""`korlhf eval kobest` and the KoBEST reader: the prompts, tokenization and metrics of
lm-evaluation-harness's ``kobest_*`` tasks (task version 1.0, lm_eval/tasks/kobest as in harness 0.4.9.1)."""

import json
import re

import pytest

from korlhf.data.kobest import read_kobest, to_preference
from korlhf.errors import KorlhfError
from korlhf.evaluation import kobest

# One row of each task in the public release's TSV layout (first test rows of KoBEST v1).
ROWS = {
    "BoolQ": "ID\tText\tQuestion\tAnswer\n"
             "1\t콜라독립 815(815 Cola)는 범양식품이 1998년 4월 1일에 출시한 탄산음료다.\t콜라독립 815는 코카콜라에서 만들었나요?\tFalse\n",
    "COPA": "ID\tsentence\tquestion\t1\t2\tAnswer\n"
            "1\t새로 산 바지의 허리가 컸다.\t결과\t바지의 밑단을 잘랐다.\t벨트를 바지에 끼워 사이즈를 조절했다.\t2\n"
            "2\t영화를 보고 눈물을 흘렸다.\t원인\t재밌는 내용의 영화를 봤다.\t슬픈 내용의 영화를 봤다.\t2\n",
    "HellaSwag": "context\tchoice1\tchoice2\tchoice3\tchoice4\tlabel\n"
                 "투수가 공을 던진다. 타자가 공을 배트로 친다.\t공이 하늘 위로 날아간다.\t투수가 잠을 잔다.\t관중이 집에 간다.\t심판이 밥을 먹는다.\t0\n",
    "SentiNeg": "ID\tLabel_origin\tText_origin\tLabel\tText\tCategory_neg\n"
                "3394\t0\t택배사 정말 마음에 안들음\t1\t택배사 정말 마음에 듬\t1\n",
    "WiC": "ID\tTarget\tSENTENCE1\tDictionary 1\tLink 1\tSENTENCE2\tDictionary 2\tLink2\tANSWER\n"
           "1\t양분\t토양에 [양분]이 풍부하여 나무가 잘 자란다.\t3\thttps://x\t태아는 모체로부터 [양분]과 산소를 공급받게 된다.\t3\thttps://x\tTrue\n",
}

# The harness's (context, continuation) requests for those rows: doc_to_text, then
# target_delimiter " " + each of doc_to_choice; the label is doc_to_target's index.
EXPECTED = {
    "BoolQ": [("콜라독립 815(815 Cola)는 범양식품이 1998년 4월 1일에 출시한 탄산음료다. 질문: 콜라독립 815는 코카콜라에서 "
               "만들었나요? 답변: ", [" 아니오", " 예"], 0)],
    "COPA": [("새로 산 바지의 허리가 컸다.  그래서", [" 바지의 밑단을 잘랐다.", " 벨트를 바지에 끼워 사이즈를 조절했다."], 1),
             ("영화를 보고 눈물을 흘렸다.  왜냐하면", [" 재밌는 내용의 영화를 봤다.", " 슬픈 내용의 영화를 봤다."], 1)],
    "HellaSwag": [("문장: 투수가 공을 던진다. 타자가 공을 배트로 친다.",
                   [" 공이 하늘 위로 날아간다.", " 투수가 잠을 잔다.", " 관중이 집에 간다.", " 심판이 밥을 먹는다."], 0)],
    "SentiNeg": [("문장: 택배사 정말 마음에 듬 긍부정:", [" 부정", " 긍정"], 1)],
    "WiC": [("문장1: 토양에 [양분]이 풍부하여 나무가 잘 자란다. 문장2: 태아는 모체로부터 [양분]과 산소를 공급받게 된다. "
             "두 문장에서 양분가 같은 뜻으로 쓰였나?", [" 아니오", " 예"], 1)],
}


@pytest.mark.parametrize("task", list(ROWS))
def test_prompts_are_the_harness_requests(tmp_path, task):
    (tmp_path / task).mkdir()
    path = tmp_path / task / "test.tsv"
    path.write_text(ROWS[task], encoding="utf-8")
    items = read_kobest(path)
    got = [(item["context"], [" " + c for c in item["choices"]], item["label"]) for item in items]
    assert got == EXPECTED[task]


def test_a_bad_row_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "copa.tsv"
    path.write_text(ROWS["COPA"].replace("\t2\n2\t영화", "\t3\n2\t영화"), encoding="utf-8")
    with pytest.raises(KorlhfError) as err:
        read_kobest(path, "COPA")
    assert str(err.value) == f"{path}:2: bad KoBEST COPA row (answer label or COPA question not understood)"


def test_preference_prompt_has_its_spaces_collapsed(tmp_path):
    path = tmp_path / "COPA.tsv"
    path.write_text(ROWS["COPA"], encoding="utf-8")
    record = to_preference(read_kobest(path, "COPA")[0])
    assert record["prompt"] == "새로 산 바지의 허리가 컸다. 그래서"
    assert record["responses"] == ["벨트를 바지에 끼워 사이즈를 조절했다.", "바지의 밑단을 잘랐다."]


class SpaceJoiningTokenizer:
    """GPT-2-like: a space joins the character after it (" 예" is one token); a space before another
    space, or at the end, stands alone. Ids are code points; a BOS (id 1) only if asked for."""

    def __call__(self, text, add_special_tokens=True):
        ids = [sum(map(ord, piece)) for piece in re.findall(r" ?[^ ]| ", text)]
        return {"input_ids": ([1] if add_special_tokens else []) + ids}


def test_encode_pair_moves_trailing_spaces_and_splits_the_whole_string():
    tok = SpaceJoiningTokenizer()
    # BoolQ's context ends "답변: ": the harness scores "답변:" + "  예", whose tokens are " " and " 예".
    assert kobest.encode_pair(tok, "답변: ", " 예") == ([ord("답"), ord("변"), ord(":")], [ord(" "), ord(" ") + ord("예")])
    assert kobest.encode_pair(tok, "긍부정:", " 긍정") == (
        [ord("긍"), ord("부"), ord("정"), ord(":")], [ord(" ") + ord("긍"), ord("정")])


def test_choice_logprobs_match_one_sequence_at_a_time(tiny_gpt2):
    import torch

    from korlhf.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(tiny_gpt2)
    model = load_causal_lm(tiny_gpt2, tokenizer).eval()
    items = [{"context": "문장: 정말 재미있는 영화였다 긍부정:", "choices": ["부정", "긍정"], "label": 1},
             {"context": "비가 왔다. 질문: 우산을 썼나요? 답변: ", "choices": ["아니오", "예"], "label": 1},
             {"context": "비가 왔다.  그래서", "choices": ["우산을 썼다.", "햇볕이 아주 강하게 내리쬐었다."], "label": 0}]
    got = kobest.choice_logprobs(model, tokenizer, items, batch_size=4)
    for item, scores in zip(items, got, strict=True):
        context = item["context"].rstrip(" ")
        moved = item["context"][len(context):]
        ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
        for choice, value in zip(item["choices"], scores, strict=True):
            cont = tokenizer(context + moved + " " + choice, add_special_tokens=False)["input_ids"][len(ctx):]
            with torch.no_grad():
                logp = model(input_ids=torch.tensor([ctx + cont])).logits[0].log_softmax(-1)
            expected = sum(logp[len(ctx) + k - 1, t].item() for k, t in enumerate(cont))
            assert value == pytest.approx(expected, abs=1e-4)


def test_accuracy_and_macro_f1_by_hand():
    items = [{"label": 0}, {"label": 1}, {"label": 1}, {"label": 0}]
    logprobs = [[-1, -2], [-3, -1], [-1, -2], [-1, -5]]  # predicts 0, 1, 0, 0
    # class 0: tp 2, fp 1, fn 0 -> F1 4/5; class 1: tp 1, fp 0, fn 1 -> F1 2/3
    assert kobest.accuracy(items, logprobs) == {"n": 4, "accuracy": 0.75, "macro_f1": pytest.approx((4 / 5 + 2 / 3) / 2)}
    assert kobest.accuracy([{"label": 1}], [[-1.0, -1.0]])["accuracy"] == 0.0  # a tie goes to the first, as argmax


def test_macro_f1_is_sklearns():
    # Class 1 is never predicted: F1 0. Class 0: tp 1, fp 1, fn 0 -> 2/3; class 2: tp 2 -> 1.
    assert kobest.macro_f1([0, 1, 2, 2], [0, 0, 2, 2]) == pytest.approx((2 / 3 + 0 + 1) / 3)
    # Class 2 is predicted but never the gold label: it counts too (sklearn takes the union of labels).
    # Class 0: tp 1, fn 1 -> 2/3; class 1: 1; class 2: tp 0, fp 1 -> 0.
    assert kobest.macro_f1([0, 0, 1], [0, 2, 1]) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert kobest.macro_f1([1, 1], [1, 1]) == 1.0 and kobest.macro_f1([], []) == 0.0


def test_acc_norm_divides_by_the_choice_length_in_characters_as_the_harness_does():
    items = [{"label": 1, "choices": ["짧다", "훨씬 더 긴 끝맺음입니다"]}, {"label": 0, "choices": ["가", "나다라"]}]
    logprobs = [[-4.0, -6.0], [-2.0, -3.0]]  # per character: [-2, -6/13] -> 1 (right); [-2, -1] -> 1 (wrong)
    assert kobest.acc_norm(items, logprobs) == 0.5 and kobest.accuracy(items, logprobs)["accuracy"] == 0.5
    # Characters, not UTF-8 bytes (the harness's separate acc_bytes): per character -3/5 < -0.5/1
    # picks "a" (wrong); per byte -3/15 > -0.5/1 would pick "가나다라마" (right).
    assert kobest.acc_norm([{"label": 0, "choices": ["가나다라마", "a"]}], [[-3.0, -0.5]]) == 0.0


def test_kobest_on_the_shared_files(tmp_path, tiny_gpt2, shared_data):
    out = tmp_path / "kobest.json"
    summary = kobest.main(kobest.Config(model=str(tiny_gpt2), data=str(shared_data / "kobest"), tasks=["COPA", "WiC"],
                                        limit=3, out=str(out)))
    assert [(t, r["n"]) for t, r in summary["tasks"].items()] == [("COPA", 3), ("WiC", 3)]
    assert 0 <= summary["mean_accuracy"] <= 1 and json.loads(out.read_text(encoding="utf-8"))["split"] == "test"
    with pytest.raises(KorlhfError, match=r"KoBEST file\(s\) not found: .*BoolQ/test.tsv"):
        kobest.task_files(tmp_path, ["BoolQ"], "test")
