"""The demo world: Korean instruction tasks with answers a program can check.

korlhf writes this data itself, so the demo and the tests run with no download. Each task has a
prompt, a correct answer sentence and the short answer it must contain (``answer``), so SFT, the
reward model and PPO can each be scored by plain answer accuracy. Tasks: arithmetic, comparison,
unit conversion, weekdays and a small fact table (capitals, animal sounds, colours).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

WEEKDAYS = ["월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일"]
CAPITALS = {
    "대한민국": "서울", "일본": "도쿄", "중국": "베이징", "프랑스": "파리", "영국": "런던", "독일": "베를린",
    "이탈리아": "로마", "스페인": "마드리드", "캐나다": "오타와", "호주": "캔버라", "이집트": "카이로",
    "러시아": "모스크바", "태국": "방콕", "베트남": "하노이", "인도": "뉴델리", "브라질": "브라질리아",
}
SOUNDS = {"개": "멍멍", "고양이": "야옹", "소": "음메", "닭": "꼬끼오", "오리": "꽥꽥", "돼지": "꿀꿀", "양": "매애"}
COLOURS = {"바나나": "노란색", "딸기": "빨간색", "하늘": "파란색", "풀잎": "초록색", "눈": "하얀색", "까마귀": "검은색"}
UNITS = [("킬로미터", "미터", 1000), ("미터", "센티미터", 100), ("킬로그램", "그램", 1000), ("시간", "분", 60),
         ("분", "초", 60), ("리터", "밀리리터", 1000)]


def has_batchim(word: str) -> bool:
    """True if the last syllable of ``word`` ends in a consonant (selects 은/는, 이/가, 과/와)."""
    last = word[-1]
    if last.isdigit():
        # Sino-Korean reading of the last digit (or of 십/백/천 for round numbers).
        if len(word) > 1 and word.endswith("0"):
            return True  # 십, 백, 천, 만 all end in a consonant
        return last in "013678"
    if "가" <= last <= "힣":
        return (ord(last) - 0xAC00) % 28 != 0
    return False


def josa(word: str, with_batchim: str, without: str) -> str:
    return word + (with_batchim if has_batchim(word) else without)


def make_task(rng: random.Random) -> dict:
    """One task: ``{"task", "prompt", "response", "answer"}``."""
    kind = rng.choice(["add", "sub", "mul", "compare", "unit", "weekday", "capital", "sound", "colour"])
    if kind in ("add", "sub", "mul"):
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        if kind == "sub" and b > a:
            a, b = b, a
        op, value = {"add": ("더하기", a + b), "sub": ("빼기", a - b), "mul": ("곱하기", a * b)}[kind]
        expr = f"{a} {op} {b}"
        prompt = rng.choice([f"{josa(expr, '은', '는')} 얼마인가요?", f"{josa(expr, '을', '를')} 계산해 주세요.", f"{expr}의 값은?"])
        return _task(kind, prompt, f"{josa(expr, '은', '는')} {value}입니다.", str(value))
    if kind == "compare":
        a, b = rng.sample(range(1, 100), 2)
        prompt = f"{josa(str(a), '과', '와')} {b} 중에서 더 큰 수는 무엇인가요?"
        return _task(kind, prompt, f"{josa(str(a), '과', '와')} {b} 중에서 더 큰 수는 {max(a, b)}입니다.", str(max(a, b)))
    if kind == "unit":
        big, small, factor = rng.choice(UNITS)
        n = rng.randint(1, 9)
        amount = josa(f"{n}{big}", "은", "는")
        return _task(kind, f"{amount} 몇 {small}인가요?", f"{amount} {n * factor}{small}입니다.", f"{n * factor}{small}")
    if kind == "weekday":
        i, k = rng.randrange(7), rng.randint(1, 3)
        day = WEEKDAYS[i]
        after = {1: "다음 날", 2: "이틀 뒤", 3: "사흘 뒤"}[k]
        answer = WEEKDAYS[(i + k) % 7]
        when = josa(f"{day} {after}", "은", "는")
        return _task(kind, f"{when} 무슨 요일인가요?", f"{when} {answer}입니다.", answer)
    if kind == "capital":
        country = rng.choice(list(CAPITALS))
        city = CAPITALS[country]
        return _task(kind, f"{country}의 수도는 어디인가요?", f"{country}의 수도는 {city}입니다.", city)
    if kind == "sound":
        animal = rng.choice(list(SOUNDS))
        return _task(kind, f"{josa(animal, '은', '는')} 어떻게 우나요?", f"{josa(animal, '은', '는')} {SOUNDS[animal]} 하고 웁니다.",
                     SOUNDS[animal])
    thing = rng.choice(list(COLOURS))
    return _task(kind, f"{thing}의 색깔은 무엇인가요?", f"{thing}의 색깔은 {COLOURS[thing]}입니다.", COLOURS[thing])


def _task(kind: str, prompt: str, response: str, answer: str) -> dict:
    return {"task": kind, "prompt": prompt, "response": response, "answer": answer}


def demo_tasks(seed: int = 0, n: int = 1000) -> list[dict]:
    """``n`` tasks with ids, deterministic for a seed."""
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        task = make_task(rng)
        task.update(id=f"demo-{seed}-{i}", source="korlhf-demo")
        tasks.append(task)
    return tasks


def wrong_answer(task: dict, rng: random.Random) -> str:
    """A fluent but wrong answer, or a degenerate one: the 'rejected' side of demo preferences."""
    style = rng.choice(["wrong", "wrong", "repeat", "truncate", "english"])
    if style == "wrong":
        answer = task["answer"]
        if answer.isdigit():
            wrong = str(int(answer) + rng.choice([-3, -2, -1, 1, 2, 3]))
        else:
            pool = list(CAPITALS.values()) + list(SOUNDS.values()) + list(COLOURS.values()) + WEEKDAYS
            wrong = rng.choice([p for p in pool if p != answer])
        head, _, tail = task["response"].rpartition(answer)
        return head + wrong + tail
    if style == "repeat":
        word = task["response"].split()[0]
        return " ".join([word] * rng.randint(4, 8))
    if style == "truncate":
        return task["response"][: max(2, len(task["response"]) // 3)]
    return "I don't know the answer."


def demo_corpus(seed: int = 0, n: int = 1000) -> Iterator[str]:
    """Plain Korean sentences (prompts and answers) for training a demo tokenizer."""
    for task in demo_tasks(seed, n):
        yield task["prompt"]
        yield task["response"]
