"""The results store: one folder per run, per-sample JSONL as the source of truth.

    results/<run_id>/run.json            what ran: versions, model fingerprint, data checksums, settings
    results/<run_id>/samples/<task>.jsonl one row per sample, appended and flushed as it finishes
    results/<run_id>/metrics.json         recomputed from the sample rows at the end (and by `rescore`)

A killed process loses at most the row being written. Only a resuming `run` (`SampleLog`) ever rewrites a
samples file: it cuts a torn final line, keeps every other parseable row (a damaged line in the middle
loses only itself) and, when the task finishes, rewrites the file (atomically) in the task's sample order
with exactly one row per sample. Readers (`read_rows`, `RunStore.read_samples`) never write: a damaged
line is reported as `file:line: reason` and skipped. Every file written honours the umask.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evalkit.types import UserError
from evalkit.util.errors import StorageError, describe_os_error

SCHEMA_VERSION = 1


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, write) -> None:
    """Write through a temp file in the same folder, fsync, chmod to what the umask allows (mkstemp makes
    0600), then rename over `path`: a crash or a full disk leaves the old file whole. OSError becomes a
    `StorageError` naming the path and the fix."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise StorageError(describe_os_error(exc, path)) from None


def write_json_atomic(path: Path, data: Any) -> None:
    def write(f):
        json.dump(data, f, indent=2, sort_keys=False, allow_nan=True)
        f.write("\n")

    write_atomic(path, write)


def read_json_object(path: Path, what: str = "file") -> dict[str, Any]:
    """A JSON object from `path`; a truncated, non-UTF-8, too deeply nested or non-object file is a
    `UserError` naming the path (an unreadable one an OSError, as for any file)."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except UnicodeDecodeError as exc:
        why = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise UserError(f"{path}: {why}; the {what} is damaged") from None
    except json.JSONDecodeError as exc:
        why = f"not valid JSON ({exc.msg}, line {exc.lineno})"
        raise UserError(f"{path}: {why}; the {what} is damaged") from None
    except RecursionError:
        raise UserError(f"{path}: JSON nested too deeply; the {what} is damaged") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, found {type(data).__name__}; the {what} is damaged")
    return data


def parse_row(line: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """One stored line → (row, None), or (None, why it is not a row)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 ({exc.reason} at byte {exc.start})"
    if "\x00" in text:
        return None, "holds NUL bytes"
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg})"
    except RecursionError:
        return None, "JSON nested too deeply"
    if not isinstance(row, dict):
        return None, f"a JSON {type(row).__name__}, not an object"
    if not isinstance(row.get("id"), str) or not row["id"]:
        return None, "no string 'id'"
    error = row.get("error")
    if error is not None and not (isinstance(error, dict) and isinstance(error.get("type"), str)):
        return None, "'error' is neither null nor an object with a 'type'"
    return row, None


def read_rows(path: Path) -> tuple[dict[str, dict[str, Any]], list[str], int]:
    """Read a samples file without changing it: (rows by id, the last row for an id winning; one
    `file:line: reason` per damaged line; the byte offset where an unterminated final line starts, or the
    size). An unterminated final line that still parses as a row is kept (a hand-edited file)."""
    rows: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    end = 0
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    for number, line in enumerate(lines, 1):
        last = number == len(lines)
        if last and not line:
            break
        if last:  # no newline: a write cut short by a kill or a full disk, or a hand-edited file
            row, _ = parse_row(line)
            if row is None:
                problems.append(f"{path}:{number}: torn final line (no newline), skipped")
            else:
                rows[row["id"]] = row
            break
        end += len(line) + 1
        if not line.strip():
            continue
        row, why = parse_row(line)
        if row is None:
            problems.append(f"{path}:{number}: {why}, skipped")
        else:
            rows[row["id"]] = row
    return rows, problems, end


class SampleLog:
    """Append-only JSONL of sample rows for one task, robust to a crash mid-write (used by `run` only).
    Appends are locked: a judging thread and the generation loop may write the same log."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.rows, self.problems = self._recover()
            self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        except OSError as exc:
            raise StorageError(describe_os_error(exc, exc.filename or path)) from None

    def _recover(self) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """Read rows back and cut off a torn final line (so the next row starts on a line of its own);
        every parseable row is kept, damaged lines are dropped at the next compaction."""
        if not self.path.exists():
            return {}, []
        rows, problems, end = read_rows(self.path)
        for problem in problems:  # reported, never silent: the sample is answered again
            print(f"warning: {problem}; that sample is answered again", file=sys.stderr, flush=True)
        size = self.path.stat().st_size
        if end != size:
            with open(self.path, "r+b") as f:
                if problems and "torn final line" in problems[-1]:
                    f.truncate(end)
                else:  # a whole row without its newline: keep it, end the line
                    f.seek(size)
                    f.write(b"\n")
        return rows, problems

    def append(self, row: dict[str, Any]) -> None:
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with self._lock:
            try:
                self._f.write(line)
                self._f.flush()
            except OSError as exc:
                raise StorageError(describe_os_error(exc, exc.filename or self.path)) from None
            self.rows[row["id"]] = row

    def compact(self, order: Iterable[str]) -> list[dict[str, Any]]:
        """Rewrite the file with one row per id in `order` (ids without a row are left out)."""
        ordered = [self.rows[i] for i in order if i in self.rows]
        self._f.close()

        def write(f):
            for row in ordered:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

        write_atomic(self.path, write)
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        return ordered

    def close(self) -> None:
        try:
            self._f.close()
        except OSError:  # the failed write was reported where it happened; what was flushed is stored
            pass


def check_output(path: str | Path) -> None:
    """Refuse, before anything is loaded, an `--output` (or results folder) that is a file or that cannot
    be written: a file is probed in it, or in its nearest existing parent (root passes `os.access`)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"--output {path} is a file, not a folder: pass a folder path")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UserError(f"--output {path}: {probe} is a file, not a folder: pass another path")
    if (path / "run.json").is_file():
        RunStore(path).read_header()  # a damaged run.json is named now, not after the model loads
    try:  # a real write: os.access ignores read-only mounts' details and is always true for root
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".evalkit-probe.")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise UserError(f"--output {path}: {describe_os_error(exc, probe)}") from None


def _part(header: dict[str, Any]) -> str:
    shard = header.get("shard")
    if not isinstance(shard, dict):
        return "the whole"
    return f"shard {shard.get('index')}/{shard.get('count')} in batches of {shard.get('block', 1)}"


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
            if old.get("shard") != header.get("shard"):
                raise UserError(
                    f"{self.dir} holds {_part(old)} of this run, not {_part(header)}; "
                    "pass another --output (or the same --shard and --batch-size) or remove that folder"
                )
            header = {**header, "created": old.get("created", header.get("created")), "resumed": True}
            if "judges" in old:  # what judging cost so far; a resumed run adds to it
                header["judges"] = old["judges"]
            self.write_header(header)
            return True
        self.write_header(header)
        return False

    def read_header(self) -> dict[str, Any]:
        """run.json as a checked object (`UserError` when missing or damaged)."""
        if not self.exists():
            raise UserError(f"{self.dir} is not a run folder (no run.json)")
        header = read_json_object(self.header_path, "run header")
        tasks = header.get("tasks", {})
        if not isinstance(tasks, dict) or not all(isinstance(v, dict) for v in tasks.values()):
            raise UserError(
                f"{self.header_path}: 'tasks' is not an object of objects; the run header is damaged"
            )
        return header

    def finished_header(self) -> dict[str, Any] | None:
        """The header of a run that finished (status "finished"); None for a missing, unreadable,
        unfinished or failed one."""
        try:
            header = self.read_header()
        except (OSError, UserError):
            return None
        return header if header.get("status") == "finished" else None

    def write_header(self, header: dict[str, Any]) -> None:
        write_json_atomic(self.header_path, {"schema_version": SCHEMA_VERSION, **header})

    def log(self, task: str) -> SampleLog:
        return SampleLog(self.samples_path(task))

    def read_samples(self, task: str, problems: list[str] | None = None) -> list[dict[str, Any]]:
        """The task's rows, read only: damaged lines are skipped and described in `problems` (when
        given; otherwise the first one is a `UserError`)."""
        path = self.samples_path(task)
        if not path.exists():
            raise UserError(f"{self.dir} has no samples for task {task!r} ({path} is missing)")
        rows, found, _ = read_rows(path)
        if found and problems is None:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise UserError(f"{found[0]}{more}")
        if problems is not None:
            problems.extend(found)
        return list(rows.values())

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json_atomic(self.dir / "metrics.json", metrics)

    def read_metrics(self) -> dict[str, Any]:
        return read_json_object(self.dir / "metrics.json", "metrics file")
