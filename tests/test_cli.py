import subprocess
import sys
import time


def run(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "korlhf", *args], capture_output=True, text=True, timeout=timeout)


def test_import_and_help_stay_light():
    code = "import sys, korlhf, korlhf.cli; heavy = [m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules]; print(heavy)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    start = time.perf_counter()
    result = run("--help")
    assert result.returncode == 0
    assert time.perf_counter() - start < 3.0  # typically ~0.15 s; generous for a loaded CI box
    assert "demo" in result.stdout


def test_user_error_is_one_line_without_traceback():
    result = run("demo", "--pretrain_step", "3")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == "error: korlhf demo: unknown flag --pretrain_step; did you mean 'pretrain_steps'?"


def test_stage_help_lists_fields():
    result = run("demo", "--help")
    assert result.returncode == 0
    assert "pretrain_steps" in result.stdout and "vocab_size" in result.stdout


def test_eval_with_a_positional_file_says_how_to_write_it():
    result = run("eval", "gen.jsonl")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "error: unexpected argument 'gen.jsonl': korlhf eval takes its files as options: korlhf eval --predictions "
        "gen.jsonl (--references REFS.jsonl adds reference metrics; the other eval commands are sweep, sheet, agree "
        "and kobest)")
    result = run("eval", "--predictions", "a.jsonl", "b.jsonl")
    assert result.stderr.strip().startswith("error: unexpected argument 'b.jsonl': one --predictions file is scored "
                                            "at a time (--references")
