"""`evalkit export`: a run's answers written in a benchmark's official submission format.

A task with a submission format declares it (`Task.export_file`, the file written into the run folder by
default, and `Task.export_submission`, e.g. MMBench's test-split .xlsx); this module finds the run's task
that has one and calls it, so it names no benchmark.
"""

from __future__ import annotations

from pathlib import Path

from evalkit.registry import TASKS, get_task
from evalkit.store import RunStore
from evalkit.task import Task
from evalkit.types import UserError


def exporting_tasks() -> list[Task]:
    """Every registered task with a submission format, in registry order."""
    return [t for t in (get_task(name) for name in TASKS) if t.export_file is not None]


def export_run(run_dir: Path, output: Path | None) -> tuple[Path, int, int]:
    """Write the submission file of the run's exportable task: `output`, else `RUN_DIR/<export_file>`.
    Returns (path written, rows written, rows without a prediction, i.e. whose generation failed)."""
    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    tasks = exporting_tasks()
    found = [t for t in tasks if store.samples_path(t.name).is_file()]
    if not found:
        names = " or ".join(t.name for t in tasks)
        paths = ", ".join(str(store.samples_path(t.name)) for t in tasks)
        raise UserError(f"{run_dir}: no {names} answers here ({paths} not found)")
    if len(found) > 1:
        raise UserError(
            f"{run_dir}: answers of several tasks with a submission format "
            f"({', '.join(t.name for t in found)}); export a run of one of them"
        )
    task = found[0]
    rows = store.read_samples(task.name)
    if not rows:
        raise UserError(f"{store.samples_path(task.name)}: no rows")
    path = Path(output) if output else run_dir / str(task.export_file)
    n, missing = task.export_submission(rows, path)
    return path, n, missing
