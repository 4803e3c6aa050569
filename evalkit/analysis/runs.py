"""Reading finished run folders for `evalkit compare` and `evalkit leaderboard`: header, metrics, scored
rows, judge fingerprints and task versions. Reads the store only; never loads a model or a judge. A run
may be named by a hub repository pushed with `evalkit push` (`hf://USER/NAME`, see `evalkit.hub.resolve`):
it is read from its snapshot in the Hugging Face cache."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from evalkit.hub.resolve import hub_reference, run_location
from evalkit.store import RunStore
from evalkit.task import MetricInfo, Task
from evalkit.types import UserError


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def short_hash(value: Any) -> str:
    return hashlib.sha256(canonical(value).encode()).hexdigest()[:8]


def metric_info(task: Task | None, metric: str) -> MetricInfo:
    """How `metric` reads, as the task declares it (`Task.metric`); for a task evalkit does not know
    (None: a run of a task outside the registry) `Task.default_metric`: higher is better, unit unstated."""
    return task.metric(metric) if isinstance(task, Task) else Task.default_metric


def metric_direction(task: Task | None, metric: str) -> int:
    """+1 when higher is better, −1 when lower is better, 0 when neither (see `metric_info`)."""
    return metric_info(task, metric).direction


@dataclass
class Run:
    """One run folder, read lazily."""

    path: Path
    header: dict[str, Any] = field(repr=False)

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """The run in a folder, or in the hub repository `path` names (`hf://USER/NAME`)."""
        ref = hub_reference(path)
        source = None if ref is None else f"hf://{ref[0]}" + (f"@{ref[1]}" if ref[1] else "")
        path = run_location(path)
        store = RunStore(Path(path))
        if not store.exists():
            raise UserError(f"{path} is not a run folder (no run.json)")
        try:
            header = store.read_header()
        except OSError as exc:
            raise UserError(f"{store.header_path}: unreadable ({exc.strerror or exc})") from None
        return cls(Path(path), header, source=source)

    #: damaged sample lines met while reading (`file:line: reason`), skipped
    problems: list[str] = field(default_factory=list, repr=False)
    #: the hub repository the run was read from (`hf://USER/NAME`), None for a local folder
    source: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """Where the run was read from, as the user named it: the hub repository, else the folder."""
        return self.source or str(self.path)

    @property
    def status(self) -> str:
        return str(self.header.get("status") or "unknown")

    @property
    def finished(self) -> bool:
        """Every sample was attempted and metrics were written ("failed" runs too: too many failures)."""
        return self.status in ("finished", "failed")

    @property
    def name(self) -> str:
        return str(self.header.get("run_id") or self.path.name)

    @property
    def model(self) -> str:
        """What was evaluated, as the command named it (an imported run: the answer file)."""
        command = self.header.get("command")
        command = command if isinstance(command, dict) else {}
        if command.get("import"):
            return f"imported: {Path(str(command.get('answers', '?'))).name}"
        model = self.header.get("model")
        return str(command.get("model") or (model.get("backend") if isinstance(model, dict) else None) or "?")

    @property
    def tasks(self) -> list[str]:
        tasks = self.header.get("tasks")
        return [str(t) for t in tasks] if isinstance(tasks, dict) else []

    @cached_property
    def metrics(self) -> dict[str, Any]:
        path = self.path / "metrics.json"
        if not path.exists():
            return {}
        try:
            return RunStore(self.path).read_metrics()
        except OSError as exc:
            raise UserError(f"{path}: unreadable ({exc.strerror or exc})") from None

    def _info(self, task: str) -> dict[str, Any]:
        info = (self.header.get("tasks") or {}).get(task)
        return info if isinstance(info, dict) else {}

    def task_version(self, task: str) -> str | None:
        summary = self.metrics.get(task)
        stored = summary.get("version") if isinstance(summary, dict) else None
        version = self._info(task).get("version", stored)
        return None if version is None else str(version)

    def data_version(self, task: str) -> str | None:
        data = self._info(task).get("data")
        version = data.get("version") if isinstance(data, dict) else None
        return None if version is None else str(version)

    def data_files(self, task: str) -> dict[str, str]:
        """Checksums of the data files the task read (file name → sha256), as run.json records them."""
        data = self._info(task).get("data")
        files = data.get("files") if isinstance(data, dict) else None
        return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}

    def rows(self, task: str) -> list[dict[str, Any]]:
        """Every stored row of the task (failed ones included); damaged lines are skipped and described in
        `problems`. Read only: the samples file is never changed."""
        return RunStore(self.path).read_samples(task, self.problems)

    def judge_fingerprints(self, task: str, rows: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """The distinct judge fingerprints behind the task's rows (from the rows when given, else from
        run.json's judge record, else from the stored rows); [] for a task without a judge."""
        if rows is None:
            judges = self.header.get("judges")
            judged = judges.get(task) if isinstance(judges, dict) else None
            if isinstance(judged, dict) and isinstance(judged.get("fingerprint"), dict):
                return [judged["fingerprint"]]
            if not RunStore(self.path).samples_path(task).exists():
                return []
            rows = self.rows(task)
        seen: dict[str, dict[str, Any]] = {}
        for r in rows:
            judge = r.get("judge")
            if isinstance(judge, dict) and isinstance(judge.get("fingerprint"), dict):
                seen.setdefault(canonical(judge["fingerprint"]), judge["fingerprint"])
        return list(seen.values())


def judge_label(fingerprints: list[dict[str, Any]]) -> str | None:
    """A short name for a set of judge fingerprints: the judge model(s) and a hash of the whole record."""
    if not fingerprints:
        return None
    models = sorted({str(fp.get("model") or "?") for fp in fingerprints})
    return f"{'+'.join(models)} #{short_hash(sorted(canonical(fp) for fp in fingerprints))[:6]}"


def find_runs(paths: list[str | Path], warnings: list[str] | None = None) -> list[Run]:
    """Run folders among `paths`: each path is a run folder or a folder of run folders (one level). A
    damaged run.json inside a folder of runs is skipped and described in `warnings` (when given). A hub
    repository (`hf://USER/NAME`) is one run."""
    runs: list[Run] = []
    for path in paths:
        if hub_reference(path) is not None:
            runs.append(Run.open(path))
            continue
        path = Path(path)
        if (path / "run.json").exists():
            runs.append(Run.open(path))
        elif path.is_dir():
            for p in sorted(path.glob("*/run.json")):
                try:
                    runs.append(Run.open(p.parent))
                except UserError as exc:
                    if warnings is None:
                        raise
                    warnings.append(f"{exc}; run left out")
        else:
            raise UserError(
                f"{path} is neither a run folder, a folder of run folders nor a hub repository (hf://USER/NAME)"
            )
    return runs
