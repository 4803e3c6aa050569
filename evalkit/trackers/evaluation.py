"""A run folder's evaluation, as the trackers of `--report-to` show it, read from the store alone.

One tracker run per evaluation (kind `eval`, named after the run folder): its config is run.json (the
model and its fingerprint, the config hash, the command, each task's version and data checksums, the
package versions); the scalars at step 0 are each task's metrics from metrics.json as
`eval/<task>/<metric>` with `/ci_low`, `/ci_high` and `/n` beside the value; the table `eval/metrics` holds
the same in tidy form (task, metric, value, ci_low, ci_high, n, headline), and `eval/<task>/samples` the
task's stored rows (every column but the image paths, the prompt hash and `meta`; nested values as JSON).
A run that finished as failed is closed as failed. Nothing is logged from a process that writes no run
folder (the other ranks of a data-parallel run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evalkit.store import RunStore
from evalkit.trackers.base import RunIdentity, Trackers, TrackerSettings, open_trackers
from evalkit.trackers.redaction import scrub, secret_values

METRIC_COLUMNS = ["task", "metric", "value", "ci_low", "ci_high", "n", "headline"]
#: sample-row fields left out of the table: local image paths, the resume key, the task's own bookkeeping
SKIPPED_FIELDS = ("images", "prompt_hash", "meta")


def metric_values(metrics: dict[str, Any]) -> dict[str, float]:
    """`eval/<task>/<metric>` (the value), `.../ci_low`, `.../ci_high`, `.../n` for every metric."""
    values: dict[str, float] = {}
    for task, summary in metrics.items():
        for name, m in (summary.get("metrics") or {}).items():
            key = f"eval/{task}/{name}"
            values[key] = m.get("value")
            for part in ("ci_low", "ci_high", "n"):
                values[f"{key}/{part}"] = m.get(part)
    return values


def metric_rows(metrics: dict[str, Any]) -> list[list[Any]]:
    """The rows of the `eval/metrics` table (`METRIC_COLUMNS`)."""
    rows = []
    for task, summary in metrics.items():
        for name, m in (summary.get("metrics") or {}).items():
            row = [m.get("value"), m.get("ci_low"), m.get("ci_high"), m.get("n")]
            rows.append([task, name, *row, name == summary.get("headline")])
    return rows


def sample_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """(columns, cells) of a task's stored rows: the fields in first-seen order, `id` first; a field
    whose value is a list or an object anywhere becomes JSON text in every cell."""
    columns: list[str] = ["id"]
    nested: set[str] = set()
    for row in rows:
        for key, value in row.items():
            if key in SKIPPED_FIELDS:
                continue
            if key not in columns:
                columns.append(key)
            if isinstance(value, dict | list):
                nested.add(key)

    def cell(key: str, value: Any) -> Any:
        if key in nested and value is not None:
            return json.dumps(value, ensure_ascii=False, default=str)
        return value

    return columns, [[cell(c, row.get(c)) for c in columns] for row in rows]


def log_run(trackers: Trackers, store: RunStore, metrics: dict[str, Any], step: int = 0) -> None:
    """Log one stored run's metrics, metric table and sample tables to opened `trackers`."""
    secrets = secret_values()
    trackers.log(metric_values(metrics), step=step)
    trackers.log_table("eval/metrics", METRIC_COLUMNS, metric_rows(metrics), step=step)
    for task in metrics:
        columns, cells = sample_table(store.read_samples(task))
        trackers.log_table(f"eval/{task}/samples", columns, scrub(cells, secrets), step=step)


def report_run(
    settings: TrackerSettings, run_dir: str | Path, *, name: str | None = None, group: str | None = None
) -> None:
    """Log the finished (or failed) run in `run_dir` to every tracker of `settings`."""
    if not settings:
        return
    store = RunStore(Path(run_dir))
    header = store.read_header()
    metrics = store.read_metrics()
    identity = RunIdentity(name or Path(run_dir).name, "eval", header, Path(run_dir), group)
    trackers = open_trackers(settings, identity)
    try:
        log_run(trackers, store, metrics)
    except BaseException:
        trackers.close(failed=True)
        raise
    trackers.close(failed=header.get("status") == "failed")
