"""Turn-level checks of dialogues: a refusing assistant turn or a user turn that speaks the
assistant's lines ends the usable part of a conversation, not the whole conversation.

KoChatGPT's generated dialogues often open well and go wrong later (or open with the roles swapped:
"<사람>: 괜찮습니다. 무엇을 도와드릴까요?"). Rejecting the whole dialogue for one bad turn threw
away the good turns before it; here the dialogue is cut before the bad turn's exchange, and what is
cut is returned so that `korlhf data clean` keeps it, with its reason, in rejected.jsonl.
"""

from __future__ import annotations

from korlhf.text import is_refusal, sounds_like_assistant


def first_bad_turn(messages: list[dict], refusals: bool = True, roles: bool = True) -> tuple[int, str] | None:
    """(index, reason) of the first refusing assistant turn or role-confused user turn, or None."""
    for i, message in enumerate(messages):
        if refusals and message["role"] == "assistant" and is_refusal(message["content"]):
            return i, "refusal"
        if roles and message["role"] == "user" and sounds_like_assistant(message["content"]):
            return i, "role_confusion"
    return None


def cut_dialogue(record: dict, refusals: bool = True, roles: bool = True) -> tuple[dict, list[dict], str | None]:
    """(record with the usable turns, turns cut away, reason); nothing cut: (record, [], None).

    The cut falls before the user turn that opens the bad exchange, so the kept part ends with an
    assistant turn (a complete SFT example); a swapped opening exchange is dropped from the front. When nothing usable is left the record is returned
    whole with the reason, for the caller to reject it.
    """
    messages = record.get("messages")
    found = first_bad_turn(messages, refusals, roles) if messages else None
    if found is None:
        return record, [], None
    index, reason = found
    if reason == "role_confusion" and not any(m["role"] == "user" for m in messages[:index]):
        # A swapped opening ("무엇을 도와드릴까요?" said by the user) is a greeting exchange: drop it
        # and keep the conversation that follows, when it has an exchange of its own.
        rest = next((j for j in range(index + 1, len(messages)) if messages[j]["role"] == "user"), len(messages))
        if any(m["role"] == "assistant" for m in messages[rest:]):
            return {**record, "messages": messages[rest:]}, messages[:rest], reason
    cut = index
    if messages[index]["role"] == "assistant":
        while cut > 0 and messages[cut - 1]["role"] != "assistant":
            cut -= 1
    if not any(m["role"] == "assistant" for m in messages[:cut]):
        return record, [], reason
    return {**record, "messages": messages[:cut]}, messages[cut:], reason
