"""From stored sample rows to metrics: shared by `run`, `import` and `rescore`."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from evalkit.judges.injection import is_suspicious
from evalkit.task import JudgedTask, Task
from evalkit.types import Request, Response, Sample


def make_row(
    task: Task,
    sample: Sample,
    request: Request,
    response: Response,
    judge: dict[str, Any] | None = None,
    later_turns: Sequence[Response] = (),
) -> dict[str, Any]:
    """The stored row for one answered (or failed) sample; score fields are added when it succeeded
    (for a judged task: once it carries its `judge` record). `response` answers the first turn; a
    multi-turn sample's row also keeps every turn's answer in `responses`, and its token counts are the
    sum over turns."""
    turns = [response, *later_turns]
    failed = next((r for r in turns if not r.ok), None)
    user_texts = [m.text for m in request.messages if m.role == "user"]
    row: dict[str, Any] = {
        "id": sample.id,
        "prompt": user_texts[-1] if user_texts else "",
        "images": [img for m in request.messages for img in m.images],
        "prompt_hash": request.prompt_hash(),
        "response": response.text if response.ok else None,
        "target": sample.target,
        "cluster": sample.cluster,
        "meta": sample.meta,
        "error": failed.error.to_dict() if failed is not None and failed.error else None,
        "prompt_tokens": sum(r.prompt_tokens for r in turns),
        "completion_tokens": sum(r.completion_tokens for r in turns),
        "latency_s": round(sum(r.latency_s for r in turns), 6),
    }
    if later_turns:
        row["responses"] = [r.text if r.ok else None for r in turns]
    if judge is not None:
        row["judge"] = judge
    if failed is None and (judge is not None or not isinstance(task, JudgedTask)):
        row.update(task.score_row(row))
    return row


def rescore_row(task: Task, row: dict[str, Any]) -> dict[str, Any]:
    """Recompute a stored row's score fields from its stored response (parsers may have changed)."""
    if row.get("error") is not None or (isinstance(task, JudgedTask) and "judge" not in row):
        return row
    return {**row, **task.score_row(row)}


def summarize(task: Task, rows: list[dict[str, Any]], n_expected: int | None = None) -> dict[str, Any]:
    """Metrics over the scored rows, with failures counted beside them (never scored as an answer).

    Failed rows are of two kinds: `n_errors` rows with an `error` (not scored) and, for a judged task,
    `n_unparsed` rows scored under the official failure rule because a judgment never parsed
    (`JudgedTask.unparsed_judgments`). Both count in `n_failed` and `failure_rate`, which
    `--max-failure-rate` checks; the metrics themselves follow the official rule. `n_suspicious`
    counts answers carrying judge-directed instructions (`evalkit.judges.injection`), judged tasks only.
    `error_examples` keeps the first message of each error type; `headline_problem` says why the
    headline is unusable (missing, NaN, n=0), None when it is fine."""
    ok = [r for r in rows if r.get("error") is None]
    failed = [r for r in rows if r.get("error") is not None]
    judged = isinstance(task, JudgedTask)
    n_unparsed = sum(task.unparsed_judgments(r) > 0 for r in ok) if judged else 0
    n = len(rows) if n_expected is None else n_expected
    examples: dict[str, str] = {}
    for r in failed:
        examples.setdefault(str(r["error"]["type"]), str(r["error"].get("message", "")))
    metrics = task.aggregate(ok) if ok else {}
    summary = {
        "task": task.name,
        "version": task.version,
        "headline": task.headline,
        "metrics": metrics,
        "n_samples": n,
        "n_scored": len(ok),
        "n_errors": len(failed),
        "n_unparsed": n_unparsed,
        "n_failed": len(failed) + n_unparsed,
        "errors_by_type": dict(Counter(r["error"]["type"] for r in failed)),
        "error_examples": examples,
        "failure_rate": (len(failed) + n_unparsed) / n if n else 0.0,
        "headline_problem": headline_problem(task, metrics, ok),
    }
    if judged:
        summary["n_suspicious"] = sum(is_suspicious(r) for r in rows)
    return summary


def headline_problem(task: Task, metrics: dict[str, Any], ok: list[dict[str, Any]]) -> str | None:
    """Why the headline cannot be trusted: no scored sample, or a headline with no value (NaN) or over
    n=0. None when it is fine, and when the task leaves it out of a non-empty set of metrics by design
    (AMBER's discriminative-only evaluation types, MMBench's test split with hidden answers)."""
    if not ok:
        return f"{task.headline} has no scored sample"
    m = metrics.get(task.headline)
    if m is None:
        return None if metrics else f"{task.headline} has no scored sample"
    value = m.get("value")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        n = m.get("n", 0)
        why = (
            "; it is undefined on these rows (a ratio over zero cases, e.g. F1 with no positive answer "
            "or label): a run over more samples may define it"
            if n
            else ""
        )
        return f"{task.headline} has no value (NaN over n={n}){why}"
    if m.get("n") == 0:
        return f"{task.headline} is over n=0"
    return None


def rescore_run(run_dir) -> dict[str, Any]:
    """Recompute every task's score fields and metrics from the stored rows alone; rewrites metrics.json.
    Reads the samples without changing them, and refuses (`UserError`) to write metrics from a folder
    it could not read whole: a damaged line, or a row whose fields the task cannot score."""
    from evalkit.registry import get_task
    from evalkit.store import RunStore
    from evalkit.types import UserError

    store = RunStore(run_dir)
    header = store.read_header()
    if not header.get("tasks"):
        raise UserError(f"{store.header_path}: names no task; the run header is damaged")
    if isinstance(shard := header.get("shard"), dict):
        raise UserError(
            f"{run_dir} is shard {shard.get('index')}/{shard.get('count')} of a run: merge the shards "
            "(evalkit merge), then rescore the merged folder"
        )
    metrics = {}
    for name, info in header["tasks"].items():
        task = get_task(name)
        problems: list[str] = []
        stored = store.read_samples(name, problems)
        if problems:
            more = f" (and {len(problems) - 1} more damaged lines)" if len(problems) > 1 else ""
            raise UserError(
                f"{problems[0]}{more}; metrics.json is left as it was — re-run the run's command to redo "
                "the damaged rows, then rescore"
            )
        rows = []
        for row in stored:
            try:
                rows.append(rescore_row(task, row))
            except (TypeError, KeyError, ValueError, AttributeError, IndexError) as exc:
                raise UserError(
                    f"{store.samples_path(name)}: row {row.get('id')!r} cannot be scored "
                    f"({type(exc).__name__}: {exc}); metrics.json is left as it was"
                ) from None
        expected = info.get("n_samples") if isinstance(info, dict) else None
        n = expected if isinstance(expected, int) and not isinstance(expected, bool) else len(rows)
        try:
            metrics[name] = summarize(task, rows, n_expected=n)
        except (TypeError, KeyError, ValueError, AttributeError, IndexError) as exc:
            raise UserError(
                f"{store.samples_path(name)}: the rows cannot be summarized ({type(exc).__name__}: {exc}); "
                "metrics.json is left as it was"
            ) from None
    store.write_metrics(metrics)
    return metrics
