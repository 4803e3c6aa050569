"""The alignment-tax table as a rich terminal table, Markdown, CSV, JSON and a self-contained HTML report
(inline CSS and SVG plots, no script, no external file). `write_report` writes the four files."""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
from pathlib import Path
from typing import Any

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


def _num(x: float | None, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:+.2f}" if sign else f"{x:.2f}"


def diff_text(r: TaxRow) -> str:
    """`+1.23 [0.40, 2.10]`: the difference and its interval."""
    return f"{_num(r.diff, True)} [{_num(r.ci_low)}, {_num(r.ci_high)}]"


def _joined(values: list[str]) -> str:
    return " / ".join(dict.fromkeys(values))


def _line(table: TaxTable, task: str, metric: str) -> tuple[TaxRow, list[TaxRow | None], str, str]:
    """One (task, metric) line: the first row, each checkpoint's row, the base value(s) and the n(s)
    (several when the checkpoints share different samples with the base)."""
    cells = [table.get(c, task, metric) for c in table.checkpoints]
    present = [r for r in cells if r is not None]
    base = _joined([_num(r.base) for r in present])
    n = _joined([str(r.n_samples) for r in present])
    return present[0], cells, base, n


def _header(table: TaxTable) -> list[str]:
    head = ["benchmark", "metric", "unit", "n", "base"]
    for c in table.checkpoints:
        head += [c, f"Δ {c} [{table.level:.0%} CI]", "verdict"]
    return head


def _lines(table: TaxTable, group: str) -> list[tuple[TaxRow, list[str]]]:
    out = []
    for task, metric in table.keys(group):
        first, cells, base, n = _line(table, task, metric)
        shown = task + (MARK if table.tasks.get(task, {}).get("nlp") else "")
        values = [shown, metric + ARROW[first.direction], first.unit, n, base]
        for r in cells:
            values += ["—", "—", "—"] if r is None else [_num(r.aligned), diff_text(r), r.verdict]
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
        f"Aligned − base over the samples both runs scored, with {table.level:.0%} paired-bootstrap "
        f"intervals ({table.n_resamples} resamples over images, questions or samples; seed {table.seed}). "
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
    title = f"alignment tax · base {escape(table.base)}"
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
    parts = [f"# Alignment tax: base `{table.base}` → {checkpoints}", "", _caption(table), ""]
    head = _header(table)
    for group in table.groups():
        parts += [f"## {group}", "", "| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head)]
        for _, values in _lines(table, group):
            shown = [f"**{v}**" if v in ("gain", "loss") else v for v in values]
            parts.append("| " + " | ".join(map(esc, shown)) + " |")
        parts.append("")
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


# -------------------------------------------------------------------------------------------------- HTML

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:0.5em 0 1em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.note{color:#555}.gain{color:#1a7f37;font-weight:600}
.loss{color:#cf222e;font-weight:600}.changed{color:#9a6700}.ns{color:#6e7781}
svg text{font-family:system-ui,sans-serif;font-size:11px;fill:#222}"""
LABEL_W, PLOT_X, PLOT_W, ROW_H, HEAD_H = 300, 320, 420, 16, 20


def _tick(x: float) -> str:
    return f"{x:+.3g}" if x else "0"


def svg_plot(table: TaxTable, group: str) -> str:
    """Per metric of the group a panel with its own symmetric scale around 0: a dashed zero line and, per
    checkpoint, the difference as a point with its interval as a bar, coloured by verdict."""
    keys = table.keys(group)
    n_ck = len(table.checkpoints)
    panel_h = HEAD_H + n_ck * ROW_H + 8
    height = len(keys) * panel_h + 10
    width = PLOT_X + PLOT_W + 60
    e = html.escape
    parts = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{e(group)}: differences with {table.level:.0%} intervals">'
    ]
    for k, (task, metric) in enumerate(keys):
        rows = [table.get(c, task, metric) for c in table.checkpoints]
        ends = [abs(v) for r in rows if r for v in (r.diff, r.ci_low, r.ci_high) if not math.isnan(v)]
        span = max(ends, default=0.0) * 1.1 or 1.0
        scale = lambda v, s=span: PLOT_X + PLOT_W / 2 + v / s * PLOT_W / 2  # noqa: E731
        top = 10 + k * panel_h
        bottom = top + panel_h - 8
        first = next(r for r in rows if r)
        title = f"{task}.{metric}{ARROW[first.direction]}" + (f" ({first.unit})" if first.unit else "")
        parts.append(f'<text x="4" y="{top + 12}" font-weight="600">{e(title)}</text>')
        parts.append(
            f'<rect x="{PLOT_X}" y="{top + HEAD_H - 4}" width="{PLOT_W}" '
            f'height="{bottom - top - HEAD_H + 4}" fill="#fafafa" stroke="#ddd"/>'
        )
        zero = scale(0.0)
        parts.append(
            f'<line x1="{zero:.1f}" y1="{top + HEAD_H - 4}" x2="{zero:.1f}" y2="{bottom}" stroke="#555" '
            'stroke-dasharray="3,3"/>'
        )
        for x, v in ((PLOT_X, -span), (zero, 0.0), (PLOT_X + PLOT_W, span)):
            parts.append(
                f'<text x="{x:.1f}" y="{top + 12}" text-anchor="middle" fill="#555">{_tick(v)}</text>'
            )
        for i, (name, r) in enumerate(zip(table.checkpoints, rows, strict=True)):
            y = top + HEAD_H + i * ROW_H + ROW_H / 2 - 2
            parts.append(f'<text x="{PLOT_X - 8}" y="{y + 4:.1f}" text-anchor="end">{e(name)}</text>')
            if r is None or math.isnan(r.diff):
                continue
            colour = COLOUR.get(r.verdict, GREY)
            tip = f"{name}: {task}.{metric} {diff_text(r)} {r.verdict} (n={r.n_samples})"
            parts.append(f"<g><title>{e(tip)}</title>")
            if not (math.isnan(r.ci_low) or math.isnan(r.ci_high)):
                x1, x2 = scale(r.ci_low), scale(r.ci_high)
                parts.append(
                    f'<line x1="{x1:.1f}" y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}" stroke="{colour}" '
                    'stroke-width="2"/>'
                )
                for xe in (x1, x2):
                    parts.append(
                        f'<line x1="{xe:.1f}" y1="{y - 4:.1f}" x2="{xe:.1f}" y2="{y + 4:.1f}" '
                        f'stroke="{colour}" stroke-width="2"/>'
                    )
            parts.append(f'<circle cx="{scale(r.diff):.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>')
            parts.append(
                f'<text x="{PLOT_X + PLOT_W + 6}" y="{y + 4:.1f}" fill="{colour}">'
                f"{_num(r.diff, True)}</text></g>"
            )
    parts.append("</svg>")
    return "\n".join(parts)


def to_html(table: TaxTable) -> str:
    e = html.escape
    css_class = {"gain": "gain", "loss": "loss", "changed": "changed", "no significant change": "ns"}
    head = "".join(f'<th class="{"l" if i < 3 else ""}">{e(h)}</th>' for i, h in enumerate(_header(table)))
    body = []
    for group in table.groups():
        lines = []
        for _, values in _lines(table, group):
            cells = []
            for i, v in enumerate(values):
                cls = "l" if i < 3 or (i >= 7 and (i - 7) % 3 == 0) else ""
                if i >= 7 and (i - 7) % 3 == 0:
                    cls += " " + css_class.get(v, "")
                cells.append(f'<td class="{cls.strip()}">{e(v)}</td>')
            lines.append(f"<tr>{''.join(cells)}</tr>")
        body.append(
            f"<h2>{e(group)}</h2><table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"
            '<p class="note">Aligned − base per checkpoint: point = difference, bar = interval, dashed '
            "line = no change; each metric on its own scale, symmetric around 0.</p>"
            f"\n{svg_plot(table, group)}"
        )
    info = "".join(
        f'<tr><td class="l">{e(t)}</td><td class="l">{e(str(i.get("group")))}</td>'
        f'<td class="l">{e(str(i.get("version")))}</td>'
        f'<td class="l">{e(str(i.get("judge") or "—"))}</td></tr>'
        for t, i in table.tasks.items()
    )
    runs = "".join(f"<li>{e(name)}: <code>{e(path)}</code></li>" for name, path in table.checkpoints.items())
    warn = "".join(f"<li>{e(w)}</li>" for w in table.warnings)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>evalkit alignment tax</title>'
        f"<style>{STYLE}</style></head><body><h1>Alignment tax</h1>"
        f'<p class="note">{e(_caption(table))}</p>'
        f"<ul><li>base: <code>{e(table.base_path)}</code></li>{runs}</ul>"
        + "\n".join(body)
        + '<h2>Benchmarks</h2><table><thead><tr><th class="l">task</th><th class="l">group</th>'
        f'<th class="l">version</th><th class="l">judge</th></tr></thead><tbody>{info}</tbody></table>'
        + (f"<h2>Warnings</h2><ul>{warn}</ul>" if warn else "")
        + "</body></html>\n"
    )


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
