"""The same rows as a rich table in the terminal and a Markdown table in report.md; progress bars.

`inspect`, `clean` and `build` each report counts; they build rows once and print them both ways.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.table import Table


class Tables:
    """Collects (title, columns, rows) sections; prints each to the terminal and keeps Markdown."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        self.markdown: list[str] = []

    def table(self, title: str, columns: list[str], rows: list[list], note: str = "",
              markdown_extra: tuple[str, list] | None = None, one_line: bool = False) -> None:
        """Print a table and keep its Markdown. ``markdown_extra`` (column name, values) is a column
        for report.md only (too wide for a terminal); ``one_line`` cuts long cells with an ellipsis."""
        rows = [[_cell(c) for c in row] for row in rows]
        table = Table(title=title, title_justify="left", caption=note or None, expand=one_line)
        for k, column in enumerate(columns):
            # one_line: every column but the last keeps its width (up to 28); the last takes the
            # rest of the line and is cut with an ellipsis.
            last = k == len(columns) - 1
            width = None if last or not one_line else min(28, max(len(str(r[k])) for r in [columns, *rows]))
            table.add_column(column, no_wrap=one_line, overflow="ellipsis" if one_line else "fold",
                             width=width, ratio=1 if one_line and last else None)
        for row in rows:
            table.add_row(*row)
        self.console.print(table)
        if markdown_extra:
            columns = [*columns, markdown_extra[0]]
            rows = [[*row, extra] for row, extra in zip(rows, markdown_extra[1], strict=True)]
        self.markdown.append(f"## {title}\n\n" + (f"{note}\n\n" if note else "") + markdown_table(columns, rows))

    def text(self, markdown: str, show: bool = False) -> None:
        self.markdown.append(markdown)
        if show:
            self.console.print(markdown)

    def write(self, out_dir: str | Path, title: str, data: dict) -> tuple[Path, Path]:
        """report.md (what was printed, plus the text sections) and report.json (``data``)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        md, js = out / "report.md", out / "report.json"
        md.write_text(f"# {title}\n\n" + "\n\n".join(self.markdown) + "\n", encoding="utf-8")
        js.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return md, js


def markdown_table(columns: list[str], rows: list[list]) -> str:
    def esc(cell) -> str:
        return str(cell).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(esc, columns)) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def snippet(text: str, width: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


@contextlib.contextmanager
def progress(total: int, description: str) -> Iterator:
    """Yields ``advance()``; a rich progress bar unless TQDM_DISABLE is set (as in tests)."""
    if os.environ.get("TQDM_DISABLE") or total < 2000:
        yield lambda n=1: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def print_notes(console: Console, notes: list[str]) -> None:
    for note in notes:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
