"""Is a Korean text finished? Judged on the morpheme it ends in (Kiwi), separately for questions,
answers and dialogue turns.

Sentence punctuation, a closing bracket or quote, an emoji or a laugh (ㅋㅋ) end a text. Otherwise
Kiwi tags the last morpheme: a final ending (EF: "응 알겠어", "배고파", "뭐야") ends a sentence in
every register; a noun or number+unit ("해운대구", "150원") ends a span answer or a casual turn; a
verb stem without ending ("얼마나 되"), a prenominal ending ("할 수 있는") or a genitive/conjunctive
particle ("경복궁의", "성함과") never ends one. Questions and dialogue turns are people talking: a
connective ("막고 싶은데"), a topic particle ("…발표한 교서는", KorQuAD's elliptical question) or
an argument moved after the verb ("욕먹었어 여자친구한테") is how Korean is spoken, not a cut. An
answer (written by a model or an annotator) is stricter: a connective or a particle at the end, or
prose that ends in a bare noun, means the generation stopped early. The rules and their measured
precision/recall are in docs/data_quality.md.
"""

from __future__ import annotations

import os
import re
from functools import cache

KINDS = ("question", "answer", "turn")
_END_PUNCT = set(".!?。．…~)]}\"'」』>*`”’")
_LAUGH = re.compile(r"[ㅋㅎㅠㅜㄷ;^]+$")
_SENTENCE_END = re.compile(r"[.!?。]\s")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•·]|\d+[.)])\s")
# Kiwi tag -> ending class.
_CLASS = {"EF": "final", "IC": "interjection", "ETM": "modifier", "EC": "connective",
          "JKG": "linking_particle", "JC": "linking_particle", "JKS": "particle", "JKO": "particle",
          "JKB": "particle", "JKC": "particle", "JKV": "particle", "JKQ": "particle", "JX": "particle",
          "MAG": "adverb", "MAJ": "adverb", "MM": "adverb", "SW": "symbol", "SF": "punct", "SP": "comma",
          "SS": "punct", "SE": "punct", "SO": "punct"}
_NOUN_TAGS = {"NNG", "NNP", "NNB", "NP", "NR", "SN", "SL", "SH", "XSN", "ETN", "XR"}
_STEM_TAGS = {"VV", "VA", "VX", "VCP", "VCN", "XSV", "XSA", "EP", "XPN"}
# Endings Kiwi tags EC that, at the end of a text, leave the sentence open ("좋아서", "먹고",
# "비싼데"); other EC forms at the end (어/아/지/게: "알려줘", "찾아와") are final endings.
_OPEN_CONNECTIVES = {"고", "어서", "아서", "여서", "서", "는데", "ᆫ데", "은데", "면", "으면", "며", "으며", "지만",
                     "니까", "으니까", "려고", "으려고", "도록", "다가", "거나", "든지", "기에", "어도", "아도",
                     "여도", "더라도", "면서", "으면서", "ᆫ지", "는지", "은지", "게", "러", "으러", "자마자", "여"}
_CASUAL = {"punct", "final", "spoken_final", "noun", "symbol", "interjection", "adverb", "connective", "particle",
           "comma"}
ACCEPTED = {"question": _CASUAL, "turn": _CASUAL,
            "answer": {"punct", "final", "spoken_final", "noun", "symbol", "interjection"}}
# In an answer these end only a span ("해운대구", "네", "응 알겠어"), not prose: written prose that
# stops on a noun, an interjection-like syllable ("…전처리, 모") or a bare 어/여 ("…에 대해") was cut.
_SPAN_ONLY = {"noun", "interjection", "spoken_final"}


@cache
def kiwi():
    """The process's one Kiwi analyser (loading takes about a second); metrics uses it too."""
    from kiwipiepy import Kiwi

    return Kiwi(num_workers=min(4, os.cpu_count() or 1))


def ending(text: str) -> str:
    """The class of the last morpheme of ``text``: punct, final, noun, connective, particle, ..."""
    return _analyse(text)[0]


def _analyse(text: str) -> tuple[str, list]:
    """(ending class, Kiwi tokens of the text's last 60 characters; [] when punctuation decides)."""
    stripped = text.rstrip()
    if not stripped:
        return "empty", []
    last = stripped[-1]
    if last in _END_PUNCT or _is_emoji(last) or _LAUGH.search(stripped):
        return "punct", []
    tokens = kiwi().tokenize(stripped[-60:])
    return (_class_of(tokens[-1]) if tokens else "other"), tokens


def _class_of(token) -> str:
    tag = token.tag.split("-")[0]
    if tag in _NOUN_TAGS or tag.startswith("W_"):
        return "noun"
    if tag in _STEM_TAGS:
        return "stem"
    if tag == "JX" and token.form == "요":  # "저는요", "아니면요": the polite particle ends a turn
        return "final"
    if tag == "EC" and token.form not in _OPEN_CONNECTIVES:
        return "spoken_final"  # 어/아/지 with no punctuation after: "알려줘", "찾아와" (Kiwi says EC)
    return _CLASS.get(tag, "other")


def is_truncated(text: str, kind: str = "answer") -> bool:
    """True if ``text`` looks cut off for its ``kind`` (question, answer or turn)."""
    if kind not in ACCEPTED:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    cls, tokens = _analyse(text)
    if cls not in ACCEPTED[kind]:
        return True
    if kind == "answer" and cls in _SPAN_ONLY:
        return not _span_is_complete(text, tokens, check_arguments=cls == "noun")
    return cls == "particle" and _subject_left_open(tokens)


def _subject_left_open(tokens: list) -> bool:
    """A subject or object particle at the very end is a moved argument when a finished clause
    comes before it ("언제 나와요 고지서가"); with none before, the question stopped before its verb
    ("…세계각국에서 온 선수단이"). Contractions tagged JKO ("할 걸", "건강하길") are finished."""
    last = tokens[-1]
    if not (last.tag in ("JKS", "JKC") or (last.tag == "JKO" and last.form not in ("ᆯ", "ㄹ"))):
        return False
    return not any(t.tag in ("EF", "SF") for t in tokens[:-1])


def _span_is_complete(text: str, tokens: list, check_arguments: bool) -> bool:
    """A noun ends an answer when the answer is a span ("해운대구", "약 27개 단지") or a list item;
    not when prose stops on a noun ("…입니다. 가장 유명한 것은 경복궁") or when an argument is
    left without its verb ("이날 목송에서 구글상위노"). ``tokens``: Kiwi's analysis of the text's end."""
    line = text.rstrip().rsplit("\n", 1)[-1]
    if _LIST_ITEM.match(line):
        return True
    if _SENTENCE_END.search(text.rstrip()) or len(line) > 40:
        return False
    if not check_arguments:
        return True
    # ``tokens`` analysed the text's last 60 characters: for a one-line span that is this line
    tags = [t.tag for t in (tokens if line == text.rstrip()[-60:] else kiwi().tokenize(line))]
    argument = max((i for i, t in enumerate(tags) if t in ("JKS", "JKO", "JKB", "JX", "JKC")), default=-1)
    return argument < 0 or any(t in ("JKG", "ETM", "JC", "VCP", "EF") for t in tags[argument + 1:])


def _is_emoji(ch: str) -> bool:
    return 0x2600 <= ord(ch) <= 0x27BF or ord(ch) >= 0x1F000
