"""A finished run for notebooks (`evalkit.evaluate`'s result): `.metrics` as a tidy DataFrame (task,
metric, value, ci_low, ci_high, n, headline), `.samples(task)` as a DataFrame of the stored rows, a short
repr and `_repr_html_`. `metric_records` is the same tidy form as plain dicts (the hub dataset's rows)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from evalkit.store import RunStore
from evalkit.util.frames import FrameView, pandas

METRIC_COLUMNS = ("task", "metric", "value", "ci_low", "ci_high", "n", "headline")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def metric_records(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per task and metric of a metrics.json: value and 95% interval (None where NaN or absent),
    n (the units the interval resampled), and whether it is the task's headline."""
    records = []
    for task, summary in metrics.items():
        if not isinstance(summary, dict):
            continue
        for name, m in (summary.get("metrics") or {}).items():
            m = m if isinstance(m, dict) else {"value": m}
            n = m.get("n")
            records.append(
                {
                    "task": str(task),
                    "metric": str(name),
                    "value": _number(m.get("value")),
                    "ci_low": _number(m.get("ci_low")),
                    "ci_high": _number(m.get("ci_high")),
                    "n": n if isinstance(n, int) and not isinstance(n, bool) else None,
                    "headline": name == summary.get("headline"),
                }
            )
    return records


class EvalResult(FrameView):
    """A run folder's results: `metrics` (tidy DataFrame), `summary` (metrics.json as a dict), `header`
    (run.json), `samples(task)`; `run_dir` is where they are stored."""

    _columns = METRIC_COLUMNS

    def __init__(self, run_dir: str | Path, summary: dict[str, Any], header: dict[str, Any]):
        self.run_dir = Path(run_dir)
        self.summary = summary
        self.header = header

    @classmethod
    def open(cls, run_dir: str | Path) -> EvalResult:
        """The stored results of a run folder."""
        store = RunStore(Path(run_dir))
        header = store.read_header()
        summary = store.read_metrics() if (store.dir / "metrics.json").exists() else {}
        return cls(run_dir, summary, header)

    def _records(self) -> list[dict[str, Any]]:
        return metric_records(self.summary)

    def _title(self) -> str:
        model = (self.header.get("command") or {}).get("model", "?")
        status = self.header.get("status", "?")
        return f"evalkit run {self.run_dir} · {model} · {', '.join(self.summary) or 'no task'} · {status}"

    def __repr__(self) -> str:
        """The title and each task's headline (every metric: `.metrics`)."""
        frame = self.to_frame()
        heads = frame[frame["headline"]] if len(frame) else frame
        body = heads.drop(columns="headline").to_string(index=False) if len(heads) else "(no metrics)"
        return f"{self._title()}\n{body}\n({len(frame)} metrics in .metrics, rows in .samples(task))"

    @property
    def metrics(self):
        """task, metric, value, ci_low, ci_high, n, headline: one row per metric of each task."""
        return self.to_frame()

    def samples(self, task: str):
        """The task's stored rows as a DataFrame (one row per sample; nested fields stay objects)."""
        rows = RunStore(self.run_dir).read_samples(task)
        return pandas().DataFrame.from_records(rows)
