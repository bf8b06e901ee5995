"""`korlhf eval` inputs: every prediction meets its own reference (issue 13, point 2)."""

import json
import unicodedata

import pytest

from korlhf.errors import KorlhfError
from korlhf.evaluation import score
from korlhf.evaluation.metrics import score as metrics

SEOUL = "서울은 대한민국의 수도이며 가장 큰 도시입니다."
BUSAN = "부산은 대한민국 제2의 도시이고 항구 도시입니다."
JEJU = "제주도는 화산섬이며 한라산이 있습니다."


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_nfd_and_nfc_of_the_same_text_score_as_identical():
    nfd = unicodedata.normalize("NFD", SEOUL)
    assert nfd != SEOUL  # conjoining jamo: before the fix this scored BLEU 9, chrF 8
    result = metrics([nfd, f"  {BUSAN}\t "], [SEOUL, BUSAN])
    assert result.corpus["bleu"] == pytest.approx(100.0) and result.corpus["chrf"] == pytest.approx(100.0)
    assert result.corpus["rougeL"] == pytest.approx(1.0) and result.corpus["rougeL_char"] == pytest.approx(1.0)


def test_text_files_keep_blank_lines_so_pairs_never_shift(tmp_path):
    (tmp_path / "p.txt").write_text(f"{SEOUL}\n\n{JEJU}\n", encoding="utf-8")
    (tmp_path / "r.txt").write_text(f"{SEOUL}\n{BUSAN}\n{JEJU}\n", encoding="utf-8")
    result = score.main(score.Config(predictions=str(tmp_path / "p.txt"), references=str(tmp_path / "r.txt")))
    assert result.corpus["n"] == 3 and result.corpus["empty"] == pytest.approx(1 / 3)
    assert [row["bleu"] for row in result.samples] == pytest.approx([100.0, 0.0, 100.0])
    assert [row["where"] for row in result.samples] == [f"{tmp_path / 'p.txt'}:{n}" for n in (1, 2, 3)]


def test_count_mismatch_names_the_first_unpaired_line(tmp_path):
    (tmp_path / "p.txt").write_text(f"{SEOUL}\n\n{JEJU}\n", encoding="utf-8")
    (tmp_path / "r.txt").write_text(f"{SEOUL}\n{JEJU}\n", encoding="utf-8")
    with pytest.raises(KorlhfError) as err:
        score.main(score.Config(predictions=str(tmp_path / "p.txt"), references=str(tmp_path / "r.txt")))
    assert str(err.value) == (f"{tmp_path / 'p.txt'} has 3 predictions but {tmp_path / 'r.txt'} has 2 references; "
                              f"{tmp_path / 'p.txt'}:3 is the first without a partner. They pair up entry by entry "
                              "(in a text file, a blank line is an empty entry)")


def test_json_array_is_read_as_records(tmp_path):
    path = tmp_path / "gen.json"
    path.write_text(json.dumps([{"response": SEOUL, "reference": SEOUL}, {"response": JEJU, "reference": BUSAN}],
                               ensure_ascii=False, indent=1), encoding="utf-8")
    result = score.main(score.Config(predictions=str(path)))
    assert result.corpus["n"] == 2 and result.samples[0]["bleu"] == pytest.approx(100.0)
    assert result.samples[1]["where"] == f"{path}: item 2"
    path.write_text('{"response": "하나"}', encoding="utf-8")
    with pytest.raises(KorlhfError) as err:
        score.main(score.Config(predictions=str(path)))
    assert str(err.value) == f"{path}: expected a JSON array of records, got a JSON dict"


def mt_bench(tmp_path, references):
    """`korlhf generate` output for two MT-Bench questions (choices[].turns; response = last turn)."""
    rows = []
    for i, ref in enumerate(references):
        row = {"question_id": 81 + i, "category": "writing", "turns": ["첫 질문", "둘째 질문"],
               "choices": [{"index": 0, "turns": [SEOUL, BUSAN]}], "response": BUSAN, "responses": [BUSAN]}
        if ref is not None:
            row["reference"] = ref
        rows.append(row)
    return write_jsonl(tmp_path / "gen.jsonl", rows)


def test_multi_turn_answers_are_scored_against_the_matching_reference_turn(tmp_path):
    gen = mt_bench(tmp_path, [[SEOUL, BUSAN], [SEOUL, BUSAN]])
    result = score.main(score.Config(predictions=gen))
    # Before: each record's last answer (BUSAN) against the turn-1 reference (SEOUL), BLEU near 0.
    assert result.corpus["n"] == 4 and result.corpus["bleu"] == pytest.approx(100.0)
    assert [(row["where"], row["turn"]) for row in result.samples] == [
        (f"{gen}:1 turn 1", 1), (f"{gen}:1 turn 2", 2), (f"{gen}:2 turn 1", 1), (f"{gen}:2 turn 2", 2)]
    one = mt_bench(tmp_path, [[SEOUL], [SEOUL, BUSAN]])
    with pytest.raises(KorlhfError) as err:
        score.main(score.Config(predictions=one))
    assert str(err.value) == (f"{one}:1: 2 answer turns but 1 reference turn(s) at {one}:1; a multi-turn answer "
                              "needs one reference per turn (MT-Bench's 'reference' list), so that turn 2 is never "
                              "scored against the reference of turn 1")


def test_records_without_references_are_an_error_or_skipped_on_request(tmp_path):
    gen = mt_bench(tmp_path, [None, [SEOUL, BUSAN]])
    with pytest.raises(KorlhfError) as err:
        score.main(score.Config(predictions=gen))
    assert str(err.value) == (f"{gen}:1: no 'reference' field (1 of 2 records lack it, 1 have one); every prediction "
                              "needs its reference, or BLEU/ROUGE would be over other records than the rest. Add the "
                              "missing references, name the field with --reference_field, or pass --unpaired skip to "
                              "score only the 1 paired records")
    result = score.main(score.Config(predictions=gen, unpaired="skip"))
    assert result.corpus["n"] == 2 and [row["where"] for row in result.samples] == [f"{gen}:2 turn 1", f"{gen}:2 turn 2"]


def test_paired_records_with_different_ids_are_refused(tmp_path):
    gen = write_jsonl(tmp_path / "gen.jsonl", [{"question_id": 1, "response": SEOUL}, {"question_id": 2, "response": JEJU}])
    refs = write_jsonl(tmp_path / "refs.jsonl", [{"question_id": 2, "reference": JEJU},
                                                 {"question_id": 1, "reference": SEOUL}])
    with pytest.raises(KorlhfError) as err:
        score.main(score.Config(predictions=gen, references=refs))
    assert str(err.value) == (f"{gen}:1 (question_id 1) is paired with {refs}:1 (question_id 2); the two files are "
                              "in different orders or one has an extra record")


def test_invalid_text_counts_answers_with_replacement_characters():
    result = metrics(["서울은 수도\ufffd입니다.", "부산은 항구입니다.", "\ufffd\ufffd", "제주"])
    assert result.corpus["invalid_text"] == 0.5
    assert [row["invalid_text"] for row in result.samples] == [1.0, 0.0, 1.0, 0.0]
