"""How a run ends: `finish` writes metrics.json and the final run.json and decides whether the run is
reported as failed (`RunFailed`, exit 1), with the reasons and a summary of its errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.runner.identity import now
from evalkit.store import RunStore


class RunFailed(Exception):
    """The run finished but must be reported as failed (too many failed samples, or a headline that is
    missing, NaN or over n=0); exit 1. `result` holds the stored run, so its table can still be shown."""

    def __init__(self, message: str, result: RunResult | None = None):
        super().__init__(message)
        self.result = result


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]
    header: dict[str, Any] = field(repr=False)
    resumed: bool = False


def finish(
    store: RunStore,
    header: dict[str, Any],
    all_metrics: dict[str, Any],
    max_failure_rate: float,
    resumed: bool,
) -> RunResult:
    """Write metrics.json and the final run.json; `RunFailed` when the run must be reported as failed."""
    run_dir = store.dir
    store.write_metrics(all_metrics)
    reasons = failure_reasons(all_metrics, max_failure_rate)
    header["status"] = "failed" if reasons else "finished"
    header["finished"] = now()
    store.write_header(header)
    result = RunResult(run_dir, all_metrics, header, resumed)
    if reasons:
        causes = error_summary(all_metrics)
        raise RunFailed(
            "; ".join(reasons)
            + (f"; errors: {'; '.join(causes)}" if causes else "")
            + f"; rows in {run_dir / 'samples'}",
            result,
        )
    return result


def failure_reasons(metrics: dict[str, Any], max_failure_rate: float) -> list[str]:
    """Why a finished run fails, one clause per task: a headline that is missing, NaN or over n=0, or
    failed rows (errors + unparsed judgments) above `max_failure_rate`."""
    reasons = []
    for name, s in metrics.items():
        if s.get("headline_problem"):
            reasons.append(f"{name}: {s['headline_problem']}")
        if s["failure_rate"] > max_failure_rate:
            parts = [f"{s['n_errors']} with errors"]
            if s.get("n_unparsed"):
                parts.append(f"{s['n_unparsed']} with unparseable judgments")
            reasons.append(
                f"{name}: failure rate {s['failure_rate']:.1%} above --max-failure-rate "
                f"{max_failure_rate:.1%} ({' + '.join(parts)} of {s['n_samples']} samples)"
            )
    return reasons


def error_summary(metrics: dict[str, Any], width: int = 160) -> list[str]:
    """The first message of each error type with its count, per task: `task judge_error ×30: 401 ...`."""
    lines = []
    for name, s in metrics.items():
        for kind, count in (s.get("errors_by_type") or {}).items():
            message = " ".join(str((s.get("error_examples") or {}).get(kind, "")).split())
            if len(message) > width:
                message = message[: width - 1] + "…"
            lines.append(f"{name} {kind} ×{count}: {message}")
    return lines
