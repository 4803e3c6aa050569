"""`evalkit import`: score answers produced elsewhere (official per-item files, or lmms-eval's per-sample
logs, told apart by their records), no model needed."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalkit.interop import lmms_eval
from evalkit.registry import get_task
from evalkit.runner import RunResult, config_hash, new_header, now
from evalkit.scoring import make_row, summarize
from evalkit.store import RunStore
from evalkit.types import Response, UserError
from evalkit.util.datafiles import content_version, data_identity, sha256_file


def import_answers(
    task: str,
    answers: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    questions: str | Path | None = None,
    data_dir: str | Path | None = None,
    judgments: list[str | Path] | None = None,
) -> RunResult:
    """Write a run folder from an answer file: rows, metrics and a run.json whose model is 'imported'.
    An lmms-eval samples log (`--log_samples`) is recognised by its records and converted
    (`evalkit.interop.lmms_eval`); what it could not pair with the official items is counted in run.json under
    the task's `data.lmms_eval` and reported as a warning. Several lmms-eval logs of one run (e.g. the
    per-split POPE logs), or a folder holding them, import as one run."""
    t = get_task(task)
    given = [Path(a) for a in ([answers] if isinstance(answers, str | Path) else answers)]
    if not given:
        raise UserError("--answers: no file given")
    for a in given:
        if not a.exists():
            raise UserError(f"--answers {a}: file not found")
    several = len(given) > 1 or given[0].is_dir()
    odd = [a for a in given if a.is_file() and not lmms_eval.is_lmms_eval_log(a)]
    if several and odd:
        raise UserError(
            f"--answers {odd[0]} is not an lmms-eval samples log; several answer files, or a folder, are "
            "read only as one run's lmms-eval logs (e.g. pope_random, pope_pop, pope_adv)"
        )
    answers = given[0]
    args = (
        Path(questions) if questions else None,
        Path(data_dir) if data_dir else None,
        [Path(j) for j in judgments or []],
    )
    source = "lmms-eval" if several or not odd else "official"
    files = lmms_eval.log_files(given, t) if source == "lmms-eval" else [answers]
    if source == "lmms-eval":
        items, info = lmms_eval.import_logs(t, files, *args)
        left_out = lmms_eval.problems(info["lmms_eval"])
        if left_out:
            names = ", ".join(f.name for f in files)
            warnings.warn(f"{names}: " + "; ".join(left_out) + " (see run.json)", stacklevel=2)
    else:  # a task without official files refuses here (`Task.import_answers`: "imports lmms-eval logs only")
        try:
            items, info = t.import_answers(answers, *args)
        except UserError as exc:
            format_error = t.imports_official_files and any(
                w in str(exc) for w in ("missing field", "malformed", "wrong type", "expected")
            )
            if not format_error or answers.name not in str(exc):
                raise
            raise UserError(
                f"{exc} ({answers} is not an lmms-eval samples log either: those are JSON lines with "
                "doc_id and filtered_resps, from lmms-eval --log_samples)"
            ) from None
    info = content_version(info)
    partial = info.get("partial")
    if partial:
        warnings.warn(
            f"{answers.name}: a partial set: {partial['answered']} of {partial['of']} {partial['unit']} "
            f"answered ({partial['missing']} missing); stored as data version {info['version']!r}, apart "
            "from complete runs",
            stacklevel=2,
        )
    store = RunStore(Path(output))
    if store.exists():
        raise UserError(f"{output} already holds a run; pass another --output")
    # identified by content: the answer files' checksums, never the paths they were read from
    fingerprint = {"answers_sha256": _checksum(files)}
    if source == "lmms-eval":
        fingerprint.update(format="lmms-eval", lmms_eval_model=info["lmms_eval"]["model"])
    identity = {"model": fingerprint, "tasks": {t.name: {"version": t.version, "data": data_identity(info)}}}
    command = {
        "import": True,
        "format": source,
        "task": task,
        "answers": str(answers) if len(files) == 1 else [str(f) for f in files],
        "questions": str(questions),
        "data_dir": str(data_dir),
        "judgments": [str(j) for j in judgments or []],
    }
    header = new_header(
        Path(output),
        config_hash(identity),
        command,
        model={"fingerprint": fingerprint, "backend": "import", "imported_from": _where(files)},
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


def _checksum(files: list[Path]) -> str:
    """sha256 of the one answer file; for several, of their names and checksums in name order."""
    if len(files) == 1:
        return sha256_file(files[0])
    lines = sorted(f"{f.name} {sha256_file(f)}\n" for f in files)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _where(files: list[Path]) -> str | list[str]:
    return str(files[0].resolve()) if len(files) == 1 else [str(f.resolve()) for f in files]
