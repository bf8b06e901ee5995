"""The training output directory, the same for sft, rm, ppo, dpo, grpo and rloo.

    output_dir/
      model (or peft adapter) + tokenizer with its chat template   <- korlhf.models.load_* reads it
      merged/           LoRA with `merge`: the adapter folded into the base
      config.yaml       the exact config used (written first)
      log.jsonl         one JSON object per logged step, each with a "step" key
      checkpoint-N/     resumable checkpoints, complete by construction (see `AtomicCheckpoints`);
                        removed once the run finishes, unless `keep_checkpoints`
      README.md         model card
      metrics.json      final metrics, written LAST: its presence means the stage finished

Pieces, so that a stage with its own loop (PPO) can use them without a HF Trainer:
`prepare_output_dir`, `latest_checkpoint`, `LogJsonl` (also `append_log`), `AtomicCheckpoints`,
`save_model_dir`, `write_model_card`, `write_metrics`, `read_metrics`, `remove_checkpoints`.
Every stage starts with `begin` and `open_output_dir` and ends with `finish_run`
(card, metrics.json, clean-up), so its own module holds only its algorithm.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from transformers import TrainerCallback

from korlhf.errors import KorlhfError

CONFIG, LOG, CARD, METRICS, MERGED = "config.yaml", "log.jsonl", "README.md", "metrics.json", "merged"
STAGING = ".checkpoint-staging"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := CHECKPOINT.match(p.name))]
    return sorted(found)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest *complete* ``checkpoint-N`` (it holds ``trainer_state.json``, written last), or None.

    Our checkpoints appear under their final name only once fully written (`AtomicCheckpoints`);
    the state-file check also rejects half-written ones left by other tools or older versions.
    """
    complete = [p for _, p in _checkpoints(Path(output_dir)) if (p / "trainer_state.json").is_file()]
    return complete[-1] if complete else None


def checkpoint_step(checkpoint: str | Path) -> int:
    return int(CHECKPOINT.match(Path(checkpoint).name).group(1))


def run_finished(output_dir: str | Path) -> bool:
    return (Path(output_dir) / METRICS).is_file()


def prepare_output_dir(output_dir: str | Path, resume: bool = False, overwrite: bool = False) -> Path | None:
    """Make ``output_dir`` ready for a run; return the checkpoint to resume from (or None).

    - ``overwrite``: delete an earlier run's checkpoints, log and metrics, and start over.
    - ``resume``: continue from the latest complete checkpoint; log rows written after it are
      dropped (they will be logged again). No checkpoint yet: start fresh.
    - neither, and an earlier run is there: a clear error rather than mixing two runs.
    Call it on every process; only the main one deletes, then all wait for it.
    """
    import torch
    from accelerate import PartialState

    out = Path(output_dir)
    # cpu=True without CUDA: under `accelerate launch` on CPUs this joins the gloo process group rather
    # than taking each process for a lone main (when a TRL config was created first, it is already set up).
    state = PartialState(cpu=not torch.cuda.is_available())
    earlier = [p for _, p in _checkpoints(out)] + [out / n for n in (LOG, METRICS, STAGING) if (out / n).exists()]
    checkpoint = latest_checkpoint(out) if resume and not overwrite else None
    if earlier and not (resume or overwrite):
        names = ", ".join(sorted(p.name for p in earlier))
        raise KorlhfError(f"{out} already holds a run ({names}); pass --resume to continue it "
                          "or --overwrite to start over")
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(out / STAGING, ignore_errors=True)  # checkpoints that were never finished
        if checkpoint is not None:
            truncate_log(out / LOG, checkpoint_step(checkpoint))
        else:
            for path in earlier:
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    state.wait_for_everyone()
    return checkpoint


def truncate_log(path: Path, last_step: int) -> None:
    """Keep only the log rows up to ``last_step`` (those after it belong to a run that was cut off)."""
    if not path.is_file():
        return
    rows = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= last_step]
    path.write_text("".join(line + "\n" for line in rows), encoding="utf-8")


def read_log(output_dir: str | Path) -> list[dict]:
    path = Path(output_dir) / LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def append_log(output_dir: str | Path, row: dict) -> None:
    """One row of ``log.jsonl``; ``row`` must carry ``step``. NaN/inf are written as null."""
    if "step" not in row:
        raise ValueError("a log.jsonl row needs a 'step'")
    with open(Path(output_dir) / LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(_finite(row), ensure_ascii=False) + "\n")


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class LogJsonl(TrainerCallback):
    """Trainer callback: every log (train loss, eval loss, metrics) becomes a ``log.jsonl`` row."""

    def __init__(self, output_dir: str | Path):
        self.output_dir = Path(output_dir)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            append_log(self.output_dir, {"step": state.global_step, **logs})


class AtomicCheckpoints:
    """Mixin for a ``transformers.Trainer`` subclass: checkpoints are written whole or not at all.

    transformers writes ``checkpoint-N`` in place, so a run killed mid-save leaves a folder that
    looks resumable and is not. We let the Trainer write into ``output_dir/.checkpoint-staging``
    and rename the finished folder into place (a rename is atomic on one filesystem). Put it first:
    ``class MyTrainer(AtomicCheckpoints, SFTTrainer)``.
    """

    def _save_checkpoint(self, model, trial):
        from transformers.trainer_utils import rotate_checkpoints

        run_dir = self.args.output_dir
        name = f"checkpoint-{self.state.global_step}"
        staging = os.path.join(run_dir, STAGING)
        if self.args.should_save:
            shutil.rmtree(os.path.join(staging, name), ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self.args.output_dir = staging
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.output_dir = run_dir
        self.accelerator.wait_for_everyone()  # every rank has written its shard / RNG state
        if self.args.should_save:
            final = os.path.join(run_dir, name)
            if os.path.isdir(final):  # the same step saved twice (a re-run after resume)
                shutil.rmtree(final)
            os.replace(os.path.join(staging, name), final)
            rotate_checkpoints(run_dir, save_total_limit=self.args.save_total_limit)
        self.accelerator.wait_for_everyone()


def save_model_dir(trainer, tokenizer, output_dir: str | Path, merge: bool, load_merged=None) -> None:
    """Final model (or adapter) and tokenizer into ``output_dir``; with ``merge``, also ``merged/``.

    The merged copy is rebuilt from the saved adapter with ``load_merged(path, tokenizer)``
    (default `korlhf.models.load_causal_lm`; `load_reward_model` for a reward model), so it does not
    depend on how the training processes held the weights (DDP, ZeRO-3 shards).
    """
    from accelerate.utils import is_peft_model

    from korlhf.models import load_causal_lm

    out = Path(output_dir)
    trainer.save_model(str(out))
    trainer.accelerator.wait_for_everyone()
    if not trainer.accelerator.is_main_process:
        return
    tokenizer.save_pretrained(out)
    if merge and is_peft_model(trainer.accelerator.unwrap_model(trainer.model)):
        merged = (load_merged or load_causal_lm)(out, tokenizer)
        merged.save_pretrained(out / MERGED)
        tokenizer.save_pretrained(out / MERGED)
    shutil.rmtree(out / STAGING, ignore_errors=True)


def remove_checkpoints(output_dir: str | Path) -> None:
    """Delete ``checkpoint-N`` folders of a finished run (call it after `write_metrics`)."""
    for _, path in _checkpoints(Path(output_dir)):
        shutil.rmtree(path, ignore_errors=True)


def write_metrics(output_dir: str | Path, metrics: dict) -> Path:
    """``metrics.json``: call it last, after everything else is written."""
    path = Path(output_dir) / METRICS
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_finite(metrics), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_metrics(output_dir: str | Path) -> dict:
    return json.loads((Path(output_dir) / METRICS).read_text(encoding="utf-8"))


def write_model_card(output_dir: str | Path, *, stage: str, title: str, base_model: str, template: str,
                     data: dict[str, dict[str, int]], metrics: dict, settings: dict, usage: str,
                     command: str) -> Path:
    """``README.md``: base model, data sources and sizes, template, metrics, settings, how to load.

    ``data`` maps a split name to {source: records}; ``settings`` is a short {name: value} list of
    what matters for this stage (the full config is in ``config.yaml``).
    """
    lines = ["---", "language:", "- ko", "library_name: transformers", f"base_model: {base_model}",
             "tags:", "- korlhf", f"- {stage}", "---", "", f"# {title}", "",
             f"Trained with korlhf `{stage}` from `{base_model}`.", "", "## Data", "",
             "| split | source | records |", "|---|---|---:|"]
    for split, sources in data.items():
        for source, n in sources.items():
            lines.append(f"| {split} | {source} | {n:,} |")
        lines.append(f"| {split} | **total** | **{sum(sources.values()):,}** |")
    lines += ["", "## Template", "", f"`{template}` (stored in the tokenizer's chat template).", "",
              "## Metrics", "", "| metric | value |", "|---|---:|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in metrics.items() if not isinstance(v, (dict, list))]
    lines += ["", "## Settings", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in settings.items()]
    lines += ["", "The exact configuration is in `config.yaml`.", "", "## Use", "", "```python", usage.strip(), "```",
              "", "## Reproduce", "", "```bash", command, "```", ""]
    path = Path(output_dir) / CARD
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def template_label(tokenizer) -> str:
    """The name of the tokenizer's chat template (kochatgpt, koalpaca, chatml) or "the model's own"."""
    from korlhf.templates import template_name

    return template_name(tokenizer.chat_template) or "the model's own"


def lora_label(cfg) -> str:
    return f"r={cfg.lora_r}, alpha={cfg.lora_alpha}" if cfg.use_lora or cfg.load_in_4bit else "no"


def causal_lm_usage(output_dir: str | Path) -> str:
    out = str(output_dir)
    return (f"from korlhf.models import load_causal_lm, load_tokenizer\n"
            f"tokenizer = load_tokenizer({out!r})\nmodel = load_causal_lm({out!r}, tokenizer)\n"
            f"# or: korlhf chat --model {out}")


def finish_run(cfg, tokenizer, *, stage: str, title: str, train_records: list[dict], eval_records: list[dict],
               metrics: dict, settings: dict, processes: int = 1, usage: str | None = None) -> None:
    """The end of every training stage, on the main process: model card, ``metrics.json`` (last),
    checkpoint clean-up, one summary line.

    The card's settings start with those every stage shares (steps, batch, learning rate, max
    length, processes), then the stage's own ``settings``, then LoRA and the seed. ``usage``
    defaults to loading a causal LM.
    """
    from rich.console import Console

    from korlhf.train.common import command_line
    from korlhf.train.data import source_counts

    out = Path(cfg.output_dir)
    shared = {k: getattr(cfg, k) for k in ("epochs", "max_steps", "batch_size", "grad_accum", "learning_rate",
                                           "max_length") if hasattr(cfg, k)}
    write_model_card(out, stage=stage, title=title, base_model=cfg.model_name_or_path,
                     template=template_label(tokenizer),
                     data={"train": source_counts(train_records), "eval": source_counts(eval_records)},
                     metrics=metrics, settings={**shared, "processes": processes, **settings,
                                                "lora": lora_label(cfg), "seed": cfg.seed},
                     usage=usage or causal_lm_usage(out), command=command_line())
    write_metrics(out, metrics)
    if not cfg.keep_checkpoints:
        remove_checkpoints(out)
    Console().print(f"[bold green]{stage} done[/bold green] -> {out}  " +
                    "  ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))


@dataclass
class Start:
    done: dict | None  # with ``resume``: the metrics of a run that already finished (nothing to do)
    train_records: list[dict] = field(default_factory=list)
    eval_records: list[dict] = field(default_factory=list)
    quant: dict = field(default_factory=dict)  # from_pretrained kwargs for QLoRA


def begin(cfg, kind: str) -> Start:
    """The start of every training stage, before any process or model is set up: a run that
    already finished in ``output_dir`` is reported (with ``resume``: how the pipeline reruns a
    stage it has done), QLoRA is checked (a clear error before anything is loaded or written),
    and the ``kind`` records (sft, preference, prompt) are read and split."""
    from korlhf.train.common import quantization_kwargs
    from korlhf.train.data import load_split

    out = Path(cfg.output_dir)
    if cfg.resume and run_finished(out):
        print(f"{out} already finished (metrics.json is there); --overwrite trains again")
        return Start(done=read_metrics(out))
    fit_context(cfg)
    quant = quantization_kwargs(cfg)
    train_records, eval_records = load_split(cfg.train_files, cfg.eval_files, cfg.eval_fraction, kind, cfg.seed)
    return Start(None, train_records, eval_records, quant)


def fit_context(cfg) -> None:
    """Lengths the model cannot take are clamped to its positions, with a warning; none left: an error.

    ``max_length`` (sft, rm, dpo) becomes the model's positions; for RL, ``max_prompt_length``
    shrinks so that prompt + ``max_new_tokens`` fit (longer prompts are set aside and listed).
    """
    from rich.console import Console

    from korlhf.models import context_size

    positions = context_size(cfg.model_name_or_path, cfg.trust_remote_code)
    if positions is None:
        return
    warn = Console(stderr=True).print
    if getattr(cfg, "max_length", 0) > positions:
        warn(f"[yellow]warning: max_length {cfg.max_length} is more than {cfg.model_name_or_path} can take "
             f"({positions} positions); using max_length {positions}[/yellow]")
        cfg.max_length = positions
    if hasattr(cfg, "max_prompt_length") and cfg.max_prompt_length + cfg.max_new_tokens > positions:
        if cfg.max_new_tokens >= positions:
            raise KorlhfError(f"max_new_tokens {cfg.max_new_tokens} leaves no room for a prompt in the "
                              f"{positions} positions of {cfg.model_name_or_path}; lower max_new_tokens")
        warn(f"[yellow]warning: max_prompt_length {cfg.max_prompt_length} + max_new_tokens {cfg.max_new_tokens} is "
             f"more than {cfg.model_name_or_path} can take ({positions} positions); using max_prompt_length "
             f"{positions - cfg.max_new_tokens}[/yellow]")
        cfg.max_prompt_length = positions - cfg.max_new_tokens


def open_output_dir(cfg) -> Path | None:
    """The start of every training stage, on every process, once its processes are set up: the
    output folder made ready (`prepare_output_dir`), the exact config saved, the seed set, and the
    checkpoint to resume from returned (None: a fresh start).

    The seed is set before any model loads: a reward model's new score head is drawn then, and a
    stage must not depend on what ran before it in the same process (the pipeline, a test).
    """
    from accelerate import PartialState
    from transformers import set_seed

    from korlhf.config import save_config

    checkpoint = prepare_output_dir(cfg.output_dir, resume=cfg.resume, overwrite=cfg.overwrite)
    if PartialState().is_main_process:
        save_config(cfg, Path(cfg.output_dir) / CONFIG)
    set_seed(cfg.seed)
    return checkpoint


def with_atomic_checkpoints(trainer_cls: type) -> type:
    """``trainer_cls`` (a TRL/HF Trainer) whose checkpoints are written whole or not at all."""
    return type(f"Korlhf{trainer_cls.__name__}", (AtomicCheckpoints, trainer_cls), {})


def resuming(checkpoint: Path | None) -> str:
    """The end of a stage's first console line."""
    return f", resuming from {checkpoint.name}" if checkpoint else ""


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
