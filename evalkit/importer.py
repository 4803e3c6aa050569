"""`evalkit import`: score answers produced elsewhere (official per-item files), no model needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.registry import get_task
from evalkit.runner import RunResult, config_hash, new_header, now
from evalkit.scoring import make_row, summarize
from evalkit.store import RunStore
from evalkit.types import Response, UserError


def import_answers(
    task: str,
    answers: str | Path,
    output: str | Path,
    *,
    questions: str | Path | None = None,
    data_dir: str | Path | None = None,
    judgments: list[str | Path] | None = None,
) -> RunResult:
    """Write a run folder from an answer file: rows, metrics and a run.json whose model is 'imported'."""
    t = get_task(task)
    if not hasattr(t, "import_answers"):
        raise UserError(f"task {task!r} does not support import yet")
    answers = Path(answers)
    if not answers.is_file():
        raise UserError(f"--answers {answers}: file not found")
    items, info = t.import_answers(
        answers,
        Path(questions) if questions else None,
        Path(data_dir) if data_dir else None,
        [Path(j) for j in judgments or []],
    )
    store = RunStore(Path(output))
    if store.exists():
        raise UserError(f"{output} already holds a run; pass another --output")
    fingerprint = {"imported_from": str(answers.resolve()), "answers_sha256": info["files"].get(answers.name)}
    identity = {"model": fingerprint, "tasks": {t.name: {"version": t.version, "data": info}}}
    command = {
        "import": True,
        "task": task,
        "answers": str(answers),
        "questions": str(questions),
        "data_dir": str(data_dir),
        "judgments": [str(j) for j in judgments or []],
    }
    header = new_header(
        Path(output),
        config_hash(identity),
        command,
        model={"fingerprint": fingerprint, "backend": "import"},
        tasks={t.name: {**t.info(), "data": info, "n_samples": len(items)}},
    )
    store.open(header)
    log = store.log(t.name)
    try:
        for it in items:
            response = Response(id=it.sample.id, text=it.response)
            later = [Response(id=it.sample.id, text=text) for text in (it.responses or [])[1:]]
            log.append(make_row(t, it.sample, t.request(it.sample), response, it.judge, later))
        rows = log.compact(it.sample.id for it in items)
    finally:
        log.close()
    metrics: dict[str, Any] = {t.name: summarize(t, rows)}
    store.write_metrics(metrics)
    header["status"] = "finished"
    header["finished"] = now()
    store.write_header(header)
    return RunResult(Path(output), metrics, header)
