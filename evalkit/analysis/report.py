"""Rendering a run's metrics: a rich table for people, JSON for programs.

Every table evalkit prints goes through `Fit`: rich shrinks a table wider than the terminal by cutting
cell text (`51.…`) or wrapping a header one letter a line, so `Fit` renders the first of its layouts
whose natural width fits, and otherwise `Records`, one block per row with one "column value" line per
cell, which fits any terminal wide enough for the longest single value. No number is ever cut.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

#: a width no terminal reaches: a layout is measured at it to get its natural (unwrapped) width
_UNBOUNDED = 100_000


def fmt(value: float, digits: int = 2) -> str:
    return (
        "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
    )


class Fit:
    """The first layout (widest first) whose natural width fits the console; else the last one."""

    def __init__(self, *layouts: Any):
        self.layouts = layouts

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        wide = options.update_width(_UNBOUNDED)
        for layout in self.layouts[:-1]:
            if _natural_width(console, wide, layout) <= options.max_width:
                yield layout
                return
        yield self.layouts[-1]


def _natural_width(console: Console, options: ConsoleOptions, renderable: Any) -> int:
    """The unwrapped width of a layout; text (titles, captions) wraps at spaces harmlessly, so it does
    not count."""
    if isinstance(renderable, Text):
        return 0
    if isinstance(renderable, Group):
        return max((_natural_width(console, options, r) for r in renderable.renderables), default=0)
    return Measurement.get(console, options, renderable).maximum


class Records:
    """A narrow rendering of a table: per row, its first `keys` non-empty cells on one line (bold), then
    each other non-empty cell as `header  value` on its own line, or the header on one line and the value
    indented below it where both do not fit the width. `title`, `caption` and cells hold rich markup, as a
    Table's do; headers are plain text. Text wraps at spaces only, so no value is cut."""

    def __init__(
        self,
        title: str | None,
        headers: Sequence[str],
        rows: Sequence[Sequence[str]],
        keys: int = 1,
        caption: str | None = None,
    ):
        self.title, self.headers, self.rows, self.keys, self.caption = title, headers, rows, keys, caption

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        keys = self.keys
        width = min(max((len(h) for h in self.headers[keys:]), default=0), 32)
        if self.title:
            yield Text.from_markup(self.title, style="italic")
        for row in self.rows:
            head = [Text.from_markup(c) for c in row[:keys] if c]
            if head:
                line = Text(" · ").join(head)
                line.stylize("bold")
                yield line
            for header, cell in zip(self.headers[keys:], row[keys:], strict=True):
                if not cell:
                    continue
                value = Text.from_markup(cell)
                line = Text("  " + header.ljust(width) + "  ")
                if line.cell_len + value.cell_len <= options.max_width:
                    yield line.append_text(value)
                else:
                    yield Text("  " + header)
                    yield Text("      ").append_text(value)
        if self.caption:
            yield Text.from_markup(self.caption, style="dim")


def _counts(task: str) -> Any:
    """A predicate: whether a metric of the registered task `task` is a tally (kind "count"), printed as
    an integer; never for a task evalkit does not know."""
    from evalkit.registry import TASKS, get_task

    if task not in TASKS:
        return lambda metric: False
    obj = get_task(task)
    return lambda metric: obj.metric(metric).kind == "count"


def _fmt(value: Any, count: bool) -> str:
    if count and isinstance(value, (int, float)) and not math.isnan(value):
        return str(round(value)) if abs(value - round(value)) < 1e-9 else f"{value:.1f}"
    return fmt(value)


def results_table(metrics: dict[str, Any], title: str | None = None, all_metrics: bool = False) -> Fit:
    """One row per task: its headline metric (every metric with `all_metrics`, headline first) with its
    value, 95% interval and n; beside the task, failed samples (errors + unparseable judgments) and, for
    judged tasks, `suspicious` answers (judge-directed instructions, see `evalkit.judges.injection`).
    Counts (metrics of kind "count") print as integers."""
    judged = any("n_suspicious" in s for s in metrics.values())
    headers = ["task", "metric", "value", "95% CI", "n", "failed"] + (["suspicious"] if judged else [])
    rows: list[list[str]] = []
    for name, summary in metrics.items():
        items = summary["metrics"]
        order = [summary["headline"]] + [k for k in items if k != summary["headline"]]
        order = [k for k in order if k in items]
        if not all_metrics:  # the headline, or the first metric where the task leaves it out by design
            order = order[:1]
        n_failed = summary.get("n_failed", summary["n_errors"])
        failed = f"{n_failed}/{summary['n_samples']}"
        if summary.get("n_unparsed"):
            failed += f" ({summary['n_unparsed']} unparsed)"
        suspicious = [str(summary["n_suspicious"]) if "n_suspicious" in summary else "-"] if judged else []
        shown = order
        if not shown:
            rows.append([name, "(no scored samples)", "", "", "0", failed, *suspicious])
        is_count = _counts(name)
        for i, key in enumerate(shown):
            m = items[key]
            c = is_count(key)
            rows.append(
                [
                    name if i == 0 else "",
                    f"[bold]{key}[/bold]" if i == 0 else key,
                    _fmt(m["value"], c),
                    "" if m.get("ci_low") is None else f"[{_fmt(m['ci_low'], c)}, {_fmt(m['ci_high'], c)}]",
                    _fmt(m["n"], True),
                    failed if i == 0 else "",
                    *(suspicious if i == 0 else [""] * len(suspicious)),
                ]
            )
    return Fit(
        table(title, headers, rows, left=2),
        table(title, headers, rows, left=2, compact=True),
        Records(title, headers, rows, keys=2),
    )


def table(
    title: str | None,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    left: int = 1,
    right: Sequence[int] | None = None,
    caption: str | None = None,
    sections: Sequence[int] = (),
    compact: bool = False,
) -> Table:
    """A plain rich table, no cell ever wrapped (`Fit` picks another layout when it is too wide): the
    columns in `right` right-aligned (default: all but the first `left`); a section line before each row
    index in `sections`. Headers are plain text; title, caption and cells hold rich markup. `compact`:
    no box, two spaces between columns (what an 80-column terminal usually has room for)."""
    right_set = set(range(left, len(headers)) if right is None else right)
    box = {"box": None, "padding": (0, 1), "pad_edge": False, "header_style": "bold"} if compact else {}
    out = Table(title=title, caption=caption, show_lines=False, **box)
    for i, header in enumerate(headers):
        out.add_column(escape(header), justify="right" if i in right_set else "left", no_wrap=True)
    for i, row in enumerate(rows):
        if i in sections and i:
            out.add_section()
        out.add_row(*row)
    return out
