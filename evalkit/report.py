"""Rendering a run's metrics: a rich table for people, JSON for programs."""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table


def fmt(value: float, digits: int = 2) -> str:
    return (
        "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
    )


def results_table(metrics: dict[str, Any], title: str | None = None) -> Table:
    """One row per task × metric: value, 95% interval, n; the headline first; failures beside the task."""
    table = Table(title=title, show_lines=False)
    for col, kw in (
        ("task", {}),
        ("metric", {}),
        ("value", {"justify": "right"}),
        ("95% CI", {"justify": "right"}),
        ("n", {"justify": "right"}),
        ("failed", {"justify": "right"}),
    ):
        table.add_column(col, **kw)
    for name, summary in metrics.items():
        items = summary["metrics"]
        order = [summary["headline"]] + [k for k in items if k != summary["headline"]]
        failed = f"{summary['n_errors']}/{summary['n_samples']}"
        if not items:
            table.add_row(name, "(no scored samples)", "", "", "0", failed)
        for i, key in enumerate(k for k in order if k in items):
            m = items[key]
            table.add_row(
                name if i == 0 else "",
                f"[bold]{key}[/bold]" if i == 0 else key,
                fmt(m["value"]),
                "" if m["ci_low"] is None else f"[{fmt(m['ci_low'])}, {fmt(m['ci_high'])}]",
                str(m["n"]),
                failed if i == 0 else "",
            )
    return table
