"""The results store: one folder per run, per-sample JSONL as the source of truth.

    results/<run_id>/run.json            what ran: versions, model fingerprint, data checksums, settings
    results/<run_id>/samples/<task>.jsonl one row per sample, appended and flushed as it finishes
    results/<run_id>/metrics.json         recomputed from the sample rows at the end (and by `rescore`)

A killed process loses at most the row being written: on reopening, a torn last line is cut off and the
rows already there are skipped by the runner. When a task finishes, its file is rewritten (atomically) in
the task's sample order with exactly one row per sample.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evalkit.types import UserError

SCHEMA_VERSION = 1


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False, allow_nan=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class SampleLog:
    """Append-only JSONL of sample rows for one task, robust to a crash mid-write."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, dict[str, Any]] = self._recover()
        self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def _recover(self) -> dict[str, dict[str, Any]]:
        """Read rows back (the last row for an id wins) and cut off a torn final line."""
        rows: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return rows
        good_end = 0
        with open(self.path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    break
                rows[row["id"]] = row
                good_end += len(line)
        if good_end != self.path.stat().st_size:
            with open(self.path, "r+b") as f:
                f.truncate(good_end)
        return rows

    def append(self, row: dict[str, Any]) -> None:
        self._f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._f.flush()
        self.rows[row["id"]] = row

    def compact(self, order: Iterable[str]) -> list[dict[str, Any]]:
        """Rewrite the file with one row per id in `order` (ids without a row are left out)."""
        ordered = [self.rows[i] for i in order if i in self.rows]
        self._f.close()
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for row in ordered:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        return ordered

    def close(self) -> None:
        self._f.close()


class RunStore:
    """One run folder. `open` creates it, or reopens it to resume when the run's identity matches."""

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)

    @property
    def header_path(self) -> Path:
        return self.dir / "run.json"

    def samples_path(self, task: str) -> Path:
        return self.dir / "samples" / f"{task}.jsonl"

    def exists(self) -> bool:
        return self.header_path.exists()

    def open(self, header: dict[str, Any]) -> bool:
        """Start or resume the run; returns True when resuming. Refuses a folder holding a different run."""
        if self.exists():
            old = self.read_header()
            if old.get("config_hash") != header["config_hash"]:
                raise UserError(
                    f"{self.dir} holds a different run (its model, tasks, data or settings differ); "
                    "pass another --output or remove that folder"
                )
            header = {**header, "created": old.get("created", header.get("created")), "resumed": True}
            if "judges" in old:  # what judging cost so far; a resumed run adds to it
                header["judges"] = old["judges"]
            self.write_header(header)
            return True
        self.write_header(header)
        return False

    def read_header(self) -> dict[str, Any]:
        if not self.exists():
            raise UserError(f"{self.dir} is not a run folder (no run.json)")
        return read_json(self.header_path)

    def finished_header(self) -> dict[str, Any] | None:
        """The header of a run that finished (status "finished"); None for a missing, unreadable,
        unfinished or failed one."""
        try:
            header = read_json(self.header_path)
        except (OSError, ValueError):
            return None
        return header if header.get("status") == "finished" else None

    def write_header(self, header: dict[str, Any]) -> None:
        write_json_atomic(self.header_path, {"schema_version": SCHEMA_VERSION, **header})

    def log(self, task: str) -> SampleLog:
        return SampleLog(self.samples_path(task))

    def read_samples(self, task: str) -> list[dict[str, Any]]:
        path = self.samples_path(task)
        if not path.exists():
            raise UserError(f"{self.dir} has no samples for task {task!r} ({path} is missing)")
        log = SampleLog(path)
        log.close()
        return list(log.rows.values())

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json_atomic(self.dir / "metrics.json", metrics)

    def read_metrics(self) -> dict[str, Any]:
        return read_json(self.dir / "metrics.json")
