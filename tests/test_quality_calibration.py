"""The quality checks scored on the hand-labelled sample of the real data (docs/data_quality.md)."""

from korlhf.data.calibrate import LABELS, measure


def test_measured_precision_and_recall_on_the_labelled_sample(shared_data):
    rows = {(r["check"], r["kind"]): r for r in measure(LABELS, shared_data)}
    summary = {key: (r["n"], r["positives"], r["new"]["flagged"], r["new"]["true_positives"], r["old"]["flagged"],
                     r["old"]["true_positives"]) for key, r in rows.items()}
    assert summary == {
        # 200 random PPO questions + all 259 with a rare ending: every real cut found, 4 false alarms
        # ("버스 멀미나"); the old rule flagged 305 of 459 (and 33.7% of the whole file).
        ("truncated", "question"): (459, 10, 14, 10, 305, 10),
        # 100 whole KoChatGPT answers, the same cut at random points (96 inside a sentence), RM sample.
        ("truncated", "answer"): (209, 97, 97, 97, 92, 92),
        ("refusal", "answer"): (32, 4, 4, 4, 5, 2),
        ("role_confusion", "turn"): (217, 164, 162, 161, 0, 0),
    }
