"""One self-contained HTML report of a pipeline run (`runs/<name>/report.html`).

It reads what each stage leaves in its folder — ``metrics.json``, the training log ``log.jsonl``,
``report.json`` of the data build, the answers of ``generate/``, and ``compare/`` and ``judge/``
when `korlhf compare` / `korlhf eval judge` ran on the run — and draws curves with matplotlib,
inlined as base64 PNGs, so the file can be mailed or opened offline. Missing pieces are skipped,
so a partial run still gets a report.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def plot(rows: list[dict], keys: list[str], title: str) -> str | None:
    """A PNG (as a data URI) of ``keys`` against ``step``; None if no row has them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {k: [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float)) and "step" in r] for k in keys}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    fig, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.2), squeeze=False)
    for ax, (key, points) in zip(axes[0], series.items(), strict=True):
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="." if len(points) < 40 else None)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return ""
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c, '')))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


STYLE = """body{font-family:'Noto Sans KR',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;
vertical-align:top;font-size:14px}th{background:#f3f3f3}img{max-width:100%}.note{background:#fff6d8;padding:.6em 1em}"""


def write_report(run_dir: str | Path, sections: list[tuple[str, str]], title: str, note: str = "") -> Path:
    """Assemble ``sections`` (heading, HTML body) into ``run_dir/report.html``."""
    run_dir = Path(run_dir)
    parts = [f"<!doctype html><html lang='ko'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    if note:
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    for heading, body in sections:
        if body:
            parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
    parts.append("</body></html>")
    out = run_dir / "report.html"
    out.write_text("".join(parts), encoding="utf-8")
    return out


def image(uri: str | None) -> str:
    return f"<img src='{uri}'>" if uri else ""


# --- the sections of a pipeline run ------------------------------------------------------------------


def pipeline_report(run: str | Path, cfg) -> Path:
    """``report.html`` of a pipeline run directory: every section whose stage has run.

    One section per stage of `korlhf.stages` with a report title: its curves and metrics, or the
    richer section of `SECTIONS`; then the comparisons of the models the run trained.
    """
    from korlhf import stages

    run = Path(run)
    sections = [("Base model pretraining (demo)", _training_section(run / "base", ["loss"], "pretraining"))]
    for stage in stages.STAGES:
        if stage.report:
            body = SECTIONS[stage.name](run) if stage.name in SECTIONS else \
                _training_section(run / stage.name, list(stage.curves), stage.report)
            sections.append((stage.report, body))
    sections += [("Models side by side (held-out prompts)", _models_section(run)),
                ("Alignment methods compared (korlhf compare)", _compare_section(run)),
                ("LLM judge (korlhf eval judge)", _judge_section(run)),
                ("Decoding sweep", _sweep_section(run)),
                ("Sample answers", _samples_section(run))]
    return write_report(run, sections, cfg.title, cfg.note)


def _data_section(run: Path) -> str:
    clean = read_json(run / "data" / "clean" / "report.json")
    build = read_json(run / "data" / "build" / "report.json")
    parts = []
    if clean:
        rows = [{"file": f["path"], "read": f["read"], "kept": f["kept"], "rejected": f["rejected"],
                 "reasons": f["reasons"], "repairs": f["fixes"]} for f in clean["files"]]
        parts.append("<h3>Cleaning</h3>" + table(rows))
    if build:
        parts.append("<h3>Stage datasets (disjoint prompts)</h3>" + table(
            [{"set": s, "records": v["records"], "by source": v["by_source"]} for s, v in build["stages"].items()]))
    link = run / "data" / "clean" / "report.md"
    if link.is_file():
        parts.append(f"<p>Full data reports: <code>{html.escape(str(link))}</code>, "
                     f"<code>{html.escape(str(run / 'data' / 'build' / 'report.md'))}</code></p>")
    return "".join(parts)


def _training_section(folder: Path, keys: list[str], title: str) -> str:
    metrics = read_json(folder / "metrics.json")
    if metrics is None:
        return ""
    from korlhf.train.output import read_log

    curves = image(plot(read_log(folder), keys, title))
    return curves + table([{k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}])


def _rm_section(run: Path) -> str:
    metrics = read_json(run / "rm" / "metrics.json")
    if metrics is None:
        return ""
    start, end = metrics.get("eval_pairwise_accuracy_start"), metrics.get("eval_pairwise_accuracy")
    line = ""
    if isinstance(start, float) and isinstance(end, float):
        line = (f"<p>Held-out pairwise accuracy: <b>{start:.3f}</b> before training (the SFT model with a fresh "
                f"score head) → <b>{end:.3f}</b> after.</p>")
    from korlhf import stages

    return line + _training_section(run / "rm", list(stages.get("rm").curves), "reward model")


def _models_section(run: Path) -> str:
    models = read_json(run / "eval" / "models.json")
    if not models:
        return ""
    metrics = list(dict.fromkeys(k for m in models.values() for k in m))
    first = ["answer_accuracy", "rl_prompt_accuracy", "reward", "bleu", "chrf", "rougeL", "hangul_ratio", "rep_2", "len_chars_mean"]
    metrics = [m for m in first if m in metrics] + [m for m in metrics if m not in first]
    rows = [{"metric": m, **{name: values.get(m, "") for name, values in models.items()}} for m in metrics]
    return table(rows)


def _compare_section(run: Path) -> str:
    """`korlhf compare`'s table (mean ± std over seeds) and plot, when it has run on this run folder."""
    folder = run / "compare"
    table_md = folder / "results.md"
    if not table_md.is_file():
        return ""
    from korlhf.compare import display_rows

    rows = display_rows((read_json(folder / "results.json") or {}).get("summary", []))
    png = folder / "compare.png"
    plot_html = image("data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()) if png.is_file() else ""
    return (f"<p>Alignment methods from the same SFT model, several seeds each "
            f"(<code>{html.escape(str(table_md))}</code>).</p>" + table(rows) + plot_html)


def _judge_section(run: Path) -> str:
    """`korlhf eval judge`'s table and plot, when it has judged answers into <run>/judge (its default
    for answers inside the run folder)."""
    folder = run / "judge"
    results = read_json(folder / "results.json")
    if not results or "table" not in results:
        return ""
    from korlhf.evaluation.judge_table import format_value, headline

    columns, rate = results["table"]["columns"], results["mode"] == "pairwise"
    rows = [{"model": r["model"], **{c: format_value(r.get(c), rate) for c in columns}} for r in results["table"]["rows"]]
    png = folder / "results.png"
    plot_html = image("data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()) if png.is_file() else ""
    return (f"<p>{html.escape(headline(results))}. Judgments: "
            f"<code>{html.escape(str(results.get('judgment_file', folder)))}</code>.</p>"
            + table(rows, ["model", *columns]) + plot_html)


def _sweep_section(run: Path) -> str:
    rows = read_json(run / "eval" / "sweep" / "results.json")
    if not rows:
        return ""
    keep = ["strategy", "accuracy", "reward", "bleu", "chrf", "rougeL", "distinct_2", "rep_2", "len_chars_mean",
            "tokens_per_s"]
    plots = [run / "eval" / "sweep" / "plots" / f"{name}.png" for name in ("overview",)]
    images = "".join(image("data:image/png;base64," + base64.b64encode(p.read_bytes()).decode())
                     for p in plots if p.is_file())
    more = f"<p>Every metric: <code>{html.escape(str(run / 'eval' / 'sweep'))}/results.md</code> and plots/.</p>"
    return table([{k: r.get(k, "") for k in keep if k in r} for r in rows]) + images + more


SECTIONS = {"data": _data_section, "rm": _rm_section}  # stages whose section is more than curves and metrics


def _samples_section(run: Path, n: int = 8) -> str:
    from korlhf.records import read_jsonl

    files = {p.stem: [r for _, r in read_jsonl(p)] for p in sorted((run / "generate").glob("*.jsonl"))}
    if not files:
        return ""
    from korlhf import stages

    order = [name for name in ("base", "sft", *stages.policies()) if name in files]
    if not order:
        return ""
    first = files[order[0]]
    rows = []
    for i in range(min(n, len(first))):
        row = {"prompt": first[i]["prompt"], "reference": first[i].get("reference", "")}
        row.update({name: files[name][i]["response"] for name in order})
        rows.append(row)
    return table(rows)
