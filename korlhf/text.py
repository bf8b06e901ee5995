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

# A refusal is a turn that declines ("답할 수 없습니다", "도와드릴 수 없", "제공할 수 없"), or says it
# is an AI together with what it cannot do. Self-description alone ("저는 인공지능, 머신러닝 등
# 다양한 주제에 대해 알고 있습니다") is not one: the old pattern matched it and dropped good answers.
_DECLINE = (r"(?:답변(?:을|를)?\s*(?:드릴|해\s*드릴|할)|답(?:을)?\s*(?:드릴|할|해\s*드릴)|대답(?:을)?\s*(?:드릴|할|해\s*드릴)"
            r"|도와\s*(?:드릴|줄)|도움(?:을|이)?\s*(?:드릴|될|되어\s*드릴)|제공(?:할|해\s*드릴)|알려\s*(?:드릴|줄)"
            r"|말씀(?:을)?\s*드릴|조언(?:을)?\s*(?:드릴|할)|추천(?:할|해\s*드릴))\s*수(?:가|는|도)?\s*없")
_HARD_TO = (r"(?:답변|대답|답|도와|도움을|제공|알려|말씀|조언|추천)\s*(?:을|를)?\s*(?:드리|하|해\s*드리)?기\s*"
            r"(?:가\s*)?(?:어렵|곤란)")
REFUSAL = re.compile(
    _DECLINE + "|" + _HARD_TO +
    r"|죄송(?:하지만|합니다만|하게도)[^.!?\n]{0,60}?(?:수\s*없|어렵|드릴\s*수가?\s*없)"
    r"|(?:(?<![가-힣])(?:저는|제가|전(?=\s))\s*[^.!?\n]{0,15}?(?:인공지능|AI|에이아이|챗봇|언어\s*모델)"
    r"|(?:인공지능|AI|언어\s*모델)\s*(?:언어\s*모델|챗봇|어시스턴트)?(?:로서|으로서))[^.!?\n]{0,40}?"
    r"(?:수\s*없|못\s*하|느끼지\s*(?:못|않)|(?:갖고|가지고)\s*있지\s*않|없기\s*때문)"
    r"|As an AI(?: language model)?, I (?:can(?:'|no)t|don't|do not|am (?:not|unable))"
    r"|I'm sorry, but I (?:can't|cannot)",
    re.IGNORECASE,
)
# Lines only an assistant says; in a user turn they mean the roles are swapped (KoChatGPT's dialogue
# 1 opens with the human saying "괜찮습니다. 무엇을 도와드릴까요?"). Calibrated on KoChatGPT's
# dialogues: docs/data_quality.md.
ASSISTANT_LINE = re.compile(
    r"도와\s*(?:드릴까요|드리겠|드릴게|줄\s*수\s*있을까요)|궁금하신\s*(?:가요|건가요|내용|점|것)"
    r"|도움이\s*필요하(?:신가요|십니까|세요)|언제든(?:지)?\s*(?:물어|질문)|도움이\s*되도록\s*하겠습니다"
    r"|도움이\s*(?:되셨|되었|되)(?:길|기를)\s*바랍니다"
    r"|저는\s*(?:인공지능|AI|챗봇|언어\s*모델)(?:\s*챗봇|\s*어시스턴트)?(?:입니다|이며|이라서|이기\s*때문)"
    r"|(?:^|\s)AI\s*:")  # the generator's own speaker marker inside a user turn: two turns run together


def hangul_ratio(text: str) -> float:
    """Share of Hangul among the letters of ``text`` (digits, spaces and punctuation don't count).

    1.0 for pure Korean, 0.0 for pure English; 0.0 for text with no letters at all.
    """
    letters = sum(map(str.isalpha, text))
    return len(HANGUL.findall(text)) / letters if letters else 0.0


def is_refusal(text: str) -> bool:
    """True if ``text`` declines to answer (see REFUSAL); describing itself as an AI is not enough."""
    return REFUSAL.search(text) is not None


def sounds_like_assistant(text: str) -> bool:
    """True if ``text`` holds a line only an assistant says ("무엇을 도와드릴까요?")."""
    return ASSISTANT_LINE.search(text) is not None


def looks_truncated(text: str, kind: str = "answer") -> bool:
    """True if ``text`` seems cut off; ``kind`` is question, answer or turn (`korlhf.endings`)."""
    from korlhf.endings import is_truncated

    return is_truncated(text, kind)


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
