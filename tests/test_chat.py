"""`korlhf chat` and the streamed generation it shares with `korlhf serve`."""

import dataclasses
import io
import subprocess
import sys

import pytest
import torch
from rich.console import Console

from korlhf.chat import ChatSession, repl
from korlhf.conversation import DecodingFields, load_model, stream_reply
from korlhf.decoding import Decoding
from korlhf.errors import KorlhfError
from korlhf.streaming import StopText

SENTENCE = "안녕하세요, 반갑습니다! 오늘은 불고기를 먹었어요."


class Replay:
    """A stand-in model whose ``generate`` streams a fixed token sequence the way transformers does:
    the prompt first, then one token per step, checking the stopping criteria after each."""

    device = torch.device("cpu")

    def __init__(self, ids):
        self.ids = ids

    def generate(self, input_ids, attention_mask, streamer, stopping_criteria, max_new_tokens, eos_token_id, **kwargs):
        streamer.put(input_ids)
        for step, token in enumerate(self.ids):
            if step == max_new_tokens:
                break
            streamer.put(torch.tensor([token]))
            if token == eos_token_id or stopping_criteria(input_ids, None).all():
                break
        streamer.end()


@pytest.fixture(scope="module")
def tiny(tiny_gpt2):
    return load_model(tiny_gpt2, device="cpu")


def test_streamed_korean_is_never_split_mid_syllable(tiny_tokenizer):
    ids = tiny_tokenizer(SENTENCE, add_special_tokens=False)["input_ids"]
    assert any("\ufffd" in tiny_tokenizer.decode([i]) for i in ids)  # tokens really do split syllables
    pieces = []
    reply = stream_reply(Replay(ids + [tiny_tokenizer.eos_token_id]), tiny_tokenizer, [5, 6], Decoding(), pieces.append)
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) == reply.text == SENTENCE
    assert len(pieces) > 5  # streamed piece by piece, not all at the end
    assert (reply.finish_reason, reply.prompt_tokens, reply.completion_tokens) == ("stop", 2, len(ids) + 1)


def test_invalid_bytes_a_sampled_model_emits_never_reach_the_screen(tiny_tokenizer):
    ids = tiny_tokenizer(SENTENCE, add_special_tokens=False)["input_ids"]
    lone = next(i for i in range(len(tiny_tokenizer)) if tiny_tokenizer.decode([i]) == "\ufffd")
    sampled = ids[:4] + [lone] + ids[4:] + [lone]  # a stray byte mid-answer and one at the end
    assert "\ufffd" in tiny_tokenizer.decode(sampled)
    pieces = []
    reply = stream_reply(Replay(sampled), tiny_tokenizer, [5], Decoding(), pieces.append)
    assert all("\ufffd" not in p for p in pieces) and "\ufffd" not in reply.text
    assert reply.text == "".join(pieces) == SENTENCE and reply.dropped >= 1


def test_length_and_stop_string_finish_reasons(tiny_tokenizer):
    ids = tiny_tokenizer(SENTENCE, add_special_tokens=False)["input_ids"]
    short = stream_reply(Replay(ids), tiny_tokenizer, [5], Decoding(max_new_tokens=3))
    assert (short.finish_reason, short.completion_tokens) == ("length", 3)
    pieces = []
    cut = stream_reply(Replay(ids), tiny_tokenizer, [5], Decoding(stop=["불고기"]), pieces.append)
    assert cut.text == "".join(pieces) == "안녕하세요, 반갑습니다! 오늘은 "
    assert cut.finish_reason == "stop" and cut.completion_tokens < len(ids)  # generation stopped early


def test_stop_text_holds_back_a_possible_stop_string():
    out = []
    stop = StopText(["###"], out.append)
    for piece in ["안녕", "하세요 #", "#", " 아님", "##", "#끝"]:
        stop.push(piece)
    assert out == ["안녕", "하세요 ", "## 아님"]  # "#" and "##" wait until they cannot start "###"
    assert stop.hit
    stop.finish()
    assert "".join(out) == "안녕하세요 ## 아님"


def test_greedy_reply_equals_plain_generate(tiny):
    tokenizer, model = tiny
    ids = tokenizer("### Instruction(명령어):\n서울은 어디에 있나요?\n\n### Response(응답):",
                    add_special_tokens=False)["input_ids"]
    pieces = []
    reply = stream_reply(model, tokenizer, ids, Decoding(max_new_tokens=24), pieces.append,
                         strip_leading=False)
    out = model.generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False)[0, len(ids):]
    assert reply.text == "".join(pieces) == tokenizer.decode(out, skip_special_tokens=True).replace("\ufffd", "")
    assert reply.completion_tokens == len(out)


def test_seed_makes_sampling_reproducible(tiny):
    tokenizer, model = tiny
    decoding = Decoding.from_preset("sample", max_new_tokens=16, seed=7)
    first = stream_reply(model, tokenizer, [10, 11, 12], decoding).text
    assert stream_reply(model, tokenizer, [10, 11, 12], decoding).text == first
    assert stream_reply(model, tokenizer, [10, 11, 12], dataclasses.replace(decoding, seed=8)).text != first


def test_decoding_flags_map_onto_presets():
    assert DecodingFields().decoding().preset == "top-p"
    assert DecodingFields(temperature=0).decoding().do_sample is False  # 0 = greedy, as in OpenAI's API
    warm = DecodingFields(preset="greedy", temperature=0.8).decoding()
    assert (warm.preset, warm.do_sample, warm.temperature) == ("sample", True, 0.8)
    assert DecodingFields(seed=None).decoding().seed is None  # no seed: every answer differs
    with pytest.raises(KorlhfError, match="stop strings must not be empty"):
        DecodingFields(stop=[""])


def test_stops_at_the_tokenizers_eos(tiny_gpt2):
    tokenizer, model = load_model(tiny_gpt2, device="cpu")
    with torch.no_grad():  # make EOS the most likely next token after anything
        wte = model.get_input_embeddings().weight
        wte[tokenizer.eos_token_id] = wte[tokenizer.eos_token_id] * 50
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(wte[tokenizer.eos_token_id])
    reply = stream_reply(model, tokenizer, [10, 11], Decoding(max_new_tokens=20))
    assert (reply.text, reply.finish_reason, reply.completion_tokens) == ("", "stop", 1)


def test_history_uses_the_chat_template_and_resets(tiny):
    tokenizer, model = tiny
    session = ChatSession(model, tokenizer, Decoding(max_new_tokens=6))
    first = session.answer("첫 번째 질문")
    session.answer("두 번째 질문")
    assert [m["role"] for m in session.messages] == ["user", "assistant", "user", "assistant"]
    messages, ids, _ = session.prompt("세 번째 질문")
    expected = ("### Instruction(명령어):\n첫 번째 질문\n\n### Response(응답): " + first.text + "</s>\n\n"
                "### Instruction(명령어):\n두 번째 질문")
    assert tokenizer.decode(ids).startswith(expected)
    session.reset()
    assert session.messages == []
    assert session.prompt("세 번째 질문")[0] == [{"role": "user", "content": "세 번째 질문"}]


def test_old_turns_are_dropped_to_fit_the_context(tiny):
    tokenizer, model = tiny
    session = ChatSession(model, tokenizer, Decoding(max_new_tokens=8), system="친절하게 답하세요.")
    session.context = 90
    for i in range(4):
        session.answer(f"{i}번째 질문입니다. 길게 써 봅니다.")
    messages, ids, budget = session.prompt("마지막 질문")
    assert session.dropped_turns >= 1 and len(ids) + budget <= 90 and budget == 8
    assert messages[0] == {"role": "system", "content": "친절하게 답하세요."}
    assert messages[-1] == {"role": "user", "content": "마지막 질문"}


def test_max_new_tokens_filling_the_context_keeps_the_history(tiny):
    # The issue: max_new_tokens = the context dropped every old turn on every answer.
    tokenizer, model = tiny
    session = ChatSession(model, tokenizer, Decoding(max_new_tokens=120))
    session.context = 120
    assert session.reserved == 60
    session.messages = [{"role": "user", "content": "안녕"}, {"role": "assistant", "content": "반가워요"}]
    messages, ids, budget = session.prompt("서울은?")
    assert session.dropped_turns == 0 and len(messages) == 3
    assert budget == 120 - len(ids) >= 60


def script(*steps):
    """A ``read`` for `repl`: returns each string in turn, raises each exception class."""
    steps = iter(steps)

    def read(prompt):
        step = next(steps)
        if isinstance(step, type):
            raise step()
        return step

    return read


def test_ctrl_c_at_the_prompt_asks_before_losing_the_conversation(tiny):
    tokenizer, model = tiny
    session = ChatSession(model, tokenizer, Decoding(max_new_tokens=4))
    console = Console(file=io.StringIO(), highlight=False, width=200)
    repl(session, script("안녕", KeyboardInterrupt, "또 물어볼게요", KeyboardInterrupt, KeyboardInterrupt), console,
         show_stats=False)
    out = console.file.getvalue()
    assert out.count("(종료하려면 Ctrl-C를 한 번 더 누르세요: 대화 1턴이 사라집니다 · /exit, Ctrl-D도 종료)") == 1
    assert "(종료하려면 Ctrl-C를 한 번 더 누르세요: 대화 2턴이 사라집니다" in out  # asked again after a new turn
    assert len(session.messages) == 4
    empty = ChatSession(model, tokenizer, Decoding(max_new_tokens=4))
    quiet = Console(file=io.StringIO())
    repl(empty, script(KeyboardInterrupt), quiet)  # nothing to lose: leaves at once
    assert "Ctrl-C" not in quiet.file.getvalue()


def test_dropped_turns_are_named_once(tiny):
    tokenizer, model = tiny
    session = ChatSession(model, tokenizer, Decoding(max_new_tokens=8))
    session.context = 60
    console = Console(file=io.StringIO(), highlight=False, width=300)
    questions = [f"{i}번째 질문입니다. 조금 길게 써 봅니다." for i in range(5)]
    repl(session, script(*questions, EOFError), console, show_stats=False)
    out = console.file.getvalue()
    assert "문맥 60토큰에 맞추려고 앞의 대화 1번째 턴은 모델에게 보이지 않았습니다 (/reset: 새 대화)" in out
    notes = [line for line in out.splitlines() if "보이지 않았습니다" in line]
    assert len(notes) == len(set(notes)) >= 2  # said when it changes, not repeated every turn
    assert f"앞의 대화 1–{session.dropped_turns}번째 턴은" in notes[-1]


def korlhf(*args, stdin=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "korlhf", *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, encoding="utf-8")


def test_chat_command_with_piped_input(tiny_gpt2):
    lines = "/help\n안녕하세요\n무엇을 할 수 있나요?\n/reset\n다시 시작\n/exit\n이 줄은 읽지 않습니다\n"
    result = korlhf("chat", "--model", str(tiny_gpt2), "--max_new_tokens", "12", "--seed", "0", stdin=lines)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Traceback" not in result.stderr
    assert "명령: /reset 새 대화" in out and "(대화를 새로 시작합니다)" in out
    assert out.count("모델> ") == 3 and "이 줄은" not in out
    assert "나> 안녕하세요\n모델> " in out  # piped input is echoed, so the transcript reads well


def test_chat_command_rejects_bad_settings():
    result = korlhf("chat", "--model", "x", "--top_p", "1.5")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: decoding settings: top_p must be in (0, 1]"
    result = korlhf("chat", "--model", "x", "--preset", "beam")
    assert result.stderr.strip() == ("error: preset 'beam' cannot stream its answer token by token; "
                                     "choose one of: greedy, sample, top-k, top-p, typical-p, min-p")
    result = korlhf("chat", "--temperature", "0")
    assert result.stderr.strip() == "error: korlhf chat: missing required config field(s): model (set them in the YAML file or as --model VALUE)"
