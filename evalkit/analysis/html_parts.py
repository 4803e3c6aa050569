"""What the self-contained HTML reports (the alignment-tax table, the leaderboard) share: numbers as the
tables print them (counts as integers), a page that never overflows a narrow window (tables scroll inside
their own box, long names break, plots shrink to the width), and shared interval scales.

A scale is shared by every interval of one group that is in the same unit, so rows and metrics compare by
eye: percentages with percentages, counts with counts (a count and a percentage never share an axis, as
their numbers mean different things); its ends are rounded up to 1, 2, 2.5 or 5 × 10^k so the tick labels
read plainly."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable
from typing import Any

STYLE = """*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
p,ul,dl{max-width:75em}
.scroll{max-width:100%;overflow-x:auto;margin:0.5em 0 1em}
table{border-collapse:collapse}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}
td{white-space:nowrap}td.l{white-space:normal;overflow-wrap:break-word}
th{background:#f3f3f3;overflow-wrap:break-word;max-width:18em}
td.l,th.l{text-align:left}.note{color:#555}
code,dd{overflow-wrap:anywhere}
svg.plot{max-width:100%;height:auto;display:block}
svg text{font-family:system-ui,sans-serif;font-size:11px;fill:#222}
dl.prov{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:2px 1em;margin:0.5em 0}
dl.prov dt{color:#555}dl.prov dd{margin:0}
@media (max-width:900px){body{margin:0.8em}th,td{padding:3px 5px}}"""


def number(x: Any, sign: bool = False, count: bool = False, missing: str = "—") -> str:
    """Two decimals; a count (a metric of kind "count", a sample size) as an integer, or with one decimal
    where it is not whole (an interpolated interval end)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return missing
    if count:
        if abs(x - round(x)) < 1e-9:
            return f"{round(x):+d}" if sign else str(round(x))
        return f"{x:+.1f}" if sign else f"{x:.1f}"
    return f"{x:+.2f}" if sign else f"{x:.2f}"


def nice(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is ≥ x (x > 0)."""
    if x <= 0 or math.isnan(x):
        return 1.0
    exp = math.floor(math.log10(x))
    for step in (1, 2, 2.5, 5, 10):
        if step * 10**exp >= x * (1 - 1e-12):
            return step * 10**exp
    return 10 ** (exp + 1)


def spans(values: Iterable[tuple[Any, float]]) -> dict[Any, float]:
    """Per key (a unit), a symmetric half-width around 0 covering every |value| of that key (nice-rounded,
    with 5% headroom)."""
    out: dict[Any, float] = {}
    for key, v in values:
        if v is None or math.isnan(v):
            continue
        out[key] = max(out.get(key, 0.0), abs(v))
    return {k: nice(v * 1.05) for k, v in out.items()}


def ranges(values: Iterable[tuple[Any, float]]) -> dict[Any, tuple[float, float]]:
    """Per key (a unit), an axis [low, high] covering every value of that key, ends nice-rounded; a
    percentage axis stays within [0, 100] when its values do."""
    lows: dict[Any, float] = {}
    highs: dict[Any, float] = {}
    for key, v in values:
        if v is None or math.isnan(v):
            continue
        lows[key] = min(lows.get(key, v), v)
        highs[key] = max(highs.get(key, v), v)
    out = {}
    for key in lows:
        lo, hi = lows[key], highs[key]
        pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
        step = nice((hi - lo + 2 * pad) / 4)
        low, high = math.floor((lo - pad) / step) * step, math.ceil((hi + pad) / step) * step
        if key == "%" and 0 <= lo and hi <= 100:
            low, high = max(low, 0.0), min(high, 100.0)
        out[key] = (low, high)
    return out


def breakable(text: str) -> str:
    """`text` escaped for HTML, with a line-break opportunity after each `.`, `_`, `/` and `-`, so a long
    metric, run or path name wraps at its own separators instead of widening its column."""
    return re.sub(r"([._/-])", r"\1<wbr>", html.escape(text))


def made_line(prov: dict[str, Any]) -> str:
    """The line under a report's title: when and by which evalkit it was made ("" without provenance)."""
    if not prov:
        return ""
    made = f"Made {prov.get('made')} by evalkit {prov.get('evalkit')}; provenance at the end."
    return f'<p class="note">{html.escape(made)}</p>'


def scroll(table_html: str) -> str:
    """A table in its own horizontally scrolling box, so a wide table never widens the page."""
    return f'<div class="scroll">{table_html}</div>'


def page(title: str, body: str, style: str = "") -> str:
    e = html.escape
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><meta name="viewport" '
        f'content="width=device-width, initial-scale=1"><title>{e(title)}</title>'
        f"<style>{STYLE}{style}</style></head><body>{body}</body></html>\n"
    )
