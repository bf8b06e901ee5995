"""The demo world: stratified disjoint splits, hard negatives, and the checker that is its verifiable reward."""

from __future__ import annotations

import random
from collections import Counter

from korlhf.demo_data import correct, preference, split_world, world_questions


def test_split_is_disjoint_exact_and_stratified_by_kind():
    sizes = {"eval": 150, "sft": 550, "rm": 300, "ppo": 0}
    sets = split_world(0, sizes)
    world = world_questions(0)
    assert [len(sets[n]) for n in ("eval", "sft", "rm")] == [150, 550, 300]
    assert len(sets["ppo"]) == len(world) - 1000  # the last set takes the rest
    prompts = [q["prompt"] for part in sets.values() for q in part]
    assert len(prompts) == len(set(prompts)) == len(world)
    share = {k: n / len(world) for k, n in Counter(q["task"] for q in world).items()}
    for name, part in sets.items():
        kinds = Counter(q["task"] for q in part)
        assert set(kinds) == set(share), name  # every kind in every set (the old split left PPO 3 kinds)
        for kind, n in kinds.items():
            assert abs(n - share[kind] * len(part)) <= 1.5, (name, kind)
    assert split_world(0, sizes) == sets and split_world(1, sizes) != sets


def test_checker_reads_the_answer_sentence_not_a_substring():
    assert correct("4 더하기 3의 값은?", "4 더하기 3은 7입니다.") == 1.0
    assert correct("4 더하기 3의 값은?", "네, 4 더하기 3은 7입니다.") == 1.0
    assert correct("4 더하기 3의 값은?", "14 더하기 3은 7입니다.") == 0.0
    assert correct("4 더하기 3의 값은?", "2 더하기 5는 7입니다.") == 0.0  # the right value for another fact
    assert correct("4 더하기 3의 값은?", "4 더하기 3은 17입니다.") == 0.0
    assert correct("3과 7 중에서 더 큰 수는 무엇인가요?", "3과 7 중에서 더 큰 수는 3입니다.") == 0.0  # 7 is in the question
    assert correct("3과 7 중에서 더 큰 수는 무엇인가요?", "3과 7 중에서 더 큰 수는 7입니다. 7입니다.") == 0.0
    assert correct("개는 어떻게 우나요?", "개는 멍멍 하고 웁니다.") == 1.0
    assert correct("김치찌개 끓이는 법", "4 더하기 3은 7입니다.") == 0.0  # not a world question


def test_preferences_put_the_right_answer_over_hard_negatives():
    rng = random.Random(0)
    questions = world_questions(0)
    for task in questions[:60]:
        record = preference(task, rng, hard_negatives=3)
        right, *wrong = record["responses"]
        assert record["tied_after_first"] is True and len(wrong) == 5
        assert correct(task["prompt"], right) == 1.0
        assert all(correct(task["prompt"], w) == 0.0 for w in wrong), record
        near = wrong[:3]  # the right sentence with a wrong value: what a reward model must learn to check
        head = task["response"].rpartition(task["answer"])[0]
        assert all(w.startswith(head) for w in near) and len(set(near)) == 3
