"""`korlhf chat`: talk to a model in the terminal, with streamed Korean output.

The conversation is a message list rendered with the model's own chat template (the one it was
trained with), so turn two sees turn one exactly as SFT laid it out. Output streams through
`korlhf.streaming.IncrementalDecoder`, so a Hangul syllable split across byte-level tokens never
prints half-made. `stream_reply` is also what `korlhf serve` runs in its generation worker.

    korlhf chat --model runs/demo/sft --preset top-p --temperature 0.7 --max_new_tokens 128
    나> 서울은 어느 나라의 수도야?
    모델> ...
    나> /reset     (new conversation)     나> /exit
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

from korlhf.decoding import Decoding
from korlhf.errors import KorlhfError
from korlhf.streaming import StopText  # noqa: F401  (re-exported: chat's streaming pieces)

# Presets whose answer can stream token by token (beam search and contrastive search cannot).
STREAMED = ("greedy", "sample", "top-k", "top-p", "typical-p", "min-p")


@dataclass(kw_only=True)
class DecodingFields:
    """Decoding flags of chat and serve: a `korlhf.decoding` preset and the knobs that change it.

    The same presets and knobs as `korlhf generate`; ``temperature: 0`` means greedy (as in
    OpenAI's API), and a temperature above 0 on the greedy preset samples.
    """

    preset: str = field(default="top-p", metadata={"help": f"decoding preset: {', '.join(STREAMED)}"})
    max_new_tokens: int = field(default=256, metadata={"help": "most tokens in one answer"})
    temperature: float | None = field(default=None, metadata={
        "help": "sampling temperature; 0 = greedy (default: the preset's, 1.0)"})
    top_p: float | None = field(default=None, metadata={"help": "nucleus sampling mass (default: the preset's)"})
    top_k: int | None = field(default=None, metadata={"help": "sample among the k most likely tokens (0 = off)"})
    min_p: float | None = field(default=None, metadata={"help": "drop tokens with p < min_p * p(top token)"})
    repetition_penalty: float | None = field(default=None, metadata={
        "help": "divide the logits of tokens already present by this (1.0 = off; 1.1-1.2 curbs loops)"})
    seed: int | None = field(default=None, metadata={"help": "random seed for sampling (reproducible answers)"})
    stop: list[str] = field(default_factory=list, metadata={"help": "stop the answer before any of these strings"})

    def __post_init__(self):
        self.decoding()  # fail at startup on bad settings, not at the first answer

    def decoding(self, **changes) -> Decoding:
        """The `Decoding` these fields describe, with ``changes`` (e.g. one request's settings) on top."""
        from korlhf.generate import decoding_from

        values = {**{f.name: getattr(self, f.name) for f in fields(DecodingFields)}, **changes}
        if values["temperature"] == 0:
            values.update(preset="greedy", temperature=None)
        elif values["temperature"] is not None and values["preset"] == "greedy":
            values["preset"] = "sample"
        if values["preset"] not in STREAMED:
            raise KorlhfError(f"preset '{values['preset']}' cannot stream its answer token by token; "
                              f"choose one of: {', '.join(STREAMED)}")
        if any(not s for s in values["stop"]):
            raise KorlhfError("stop strings must not be empty")
        return decoding_from(values)


@dataclass(kw_only=True)
class ModelArgs:
    """Which model to load and how; shared by `korlhf chat` and `korlhf serve`."""

    model: str = field(metadata={"help": "model directory (e.g. runs/demo/sft) or hub id"})
    template: str | None = field(default=None, metadata={
        "help": "chat template: kochatgpt, koalpaca, chatml; default: the model's own"})
    system: str | None = field(default=None, metadata={"help": "system message put before every conversation"})
    dtype: str = field(default="auto", metadata={"help": "weights dtype: auto, float32, bfloat16, float16"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1, mps; default: cuda if available"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow model code from the hub repository"})


@dataclass(kw_only=True)
class Config(DecodingFields, ModelArgs):
    show_stats: bool = field(default=True, metadata={"help": "print tokens and tokens/s after each answer"})


@dataclass
class Reply:
    text: str
    finish_reason: str  # "stop" (EOS or a stop string), "length" (max_new_tokens) or "cancelled"
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    dropped: int = 0  # U+FFFD left out of the text: invalid byte sequences the model emitted


def pick_device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(model: str, template: str | None = None, dtype: str = "auto", device: str | None = None,
               trust_remote_code: bool = False):
    """Tokenizer and causal LM (eval mode, on ``device``) through `korlhf.models`."""
    from transformers.utils import logging as hf_logging

    from korlhf.models import load_causal_lm, load_tokenizer

    hf_logging.disable_progress_bar()  # the caller shows its own "loading" line
    tokenizer = load_tokenizer(model, template, trust_remote_code)
    lm = load_causal_lm(model, tokenizer, dtype=dtype, device=pick_device(device), trust_remote_code=trust_remote_code)
    return tokenizer, lm.eval()


def context_length(model, tokenizer) -> int:
    """Most tokens (prompt + answer) the model can attend to."""
    for n in (getattr(model.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)):
        if isinstance(n, int) and 0 < n < 10_000_000:
            return n
    return 2048


def encode(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of ``messages`` rendered with the chat template, ready for the answer.

    The template already holds every marker the model was trained with, so the tokenizer adds
    no special tokens of its own (as in PPO rollouts).
    """
    from korlhf.templates import render_prompt

    return tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False, verbose=False)["input_ids"]


def stream_reply(model, tokenizer, input_ids: list[int], decoding: Decoding,
                 on_text: Callable[[str], None] | None = None, cancelled: Callable[[], bool] | None = None,
                 strip_leading: bool = True) -> Reply:
    """Generate one answer to ``input_ids``, passing complete text pieces to ``on_text`` as they come.

    Stops at the tokenizer's EOS, a stop string, ``max_new_tokens``, or when ``cancelled()`` turns
    true (a client went away). Runs ``model.generate`` in the calling thread. ``strip_leading``
    drops whitespace before the first character (off for raw text completion).
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList
    from transformers.generation.streamers import BaseStreamer

    from korlhf.streaming import IncrementalDecoder

    pieces: list[str] = []

    def emit(piece: str) -> None:
        if strip_leading and not pieces:
            piece = piece.lstrip()  # templates put a space or newline before the answer; it is not content
            if not piece:
                return
        pieces.append(piece)
        if on_text:
            on_text(piece)

    sink = StopText(decoding.stop, emit)
    decoder = IncrementalDecoder(tokenizer)
    new_ids: list[int] = []

    class Streamer(BaseStreamer):
        prompt_seen = False

        def put(self, value):
            if not self.prompt_seen:  # generate first echoes the prompt
                self.prompt_seen = True
                return
            ids = value.reshape(-1).tolist()
            new_ids.extend(ids)
            sink.push(decoder.push(ids))

        def end(self):
            sink.push(decoder.flush())
            sink.finish()

    class Stop(StoppingCriteria):
        def __call__(self, ids, scores, **kwargs):
            done = sink.hit or bool(cancelled and cancelled())
            return torch.full((ids.shape[0],), done, dtype=torch.bool, device=ids.device)

    kwargs = decoding.generate_kwargs(tokenizer)
    # StopText below both cuts the text and ends generation at a stop string, so transformers'
    # own stop-string criterion (built from the whole vocabulary on every call) is not needed.
    kwargs.pop("stop_strings", None), kwargs.pop("tokenizer", None)
    criteria = StoppingCriteriaList([Stop(), *kwargs.pop("stopping_criteria", [])])
    if decoding.seed is not None:
        torch.manual_seed(decoding.seed)
    start = time.perf_counter()
    ids = torch.tensor([input_ids], device=model.device)
    with torch.inference_mode():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=Streamer(),
                       stopping_criteria=criteria, **kwargs)
    if cancelled and cancelled() and not sink.hit:
        reason = "cancelled"
    elif sink.hit or (new_ids and new_ids[-1] == tokenizer.eos_token_id):
        reason = "stop"
    else:
        reason = "length" if len(new_ids) >= decoding.max_new_tokens else "stop"
    return Reply("".join(pieces), reason, len(input_ids), len(new_ids), time.perf_counter() - start, decoder.dropped)


class ChatSession:
    """A conversation with one model: the message history and how to answer the next turn."""

    def __init__(self, model, tokenizer, decoding: Decoding, system: str | None = None):
        self.model, self.tokenizer, self.decoding, self.system = model, tokenizer, decoding, system
        self.context = context_length(model, tokenizer)
        self.messages: list[dict] = []
        self.dropped_turns = 0  # old turns (the first N) left out to fit the context, in the last answer
        self.budget = decoding.max_new_tokens  # the last answer's token budget

    @property
    def reserved(self) -> int:
        """Room kept for the answer: ``max_new_tokens``, but at most half the context, so that a
        max_new_tokens filling the context does not cost the whole history on every turn."""
        return max(1, min(self.decoding.max_new_tokens, self.context // 2))

    def reset(self) -> None:
        self.messages = []

    def prompt(self, user_text: str) -> tuple[list[dict], list[int], int]:
        """Messages, their token ids and the answer budget for a new user turn.

        Oldest turns are dropped, only as many as needed, until the prompt leaves `reserved`
        tokens; the answer then gets all the room left, up to ``max_new_tokens``.
        """
        head = [{"role": "system", "content": self.system}] if self.system else []
        turns = self.messages + [{"role": "user", "content": user_text}]
        self.dropped_turns = 0
        while True:
            ids = encode(self.tokenizer, head + turns)
            room = self.context - len(ids)
            if room >= self.reserved or len(turns) <= 1:
                break
            turns = turns[2:]  # one user + assistant pair
            self.dropped_turns += 1
        if room < 1:
            raise KorlhfError(f"the message is {len(ids)} tokens; this model reads at most {self.context} "
                              "tokens in all. Write a shorter message")
        self.budget = min(room, self.decoding.max_new_tokens)
        return head + turns, ids, self.budget

    def answer(self, user_text: str, on_text: Callable[[str], None] | None = None) -> Reply:
        """Answer ``user_text`` (streamed to ``on_text``) and add both turns to the history.

        If the user interrupts (Ctrl-C), the partial answer is kept, as a chat page would.
        """
        _, ids, budget = self.prompt(user_text)
        decoding = replace(self.decoding, max_new_tokens=budget)
        got: list[str] = []

        def collect(piece: str) -> None:
            got.append(piece)
            if on_text:
                on_text(piece)

        try:
            reply = stream_reply(self.model, self.tokenizer, ids, decoding, collect)
        finally:
            self.messages += [{"role": "user", "content": user_text}, {"role": "assistant", "content": "".join(got)}]
        return reply


HELP = "명령: /reset 새 대화 · /exit 종료 · /help 도움말   (답변 중 Ctrl-C: 답변 중지 · 입력 중 Ctrl-C 두 번: 종료)"


def repl(session: ChatSession, read: Callable[[str], str] = input, console=None, show_stats: bool = True) -> None:
    """Read a line, answer it (streamed), repeat until /exit or end of input."""
    from rich.console import Console

    console = console or Console(highlight=False, soft_wrap=True)
    echo = not sys.stdin.isatty() and read is input  # piped input: show what was read, so transcripts read well
    interrupted = False  # Ctrl-C at the prompt once: a second one leaves (the conversation is lost then)
    shown_dropped = 0
    while True:
        try:
            line = read("나> ")
        except EOFError:
            console.print()
            return
        except KeyboardInterrupt:
            if interrupted or not session.messages:
                console.print()
                return
            interrupted = True
            console.print(f"\n[dim](종료하려면 Ctrl-C를 한 번 더 누르세요: 대화 {len(session.messages) // 2}턴이 "
                          "사라집니다 · /exit, Ctrl-D도 종료)[/dim]")
            continue
        interrupted = False
        if echo:
            console.print(line, markup=False)
        text = line.strip()
        if not text:
            continue
        command = text.lower()
        if command in ("/exit", "/quit"):
            return
        if command == "/reset":
            session.reset()
            shown_dropped = 0
            console.print("[dim](대화를 새로 시작합니다)[/dim]")
            continue
        if command in ("/help", "/?"):
            console.print(HELP, markup=False)
            continue
        _answer(session, text, console, show_stats, shown_dropped)
        shown_dropped = session.dropped_turns


def _answer(session: ChatSession, text: str, console, show_stats: bool, shown_dropped: int = 0) -> None:
    """One streamed answer and a dim line of notes: old turns the model no longer sees (when that
    changes), a budget cut short by the context, truncation, speed."""
    console.print("모델> ", end="")
    try:
        reply = session.answer(text, lambda piece: console.out(piece, end="", highlight=False))
    except KeyboardInterrupt:
        console.print("\n[dim](답변을 멈췄습니다)[/dim]")
        return
    except KorlhfError as exc:
        console.print(f"\n[red]{exc}[/red]", markup=True)
        return
    console.print()
    notes = []
    if session.dropped_turns != shown_dropped and session.dropped_turns:
        turns = "1번째 턴" if session.dropped_turns == 1 else f"1–{session.dropped_turns}번째 턴"
        notes.append(f"문맥 {session.context}토큰에 맞추려고 앞의 대화 {turns}은 모델에게 보이지 않았습니다 "
                     "(/reset: 새 대화)")
    if reply.finish_reason == "length":
        cut = ("max_new_tokens에서" if session.budget >= session.decoding.max_new_tokens
               else f"문맥에 남은 {session.budget}토큰에서")
        notes.append(f"{cut} 잘렸습니다")
    if show_stats and reply.seconds > 0:
        notes.append(f"{reply.completion_tokens} tokens, {reply.completion_tokens / reply.seconds:.1f} tok/s")
    if notes:
        console.print(f"[dim]({' · '.join(notes)})[/dim]")


def main(cfg: Config) -> None:
    from rich.console import Console

    from korlhf.templates import template_name

    console = Console(highlight=False, soft_wrap=True)
    with console.status(f"loading {cfg.model} ...", spinner="dots"):
        tokenizer, model = load_model(cfg.model, cfg.template, cfg.dtype, cfg.device, cfg.trust_remote_code)
    decoding = cfg.decoding()
    session = ChatSession(model, tokenizer, decoding, cfg.system)
    knobs = [f"{name} {value}" for name, value, off in (("temperature", decoding.temperature, None),
             ("top_p", decoding.top_p, 1.0), ("top_k", decoding.top_k, 0), ("min_p", decoding.min_p, 0.0),
             ("typical_p", decoding.typical_p, 1.0)) if decoding.do_sample and value != off]
    if decoding.repetition_penalty != 1.0:
        knobs.append(f"repetition_penalty {decoding.repetition_penalty}")
    mode = decoding.preset + (f" ({', '.join(knobs)})" if knobs else "")
    console.print(f"[bold]{cfg.model}[/bold] on {model.device} · template "
                  f"{template_name(tokenizer.chat_template) or 'custom'} · {mode} · max_new_tokens {cfg.max_new_tokens}")
    if cfg.max_new_tokens > session.reserved:
        console.print(f"[yellow]max_new_tokens {cfg.max_new_tokens} is more than half of this model's context "
                      f"({session.context} tokens): to keep the conversation, answers get at least "
                      f"{session.reserved} tokens and more only as the history allows[/yellow]")
    console.print(HELP, markup=False)
    repl(session, console=console, show_stats=cfg.show_stats)
