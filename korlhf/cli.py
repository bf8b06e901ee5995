"""The `korlhf` command. Imports nothing heavy: each command imports its stage module when run.

Stage commands take `--config FILE.yaml` and `--field value` overrides for the stage's config
dataclass (see `korlhf.config`); `korlhf <group> <command> --help` lists every field.
"""

from __future__ import annotations

import importlib
import sys

import typer

from korlhf.errors import KorlhfError

app = typer.Typer(
    name="korlhf",
    help="Korean RLHF toolkit: data -> SFT -> reward model -> PPO/DPO/GRPO -> decode and evaluate.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root() -> None:
    """Korean RLHF toolkit: data -> SFT -> reward model -> PPO/DPO/GRPO -> decode and evaluate."""


# Stage commands parse their own flags against a config dataclass, so click must pass them through.
STAGE = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def run_stage(ctx: typer.Context, module_name: str, positional: dict | None = None) -> None:
    """Import ``module_name``, build its ``Config`` from ctx.args and call its ``main``.

    ``positional`` holds values already parsed by typer (e.g. input files), merged into the config.
    """
    from rich.console import Console

    from korlhf.config import build_config, describe_fields, load_config

    module = importlib.import_module(module_name)
    args = list(ctx.args)
    if "--help" in args or "-h" in args:
        console = Console()
        console.print(f"[bold]Usage:[/bold] {ctx.command_path} [OPTIONS] --config FILE.yaml --FIELD VALUE ...\n")
        console.print((ctx.command.help or "").strip() + "\n")
        from rich.table import Table

        table = Table("field", "type", "default", "meaning", title=f"{module.Config.__name__} fields")
        for row in describe_fields(module.Config):
            table.add_row(*row)
        console.print(table)
        raise typer.Exit(0)
    cfg = load_config(module.Config, None, args, command=command_name(ctx))
    if positional:
        merged = {k: (getattr(cfg, k), "config") for k in vars(cfg)}
        merged.update({k: (v, "argument") for k, v in positional.items() if v is not None})
        cfg = build_config(module.Config, merged, command=command_name(ctx))
    module.main(cfg)


def command_name(ctx) -> str:
    """``korlhf train ppo``, however korlhf was started (``python -m korlhf`` included)."""
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(["korlhf", *reversed(names)])


# Command groups. Each group lives in its own module and is added here once it does something.
# --- data (korlhf.data) ---
data_app = typer.Typer(help="Data: get known sets by name, inspect, clean and build disjoint SFT / RM / PPO / eval sets from Korean sources.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


def _files_first(ctx: typer.Context, files: list[str] | None) -> list[str] | None:
    """FILE... come before the options; typer hands the options to the FILE argument too, so the
    words from the first ``-...`` on go back to the stage's flags."""
    files = list(files or [])
    cut = next((i for i, f in enumerate(files) if f.startswith("-")), len(files))
    ctx.args = files[cut:] + list(ctx.args)
    return files[:cut] or None


@data_app.command("inspect", context_settings=STAGE)
def data_inspect(ctx: typer.Context, files: list[str] = typer.Argument(None)) -> None:
    """Report what is wrong with Korean data files (duplicates, empties, refusals, PII, lengths, overlap).

    Example: korlhf data inspect ../shared/data/kochatgpt/kochatgpt_3_PPO.jsonl --out runs/data/inspect
    """
    run_stage(ctx, "korlhf.data.inspect", positional={"files": _files_first(ctx, files)})


@data_app.command("get", context_settings=STAGE)
def data_get(ctx: typer.Context, names: list[str] = typer.Argument(None)) -> None:
    """Fetch well-known Korean data sets from the Hugging Face Hub by name into data/NAME/ (cached, resumable).

    With no name, lists the known sets. HF_HUB_OFFLINE=1 uses the cache only. Example: korlhf data get kobest koalpaca
    """
    run_stage(ctx, "korlhf.data.get", positional={"names": _files_first(ctx, names)})


@data_app.command("clean", context_settings=STAGE)
def data_clean(ctx: typer.Context, files: list[str] = typer.Argument(None)) -> None:
    """Repair, filter, deduplicate and decontaminate: kept.jsonl + rejected.jsonl (with reasons) + report.

    Example: korlhf data clean a.jsonl b.csv --map prompt=질문 --map response=답변 --out runs/data/clean
    """
    run_stage(ctx, "korlhf.data.clean", positional={"files": _files_first(ctx, files)})


@data_app.command("build", context_settings=STAGE)
def data_build(ctx: typer.Context, sources: list[str] = typer.Argument(None)) -> None:
    """Write sft / rm / ppo / eval JSON Lines with prompts disjoint across them, and a report.

    Example: korlhf data build --config configs/data.yaml
    """
    run_stage(ctx, "korlhf.data.build", positional={"sources": _files_first(ctx, sources)})


# --- train (korlhf.train): one command per training stage of korlhf.stages ---
class _TrainGroup(typer.core.TyperGroup):
    """`korlhf train NAME` for every training stage in `korlhf.stages`, read when the command runs."""

    def list_commands(self, ctx):
        from korlhf import stages

        return [s.name for s in stages.STAGES if s.train]

    def get_command(self, ctx, name):
        import click

        from korlhf import stages

        stage = next((s for s in stages.STAGES if s.train and s.name == name), None)
        if stage is None:
            return None

        @click.pass_context
        def command(ctx):
            run_stage(ctx, stage.module)

        return click.Command(name, callback=command, help=stage.help, short_help=stage.help,
                             context_settings=STAGE, add_help_option=False)


train_app = typer.Typer(cls=_TrainGroup, no_args_is_help=True,
                        help="Train: sft, rm (reward model), then ppo, dpo, grpo or rloo; `korlhf train NAME --help` "
                             "lists every field.")
app.add_typer(train_app, name="train")


# --- generate, eval (korlhf.generate, korlhf.evaluation) ---
@app.command(context_settings=STAGE)
def generate(ctx: typer.Context) -> None:
    """Answer prompts with a decoding preset; JSON Lines with answers, exact settings, token counts, timing.

    Presets: greedy, beam, beam-sampling, sample, top-k, top-p, typical-p, min-p, contrastive; any knob
    (temperature, top_p, num_beams, repetition_penalty, num_return_sequences, stop, ...) overrides.
    Example: korlhf generate --model runs/sft --prompts prompts.jsonl --preset top-p --temperature 0.8 --out gen.jsonl
    """
    run_stage(ctx, "korlhf.generate")


class _DefaultCommandGroup(typer.core.TyperGroup):
    """A group whose usual command may go unnamed: `korlhf eval --predictions ...` runs `eval score`."""

    default = ""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = [self.default, *args]
        return super().parse_args(ctx, args)


class _ScoreUnlessNamed(_DefaultCommandGroup):
    default = "score"


eval_app = typer.Typer(cls=_ScoreUnlessNamed, no_args_is_help=True, help=(
    "Evaluate: score predictions (the default: `korlhf eval --predictions ...`), compare decoding strategies "
    "(sweep), rate blind (sheet), compare metrics with ratings (agree), KoBEST accuracy (kobest), grade with an "
    "LLM judge, MT-Bench style (judge)."))
app.add_typer(eval_app, name="eval")


@eval_app.command("score", context_settings=STAGE)
def eval_score(ctx: typer.Context) -> None:
    """BLEU (ko-mecab, char), chrF/chrF++, ROUGE (Kiwi morphemes, characters), diversity, lengths, refusals.

    Example: korlhf eval --predictions gen.jsonl --references refs.jsonl --out runs/eval
    """
    from korlhf.config import stray_argument

    stray = stray_argument(ctx.args)  # `korlhf eval gen.jsonl` is the natural first try: say how to write it
    if stray is not None:
        named = "--predictions" in " ".join(ctx.args)
        raise KorlhfError(f"unexpected argument {stray!r}: " + (
            "one --predictions file is scored at a time" if named else
            f"korlhf eval takes its files as options: korlhf eval --predictions {stray}") +
            " (--references REFS.jsonl adds reference metrics; the other eval commands are sweep, sheet, agree "
            "and kobest)")
    run_stage(ctx, "korlhf.evaluation.score")


@eval_app.command("sweep", context_settings=STAGE)
def eval_sweep(ctx: typer.Context) -> None:
    """Generate with several decoding strategies on one prompt set; one table (terminal, Markdown, CSV) + plots.

    Example: korlhf eval sweep --config configs/sweep.yaml --model runs/sft
    """
    run_stage(ctx, "korlhf.evaluation.sweep")


@eval_app.command("sheet", context_settings=STAGE)
def eval_sheet(ctx: typer.Context, systems: list[str] = typer.Argument(None)) -> None:
    """Blind rating sheet from two or more systems' generations: CSV and a self-contained HTML page.

    Example: korlhf eval sheet runs/sweep/greedy.jsonl runs/sweep/top-p.jsonl --out runs/sheet
    """
    run_stage(ctx, "korlhf.evaluation.sheet", positional={"systems": _files_first(ctx, systems)})


@eval_app.command("agree", context_settings=STAGE)
def eval_agree(ctx: typer.Context, ratings: list[str] = typer.Argument(None)) -> None:
    """Import ratings (people or a judge): each metric's Spearman/Kendall against them, agreement between raters.

    A judge: {rater, item, slot|system, rating} JSON Lines, or korlhf eval judge's <judge>_single.jsonl.
    Example: korlhf eval agree ratings_minji.csv runs/judge/gpt-4o_single.jsonl --sheet runs/sheet
    """
    run_stage(ctx, "korlhf.evaluation.agree", positional={"ratings": _files_first(ctx, ratings)})


@eval_app.command("judge", context_settings=STAGE)
def eval_judge(ctx: typer.Context) -> None:
    """MT-Bench-style LLM judge: 1-10 per answer and turn (single) or A/B in both orders (pairwise, win rates).

    Any OpenAI-compatible endpoint; FastChat llm_judge question, answer and judge-prompt files; Korean prompts by default.
    Example: korlhf eval judge --answers runs/gen_sft.jsonl --answers runs/gen_ppo.jsonl --judge_model gpt-4o
    """
    run_stage(ctx, "korlhf.evaluation.judge")


@eval_app.command("kobest", context_settings=STAGE)
def eval_kobest(ctx: typer.Context) -> None:
    """KoBEST accuracy (BoolQ, COPA, HellaSwag, SentiNeg, WiC) by log-likelihood of each choice.

    Example: korlhf eval kobest --model runs/sft --data ../shared/data/kobest --limit 100
    """
    run_stage(ctx, "korlhf.evaluation.kobest")


# --- label (korlhf.label) ---
class _RunUnlessNamed(_DefaultCommandGroup):
    default = "run"


label_app = typer.Typer(cls=_RunUnlessNamed, no_args_is_help=True, help=(
    "AI feedback: rank candidate answers with a judge (api, reward-model, rules, benchmark) into preference "
    "records (the default: `korlhf label --config ...`; `korlhf label run --help` lists every field); agreement "
    "between two judges, or a judge and known truth (agree)."))
app.add_typer(label_app, name="label")


@label_app.command("run", context_settings=STAGE)
def label_run(ctx: typer.Context) -> None:
    """Rank K candidate answers per prompt with a judge; preference records for `train rm` / `train dpo`.

    Judges: api (any OpenAI-compatible endpoint; pairwise in both orders, or pointwise 1-10), reward-model,
    rules (a smoke test), benchmark (KoBEST truth). Candidates: input answers and/or samples from --models.
    Example: OPENAI_API_KEY=... korlhf label --config configs/label.yaml --inputs prompts.jsonl --models runs/sft
    """
    run_stage(ctx, "korlhf.label.stage")


@label_app.command("agree", context_settings=STAGE)
def label_agree(ctx: typer.Context, files: list[str] = typer.Argument(None)) -> None:
    """Agreement of two raters on the same answer pairs: rate, kappa, tie rate, position consistency.

    A rater: a `korlhf label` run directory, ranked preference JSON Lines (e.g. KoBEST truth), or a pairwise
    sheet (prompt, response_a, response_b, label A/B/tie). Example: korlhf label agree runs/label runs/label_rm
    """
    run_stage(ctx, "korlhf.label.agree", positional={"files": _files_first(ctx, files)})


# --- chat, serve (korlhf.chat, korlhf.serve) ---
@app.command(context_settings=STAGE)
def chat(ctx: typer.Context) -> None:
    """Chat with a model in the terminal: streamed Korean answers, multi-turn, /reset and /exit."""
    run_stage(ctx, "korlhf.chat")


@app.command(context_settings=STAGE)
def serve(ctx: typer.Context) -> None:
    """Serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions) with a web chat page at /."""
    run_stage(ctx, "korlhf.serve.server")


# --- pipeline, demo ---


@app.command(context_settings=STAGE)
def pipeline(ctx: typer.Context) -> None:
    """Run data -> SFT -> RM -> PPO (or DPO/GRPO/RLOO) -> generate -> eval into runs/<name>/, with report.html.

    Finished stages are skipped on rerun (--force STAGE redoes one). Example:
    korlhf pipeline --config configs/pipeline.yaml
    """
    run_stage(ctx, "korlhf.pipeline")


@app.command(context_settings=STAGE)
def demo(ctx: typer.Context) -> None:
    """The whole recipe in minutes on a CPU: a tiny Korean model built from scratch on a world korlhf writes.

Ends with runs/demo/report.html and answers before/after. --data DIR runs it on your own files.
"""
    run_stage(ctx, "korlhf.demo")


@app.command(context_settings=STAGE)
def compare(ctx: typer.Context) -> None:
    """Alignment methods (PPO, GRPO, RLOO, DPO, ...) side by side from one SFT model, several seeds each.

Reads a finished pipeline or demo run; writes results.md/json and compare.png. Example:
korlhf compare --config configs/compare_demo.yaml
"""
    run_stage(ctx, "korlhf.compare")


def main() -> None:
    """Console entry point: user errors print one line and exit 2, never a traceback."""
    try:
        app()
    except KorlhfError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
