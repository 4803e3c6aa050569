"""A training run's tracker run: opened by the main process once the run is set up, fed every row the
trainer writes to train_log.jsonl, and continued when the run resumes.

The config is train_config.json's content (the settings, the data's checksum and summary, the step count,
the package versions); each step logs the row's fields as `train/<field>` (loss, rewards/chosen,
rewards/rejected, rewards/margins, rewards/accuracies, grad_norm, lr, tokens/s, seconds, and the online
methods' counts) at the row's `step`. CKPT/trackers.json keeps what a resumed run needs to continue the
same tracker run (W&B's run id; TensorBoard needs only its folder).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from evalkit.trackers.base import RunIdentity, Trackers, TrackerSettings, open_trackers

STATE_FILE = "trackers.json"


def step_values(row: dict[str, Any]) -> dict[str, float]:
    """A train_log.jsonl row as the scalars of its step (`step` itself is the x axis; None is left out)."""
    return {
        f"train/{k}": v
        for k, v in row.items()
        if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)
    }


def _read_state(out: Path) -> dict[str, Any]:
    try:
        state = json.loads((out / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def open_for_training(
    settings: TrackerSettings, out: Path, info: dict[str, Any], start: int, group: str | None = None
) -> Trackers:
    """The trackers of a training run into `out` whose loop starts at step `start` (> 0: resumed, and the
    tracker run of the interrupted one is continued where CKPT/trackers.json names it)."""
    if not settings:
        return Trackers()
    resume = _read_state(out) if start > 0 else None
    if start > 0 and "wandb" in settings.report_to and not (resume or {}).get("wandb"):
        print(
            f"trackers: {out / STATE_FILE} names no W&B run to continue; step {start} on goes to a new one",
            file=sys.stderr,
            flush=True,
        )
    identity = RunIdentity(out.name, "train", info, out, group)
    trackers = open_trackers(settings, identity, resume=resume, start_step=start)
    state = {**_read_state(out), **trackers.resume_state()}
    tmp = out / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
    os.replace(tmp, out / STATE_FILE)
    return trackers
