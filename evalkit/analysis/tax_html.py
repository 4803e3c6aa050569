"""The alignment-tax table as one self-contained HTML page (inline CSS and SVG, no script, no external file):
per group the table and a plot of each metric's difference with its interval, then the benchmarks, the
provenance (date, evalkit version, seeds, judges and data versions from the runs' run.json) and warnings.

Every panel of a group's plot uses the group's scale for its unit (`evalkit.analysis.html_parts.spans`):
one symmetric axis around 0 for all the group's percentages, another for its counts, and so on, so the
lengths of the bars compare by eye across metrics and checkpoints; a metric never gets an axis of its own."""

from __future__ import annotations

import html
import math

from evalkit.analysis import provenance
from evalkit.analysis.html_parts import breakable, made_line, number, page, scroll, spans
from evalkit.analysis.tax import TaxTable
from evalkit.analysis.tax_render import ARROW, COLOUR, GREY, _caption, _header, _lines, diff_text, is_count

STYLE = """.gain{color:#1a7f37;font-weight:600}.loss{color:#cf222e;font-weight:600}.changed{color:#9a6700}
.ns{color:#6e7781}td.d{white-space:normal}td.d span{white-space:nowrap}th.ck{min-width:7em}"""
PLOT_X, PLOT_W, ROW_H, HEAD_H = 250, 440, 16, 32
#: the longest checkpoint name a plot row shows whole (longer ones end in "…"; the tooltip has them whole)
NAME_CHARS = 38
WIDTH = PLOT_X + PLOT_W + 70


def _tick(x: float) -> str:
    """A tick of a nice-rounded scale: `+25`, `-2.5`, `0`."""
    return f"{x:+g}" if x else "0"


def svg_plot(table: TaxTable, group: str) -> str:
    """Per metric of the group a panel on the group's scale for the metric's unit, symmetric around 0: a
    dashed zero line, grid lines at the half-scale, and per checkpoint the difference as a point with its
    interval as a bar, coloured by verdict."""
    keys = table.keys(group)
    rows_of = {k: [table.get(c, *k) for c in table.checkpoints] for k in keys}
    units = {k: next(r for r in rows if r).unit for k, rows in rows_of.items()}
    span = spans(
        (units[k], v) for k, rows in rows_of.items() for r in rows if r for v in (r.diff, r.ci_low, r.ci_high)
    )
    n_ck = len(table.checkpoints)
    panel_h = HEAD_H + n_ck * ROW_H + 8
    height = len(keys) * panel_h + 10
    e = html.escape
    parts = [
        f'<svg class="plot" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{e(group)}: differences with {table.level:.0%} intervals">'
    ]
    for k, (task, metric) in enumerate(keys):
        rows = rows_of[(task, metric)]
        s = span.get(units[(task, metric)], 1.0)
        count = is_count(table, task, metric)
        scale = lambda v, s=s: PLOT_X + PLOT_W / 2 + v / s * PLOT_W / 2  # noqa: E731
        top = 10 + k * panel_h
        bottom = top + panel_h - 8
        first = next(r for r in rows if r)
        title = f"{task}.{metric}{ARROW[first.direction]}" + (f" ({first.unit})" if first.unit else "")
        parts.append(f'<text x="4" y="{top + 12}" font-weight="600">{e(title)}</text>')
        ticks_y = top + 26
        parts.append(
            f'<rect x="{PLOT_X}" y="{top + HEAD_H - 4}" width="{PLOT_W}" '
            f'height="{bottom - top - HEAD_H + 4}" fill="#fafafa" stroke="#ddd"/>'
        )
        for v in (-s / 2, s / 2):
            parts.append(
                f'<line x1="{scale(v):.1f}" y1="{top + HEAD_H - 4}" x2="{scale(v):.1f}" y2="{bottom}" '
                'stroke="#e4e4e4"/>'
            )
        zero = scale(0.0)
        parts.append(
            f'<line x1="{zero:.1f}" y1="{top + HEAD_H - 4}" x2="{zero:.1f}" y2="{bottom}" stroke="#555" '
            'stroke-dasharray="3,3"/>'
        )
        for v in (-s, -s / 2, 0.0, s / 2, s):
            anchor = "start" if v == -s else "end" if v == s else "middle"
            parts.append(
                f'<text x="{scale(v):.1f}" y="{ticks_y}" text-anchor="{anchor}" fill="#555">{_tick(v)}</text>'
            )
        for i, (name, r) in enumerate(zip(table.checkpoints, rows, strict=True)):
            y = top + HEAD_H + i * ROW_H + ROW_H / 2 - 2
            shown = name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"
            parts.append(
                f'<text x="{PLOT_X - 8}" y="{y + 4:.1f}" text-anchor="end"><title>{e(name)}</title>'
                f"{e(shown)}</text>"
            )
            if r is None or math.isnan(r.diff):
                continue
            colour = COLOUR.get(r.verdict, GREY)
            tip = f"{name}: {task}.{metric} {diff_text(r, count)} {r.verdict} (n={r.n_samples})"
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
                f"{number(r.diff, True, count)}</text></g>"
            )
    parts.append("</svg>")
    return "\n".join(parts)


def page_html(table: TaxTable) -> str:
    e = html.escape
    css_class = {"gain": "gain", "loss": "loss", "changed": "changed", "no significant change": "ns"}
    kinds = ['<th class="l">'] * 3 + ["<th>"] + ['<th class="ck">'] * (len(_header(table)) - 4)
    head = "".join(f"{k}{breakable(h)}</th>" for k, h in zip(kinds, _header(table), strict=True))
    body = []
    for group in table.groups():
        lines = []
        for _, values in _lines(table, group):
            cells = []
            for i, v in enumerate(values):
                cls = "l" if i < 3 or (i >= 7 and (i - 7) % 3 == 0) else ""
                if i >= 7 and (i - 7) % 3 == 0:
                    cls += " " + css_class.get(v, "")
                shown = breakable(v) if i < 2 else e(v)
                if i >= 6 and (i - 6) % 3 == 0 and " [" in v:  # Δ [CI]: may wrap before the interval
                    diff, ci = v.split(" [", 1)
                    cls, shown = "d", f"<span>{e(diff)}</span> <span>[{e(ci)}</span>"
                cls = cls.strip()
                cells.append(f'<td class="{cls}">{shown}</td>' if cls else f"<td>{shown}</td>")
            lines.append(f"<tr>{''.join(cells)}</tr>")
        body.append(
            f"<h2>{e(group)}</h2>"
            + scroll(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>")
            + f'<p class="note">Checkpoint − reference ({e(table.base)}): point = difference, bar = '
            "interval, dashed line = no change; every metric of the group in the same unit on one scale, "
            "symmetric around 0.</p>"
            f"\n{svg_plot(table, group)}"
        )
    info = "".join(
        f'<tr><td class="l">{e(t)}</td><td class="l">{e(str(i.get("group")))}</td>'
        f'<td class="l">{e(str(i.get("version")))}</td>'
        f'<td class="l">{e(str(i.get("judge") or "none"))}</td></tr>'
        for t, i in table.tasks.items()
    )
    runs = "".join(f"<li>{e(name)}: <code>{e(path)}</code></li>" for name, path in table.checkpoints.items())
    warn = "".join(f"<li>{e(w)}</li>" for w in table.warnings)
    prov = (
        provenance.html_block(table.provenance, f"{table.seed} ({table.n_resamples} resamples)")
        if table.provenance
        else ""
    )
    return page(
        "evalkit alignment tax",
        "<h1>Alignment tax</h1>" + made_line(table.provenance) + f'<p class="note">{e(_caption(table))}</p>'
        f"<ul><li>{e(table.base)} (reference): <code>{e(table.base_path)}</code></li>{runs}</ul>"
        + "\n".join(body)
        + "<h2>Benchmarks</h2>"
        + scroll(
            '<table><thead><tr><th class="l">task</th><th class="l">group</th><th class="l">version</th>'
            f'<th class="l">judge</th></tr></thead><tbody>{info}</tbody></table>'
        )
        + prov
        + (f"<h2>Warnings</h2><ul>{warn}</ul>" if warn else ""),
        STYLE,
    )
