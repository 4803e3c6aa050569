"""The alignment-tax table as a rich terminal table, Markdown, CSV, JSON and a self-contained HTML report
(`evalkit.analysis.tax_html`: inline CSS and SVG plots, no script, no external file). `write_report` writes
the four files. The reference column is headed with the reference run's name (`sft (reference)`), so the
table never leaves open which run "base" was; counts (metrics of kind "count") print as integers."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from evalkit.analysis import provenance
from evalkit.analysis.html_parts import number
from evalkit.analysis.nlp_marks import MARK, footnote
from evalkit.analysis.tax import TaxRow, TaxTable

ARROW = {1: " ↑", -1: " ↓", 0: ""}
COLOUR = {"gain": "#1a7f37", "loss": "#cf222e", "changed": "#9a6700"}
GREY = "#6e7781"
RICH = {"gain": "green", "loss": "red", "changed": "yellow", "no significant change": "dim"}
CSV_FIELDS = (
    "checkpoint",
    "group",
    "task",
    "metric",
    "direction",
    "unit",
    "base",
    "aligned",
    "diff",
    "ci_low",
    "ci_high",
    "p_value",
    "verdict",
    "n_samples",
    "n_units",
    "task_version",
    "judge",
    "base_run",
    "checkpoint_run",
)


def _num(x: float | None, sign: bool = False, count: bool = False) -> str:
    return number(x, sign, count)


def is_count(table: TaxTable, task: str, metric: str) -> bool:
    """Whether the metric is a tally (kind "count"), printed as an integer."""
    return metric in (table.tasks.get(task, {}).get("counts") or ())


def reference(table: TaxTable) -> str:
    """The reference column's heading: the reference run's name, marked as the reference."""
    return f"{table.base} (reference)"


def diff_text(r: TaxRow, count: bool = False) -> str:
    """`+1.23 [0.40, 2.10]`: the difference and its interval (`count`: integers, `+3 [1, 5]`)."""
    return f"{_num(r.diff, True, count)} [{_num(r.ci_low, False, count)}, {_num(r.ci_high, False, count)}]"


def _joined(values: list[str]) -> str:
    return " / ".join(dict.fromkeys(values))


def _line(table: TaxTable, task: str, metric: str) -> tuple[TaxRow, list[TaxRow | None], str, str]:
    """One (task, metric) line: the first row, each checkpoint's row, the base value(s) and the n(s)
    (several when the checkpoints share different samples with the base)."""
    cells = [table.get(c, task, metric) for c in table.checkpoints]
    present = [r for r in cells if r is not None]
    count = is_count(table, task, metric)
    base = _joined([_num(r.base, count=count) for r in present])
    n = _joined([_num(r.n_samples, count=True) for r in present])
    return present[0], cells, base, n


def _header(table: TaxTable) -> list[str]:
    head = ["benchmark", "metric", "unit", "n", reference(table)]
    for c in table.checkpoints:
        head += [c, f"Δ {c} [{table.level:.0%} CI]", "verdict"]
    return head


def _lines(table: TaxTable, group: str) -> list[tuple[TaxRow, list[str]]]:
    out = []
    for task, metric in table.keys(group):
        first, cells, base, n = _line(table, task, metric)
        shown = task + (MARK if table.tasks.get(task, {}).get("nlp") else "")
        values = [shown, metric + ARROW[first.direction], first.unit, n, base]
        count = is_count(table, task, metric)
        for r in cells:
            values += (
                ["—", "—", "—"]
                if r is None
                else [_num(r.aligned, count=count), diff_text(r, count), r.verdict]
            )
        out.append((first, values))
    return out


def notes(table: TaxTable) -> list[str]:
    """Footnotes for the marked benchmarks (AMBER scored with a non-official NLP backend)."""
    backends = [b for info in table.tasks.values() for b in info.get("nlp") or []]
    return [footnote(backends)] if backends else []


def _caption(table: TaxTable) -> str:
    return " ".join([_caption_text(table), *notes(table)])


def _caption_text(table: TaxTable) -> str:
    return (
        f"Checkpoint − reference ({table.base}) over the samples both runs scored, with {table.level:.0%} "
        f"paired-bootstrap intervals ({table.n_resamples} resamples over images, questions or samples; "
        f"seed {table.seed}). "
        "gain / loss: the interval excludes 0 on the metric's better / worse side (↑ higher is better, "
        "↓ lower is better); differences are in the metric's unit (points for %)."
    )


def rich_table(table: TaxTable):
    """The terminal table: one section per group, verdicts coloured. Where the full table is wider than
    the terminal, one table per group with each checkpoint's three cells stacked in one column; where
    that is still too wide, one block per line (`evalkit.analysis.report.Records`). No number is ever cut."""
    from rich.console import Group
    from rich.markup import escape
    from rich.text import Text

    from evalkit.analysis.report import Fit, Records
    from evalkit.analysis.report import table as plain_table

    head = ["group", *_header(table)]
    rows: list[list[str]] = []
    sections: list[int] = []
    for group in table.groups():
        sections.append(len(rows))
        for li, (_, values) in enumerate(_lines(table, group)):
            styled = [escape(v) for v in values]
            for j in range(7, len(values), 3):
                colour = RICH.get(values[j])
                if colour:
                    styled[j] = f"[{colour}]{styled[j]}[/{colour}]"
                    styled[j - 1] = f"[{colour}]{styled[j - 1]}[/{colour}]"
            rows.append([f"[bold]{escape(group)}[/bold]" if li == 0 else "", *styled])
    title = f"alignment tax · reference {escape(table.base)}"
    caption = escape(_caption(table))
    right = [4, 5] + [i for i in range(6, len(head)) if (i - 6) % 3 != 2]
    wide = plain_table(title, head, rows, right=right, caption=caption, sections=sections)
    # narrower: one table per group (titled by it), each checkpoint's three cells stacked in one column
    stacked_head = head[1:6] + [f"{c}\nΔ [{table.level:.0%} CI]\nverdict" for c in table.checkpoints]
    ends = [*sections[1:], len(rows)]
    per_group = [
        plain_table(
            f"[bold]{escape(group)}[/bold]",
            stacked_head,
            [r[1:6] + ["\n".join(r[i : i + 3]) for i in range(6, len(r), 3)] for r in rows[start:end]],
            right=range(3, len(stacked_head)),
        )
        for group, start, end in zip(table.groups(), sections, ends, strict=True)
    ]
    stacked = Group(
        Text.from_markup(title, style="italic"), *per_group, Text.from_markup(caption, style="dim")
    )
    # narrowest: one block per line, one `checkpoint  aligned  Δ [CI]  verdict` line per checkpoint
    short_head = head[:6] + list(table.checkpoints)
    short_rows = [r[:6] + ["  ".join(r[i : i + 3]) for i in range(6, len(r), 3)] for r in rows]
    compact = plain_table(title, head, rows, right=right, caption=caption, sections=sections, compact=True)
    return Fit(wide, compact, stacked, Records(title, short_head, short_rows, keys=3, caption=caption))


def to_markdown(table: TaxTable) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    checkpoints = ", ".join(f"`{c}`" for c in table.checkpoints)
    parts = [f"# Alignment tax: reference `{table.base}` → {checkpoints}", "", _caption(table), ""]
    head = _header(table)
    for group in table.groups():
        parts += [f"## {group}", "", "| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head)]
        for _, values in _lines(table, group):
            shown = [f"**{v}**" if v in ("gain", "loss") else v for v in values]
            parts.append("| " + " | ".join(map(esc, shown)) + " |")
        parts.append("")
    if table.provenance:
        parts += provenance.markdown_block(table.provenance, f"{table.seed} ({table.n_resamples} resamples)")
    if table.warnings:
        parts += ["Warnings:", "", *(f"- {w}" for w in table.warnings), ""]
    return "\n".join(parts)


def _csv_value(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(float(v)) if isinstance(v, float) else str(v)


def to_csv(table: TaxTable) -> str:
    """One row per checkpoint × task × metric, every number at full precision (empty when undefined)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for r in table.rows:
        info = table.tasks.get(r.task, {})
        extra = {
            "task_version": info.get("version"),
            "judge": info.get("judge"),
            "base_run": table.base_path,
            "checkpoint_run": table.checkpoints[r.checkpoint],
        }
        row = {**r.to_dict(), **extra}
        w.writerow([_csv_value(row[k]) for k in CSV_FIELDS])
    return buf.getvalue()


def to_json(table: TaxTable) -> str:
    return json.dumps(table.to_dict(), indent=2, ensure_ascii=False) + "\n"


def to_html(table: TaxTable) -> str:
    """The self-contained HTML report (`evalkit.analysis.tax_html`)."""
    from evalkit.analysis.tax_html import page_html

    return page_html(table)


RENDER = {"md": to_markdown, "csv": to_csv, "html": to_html, "json": to_json}


def write_report(table: TaxTable, out_dir: str | Path) -> list[Path]:
    """Write `tax.md`, `tax.csv`, `tax.html` and `tax.json` into `out_dir` (each replaced atomically, so an
    interrupted write leaves the previous file); returns their paths in that order."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for fmt, render in RENDER.items():
        path = out / f"tax.{fmt}"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(render(table), encoding="utf-8")
        os.replace(tmp, path)
        paths.append(path)
    return paths


def print_table(table: TaxTable, *, as_json: bool = False, console=None) -> None:
    """Print the table to the terminal (rich), or its JSON to standard output."""
    if as_json:
        print(to_json(table), end="")
        return
    from rich.console import Console

    console = console or Console()
    console.print(rich_table(table))
    for w in table.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}", highlight=False)


def read_table(path: str | Path) -> TaxTable:
    """A table back from its `tax.json`."""
    return TaxTable.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
