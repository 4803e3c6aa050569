"""Experiment trackers: `--report-to wandb|tensorboard|none` on `evalkit run`, `train` and `align`.

- `base`: the `Tracker` interface, `TrackerSettings` (report_to, project, run_name; transformers' names)
  and the one-line error naming the pip command when a tracker's library is missing.
- `wandb_tracker`, `tensorboard_tracker`: the two writers (extras `evalkit[wandb]`, `evalkit[tensorboard]`).
- `redaction`: what a tracker receives holds no API key, token or credentialed URL.
- `training`: a training run's tracker run (every train_log.jsonl row; continued on resume).
- `evaluation`: a stored run's metrics with intervals, its sample rows and its identity.

Only what evalkit already stores is logged, from the process that stores it.
"""

from evalkit.trackers.base import (
    TRACKERS,
    RunIdentity,
    Tracker,
    Trackers,
    TrackerSettings,
    open_trackers,
    parse_report_to,
)

__all__ = [
    "TRACKERS",
    "RunIdentity",
    "Tracker",
    "Trackers",
    "TrackerSettings",
    "open_trackers",
    "parse_report_to",
]
