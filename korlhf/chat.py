"""`korlhf chat`: talk to a model in the terminal, with streamed Korean output.

The conversation is a message list rendered with the model's own chat template (the one it was
trained with), so turn two sees turn one exactly as SFT laid it out. Output streams through
`korlhf.streaming.IncrementalDecoder`, so a Hangul syllable split across byte-level tokens never
prints half-made. The model pieces (`korlhf.conversation`) are also what `korlhf serve` runs.

    korlhf chat --model runs/demo/sft --preset top-p --temperature 0.7 --max_new_tokens 128
    나> 서울은 어느 나라의 수도야?
    모델> ...
    나> /reset     (new conversation)     나> /exit
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from korlhf.conversation import (
    DecodingFields,
    ModelArgs,
    Reply,
    context_length,
    encode,
    load_model,
    stream_reply,
)
from korlhf.decoding import Decoding
from korlhf.errors import KorlhfError


@dataclass(kw_only=True)
class Config(DecodingFields, ModelArgs):
    show_stats: bool = field(default=True, metadata={"help": "print tokens and tokens/s after each answer"})


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
