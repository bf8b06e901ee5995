"""Which reward-model ranking loss is better? K-wise, pairwise and Plackett-Luce, several seeds, three kinds of data.

    .venv/bin/python benchmarks/rm_losses.py runs/demo [--seeds 0 1 2] [--steps 300] [--threads 1]

After `korlhf demo` (its SFT model starts every reward model, as in the pipeline). Data, all on the
demo world's questions, trained on the demo's RM questions and measured on its held-out questions
(never seen by any training stage):

- **tied**: the demo's own RM records: the right answer first, then 3 near misses (a wrong value),
  a true sentence about another fact and a broken answer, unranked among themselves
  (``tied_after_first``, as KoBEST gives them);
- **graded**: fully ranked K = 4 records, by how wrong an answer is: right > right sentence with a
  wrong value > true sentence about another fact > broken answer;
- **judged**: the demo's AI-feedback records (`korlhf label`: the SFT model's own sampled answers
  ranked by the world's checker), held out the same way on the held-out questions.

Pairwise runs at equal comparisons per step: its batch holds as many pairs as K-wise's batch of
records holds pairs. Every loss gets the same steps and learning rate. Reported: held-out pairwise
accuracy, top-1 accuracy and Kendall tau (graded only), mean ± std over seeds with a 95% t interval.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from pathlib import Path

LOSSES = ("kwise", "pairwise", "listwise")


def graded(task: dict, rng: random.Random) -> dict:
    from korlhf.demo_data import world_mistake, world_wrong_values

    head, _, tail = task["response"].rpartition(task["answer"])
    responses = [task["response"], head + world_wrong_values(task, 1, rng)[0] + tail,
                 world_mistake(task, "other", rng), world_mistake(task, "broken", rng)]
    return {"prompt": task["prompt"], "responses": responses, "source": "graded"}


def datasets(run: Path, out: Path, seed: int = 0) -> dict[str, tuple[Path, Path]]:
    """{kind: (train file, held-out file)} written under ``out``."""
    from korlhf.demo_data import preference, world_questions
    from korlhf.records import read_jsonl, write_jsonl

    build = run / "data" / "build"
    questions = {q["prompt"]: q for q in world_questions(0)}
    train_q = [questions[r["prompt"]] for _, r in read_jsonl(build / "rm.jsonl") if r["prompt"] in questions]
    eval_q = [questions[r["prompt"]] for _, r in read_jsonl(build / "eval.jsonl") if r["prompt"] in questions]
    rng = random.Random(seed)
    files = {}
    for kind, make in (("tied", lambda t: preference(t, rng)), ("graded", lambda t: graded(t, rng))):
        files[kind] = (out / f"{kind}_train.jsonl", out / f"{kind}_eval.jsonl")
        write_jsonl(files[kind][0], [make(t) for t in train_q])
        write_jsonl(files[kind][1], [make(t) for t in eval_q])
    files["judged"] = (run / "label" / "preferences.jsonl", judged_eval(run, build / "eval.jsonl", out))
    return files


def judged_eval(run: Path, eval_file: Path, out: Path) -> Path:
    """The label stage's AI feedback on the held-out questions, as the demo ran it on the RM questions."""
    from korlhf.config import build_config
    from korlhf.demo import Config as Demo
    from korlhf.label import stage

    done = out / "judged_eval" / "preferences.jsonl"
    if not done.is_file():
        settings = dict(Demo().label)  # the demo's label stage: 4 sampled answers each, ranked by the checker
        settings.update(inputs=[str(eval_file)], models=[str(run / "sft")], output_dir=str(out / "judged_eval"),
                        overwrite=True)
        stage.main(build_config(stage.Config, {k: (v, "benchmark") for k, v in settings.items()}))
    return done


def pairs_per_record(path: Path) -> float:
    from korlhf.records import load_records, ranking_pairs

    records = load_records([str(path)], "preference")
    return sum(len(ranking_pairs(r)) for r in records) / len(records)


def train_and_measure(kind: str, loss: str, seed: int, files: tuple[Path, Path], run: Path, out: Path,
                      steps: int, batch: int) -> dict:
    from korlhf.config import build_config
    from korlhf.train import rm

    folder = out / kind / loss / f"seed{seed}"
    if not (folder / "metrics.json").is_file():
        size = batch if loss != "pairwise" else round(batch * pairs_per_record(files[0]))
        settings = {"model_name_or_path": str(run / "sft"), "train_files": [str(files[0])],
                    "eval_files": [str(files[1])], "output_dir": str(folder), "loss": loss, "max_steps": steps,
                    "batch_size": size, "learning_rate": 5e-4, "warmup_ratio": 0.05, "max_length": 96,
                    "save_steps": 10_000, "logging_steps": 50, "seed": seed, "overwrite": True}
        began = time.perf_counter()
        rm.main(build_config(rm.Config, {k: (v, "benchmark") for k, v in settings.items()}))
        print(f"{kind} {loss} seed {seed}: {time.perf_counter() - began:.0f}s")
    return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))


def summary(values: list[float]) -> str:
    """mean ± std [95% t interval] over seeds."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    mean = statistics.mean(values)
    if len(values) < 2:
        return f"{mean:.3f}"
    std = statistics.stdev(values)
    t = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78}.get(len(values), 2.0)
    half = t * std / math.sqrt(len(values))
    return f"{mean:.3f} ± {std:.3f} [{mean - half:.3f}, {mean + half:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16, help="records per K-wise / listwise step")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    out = args.out or args.run / "rm_losses"
    files = datasets(args.run, out)
    rows = []
    for kind in files:
        for loss in LOSSES:
            results = [train_and_measure(kind, loss, seed, files[kind], args.run, out, args.steps, args.batch)
                       for seed in args.seeds]
            rows.append({"data": kind, "loss": loss, **{key: [r.get(f"eval_{key}") for r in results]
                                                        for key in ("pairwise_accuracy", "top1_accuracy",
                                                                    "kendall_tau")}})
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    lines = ["| data | loss | held-out pairwise accuracy | top-1 accuracy | Kendall tau |", "|---|---|---|---|---|"]
    lines += [f"| {r['data']} | {r['loss']} | {summary(r['pairwise_accuracy'])} | {summary(r['top1_accuracy'])} | "
              f"{summary(r['kendall_tau']) if r['data'] == 'graded' else '–'} |" for r in rows]
    table = "\n".join(lines)
    (out / "results.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    print(f"\nseeds {args.seeds}, {args.steps} steps, torch threads {args.threads}; reproduce: "
          f".venv/bin/python benchmarks/rm_losses.py {args.run} --seeds {' '.join(map(str, args.seeds))} "
          f"--steps {args.steps} --threads {args.threads}")


if __name__ == "__main__":
    main()
