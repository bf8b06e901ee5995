"""Text repair and checks for Korean records: Unicode, whitespace, stray quotes, PII, placeholders.

`korlhf data inspect` counts what these find and `korlhf data clean` applies them, so both agree.
ftfy repairs mojibake and normalises to NFC; the rest are Korean-data specific patterns that no
library covers (KoChatGPT's stray leading quote, literal ``\\n`` in RM answers, AI Hub's ``#이름#``
placeholders, Korean resident registration / phone / card numbers), written here as regexes.
Also the record accessors every data command uses: which text is the prompt, which the answer.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import ftfy

from korlhf.data.markup import normalize_markup

_FTFY = ftfy.TextFixerConfig(uncurl_quotes=False, explain=False)
# Text made only of these needs nothing from ftfy (it would return it unchanged); skipping the
# call makes cleaning ~3x faster on Korean data, which is almost all Hangul and ASCII.
_PLAIN = re.compile(r"[\n\t\x20-\x25\x27-\x7e\uac00-\ud7a3]*")
# Before ftfy: invisible characters and exotic spaces outside Latin-1 (ftfy would widen U+3000 or
# drop U+FEFF itself, hiding what was fixed). After ftfy: soft hyphen and no-break space, which
# are bytes of Hangul mojibake (국 = EA B5 AD read as Latin-1) that ftfy needs to see.
_INVISIBLE = re.compile(r"[\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_EXOTIC_SPACE = re.compile(r"[\u2000-\u200a\u202f\u205f\u3000]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LATIN1_INVISIBLE, _LATIN1_SPACE = re.compile("\u00ad"), re.compile("\u00a0")
_SPACES = re.compile(r"[ \t]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_QUOTES = "'\"‘’“”"

PII = {
    # 주민등록번호: birth date + sex digit (1-8 covers foreigners' 외국인등록번호); no checksum test,
    # because real numbers issued since 2020 no longer satisfy it.
    "rrn": (re.compile(r"(?<!\d)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\s?-?\s?[1-8]\d{6}(?!\d)"), "#주민번호#"),
    "card": (re.compile(r"(?<!\d)\d{4}([- ])\d{4}\1\d{4}\1\d{4}(?!\d)|(?<!\d)\d{4}([- ])\d{6}\2\d{5}(?!\d)"),
             "#카드번호#"),
    "mobile": (re.compile(r"(?<![\d+])(?:\+82[- ]?1[016789]|01[016789])[- .]?\d{3,4}[- .]?\d{4}(?!\d)"), "#전화번호#"),
    "landline": (re.compile(r"(?<![\d+])(?:\(0(?:2|[3-6][1-5]|70)\)\s?|0(?:2|[3-6][1-5]|70)[- .)])\d{3,4}[- .]\d{4}(?!\d)"),
                 "#전화번호#"),
    "email": (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), "#이메일#"),
}
# Every PII pattern above needs an '@' or at least 8 digits (\D* cannot backtrack into \d).
_PII_HINT = re.compile(r"@|(?:\d\D*){8}")
# AI Hub / KoChatGPT (#이름#, #@이름#, #@시스템#사진#) and NIKL (&name1&, &company-name1&)
# de-identification marks; `korlhf.data.markup` rewrites the last three to the first.
PLACEHOLDER = re.compile(r"#@?[가-힣A-Za-z]{1,10}#(?:[가-힣A-Za-z]{1,10}#)?|&[a-z]{2,10}(?:-[a-z]{2,10})*\d*&")
# A record's own JSON leaking into its text: `..., 'completion': "...", 'token': 110}`.
LEAKED_FIELD = re.compile(r"['\"](?:prompt|completion(?:_\d)?|tokens?|response|instruction|output)['\"]\s*:")
_PUNCT_OR_SPACE = re.compile(r"[\s\W_]+")


def normalize_text(text: str) -> tuple[str, list[str]]:
    """Repaired text and the names of the fixes that changed it.

    ftfy (mojibake, NFC), invisible and control characters, literal ``\\n`` in text without real
    line breaks, spaces (collapsed; lines trimmed; at most one blank line), a stray leading quote.
    """
    fixes = []
    for name, pattern, repl in (("invisible", _INVISIBLE, ""), ("whitespace", _EXOTIC_SPACE, " ")):
        new = pattern.sub(repl, text)
        if new != text:
            fixes.append(name)
            text = new
    if not _PLAIN.fullmatch(text):
        fixed = ftfy.fix_text(text, _FTFY)
        if fixed != text:
            fixes.append("unicode" if unicodedata.normalize("NFC", text) != fixed else "nfc")
        text = fixed
    for name, pattern, repl in (("control", _CONTROL, ""), ("invisible", _LATIN1_INVISIBLE, ""),
                                ("whitespace", _LATIN1_SPACE, " ")):
        new = pattern.sub(repl, text)
        if new != text:
            fixes.append(name)
            text = new
    if "\\n" in text and "\n" not in text:
        text = text.replace("\\n", "\n")
        fixes.append("literal_newline")
    new = tidy_whitespace(text)
    if new != text:
        fixes.append("whitespace")
        text = new
    new = normalize_markup(text)
    if new != text:
        fixes.append("corpus_markup")
        text = new
    fixes = list(dict.fromkeys(fixes))  # a fix named twice (before and after ftfy) is one fix
    if has_stray_quote(text):
        text = text[1:].lstrip()
        fixes.append("stray_quote")
    return text, fixes


def tidy_whitespace(text: str) -> str:
    """Spaces and tabs collapsed, lines trimmed, at most one blank line, no outer whitespace."""
    return _BLANK_LINES.sub("\n\n", "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))).strip()


def scoring_form(text: str) -> str:
    """The form `korlhf eval` scores: NFC with the data stage's whitespace handling.

    The data stage writes NFC; a model or a copy-paste can produce NFD Hangul (conjoining jamo),
    which shares no character n-gram with the NFC text it renders the same as. No ftfy here: a
    metric must see what the model wrote, mojibake included.
    """
    return tidy_whitespace(unicodedata.normalize("NFC", text))


def has_stray_quote(text: str) -> bool:
    """A leading quote that is never closed (KoChatGPT SFT answers all start with a lone ``'``)."""
    if not text or text[0] not in _QUOTES:
        return False
    opening = text[0]
    closing = {"‘": "’", "“": "”"}.get(opening, opening)
    if closing == opening:
        return text.count(opening) % 2 == 1
    return closing not in text


def mask_pii(text: str) -> tuple[str, Counter]:
    """``text`` with 주민등록번호, card, mobile/landline numbers and e-mails masked; counts by type."""
    counts: Counter = Counter()
    if not _PII_HINT.search(text):  # one pass instead of five for the many texts without any
        return text, counts
    for name, (pattern, mask) in PII.items():
        text, n = pattern.subn(mask, text)
        if n:
            counts[name] += n
    return text, counts


def find_pii(text: str) -> Counter:
    return mask_pii(text)[1]


def is_nfd(text: str) -> bool:
    """True if ``text`` holds decomposed Hangul (conjoining jamo) that NFC would compose."""
    return not unicodedata.is_normalized("NFC", text)


def prompt_key(text: str) -> str:
    """The form in which two prompts count as the same: NFC, case-folded, no spaces or punctuation."""
    return _PUNCT_OR_SPACE.sub("", unicodedata.normalize("NFC", text).casefold())


def exact_key(text: str) -> str:
    """The form in which two texts count as exact duplicates: NFC with whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFC", text).split())


# --- record accessors: one definition of "the prompt" and "the answer" for every record kind ---

def record_kind(record: dict) -> str:
    if "responses" in record:
        return "preference"
    if "response" in record or "messages" in record:
        return "sft"
    return "prompt"


def prompt_of(record: dict) -> str:
    """The prompt; for a multi-turn record, all user turns (that is what a model is asked)."""
    if "messages" in record:
        return "\n".join(m["content"] for m in record["messages"] if m["role"] == "user")
    return record.get("prompt", "")


def answers_of(record: dict) -> list[str]:
    """The answers to judge (refusal, truncation): the response, the best ranked one, or every
    assistant turn of a dialogue. Empty for prompt records."""
    if "messages" in record:
        return [m["content"] for m in record["messages"] if m["role"] == "assistant"]
    if "responses" in record:
        return record["responses"][:1]
    return [record["response"]] if "response" in record else []


def texts_of(record: dict) -> list[tuple[str, str]]:
    """Every text field as (field name, text): prompt, input, response(s), dialogue turns."""
    out = [(k, record[k]) for k in ("prompt", "input", "response") if isinstance(record.get(k), str)]
    out += [(f"responses[{i}]", t) for i, t in enumerate(record.get("responses", []))]
    out += [(f"messages[{i}]", m["content"]) for i, m in enumerate(record.get("messages", []))]
    return out


def map_texts(record: dict, fn) -> dict:
    """A copy of ``record`` with ``fn`` applied to every text field."""
    new = dict(record)
    for key in ("prompt", "input", "response"):
        if isinstance(new.get(key), str):
            new[key] = fn(new[key])
    if "responses" in new:
        new["responses"] = [fn(t) for t in new["responses"]]
    if "messages" in new:
        new["messages"] = [{**m, "content": fn(m["content"])} for m in new["messages"]]
    return new


def full_text(record: dict) -> str:
    """All text of a record in one string (what near-duplicate detection compares)."""
    return "\n".join(t for _, t in texts_of(record))
