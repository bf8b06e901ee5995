"""Korean text checks shared by data cleaning, evaluation and the rule judge.

Hangul share, refusal boilerplate, truncated endings and repetition are asked about in three
places (`korlhf data`, `korlhf eval`, the ``rules`` judge of `korlhf label`); they live here once
so the three agree on what counts as, say, a refusal. Plain regex and counting: no library does
these Korean-specific heuristics.
"""

from __future__ import annotations

import re
from collections import Counter

HANGUL_SYLLABLE = re.compile(r"[\uac00-\ud7a3]")
HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")

# Boilerplate refusals and AI self-descriptions seen in KoChatGPT / KoAlpaca answers.
REFUSAL = re.compile(
    r"저는\s*(?:인공지능|AI|에이아이|챗봇|언어\s*모델)"
    r"|(?:AI|인공지능)\s*(?:언어\s*)?(?:모델|챗봇|어시스턴트)(?:로서|으로서|이기\s*때문에)"
    r"|죄송(?:하지만|합니다만|하게도)[^.!?\n]{0,60}?(?:수\s*없|어렵|드릴\s*수가?\s*없)"
    r"|(?:답변|도움|조언)(?:을|를)?\s*드릴\s*수\s*없"
    r"|As an AI(?: language model)?|I'm sorry, but I (?:can't|cannot)",
    re.IGNORECASE,
)

# A finished Korean answer ends in sentence punctuation, a closing bracket/quote, an emoji, or a
# sentence-final ending (…다, …요, …죠, …까, …니다) even without a full stop.
_END_PUNCT = ".!?。．…~)]}\"'」』>*`"
_END_SYLLABLE = "다요죠까네지음함됨임니군걸게래"


def hangul_ratio(text: str) -> float:
    """Share of Hangul among the letters of ``text`` (digits, spaces and punctuation don't count).

    1.0 for pure Korean, 0.0 for pure English; 0.0 for text with no letters at all.
    """
    letters = sum(map(str.isalpha, text))
    return len(HANGUL.findall(text)) / letters if letters else 0.0


def is_refusal(text: str) -> bool:
    """True if ``text`` contains refusal or "I am an AI" boilerplate."""
    return REFUSAL.search(text) is not None


def looks_truncated(text: str) -> bool:
    """True if ``text`` seems cut off mid-sentence (no sentence-final ending or punctuation)."""
    stripped = text.rstrip()
    if not stripped:
        return True
    last = stripped[-1]
    return not (last in _END_PUNCT or last in _END_SYLLABLE or _is_emoji(last))


def _is_emoji(ch: str) -> bool:
    return 0x2600 <= ord(ch) <= 0x27BF or ord(ch) >= 0x1F000


def ngrams(tokens: list[str] | str, n: int) -> list[tuple]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def rep_n(tokens: list[str] | str, n: int) -> float:
    """Share of repeated n-grams in one text: 1 - unique / total (0.0 = no repetition).

    As in Welleck et al. (2019), "Neural text degeneration with unlikelihood training".
    """
    grams = ngrams(tokens, n)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def distinct_n(texts_tokens: list[list[str]] | list[str], n: int) -> float:
    """Unique n-grams / all n-grams over a set of texts (Li et al. 2016); 0.0 if there are none."""
    counts: Counter = Counter()
    for tokens in texts_tokens:
        counts.update(ngrams(tokens, n))
    total = sum(counts.values())
    return len(counts) / total if total else 0.0
