"""The leaderboard as one self-contained HTML page (inline CSS and SVG, no script, no external file).

Columns are shown group by group (the tasks' alignment-tax groups, headed over their columns). Under each
value a small bar draws its interval on the scale of its group and unit (`evalkit.analysis.html_parts.
ranges`): every percentage column of a group on one axis, its counts on another, so runs and columns
compare by eye; the axis of each column is printed under its header. Then the provenance: date, evalkit
versions, seeds, and each column's judge and data version."""

from __future__ import annotations

import html
from typing import Any

from evalkit.analysis.html_parts import breakable, made_line, number, page, ranges, scroll
from evalkit.analysis.leaderboard import Column, Leaderboard, provenance_lines
from evalkit.analysis.nlp_marks import MARK
from evalkit.task import TAX_GROUPS

STYLE = """.ci{color:#777;font-size:85%}.axis th{font-weight:normal;color:#777;font-size:85%}
th.g{text-align:center}td.name{overflow-wrap:anywhere;min-width:8em}svg.bar{display:block;margin-left:auto}"""
BAR_W, BAR_H = 110, 12


def _ordered(columns: list[Column]) -> list[tuple[str, list[Column]]]:
    """The columns by group: the fixed groups in table order, then the others by name."""
    groups: dict[str, list[Column]] = {}
    for c in columns:
        groups.setdefault(c.group, []).append(c)
    order = [g for g in TAX_GROUPS if g in groups] + sorted(set(groups) - set(TAX_GROUPS))
    return [(g, groups[g]) for g in order]


def _bar(cell: dict[str, Any], axis: tuple[float, float]) -> str:
    low, high = axis
    x = lambda v: (min(max(v, low), high) - low) / ((high - low) or 1.0) * (BAR_W - 8) + 4  # noqa: E731
    mid = BAR_H / 2
    parts = [
        f'<svg class="bar" width="{BAR_W}" height="{BAR_H}" viewBox="0 0 {BAR_W} {BAR_H}" '
        'aria-hidden="true">',
        f'<line x1="4" y1="{mid}" x2="{BAR_W - 4}" y2="{mid}" stroke="#e4e4e4"/>',
    ]
    if cell.get("ci_low") is not None and cell.get("ci_high") is not None:
        parts.append(
            f'<line x1="{x(cell["ci_low"]):.1f}" y1="{mid}" x2="{x(cell["ci_high"]):.1f}" y2="{mid}" '
            'stroke="#57606a" stroke-width="2"/>'
        )
    parts.append(f'<circle cx="{x(cell["value"]):.1f}" cy="{mid}" r="3" fill="#0969da"/></svg>')
    return "".join(parts)


def page_html(board: Leaderboard) -> str:
    e = html.escape
    grouped = _ordered(board.columns)
    columns = [c for _, cols in grouped for c in cols]
    axes = {
        g: ranges(
            (c.unit, v)
            for c in cols
            for entry in board.entries
            if (cell := entry.cells.get(c.label))
            for v in (cell.get("value"), cell.get("ci_low"), cell.get("ci_high"))
            if v is not None
        )
        for g, cols in grouped
    }
    top = "".join(f'<th class="g" colspan="{len(cols)}">{e(g)}</th>' for g, cols in grouped)
    arrow = {1: " ↑", -1: " ↓"}
    head = "".join(f"<th>{breakable(c.label)}{arrow.get(c.direction, '')}</th>" for c in columns)
    axis_row = ""
    for g, cols in grouped:
        for c in cols:
            axis = axes[g].get(c.unit)
            shown = f"{axis[0]:g} – {axis[1]:g}" if axis else ""
            axis_row += f"<th>{e(shown + (' ' + c.unit if c.unit and axis else ''))}</th>"
    rows = []
    for entry in board.entries:
        cells = []
        for g, cols in grouped:
            for c in cols:
                cell = entry.cells.get(c.label)
                if not cell or cell.get("value") is None:
                    cells.append("<td>—</td>")
                    continue
                count = c.kind == "count"
                ci = (
                    f'<br><span class="ci">[{number(cell["ci_low"], count=count)}, '
                    f"{number(cell['ci_high'], count=count)}]</span>"
                    if cell.get("ci_low") is not None
                    else ""
                )
                n = f'<br><span class="ci">n {number(cell["n"], count=True)}</span>' if cell.get("n") else ""
                mark = MARK if cell.get("nlp") else ""
                bar = _bar(cell, axes[g][c.unit]) if c.unit in axes[g] else ""
                cells.append(f"<td>{number(cell['value'], count=count)}{mark}{ci}{n}{bar}</td>")
        rows.append(
            f'<tr><td class="l name">{e(entry.run)}</td><td class="l name">{e(entry.model)}</td>'
            f"{''.join(cells)}</tr>"
        )
    note = (
        "Headline metric per task with its 95% bootstrap interval; the bar under each value draws the "
        "interval (line) and the value (dot) on one axis per group and unit, whose ends are under each "
        "header. A task scored with different task versions, judges or data has one column per variant. "
        + " ".join(board.notes)
    ).strip()
    prov = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in provenance_lines(board))
    table = (
        f'<table><thead><tr><th class="l" rowspan="3">run</th><th class="l" rowspan="3">model</th>{top}</tr>'
        f'<tr>{head}</tr><tr class="axis">{axis_row}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )
    return page(
        "evalkit leaderboard",
        "<h1>evalkit leaderboard</h1>"
        + made_line(board.provenance)
        + f'<p class="note">{e(note)}</p>'
        + scroll(table)
        + (f'<h2>Provenance</h2><dl class="prov">{prov}</dl>' if prov else ""),
        STYLE,
    )
