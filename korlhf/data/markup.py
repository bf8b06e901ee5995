"""Corpus markup of 모두의 말뭉치 (NIKL) and AI Hub, rewritten to one convention.

NIKL spoken transcripts mark sounds (``{laughing}``) and unclear speech (``(())``, or
``((단어))`` for an uncertain word); NIKL de-identifies with ``&name1&``, ``&company-name1&``; AI Hub
SNS dialogues with ``#@이름#``, ``#@주소#`` and system events ``#@시스템#사진#``. A model trained on
these learns to emit them, and three spellings of "a name" are three tokens to learn; so sounds and
unclear-speech marks are removed and every placeholder becomes KoChatGPT's ``#이름#`` form (the form
the PII masks of `korlhf.data.normalize` write too).
"""

from __future__ import annotations

import re

_SOUND = re.compile(r"\s*\{(?:laughing|clearing|singing|applauding|lipsmack|breathing|coughing|cough|sighing|sigh|"
                    r"noise|inhaling|exhaling|crying|whispering|yawning|sneezing|tongue-clicking)\}")
_UNCLEAR = re.compile(r"\s*\(\(\s*\)\)")
_UNCERTAIN = re.compile(r"\(\(([^()]+)\)\)")
_NIKL = re.compile(r"&([a-z]+(?:-[a-z]+)*)\d*&")
_AIHUB_SYSTEM = re.compile(r"#@시스템#([^#\s]{1,10})#")
_AIHUB = re.compile(r"#@([^#\s]{1,10})#")
NIKL_LABELS = {"name": "이름", "company-name": "회사", "address": "주소", "tel-num": "전화번호",
               "account-num": "계좌번호", "social-security-num": "주민번호", "card-num": "카드번호",
               "email": "이메일", "affiliation": "소속", "school-name": "학교", "url": "URL", "other": "기타"}
_SPACES = re.compile(r"[ \t]{2,}")


def normalize_markup(text: str) -> str:
    """``text`` with NIKL / AI Hub markup rewritten (see the module docstring); other text unchanged."""
    if "{" not in text and "((" not in text and "&" not in text and "#@" not in text:
        return text
    new = _SOUND.sub("", text)
    new = _UNCLEAR.sub("", new)
    new = _UNCERTAIN.sub(r"\1", new)
    new = _NIKL.sub(lambda m: f"#{NIKL_LABELS.get(m.group(1), '기타')}#", new)
    new = _AIHUB_SYSTEM.sub(r"#\1#", new)
    new = _AIHUB.sub(r"#\1#", new)
    return _SPACES.sub(" ", new).strip() if new != text else text
