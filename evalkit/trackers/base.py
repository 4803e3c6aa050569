"""The tracker interface, `--report-to` parsing and the one-line error for a tracker library not installed.

A `Tracker` receives what evalkit already stores (train_log.jsonl rows, metrics.json, sample rows, the
run's identity) and writes it to an experiment tracker; `Trackers` fans one call out to every tracker of
`--report-to`. The names follow transformers' `TrainingArguments`: `report_to` (a list, or one string with
commas; "none" for none), `run_name`; `project` is `--tracker-project` (transformers' `project` is for
trackio alone; Weights & Biases reads WANDB_PROJECT, which the flag overrides).
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.types import UserError

#: tracker name -> (the module its writer imports, the extra that installs it)
LIBRARIES = {"wandb": ("wandb", "wandb"), "tensorboard": ("tensorboardX", "tensorboard")}
TRACKERS = tuple(LIBRARIES)


def parse_report_to(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """`"wandb,tensorboard"`, `["wandb"]`, `"none"` or None as the tracker names, in order, once each."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    names: list[str] = []
    for item in (i.strip().lower() for i in items):
        if item in ("", "none"):
            continue
        if item not in LIBRARIES:
            raise UserError(f"--report-to {item!r}: trackers are {', '.join(TRACKERS)} or none")
        if item not in names:
            names.append(item)
    return tuple(names)


def missing_library(name: str) -> UserError | None:
    """The one-line error when tracker `name`'s library is not installed, naming the pip command."""
    module, extra = LIBRARIES[name]
    if importlib.util.find_spec(module) is not None:
        return None
    return import_error(name, ModuleNotFoundError(f"No module named {module!r}", name=module))


def import_error(name: str, exc: ModuleNotFoundError) -> UserError:
    """`--report-to NAME: <package> is not installed (...): pip install 'evalkit[extra]'`."""
    from evalkit.util.dependencies import missing_dependency

    missing = missing_dependency(exc)
    if missing is None:  # evalkit's own module: a bug, kept as it is
        raise exc
    return UserError(f"--report-to {name}: {missing}")


@dataclass(frozen=True)
class TrackerSettings:
    """Where a run reports to: `report_to` (tracker names), `project` (W&B project; default WANDB_PROJECT,
    else "evalkit") and `run_name` (default: the run folder's or checkpoint's name)."""

    report_to: tuple[str, ...] = ()
    project: str | None = None
    run_name: str | None = None

    @classmethod
    def of(
        cls, report_to: str | Sequence[str] | None, project: str | None = None, run_name: str | None = None
    ) -> TrackerSettings:
        return cls(parse_report_to(report_to), project or None, run_name or None)

    def __bool__(self) -> bool:
        return bool(self.report_to)

    def check_ready(self) -> None:
        """Before any work: every library of `report_to` importable, else one line naming the pip command;
        and W&B's credentials where it runs online (`wandb_tracker.check_credentials`), so a missing login
        stops the command now rather than once the run has ended."""
        for name in self.report_to:
            error = missing_library(name)
            if error is not None:
                raise error
        if "wandb" in self.report_to:
            from evalkit.trackers.wandb_tracker import check_credentials

            check_credentials()


class Tracker(ABC):
    """One tracker run. Values are already free of secrets (`evalkit.trackers.redaction`)."""

    name: str

    @abstractmethod
    def log(self, values: dict[str, float], step: int) -> None:
        """Scalars at `step` (`train/loss`, `eval/pope/f1_mean`, ...)."""

    @abstractmethod
    def log_table(self, key: str, columns: list[str], rows: list[list[Any]], step: int = 0) -> None:
        """A table (per-sample rows, the metrics with their intervals, the alignment-tax table)."""

    def resume_state(self) -> dict[str, Any] | None:
        """What a resumed training run needs to continue this tracker run (None: nothing)."""
        return None

    @abstractmethod
    def close(self, failed: bool = False) -> None: ...


class Trackers:
    """Every tracker of one run; each call goes to each of them. Empty for `--report-to none`."""

    def __init__(self, trackers: list[Tracker] | None = None):
        self.trackers = list(trackers or [])

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def log(self, values: dict[str, float], step: int) -> None:
        for t in self.trackers:
            t.log(values, step)

    def log_table(self, key: str, columns: list[str], rows: list[list[Any]], step: int = 0) -> None:
        for t in self.trackers:
            t.log_table(key, columns, rows, step)

    def resume_state(self) -> dict[str, Any]:
        return {t.name: s for t in self.trackers if (s := t.resume_state()) is not None}

    def close(self, failed: bool = False) -> None:
        for t in self.trackers:
            t.close(failed)
        self.trackers = []


@dataclass
class RunIdentity:
    """What names a tracker run: its display name, kind (`train`, `eval`, `align`), the configuration
    logged as the run's config, the folder its local files go beside, and a group (an align plan's)."""

    name: str
    kind: str
    config: dict[str, Any]
    folder: Path
    group: str | None = None


def open_trackers(
    settings: TrackerSettings,
    identity: RunIdentity,
    *,
    resume: dict[str, Any] | None = None,
    start_step: int = 0,
) -> Trackers:
    """A tracker run per name in `settings.report_to`. `resume` is what `Trackers.resume_state` returned
    for the interrupted run (a training run continued), `start_step` the first step logged from now on."""
    from evalkit.trackers.redaction import scrub

    name, config, group = scrub([settings.run_name or identity.name, identity.config, identity.group])
    identity = RunIdentity(name, identity.kind, config, identity.folder, group)
    opened: list[Tracker] = []
    try:
        for tracker in settings.report_to:
            if tracker == "wandb":
                from evalkit.trackers.wandb_tracker import WandbTracker

                opened.append(WandbTracker(settings, identity, (resume or {}).get("wandb")))
            else:
                from evalkit.trackers.tensorboard_tracker import TensorBoardTracker

                opened.append(TensorBoardTracker(identity, start_step))
    except BaseException:
        Trackers(opened).close(failed=True)
        raise
    return Trackers(opened)
