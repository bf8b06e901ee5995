"""Korean judge prompts (pairwise A/B/tie and pointwise 1-10) and the parsers of their verdicts.

The prompts follow MT-Bench's single-answer and pairwise judge prompts (Zheng et al. 2023), written
in Korean and with a Korean-specific rule: an answer not written in Korean scores low whatever it
says. A verdict is read only from its marker (``[[A]]``, ``[[B]]``, ``[[C]]`` = tie, ``점수: [[7]]``);
an answer without one is unparseable (None) and the caller asks again, never guesses.
"""

from __future__ import annotations

import hashlib
import re

CRITERIA = "도움이 되는 정도, 질문과의 관련성, 정확성, 그리고 자연스럽고 올바른 한국어인지"

PAIRWISE_SYSTEM = (
    "당신은 공정한 심판입니다. 아래에 표시된 사용자 질문에 대한 두 AI 어시스턴트의 답변을 비교하여 "
    "어느 쪽이 질문에 더 잘 답했는지 판정하세요. "
    f"{CRITERIA}를 고려하세요. 한국어 질문에 한국어가 아닌 언어로 답한 답변은 내용과 상관없이 낮게 평가하세요. "
    "답변이 제시된 순서, 답변의 길이, 어시스턴트의 이름이 판정에 영향을 주지 않도록 하세요. "
    "가능한 한 객관적으로 두 답변을 짧게 비교 설명한 뒤, 마지막 줄에 다음 형식 중 하나로만 최종 판정을 쓰세요: "
    "A가 더 나으면 \"[[A]]\", B가 더 나으면 \"[[B]]\", 두 답변이 비슷하면 \"[[C]]\"."
)

POINTWISE_SYSTEM = (
    "당신은 공정한 심판입니다. 아래에 표시된 사용자 질문에 대한 AI 어시스턴트의 답변의 품질을 평가하세요. "
    f"{CRITERIA}를 고려하세요. 한국어 질문에 한국어가 아닌 언어로 답한 답변은 내용과 상관없이 3점 이하를 주세요. "
    "가능한 한 객관적으로 짧게 설명한 뒤, 마지막 줄에 1점부터 10점 사이의 점수를 "
    "\"점수: [[7]]\"과 같은 형식으로 쓰세요."
)

REFERENCE_NOTE = " 참고 답변이 주어지면 그것과 비교하여 정확성을 판단하세요."

QUESTION = "[사용자 질문]\n{prompt}\n\n"
REFERENCE = "[참고 답변 시작]\n{reference}\n[참고 답변 끝]\n\n"
ANSWER = "[어시스턴트 답변 시작]\n{answer}\n[어시스턴트 답변 끝]"
ANSWER_A = "[어시스턴트 A의 답변 시작]\n{answer}\n[어시스턴트 A의 답변 끝]\n\n"
ANSWER_B = "[어시스턴트 B의 답변 시작]\n{answer}\n[어시스턴트 B의 답변 끝]"

# Part of every cache key's inputs (through the rendered messages) and recorded in outputs: a
# changed prompt text is a different judge, so its answers are never taken from an older cache.
TEMPLATE_VERSION = hashlib.sha256(
    "\0".join([PAIRWISE_SYSTEM, POINTWISE_SYSTEM, REFERENCE_NOTE, QUESTION, REFERENCE, ANSWER, ANSWER_A,
               ANSWER_B]).encode()).hexdigest()[:12]


def prompt_text(prompt: str | list[dict]) -> str:
    """A prompt as the judge reads it: the text, or a conversation as ``사용자: ...`` lines."""
    if isinstance(prompt, str):
        return prompt
    names = {"user": "사용자", "assistant": "어시스턴트", "system": "시스템"}
    return "\n".join(f"{names.get(m['role'], m['role'])}: {m['content']}" for m in prompt)


def pairwise_messages(prompt, answer_a: str, answer_b: str, reference: str | None = None) -> list[dict]:
    """Chat messages asking which of two answers is better ([[A]], [[B]] or [[C]] for a tie)."""
    system = PAIRWISE_SYSTEM + (REFERENCE_NOTE if reference else "")
    user = (QUESTION.format(prompt=prompt_text(prompt))
            + (REFERENCE.format(reference=reference) if reference else "")
            + ANSWER_A.format(answer=answer_a) + ANSWER_B.format(answer=answer_b))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def pointwise_messages(prompt, answer: str, reference: str | None = None) -> list[dict]:
    """Chat messages asking for a 1-10 score of one answer (``점수: [[7]]``)."""
    system = POINTWISE_SYSTEM + (REFERENCE_NOTE if reference else "")
    user = (QUESTION.format(prompt=prompt_text(prompt))
            + (REFERENCE.format(reference=reference) if reference else "")
            + ANSWER.format(answer=answer))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


# Brackets: ASCII or full-width (Korean IMEs type ［］), spaces inside allowed, any case.
_VERDICT = re.compile(r"[\[［]\s*[\[［]\s*(A|B|C|tie|동점|무승부)\s*[\]］]\s*[\]］]", re.IGNORECASE)
_SCORE = re.compile(r"[\[［]\s*[\[［]\s*(\d+(?:\.\d+)?)\s*(?:/\s*10\s*)?[\]］]\s*[\]］]")
_TIE = {"c", "tie", "동점", "무승부"}


def parse_pairwise(text: str | None) -> str | None:
    """``"A"``, ``"B"``, ``"tie"``, or None when the answer holds no verdict marker.

    The last marker counts: judges sometimes quote the format ("[[A]] 또는 [[B]]") before deciding.
    """
    found = _VERDICT.findall(text or "")
    if not found:
        return None
    last = found[-1].lower()
    return "tie" if last in _TIE else last.upper()


def parse_score(text: str | None) -> float | None:
    """The 1-10 score of ``점수: [[7]]`` (also ``[[7/10]]``, ``[[ 7.5 ]]``); None if absent or out of range."""
    found = _SCORE.findall(text or "")
    if not found:
        return None
    score = float(found[-1])
    return score if 1 <= score <= 10 else None

