"""The file readers of every stage give the data stage's diagnosis of a bad file, never a traceback."""

import pytest

from korlhf.errors import KorlhfError
from korlhf.evaluation.score import read_column
from korlhf.generate import read_prompts
from korlhf.records import load_records, read_jsonl

KOREAN = "김치는 어떻게 만드나요?\n불고기 양념은?\n"


def cp949_message(path) -> str:
    return (f"{path}:1: not UTF-8; the bytes look like CP949/EUC-KR (the Korean Windows encoding). Convert the file "
            f"to UTF-8: iconv -f cp949 -t utf-8 {path} > {path.with_name(path.stem + '.utf8' + path.suffix)}")


READERS = {  # what generate, eval, and the training / label stages (records) call on their files
    "generate prompts": read_prompts,
    "eval predictions": lambda path: read_column(path, "response", None),
    "records (train, label)": lambda path: list(read_jsonl(path)),
}


CASES = [(reader, suffix) for reader in READERS for suffix in (".txt", ".jsonl")
         if not (suffix == ".txt" and reader.startswith("records"))]  # records are JSON Lines only


@pytest.mark.parametrize("reader,suffix", CASES, ids=[f"{r}{s}" for r, s in CASES])
def test_cp949_file_is_diagnosed_by_every_reader(tmp_path, reader, suffix):
    path = tmp_path / f"input{suffix}"
    text = KOREAN if suffix == ".txt" else '{"prompt": "김치는?", "response": "배추"}\n'
    path.write_bytes(text.encode("cp949"))
    with pytest.raises(KorlhfError) as err:
        READERS[reader](path)
    assert str(err.value) == cp949_message(path)


def test_utf16_and_empty_prompt_files(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_bytes(KOREAN.encode("utf-16"))
    with pytest.raises(KorlhfError, match=r"UTF-16 text \(byte-order mark fffe\); korlhf reads UTF-8"):
        read_prompts(path)
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(KorlhfError) as err:
        read_prompts(path)
    assert str(err.value) == f"{path}: empty file: there are no records to read"


def test_broken_json_array_of_prompts_names_line_and_column(tmp_path):
    path = tmp_path / "prompts.json"
    path.write_text('[\n {"prompt": "하나"},\n {"prompt": "둘",}\n]\n', encoding="utf-8")
    with pytest.raises(KorlhfError) as err:
        read_prompts(path)
    assert str(err.value) == f"{path}:3:17: not valid JSON (Expecting property name enclosed in double quotes)"


def test_training_records_from_a_cp949_file(tmp_path):
    path = tmp_path / "sft.jsonl"
    path.write_bytes('{"prompt": "a", "response": "b"}\n{"prompt": "김치", "response": "배추"}\n'.encode("cp949"))
    with pytest.raises(KorlhfError) as err:
        load_records(path, "sft")
    assert str(err.value).startswith(f"{path}:2: not UTF-8; the bytes look like CP949/EUC-KR")
