"""PPO checkpoints and the per-step log, in the training output layout of `korlhf.train.output`.

A checkpoint (``output_dir/checkpoint-N``) is accelerate's ``save_state``: the policy and value
model (one ActorCritic module), the optimizer, every process's RNG state (Python, NumPy, torch,
CUDA), and the registered KL controller and learning-rate scheduler; ``trainer_state.json`` (the
step) is written last. It is written under ``.checkpoint-staging`` and renamed into place, so a
run killed mid-save never leaves a half checkpoint that ``--resume`` would pick.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from korlhf.train.output import STAGING, append_log, checkpoint_step, read_log, truncate_log

STATE_FILE = "trainer_state.json"
SAMPLES = "samples.jsonl"


def save_checkpoint(accelerator, output_dir: str | Path, step: int, keep: int) -> Path:
    """Save the full training state after ``step``; keep the newest ``keep`` checkpoints (0: all)."""
    out = Path(output_dir)
    staging, final = out / STAGING / f"checkpoint-{step}", out / f"checkpoint-{step}"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
    accelerator.wait_for_everyone()
    # accelerate notes "Removed shared tensor ... check" for tied input/output embeddings (GPT-2,
    # Llama with tied weights): they are one tensor, saved once and tied again on load (the resume
    # test compares every later step), so the note is silenced here rather than shown each save.
    note = logging.getLogger("accelerate.utils.other")
    level = note.level
    note.setLevel(logging.ERROR)
    try:
        accelerator.save_state(str(staging))
    finally:
        note.setLevel(level)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (staging / STATE_FILE).write_text(json.dumps({"global_step": step}), encoding="utf-8")
        if final.exists():  # the same step saved again after a resume
            shutil.rmtree(final)
        os.replace(staging, final)
        done = sorted((p for p in out.glob("checkpoint-*") if (p / STATE_FILE).is_file()), key=checkpoint_step)
        for old in done[:-keep] if keep > 0 else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, checkpoint: Path) -> int:
    """Restore everything `save_checkpoint` saved; returns the step it was taken after."""
    accelerator.load_state(str(checkpoint))
    return checkpoint_step(checkpoint)


class RunLog:
    """``log.jsonl`` (one row per step), ``samples.jsonl`` (the sample tables) and the report_to trackers."""

    def __init__(self, output_dir: str | Path, accelerator, resume_step: int | None):
        self.dir, self.accelerator = Path(output_dir), accelerator
        samples = self.dir / SAMPLES
        if accelerator.is_main_process:
            if resume_step is None:
                samples.unlink(missing_ok=True)
            else:
                truncate_log(samples, resume_step)

    def history(self) -> list[dict]:
        return read_log(self.dir)

    def log(self, metrics: dict) -> None:
        if self.accelerator.is_main_process:
            append_log(self.dir, metrics)
        self.accelerator.log({k: v for k, v in metrics.items() if k != "step"}, step=metrics["step"])

    def samples(self, step: int, rows: list[dict]) -> None:
        if not self.accelerator.is_main_process or not rows:
            return
        with open(self.dir / SAMPLES, "a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps({"step": step, **row}, ensure_ascii=False) + "\n")
        columns = list(rows[0])
        for tracker in self.accelerator.trackers:
            if hasattr(tracker, "log_table"):  # wandb shows the samples as a table
                tracker.log_table("samples", columns=columns, data=[[r[c] for c in columns] for r in rows], step=step)

