"""Weights & Biases (`--report-to wandb`, `pip install 'evalkit[wandb]'`).

wandb reads its usual environment: WANDB_MODE (`offline` writes the run under WANDB_DIR, default the
current folder, for a later `wandb sync`), WANDB_DIR, WANDB_ENTITY, WANDB_RUN_GROUP, WANDB_TAGS,
WANDB_API_KEY.
The project is `--tracker-project`, else WANDB_PROJECT, else "evalkit"; the group is WANDB_RUN_GROUP, else
an align plan's output folder. Scalars are logged against the metric `step` (`define_metric`), not wandb's
own step counter, so a resumed training run that logs again the steps after its last save is accepted
(its points at those steps appear twice; the run is continued with `resume="allow"` and the id kept in
the checkpoint folder). Where the command line holds a secret (a URL with a password, a key's value),
wandb's system metadata, which records the command line, is turned off for the run.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from evalkit.trackers.base import RunIdentity, Tracker, TrackerSettings, import_error
from evalkit.trackers.redaction import holds_secret
from evalkit.types import UserError

DEFAULT_PROJECT = "evalkit"


#: WANDB_MODE values in which wandb writes locally and needs no credentials
LOCAL_MODES = ("offline", "disabled", "dryrun")


def login_error(exc: Exception) -> UserError:
    detail = " ".join(str(exc).split())
    return UserError(
        f"--report-to wandb: {detail}; log in with `wandb login`, or set WANDB_MODE=offline to write the run "
        "locally"
    )


def check_credentials() -> None:
    """Online W&B needs an API key: `wandb.login` without a round trip to the server (it reads
    WANDB_API_KEY or the netrc that `wandb login` writes, and prompts only at a terminal), so a missing key
    is one line before the work, not an error once the run has ended."""
    if (os.environ.get("WANDB_MODE") or "").lower() in LOCAL_MODES:
        return
    import wandb

    try:
        wandb.login(verify=False)
    except wandb.errors.UsageError as exc:
        raise login_error(exc) from None


class WandbTracker(Tracker):
    name = "wandb"

    def __init__(self, settings: TrackerSettings, identity: RunIdentity, resume: dict[str, Any] | None):
        try:
            import wandb
        except ModuleNotFoundError as exc:
            raise import_error("wandb", exc) from None
        self._wandb = wandb
        self.project = settings.project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT
        kwargs: dict[str, Any] = {
            "project": self.project,
            "name": identity.name,
            "job_type": identity.kind,
            "config": identity.config,
            "group": os.environ.get("WANDB_RUN_GROUP") or identity.group,
            "reinit": "create_new",  # a run of its own even where another is open (notebooks, align)
            # read now, not from the settings wandb kept at its first run in this process (a notebook that
            # changes WANDB_DIR or WANDB_MODE between runs)
            "dir": os.environ.get("WANDB_DIR") or None,
            "mode": os.environ.get("WANDB_MODE") or None,
        }
        if resume and resume.get("id"):
            kwargs.update(id=resume["id"], resume="allow")
        if holds_secret(sys.argv[1:]):
            kwargs["settings"] = wandb.Settings(x_disable_meta=True)
        try:
            self.run = wandb.init(**kwargs)
        except (wandb.errors.UsageError, wandb.errors.CommError) as exc:
            raise login_error(exc) from None
        self.run.define_metric("step")
        self.run.define_metric("*", step_metric="step")

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log({**{k: v for k, v in values.items() if v is not None}, "step": step})

    def log_table(self, key: str, columns: list[str], rows: list[list[Any]], step: int = 0) -> None:
        table = self._wandb.Table(columns=columns, data=rows, allow_mixed_types=True)
        self.run.log({key: table, "step": step})

    def resume_state(self) -> dict[str, Any]:
        return {"id": self.run.id, "project": self.project}

    def close(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)
