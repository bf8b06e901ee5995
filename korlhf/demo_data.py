"""The demo world: Korean instruction tasks with answers a program can check.

korlhf writes this data itself, so the demo and the tests run with no download. Each task has a
prompt, a correct answer sentence and the short answer it must contain (``answer``), so SFT, the
reward model and PPO can each be scored by plain answer accuracy. Tasks: arithmetic, comparison,
unit conversion, weekdays and a small fact table (capitals, animal sounds, colours).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

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


# --- The demo world of `korlhf demo`: every fact, several phrasings, a pretraining text -----------------
# `demo_tasks` above draws tasks at random (tests use it); the pipeline demo needs more: a closed world
# whose every fact is known, so that a tiny "pretrained" base model can read it as plain sentences,
# questions held out from SFT still have checkable answers, and a rule can tell a right answer.

MORE_CAPITALS = {"멕시코": "멕시코시티", "아르헨티나": "부에노스아이레스", "필리핀": "마닐라", "몽골": "울란바토르",
                 "케냐": "나이로비", "그리스": "아테네", "포르투갈": "리스본", "튀르키예": "앙카라"}
MORE_SOUNDS = {"참새": "짹짹", "염소": "음매", "병아리": "삐약삐약"}
MORE_COLOURS = {"당근": "주황색", "포도": "보라색", "우유": "하얀색", "숯": "검은색"}


@dataclass(frozen=True)
class Fact:
    """One fact of the demo world: the sentence that states it, the questions that ask it, the short answer."""

    task: str
    statement: str
    questions: tuple[str, ...]
    answer: str


def _ro(word: str) -> str:
    """``word`` + 으로/로 (로 after a vowel or ㄹ)."""
    last = word[-1]
    rieul = "가" <= last <= "힣" and (ord(last) - 0xAC00) % 28 == 8
    return word + ("으로" if has_batchim(word) and not rieul else "로")


def _number_facts() -> list[Fact]:
    facts = []
    for a in range(1, 10):
        for b in range(1, 10):
            for kind, op, value in (("add", "더하기", a + b), ("sub", "빼기", a - b), ("mul", "곱하기", a * b)):
                if (kind == "sub" and b > a) or (kind == "mul" and min(a, b) < 2):
                    continue
                expr = f"{a} {op} {b}"
                questions = (f"{josa(expr, '은', '는')} 얼마인가요?", f"{josa(expr, '을', '를')} 계산해 주세요.",
                             f"{expr}의 값은?", f"{expr}, 답이 뭐예요?")
                facts.append(Fact(kind, f"{josa(expr, '은', '는')} {value}입니다.", questions, str(value)))
    for a in range(1, 13):
        for b in range(1, 13):
            if a != b:
                pair = f"{josa(str(a), '과', '와')} {b}"
                questions = (f"{pair} 중에서 더 큰 수는 무엇인가요?", f"{pair} 중 어느 쪽이 더 큰가요?")
                facts.append(Fact("compare", f"{pair} 중에서 더 큰 수는 {max(a, b)}입니다.", questions, str(max(a, b))))
    return facts


def _table_facts() -> list[Fact]:
    facts = []
    for big, small, factor in UNITS:
        for n in range(1, 10):
            amount = josa(f"{n}{big}", "은", "는")
            facts.append(Fact("unit", f"{amount} {n * factor}{small}입니다.",
                              (f"{amount} 몇 {small}인가요?", f"{josa(f'{n}{big}', '을', '를')} {_ro(small)} 바꾸면?"),
                              f"{n * factor}{small}"))
    for i, day in enumerate(WEEKDAYS):
        for k, after in ((1, "다음 날"), (2, "이틀 뒤"), (3, "사흘 뒤")):
            when = josa(f"{day} {after}", "은", "는")
            facts.append(Fact("weekday", f"{when} {WEEKDAYS[(i + k) % 7]}입니다.",
                              (f"{when} 무슨 요일인가요?", f"{day}에서 {after.replace('다음 날', '하루 뒤')}는 무슨 요일이에요?"),
                              WEEKDAYS[(i + k) % 7]))
    for country, city in {**CAPITALS, **MORE_CAPITALS}.items():
        facts.append(Fact("capital", f"{country}의 수도는 {city}입니다.",
                          (f"{country}의 수도는 어디인가요?", f"{country}의 수도는?", f"{country}의 수도를 알려 주세요."), city))
    for animal, sound in {**SOUNDS, **MORE_SOUNDS}.items():
        topic = josa(animal, "은", "는")
        facts.append(Fact("sound", f"{topic} {sound} 하고 웁니다.",
                          (f"{topic} 어떻게 우나요?", f"{animal} 울음소리는 어떤가요?", f"{topic} 뭐라고 울어요?"), sound))
    for thing, colour in {**COLOURS, **MORE_COLOURS}.items():
        facts.append(Fact("colour", f"{thing}의 색깔은 {colour}입니다.",
                          (f"{thing}의 색깔은 무엇인가요?", f"{thing}은 무슨 색인가요?" if has_batchim(thing) else
                           f"{thing}는 무슨 색인가요?", f"{thing}의 색을 알려 주세요."), colour))
    return facts


def world_facts() -> list[Fact]:
    """Every fact of the demo world, in a fixed order (about 670)."""
    return _number_facts() + _table_facts()


def world_questions(seed: int = 0) -> list[dict]:
    """Every (fact, phrasing) as a task ``{id, task, prompt, response, answer, source}``, shuffled with
    ``seed`` and interleaved across task kinds, so any prefix is balanced and no prompt repeats."""
    rng = random.Random(seed)
    by_kind: dict[str, list[dict]] = {}
    for fact in world_facts():
        for question in fact.questions:
            by_kind.setdefault(fact.task, []).append(
                {"task": fact.task, "prompt": question, "response": fact.statement, "answer": fact.answer})
    for tasks in by_kind.values():
        rng.shuffle(tasks)
    order = []
    for i in range(max(len(t) for t in by_kind.values())):
        order += [tasks[i] for tasks in by_kind.values() if i < len(tasks)]
    return [{"id": f"world-{i}", **task, "source": "korlhf-demo"} for i, task in enumerate(order)]


def world_text(seed: int = 0, repeats: int = 1) -> list[str]:
    """The demo world as plain sentences (every fact stated ``repeats`` times, shuffled): "pretraining" text."""
    rng = random.Random(seed)
    sentences = [fact.statement for fact in world_facts()] * repeats
    rng.shuffle(sentences)
    return sentences


def split_world(seed: int, sizes: dict[str, int]) -> dict[str, list[dict]]:
    """The world's questions split into disjoint sets of the given sizes (the last takes the rest),
    each stratified by task kind: every set holds every kind in the world's proportions.

    Sets differ as texts; one fact can be asked in two sets with different phrasings, as
    InstructGPT's PPO and evaluation prompts come from the same task families.
    """
    questions = world_questions(seed)
    by_kind: dict[str, list[dict]] = {}
    for question in questions:
        by_kind.setdefault(question["task"], []).append(question)
    # Each question's place within its kind, (i + 0.5) / n: sorted by it, kinds are spread evenly
    # through the list, so any run of consecutive questions holds every kind in proportion.
    place = {q["id"]: (i + 0.5) / len(tasks) for tasks in by_kind.values() for i, q in enumerate(tasks)}
    spread = sorted(questions, key=lambda q: place[q["id"]])
    split, start = {}, 0
    for i, (name, size) in enumerate(sizes.items()):
        end = len(spread) if i == len(sizes) - 1 else start + size
        split[name], start = spread[start:end], end
    return split


def preference(task: dict, rng: random.Random, hard_negatives: int = 3) -> dict:
    """A preference record: the right answer first, then answers that are not, unranked among
    themselves (``tied_after_first``, as KoBEST choices are): ``hard_negatives`` right sentences with
    a wrong value (what a reward model must learn to check), one true sentence about another fact,
    one broken answer."""
    wrong = world_wrong_values(task, hard_negatives, rng)
    head, _, tail = task["response"].rpartition(task["answer"])
    responses = [task["response"], *(head + w + tail for w in wrong),
                 world_mistake(task, "other", rng), world_mistake(task, "broken", rng)]
    return {"id": task["id"], "task": task["task"], "prompt": task["prompt"], "responses": responses,
            "answer": task["answer"], "tied_after_first": True, "source": task["source"]}


def world_wrong_values(task: dict, n: int, rng: random.Random) -> list[str]:
    """``n`` distinct wrong answers of the task's kind; for numbers, near misses first (off by 1-3,
    or a number from the question: the mistakes a small model makes)."""
    answer = task["answer"]
    pool = sorted({f.answer for f in _facts_by_kind()[task["task"]]} - {answer})
    near: list[str] = []
    if answer.isdigit():
        numbers = [str(int(answer) + d) for d in (-3, -2, -1, 1, 2, 3) if int(answer) + d > 0]
        numbers += [x for x in re.findall(r"\d+", task["prompt"]) if x != answer]
        near = sorted(set(numbers) - {answer})
        rng.shuffle(near)
    rest = [p for p in pool if p not in near]
    rng.shuffle(rest)
    return (near + rest)[:n]


def world_mistake(task: dict, style: str, rng: random.Random) -> str:
    """A bad answer to a world question. ``wrong``: the same sentence with another answer of its kind;
    ``other``: a true sentence about another fact of the same kind (fluent, on topic, not an answer);
    ``broken``: repeated, cut off or English."""
    same_kind = _facts_by_kind()[task["task"]]
    if style == "wrong":
        answer = rng.choice(sorted({f.answer for f in same_kind} - {task["answer"]}))
        head, _, tail = task["response"].rpartition(task["answer"])
        return head + answer + tail
    if style == "other":
        return rng.choice([f.statement for f in same_kind if f.statement != task["response"]])
    broken = rng.choice(["repeat", "truncate", "english"])
    if broken == "repeat":
        return " ".join([task["response"].split()[0]] * rng.randint(4, 8))
    if broken == "truncate":
        return task["response"][: max(2, len(task["response"]) // 3)]
    return "I don't know the answer."


@cache
def _facts_by_kind() -> dict[str, list[Fact]]:
    kinds: dict[str, list[Fact]] = {}
    for fact in world_facts():
        kinds.setdefault(fact.task, []).append(fact)
    return kinds


@cache
def _answers() -> dict[str, tuple[str, str]]:
    """question -> (short answer, the statement that answers it)."""
    return {q: (fact.answer, fact.statement) for fact in world_facts() for q in fact.questions}


def answer_of(prompt: str) -> str | None:
    """The known short answer to a demo-world question, or None if ``prompt`` is not one."""
    known = _answers().get(prompt.strip())
    return known[0] if known else None


def correct(prompt: str, response: str) -> float:
    """The demo world's verifiable reward and its scorer: 1.0 if the answer ends with the fact's statement.

    The answer slot is checked in its sentence: "4 더하기 3은 7입니다." for "4 더하기 3의 값은?", as
    a word-initial ending (a lead-in such as "네, " is fine). A bare substring test counts
    "3과 7 중에서 더 큰 수는 3입니다." right (7 is in the question), a slot-only test
    "2 더하기 5는 7입니다." (another fact with the same value). Use it as a reward rule
    (`reward_rules: [korlhf.demo_data:correct]`), a label judge or the pipeline's ``answer_rule``.
    Demo-world questions only; any other prompt scores 0.0.
    """
    known = _answers().get(prompt.strip())
    if known is None:
        return 0.0
    return 1.0 if re.search(r"(?:^|\s)" + re.escape(known[1]) + r"\s*$", response.strip()) else 0.0
