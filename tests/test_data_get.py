"""`korlhf data get`: against a loopback fake of the hub's file endpoint (HF_ENDPOINT), never the network."""

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from korlhf.data import get
from korlhf.data.readers import read_source
from korlhf.errors import KorlhfError

COMMIT = "a5ea15e3ac77ed694b79f6204eb31889a2ba989f"
# Rows as skt/kobest_v1's dataset card shows them (labels 0-based; COPA's 1 = alternative_2).
KOBEST_ROWS = {
    "copa": {"premise": "물을 오래 끓였다.", "question": "결과", "alternative_1": "물의 양이 늘어났다.",
             "alternative_2": "물의 양이 줄어들었다.", "label": 1},
    "boolq": {"paragraph": "두아 리파는 잉글랜드의 싱어송라이터, 모델이다.", "question": "두아 리파는 영국인인가?", "label": 1},
    "wic": {"word": "양분", "context_1": "토양에 [양분]이 풍부하여 나무가 잘 자란다.\t",
            "context_2": "태아는 모체로부터 [양분]과 산소를 공급받게 된다.", "label": 1},
    "hellaswag": {"context": "타자가 공을 배트로 친다.", "ending_1": "공이 날아간다.", "ending_2": "공이 멈춘다.",
                  "ending_3": "심판이 웃는다.", "ending_4": "비가 온다.", "label": 0},
    "sentineg": {"sentence": "이 영화 정말 재미없다.", "label": 0},
}


def parquet_bytes(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def hub_files() -> dict[str, bytes]:
    files = {f"skt/kobest_v1/{task}/{split}.jsonl": (json.dumps(row, ensure_ascii=False) + "\n").encode()
             for task, row in KOBEST_ROWS.items() for split in ("train", "validation", "test")}
    files["beomi/KoAlpaca-v1.1a/data/train-00000-of-00001-21df739eb88d711e.parquet"] = parquet_bytes(
        [{"instruction": "김치찌개는 어떻게 끓이나요?", "output": "김치와 돼지고기를 볶은 뒤 물을 붓고 끓입니다.",
          "url": "https://kin.naver.com/qna/1"}])
    return files


class FakeHub(BaseHTTPRequestHandler):
    """``/datasets/<repo>/resolve/<revision>/<file>`` with the headers hf_hub_download checks:
    X-Repo-Commit, ETag and Content-Length (HEAD and GET); 404 with X-Error-Code for a missing file."""

    files: dict[str, bytes] = {}
    requests: list[str] = []

    def do_HEAD(self):
        self.answer(body=False)

    def do_GET(self):
        self.answer(body=True)

    def answer(self, body: bool) -> None:
        self.requests.append(f"{self.command} {self.path}")
        parts = self.path.split("/")  # '', 'datasets', owner, name, 'resolve', revision, file...
        key = "/".join(parts[2:4] + parts[6:])
        data = self.files.get(key)
        self.send_response(200 if data is not None else 404)
        self.send_header("X-Repo-Commit", COMMIT)
        if data is None:
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub(monkeypatch):
    from huggingface_hub import constants

    FakeHub.files, FakeHub.requests = hub_files(), []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read once at import; the suite runs offline
    yield FakeHub
    server.shutdown()
    server.server_close()


def test_fetch_read_back_and_rerun_from_the_cache(hub, tmp_path, capsys):
    cfg = get.Config(names=["kobest", "koalpaca"], out=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
    written = get.main(cfg)
    assert len(written["kobest"]) == 15 and written["koalpaca"] == [tmp_path / "data" / "koalpaca" / "train.parquet"]
    # One HEAD per file; one GET per distinct content (a split's three identical files share a blob).
    assert sorted(r.split()[0] for r in hub.requests) == ["GET"] * 6 + ["HEAD"] * 16
    copa = read_source(tmp_path / "data" / "kobest" / "COPA" / "dev.jsonl")
    assert (copa.format, copa.lines) == ("kobest", [1])
    assert copa.records == [{"prompt": "물을 오래 끓였다. 그래서", "responses": ["물의 양이 줄어들었다.", "물의 양이 늘어났다."],
                             "source": "kobest-COPA", "id": "kobest-COPA-dev-1", "tied_after_first": True}]
    wic = read_source(tmp_path / "data" / "kobest" / "WiC" / "test.jsonl").records[0]
    assert (wic["prompt"], wic["responses"]) == (
        "문장1: 토양에 [양분]이 풍부하여 나무가 잘 자란다. 문장2: 태아는 모체로부터 [양분]과 산소를 공급받게 된다. "
        "두 문장에서 양분가 같은 뜻으로 쓰였나?", ["예", "아니오"])
    assert [read_source(tmp_path / "data" / "kobest" / t / "train.jsonl").records[0]["responses"][0]
            for t in ("BoolQ", "HellaSwag", "SentiNeg")] == ["예", "공이 날아간다.", "부정"]
    alpaca = read_source(written["koalpaca"][0])
    assert alpaca.format == "koalpaca" and [(r["prompt"], r["response"]) for r in alpaca.records] == [
        ("김치찌개는 어떻게 끓이나요?", "김치와 돼지고기를 볶은 뒤 물을 붓고 끓입니다.")]
    assert written["koalpaca"][0].is_symlink()
    from korlhf.data.kobest import TASKS, read_kobest
    from korlhf.evaluation.kobest import task_files

    files = task_files(tmp_path / "data" / "kobest", list(TASKS), "dev")  # what korlhf eval kobest --data reads
    assert files == {t: tmp_path / "data" / "kobest" / t / "dev.jsonl" for t in TASKS}
    assert read_kobest(files["COPA"]) == [{"context": "물을 오래 끓였다.  그래서", "choices": ["물의 양이 늘어났다.",
                                           "물의 양이 줄어들었다."], "label": 1, "id": "kobest-COPA-dev-1", "task": "COPA"}]
    hub.requests.clear()
    capsys.readouterr()
    assert get.main(cfg) == written
    assert hub.requests == []  # every file cached: not one request
    assert "koalpaca: 1 file(s) of beomi/KoAlpaca-v1.1a (0 downloaded, 1 from the cache) -> " in capsys.readouterr().out


def test_offline_names_what_is_missing_and_the_command(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    cfg = get.Config(names=["koalpaca"], out=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(KorlhfError) as exc:
        get.main(cfg)
    assert str(exc.value) == (
        f"HF_HUB_OFFLINE=1 and the Hugging Face cache ({tmp_path / 'cache'}) lacks beomi/KoAlpaca-v1.1a: "
        "data/train-00000-of-00001-21df739eb88d711e.parquet. Fetch them once with network: HF_HUB_OFFLINE=0 "
        f"korlhf data get koalpaca --cache_dir {tmp_path / 'cache'}")
    assert hub.requests == []
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    get.main(cfg)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # cached now: offline is enough
    hub.requests.clear()
    assert get.main(cfg)["koalpaca"][0].is_file() and hub.requests == []


def test_a_file_the_hub_lacks_is_named(hub, tmp_path):
    del hub.files["skt/kobest_v1/wic/test.jsonl"]
    with pytest.raises(KorlhfError) as exc:
        get.main(get.Config(names=["kobest"], out=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache")))
    endpoint = os.environ["HF_ENDPOINT"]
    assert str(exc.value) == (f"{endpoint}: dataset skt/kobest_v1 has no file wic/test.jsonl; the hub copy changed "
                              "since korlhf's table (korlhf/data/get.py) was written")


def test_cli_unknown_name_and_offline(tmp_path):
    run = [sys.executable, "-m", "korlhf", "data", "get"]
    result = subprocess.run([*run, "kobst"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.strip() == (
        "error: unknown data set 'kobst'; did you mean 'kobest'? known: koalpaca, kobest (`korlhf data get` with no "
        "name lists them)")
    result = subprocess.run([*run, "kobest", "--cache_dir", str(tmp_path)], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: HF_HUB_OFFLINE=1 and the Hugging Face cache ({tmp_path}) lacks "
                                    "skt/kobest_v1: boolq/train.jsonl, boolq/validation.jsonl, boolq/test.jsonl, ")
