"""`korlhf eval sheet`: a blind rating sheet from two or more systems' generations.

Systems are generation files (`korlhf generate`, `korlhf eval sweep`'s ``generations/``) answering
the same prompts, matched by ``id`` when every record has one, else line by line. Per item the
answers are shuffled into slots A, B, ... and the system names are hidden. Writes:

- ``sheet.html``: a self-contained page (no network) a rater fills in (a 1-5 score and an optional
  comment per answer) and saves as ``ratings_<name>.csv``; progress is kept in the browser.
- ``sheet.csv``: the same sheet for a spreadsheet; fill the ``rating`` column.
- ``key.json``: which system sits in which slot, and the answers and references. Keep it from
  the raters; `korlhf eval agree` reads it to unblind the ratings.
"""

from __future__ import annotations

import csv
import html
import json
import random
import string
from dataclasses import dataclass, field
from pathlib import Path

from korlhf.errors import KorlhfError


@dataclass
class Config:
    systems: list[str] = field(default_factory=list, metadata={
        "help": "generation files, NAME=PATH or PATH (the name is then the file name); at least two"})
    out: str = field(default="runs/sheet", metadata={"help": "output directory: sheet.html, sheet.csv, key.json"})
    seed: int = field(default=0, metadata={"help": "seed of the per-item shuffle"})
    limit: int | None = field(default=None, metadata={"help": "only the first N items"})
    scale: int = field(default=5, metadata={"help": "ratings go from 1 to this"})
    title: str = field(default="답변 평가 (blind rating)", metadata={"help": "title of the HTML page"})
    prompt_field: str = field(default="prompt", metadata={"help": "JSON field holding the prompt"})
    response_field: str = field(default="response", metadata={"help": "JSON field holding the answer"})


def parse_system(spec: str) -> tuple[str, Path]:
    name, eq, path = spec.partition("=")
    return (name, Path(path)) if eq and name else (Path(spec).stem, Path(spec))


def show(value) -> str:
    """Prompt or answer as plain text: a message list or MT-Bench turns become labelled lines."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n\n".join(f"[{m.get('role', '?')}] {m.get('content', '')}" if isinstance(m, dict) else
                           f"[{i + 1}] {m}" for i, m in enumerate(value))
    return "" if value is None else str(value)


def load_systems(specs: list[str], prompt_field: str, response_field: str, limit: int | None) -> tuple[dict, list]:
    """(system name -> path, items); each item ``{"item", "prompt", "reference", "answers": {name: text}}``."""
    from korlhf.records import read_jsonl

    if len(specs) < 2:
        raise KorlhfError("a rating sheet compares at least two systems: give two or more generation files")
    systems = dict(parse_system(s) for s in specs)
    if len(systems) < len(specs):
        raise KorlhfError("two systems have the same name; name them: korlhf eval sheet a=x.jsonl b=y.jsonl")
    tables = {}
    for name, path in systems.items():
        rows = []
        for lineno, record in read_jsonl(path):
            if response_field not in record:
                raise KorlhfError(f"{path}:{lineno}: no '{response_field}' field (set --response_field)")
            answer = record.get("choices", [{}])[0].get("turns") if "turns" in record else record[response_field]
            rows.append((str(record.get("id", record.get("question_id", ""))), record.get(
                "turns", record.get(prompt_field)), answer, record.get("reference")))
        tables[name] = rows
    names = list(systems)
    by_id = all(r[0] for rows in tables.values() for r in rows)
    first = tables[names[0]]
    keys = [r[0] for r in first] if by_id else [str(i + 1) for i in range(len(first))]
    index = {name: ({r[0]: r for r in rows} if by_id else {str(i + 1): r for i, r in enumerate(rows)})
             for name, rows in tables.items()}
    items = []
    for key in keys[:limit] if limit is not None else keys:
        row0 = index[names[0]][key]
        answers = {}
        for name in names:
            row = index[name].get(key)
            if row is None:
                raise KorlhfError(f"{systems[name]} has no answer for item {key!r} (from {systems[names[0]]}); "
                                  "every system must answer the same prompts")
            if show(row[1]) != show(row0[1]):
                raise KorlhfError(f"item {key!r}: {systems[name]} and {systems[names[0]]} answer different prompts; "
                                  "generate every system from the same prompt file")
            answers[name] = show(row[2])
        items.append({"item": key, "prompt": show(row0[1]), "reference": row0[3], "answers": answers})
    return {n: str(p) for n, p in systems.items()}, items


def main(cfg: Config) -> dict:
    from rich.console import Console

    systems, items = load_systems(cfg.systems, cfg.prompt_field, cfg.response_field, cfg.limit)
    if cfg.scale < 2:
        raise KorlhfError("scale must be at least 2 (ratings 1..scale)")
    rng = random.Random(cfg.seed)
    for item in items:
        order = list(item["answers"])
        rng.shuffle(order)
        item["slots"] = dict(zip(string.ascii_uppercase, order, strict=False))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    key = {"systems": systems, "seed": cfg.seed, "scale": cfg.scale, "items": items}
    (out / "key.json").write_text(json.dumps(key, ensure_ascii=False, indent=2), encoding="utf-8")
    with open(out / "sheet.csv", "w", encoding="utf-8-sig", newline="") as f:  # BOM: Excel shows Hangul
        writer = csv.writer(f)
        writer.writerow(["item", "prompt", "slot", "answer", "rating", "comment"])
        for item in items:
            for slot, name in item["slots"].items():
                writer.writerow([item["item"], item["prompt"], slot, item["answers"][name], "", ""])
    (out / "sheet.html").write_text(render_html(items, cfg.scale, cfg.title), encoding="utf-8")
    Console(stderr=True).print(
        f"{len(items)} items x {len(systems)} systems -> {out / 'sheet.html'} and {out / 'sheet.csv'}; "
        f"keep {out / 'key.json'} from the raters, then: korlhf eval agree RATINGS... --sheet {out}")
    return key


def render_html(items: list[dict], scale: int, title: str) -> str:
    cards = []
    for n, item in enumerate(items, 1):
        answers = []
        for slot in item["slots"]:
            name = f"{item['item']}|{slot}"
            radios = "".join(f'<label><input type="radio" name="{html.escape(name)}" value="{v}">{v}</label>'
                             for v in range(1, scale + 1))
            answer = item["answers"][item["slots"][slot]]
            answers.append(f'<div class="answer"><h3>{slot}</h3><pre>{html.escape(answer)}</pre>'
                           f'<div class="scale">{radios}</div>'
                           f'<input class="comment" data-key="{html.escape(name)}" placeholder="comment (optional)">'
                           "</div>")
        cards.append(f'<section><h2>{n}. <small>item {html.escape(item["item"])}</small></h2>'
                     f'<pre class="prompt">{html.escape(item["prompt"])}</pre>{"".join(answers)}</section>')
    return _PAGE.replace("{title}", html.escape(title)).replace("{scale}", str(scale)).replace(
        "{cards}", "\n".join(cards)).replace("{storage}", json.dumps(title + str(len(items))).replace("<", "\\u003c"))


_PAGE = """<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{font-family:system-ui,"Apple SD Gothic Neo","Malgun Gothic",sans-serif;max-width:960px;margin:2em auto;padding:0 1em}
section{border:1px solid #ccc;border-radius:8px;padding:1em;margin:1em 0}
pre{white-space:pre-wrap;word-break:keep-all;font-family:inherit;margin:.3em 0}
.prompt{background:#f3f5f9;padding:.6em;border-radius:6px}.answer{border-top:1px dashed #ddd;padding-top:.5em}
.scale label{margin-right:1em}.comment{width:100%;margin-top:.3em}
#bar{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ccc}
</style></head><body>
<h1>{title}</h1>
<p>각 답변을 1(나쁨)부터 {scale}(좋음)까지 평가하세요. 어느 시스템의 답변인지는 숨겨져 있고 순서는 문항마다 섞여 있습니다.
Rate each answer from 1 (bad) to {scale} (good); systems are hidden and shuffled per item.
Your progress is kept in this browser; press <b>Save</b> to download your ratings as CSV.</p>
<div id="bar">rater: <input id="rater" placeholder="your name"> <button id="save">Save ratings (CSV)</button>
<span id="progress"></span></div>
{cards}
<script>
const KEY = "korlhf-sheet-" + {storage};
const radios = () => [...document.querySelectorAll("input[type=radio]")];
function state() {
  const s = {rater: document.getElementById("rater").value, ratings: {}, comments: {}};
  radios().filter(r => r.checked).forEach(r => s.ratings[r.name] = r.value);
  document.querySelectorAll(".comment").forEach(c => { if (c.value) s.comments[c.dataset.key] = c.value; });
  return s;
}
function progress() {
  const names = new Set(radios().map(r => r.name));
  document.getElementById("progress").textContent = Object.keys(state().ratings).length + " / " + names.size + " rated";
}
function remember() { localStorage.setItem(KEY, JSON.stringify(state())); progress(); }
function restore() {
  const s = JSON.parse(localStorage.getItem(KEY) || "null");
  if (!s) return;
  document.getElementById("rater").value = s.rater || "";
  radios().forEach(r => { if (s.ratings[r.name] === r.value) r.checked = true; });
  document.querySelectorAll(".comment").forEach(c => c.value = s.comments[c.dataset.key] || "");
}
function csvCell(v) { v = String(v ?? ""); return /[",\\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; }
document.getElementById("save").onclick = () => {
  const s = state(), names = [...new Set(radios().map(r => r.name))];
  const lines = [["rater", "item", "slot", "rating", "comment"].join(",")];
  names.forEach(n => { const cut = n.lastIndexOf("|"), item = n.slice(0, cut), slot = n.slice(cut + 1);
    lines.push([s.rater, item, slot, s.ratings[n] || "", s.comments[n] || ""].map(csvCell).join(",")); });
  const blob = new Blob(["\\ufeff" + lines.join("\\n") + "\\n"], {type: "text/csv;charset=utf-8"});
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = "ratings_" + (s.rater || "rater").replace(/[^\\w가-힣-]/g, "_") + ".csv";
  a.click();
};
document.addEventListener("input", remember);
restore(); progress();
</script></body></html>
"""
