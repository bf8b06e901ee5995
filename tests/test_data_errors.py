"""Bad input: every case gets one exact, actionable message (file, line or record, fix); nothing is lost."""

import json
import subprocess
import sys

import pytest

from korlhf.data.readers import read_source
from korlhf.errors import KorlhfError

KOREAN_CSV = "질문,답변\n김치는 어떻게 만드나요?,배추를 소금에 절입니다.\n"


def error(path, *args, **kwargs) -> str:
    with pytest.raises(KorlhfError) as exc:
        read_source(path, *args, **kwargs)
    return str(exc.value)


def test_cp949_file_says_how_to_convert(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_bytes(KOREAN_CSV.encode("cp949"))
    assert error(path) == (f"{path}:1: not UTF-8; the bytes look like CP949/EUC-KR (the Korean Windows encoding). "
                           f"Convert the file to UTF-8: iconv -f cp949 -t utf-8 {path} > {tmp_path / 'qa.utf8.csv'}")


def test_euc_kr_second_line(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_bytes(b'{"prompt": "ok"}\n' + '{"prompt": "안녕하세요"}\n'.encode("euc-kr"))
    assert error(path).startswith(f"{path}:2: not UTF-8; the bytes look like CP949/EUC-KR")


def test_other_bytes_are_not_called_korean(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"prompt": "\xff\xfe\xff"}\n')
    assert error(path) == f"{path}:1: not UTF-8 (byte 0xff at offset 12); save the file as UTF-8"


def test_utf8_bom_is_read_with_a_note(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_bytes(b"\xef\xbb\xbf" + KOREAN_CSV.encode())
    src = read_source(path, column_map={"prompt": "질문", "response": "답변"})
    assert src.records[0]["prompt"] == "김치는 어떻게 만드나요?"  # the BOM did not stick to the first column
    assert src.notes == [f"{path}: starts with a UTF-8 byte-order mark (BOM); ignored it"]


def test_bom_inside_concatenated_file(tmp_path):
    path = tmp_path / "cat.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"prompt": "a1"}\n\xef\xbb\xbf{"prompt": "b2"}\n')
    src = read_source(path)
    assert [r["prompt"] for r in src.records] == ["a1", "b2"]
    assert src.notes[1] == f"{path}: 1 byte-order mark(s) inside the file (files concatenated?); removed them"


def test_utf16_bom(tmp_path):
    path = tmp_path / "qa.tsv"
    path.write_bytes(KOREAN_CSV.encode("utf-16"))
    assert error(path) == (f"{path}: UTF-16 text (byte-order mark fffe); korlhf reads UTF-8. "
                           f"Convert it: iconv -f utf-16 -t utf-8 {path} > {tmp_path / 'qa.utf8.tsv'}")


def test_json_array_read_as_json_lines(tmp_path):
    path = tmp_path / "ppo.jsonl"
    path.write_text('[\n  {"prompt": "하나"},\n  {"prompt": "둘"}\n]\n', encoding="utf-8")
    assert error(path, "jsonl") == (f"{path}: is one JSON array ([...]), not JSON Lines; use --format json, "
                                    "or leave --format out (korlhf tells the two apart)")
    src = read_source(path)  # sniffed: read as what it is, with a note
    assert [r["prompt"] for r in src.records] == ["하나", "둘"] and src.lines == [2, 3]
    assert src.notes == [f"{path}: is one JSON array despite its .jsonl name; read it as json"]


def test_json_lines_read_as_json(tmp_path):
    path = tmp_path / "ppo.json"
    path.write_text('{"prompt": "하나"}\n{"prompt": "둘"}\n', encoding="utf-8")
    assert error(path, "json") == (f"{path}: is JSON Lines (one object per line), not one JSON document; use "
                                   "--format jsonl, or leave --format out (korlhf tells the two apart)")
    assert read_source(path).notes == [f"{path}: is JSON Lines (one object per line) despite its .json name; "
                                       "read it as jsonl"]


def test_broken_json_line(tmp_path):
    path = tmp_path / "sft.jsonl"
    path.write_text('{"prompt": "a", "response": "b"}\n\n{"prompt": "c" "response": "d"}\n', encoding="utf-8")
    assert error(path) == (f"{path}:3: not valid JSON (Expecting ',' delimiter at column 16); "
                           "fix or delete that line")


def test_broken_record_in_json_array(tmp_path):
    path = tmp_path / "rm.json"
    path.write_text('[\n {"prompt": "a"},\n {"prompt": "b",}\n]', encoding="utf-8")
    assert error(path) == f"{path}:3:17: not valid JSON (Expecting property name enclosed in double quotes)"
    path.write_text('[\n {"prompt": "a"},\n {"prompt": "b"}\n', encoding="utf-8")
    assert error(path) == f"{path}: the JSON array is not closed (no final ']'); the file looks cut short"


def test_missing_key_names_record_key_and_keys_present(tmp_path):
    path = tmp_path / "kochatgpt_2_RM.jsonl"
    rows = [{"prompt": "p", "completion_0": "a", "completion_1": "b", "completion_2": "c", "ranking": [0, 1, 2]},
            {"prompt": "q", "completion_0": "a", "completion_2": "c", "ranking": [0, 1, 2]}]
    path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    assert error(path, "kochatgpt-rm") == (
        f"{path}: record 2 (line 13): missing key 'completion_1' (keys present: completion_0, completion_2, prompt, "
        "ranking); if another column holds it, add --map completion_1=COLUMN")


def test_missing_mapped_column(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text(KOREAN_CSV, encoding="utf-8")
    assert error(path, column_map={"prompt": "질문", "response": "대답"}) == (
        f"{path}: record 1 (line 2): --map response=대답: no column '대답' (keys present: 답변, 질문)")


def test_ranking_not_a_permutation(tmp_path):
    path = tmp_path / "rm.jsonl"
    path.write_text(json.dumps({"prompt": "p", "completion_0": "a", "completion_1": "b", "completion_2": "c",
                                "ranking": [2, 2, 0]}) + "\n", encoding="utf-8")
    assert error(path) == (f"{path}: record 1 (line 1): ranking [2, 2, 0] is not a permutation of 0..2 (one entry "
                           "per completion_0..completion_2); ranking[k] must be the slot of the k-th best answer, "
                           "best = completion_{ranking[0]}")


@pytest.mark.parametrize("content", [b"", b"  \n\n", b"\xef\xbb\xbf"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    assert error(path) == f"{path}: empty file: there are no records to read"


def test_empty_array(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text("[]", encoding="utf-8")
    assert error(path) == f"{path}: no records in the file (an empty list?)"


def test_nfd_header_is_matched_after_nfc(tmp_path):
    import unicodedata

    path = tmp_path / "mac.csv"
    path.write_text(unicodedata.normalize("NFD", KOREAN_CSV), encoding="utf-8")
    src = read_source(path, column_map={"prompt": "질문", "response": "답변"})
    assert src.notes == [f"{path}: 1 record(s) had column names in NFD (decomposed Hangul, as macOS writes them); "
                         "normalised the names to NFC"]


def test_nfd_text_is_refused_by_build(tmp_path):
    import unicodedata

    from korlhf.data import build

    path = tmp_path / "kept.jsonl"
    path.write_text(json.dumps({"prompt": unicodedata.normalize("NFD", "한국어 질문"), "response": "답",
                                "source": "s", "id": "1"}, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(KorlhfError) as exc:
        build.main(build.Config(sources=[str(path)], out=str(tmp_path / "out")))
    assert str(exc.value) == (f"{path}:1: prompt is NFD text (decomposed Hangul jamo, as macOS writes it); a "
                              "tokenizer sees different tokens for it. Run `korlhf data clean` first (it "
                              "normalises to NFC)")


def test_unknown_format_and_missing_file(tmp_path):
    assert error(tmp_path / "x.jsonl", "kochatgpt") == (
        "unknown --format 'kochatgpt'; choose one of: kochatgpt-sft, kochatgpt-rm, kochatgpt-ppo, "
        "kochatgpt-conversation, koalpaca, nikl, aihub, aihub-mrc, aihub-dialogue, aihub-emotion, kobest, records, "
        "json, jsonl, csv, tsv, parquet, text")
    assert error(tmp_path / "nope.jsonl") == f"file not found: {tmp_path / 'nope.jsonl'}"


def test_unknown_shape(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"질문": "a", "답변": "b"}\n', encoding="utf-8")
    assert error(path) == (f"{path}: cannot tell the format from the keys (답변, 질문); pass --format, or map your "
                           "columns with --map prompt=COLUMN --map response=COLUMN")


def test_cli_prints_one_line_and_exits_2(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_bytes(KOREAN_CSV.encode("cp949"))
    result = subprocess.run([sys.executable, "-m", "korlhf", "data", "clean", str(path), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {path}:1: not UTF-8; the bytes look like CP949/EUC-KR "
                                                  f"(the Korean Windows encoding). Convert the file to UTF-8: iconv -f "
                                                  f"cp949 -t utf-8 {path} > {tmp_path / 'qa.utf8.csv'}"]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name,content,message", [
    ("export.jsonl", "첫 번째 질문입니다\n두 번째 질문\n",
     "{path}:1: not valid JSON (Expecting value at column 1); a .jsonl file holds one JSON object per line: fix the "
     "file, or read each line as a prompt with --format text"),
    ("export.jsonl", '\n"질문 하나"\n"질문 둘"\n',
     '{path}:2: a JSON string ("질문 하나"), not a record; a .jsonl file holds one JSON object per line: fix the '
     "file, or read each line as a prompt with --format text"),
    ("answer.json", "42\n",
     "{path}:1: a JSON number (42), not a record; a .json file holds a JSON object or array: fix the file, or "
     "read each line as a prompt with --format text"),
    ("notes.json", "prompt: 안녕\n",
     "{path}:1:1: not valid JSON (Expecting value); a .json file holds a JSON object or array: fix the file, or "
     "read each line as a prompt with --format text"),
])
def test_json_named_file_that_is_not_json_is_an_error(tmp_path, name, content, message):
    # These were read as plain-text prompts without a word (a broken export became "prompts").
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert error(path) == message.format(path=path)
    lines = read_source(path, "text").records  # asked for explicitly, lines are prompts
    assert len(lines) == len(content.rstrip().splitlines())


def test_inspect_refuses_a_jsonl_of_text_lines(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("질문입니다\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "korlhf", "data", "inspect", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"error: {path}:1: not valid JSON (Expecting value at column 1); a .jsonl file "
                                     "holds one JSON object per line: fix the file, or read each line as a prompt "
                                     "with --format text")
