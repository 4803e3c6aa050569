"""TensorBoard (`--report-to tensorboard`, `pip install 'evalkit[tensorboard]'`), written with tensorboardX.

tensorboardX rather than `torch.utils.tensorboard`: the latter imports the `tensorboard` package (with
grpcio, absl, werkzeug, markdown and a 20 MB data-server binary, about 55 MB), tensorboardX needs only
protobuf and numpy (under 4 MB); both write the same event files, which `tensorboard --logdir` shows.

Event files go to TENSORBOARD_LOGGING_DIR/<run name> when that variable is set (transformers reads the same
variable), else to <run folder or checkpoint>/tensorboard. Tables are text summaries (markdown) of at most
`MAX_TEXT_ROWS` rows, each cell cut to `MAX_CELL` characters (the rows in full stay in the run folder's
samples/). A NaN value (an interval over too few units, an undefined ratio) is no scalar point; the
`eval/metrics` text table shows it. A resumed training run writes to the same folder with `purge_step` at
its first step, so TensorBoard drops the points the interrupted run logged after its last save; an
evaluation logs at step 0 with `purge_step` 0, so a re-run replaces what the earlier one logged there.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from evalkit.trackers.base import RunIdentity, Tracker, import_error

MAX_TEXT_ROWS = 100
MAX_CELL = 200


def log_dir(identity: RunIdentity) -> Path:
    base = os.environ.get("TENSORBOARD_LOGGING_DIR")
    if base:
        return Path(base).expanduser() / identity.name
    return identity.folder / "tensorboard"


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def markdown_table(columns: list[str], rows: list[list[Any]]) -> str:
    """The first `MAX_TEXT_ROWS` rows as a markdown table, with a line saying how many were left out."""
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows[:MAX_TEXT_ROWS]]
    if len(rows) > MAX_TEXT_ROWS:
        lines.append(f"\nthe first {MAX_TEXT_ROWS} of {len(rows)} rows")
    return "\n".join(lines)


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def __init__(self, identity: RunIdentity, start_step: int = 0):
        try:
            from tensorboardX import SummaryWriter
        except ModuleNotFoundError as exc:
            raise import_error("tensorboard", exc) from None
        self.dir = log_dir(identity)
        # event files are named by the second they are opened in, and TensorBoard reads them in name order:
        # the suffix keeps a resumed run's file (opened in the same second) apart from, and after, the first
        suffix = f".{start_step:010d}.{os.getpid()}"
        self.writer = SummaryWriter(logdir=str(self.dir), purge_step=start_step, filename_suffix=suffix)
        config = json.dumps(identity.config, indent=2, sort_keys=True, default=str)
        self.writer.add_text(f"{identity.kind}/config", f"```\n{config}\n```", global_step=start_step)

    def log(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            if value is not None and not math.isnan(value):  # NaN: no point to draw (it is in the tables)
                self.writer.add_scalar(key, float(value), global_step=step)

    def log_table(self, key: str, columns: list[str], rows: list[list[Any]], step: int = 0) -> None:
        self.writer.add_text(key, markdown_table(columns, rows), global_step=step)

    def close(self, failed: bool = False) -> None:
        self.writer.close()
