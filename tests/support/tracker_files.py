"""Reading back what the trackers wrote, with the libraries' own record definitions.

W&B (0.31) ships no Python reader of its offline `.wandb` files: `run-<id>.wandb` is a LevelDB-style log
(a 7-byte header `:W&B` + magic + version, then 32 KiB blocks of records, each with a CRC-32 (IEEE),
a length and a FULL / FIRST / MIDDLE / LAST type) whose payloads are `wandb.proto.wandb_internal_pb2.Record`
messages; `read_wandb_run` checks every CRC and parses the records with that message class. A logged table
is a history value naming its `files/media/table/...table.json` file, which holds columns and data.
TensorBoard event files are TFRecord files of `Event` messages (tensorboardX's own `event_pb2`, the same
schema as TensorBoard's); `read_event_dir` applies TensorBoard's rule for a restarted writer (a
SessionLog START at step s drops the points already read at steps >= s), as its EventAccumulator does.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _records(data: bytes) -> list[bytes]:
    assert data[:4] == b":W&B", data[:7]
    out: list[bytes] = []
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if _BLOCK - pos % _BLOCK < 7:  # a block's tail too short for a header is padding
            pos += _BLOCK - pos % _BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        assert zlib.crc32(bytes([kind]) + chunk) == crc, f"CRC mismatch at byte {pos}"
        if kind == _FULL:
            out.append(chunk)
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            out.append(pending + chunk)
    return out


def _items(items) -> dict[str, Any]:
    """History or summary items as a dict; an item with a nested key (a table's fields) nests."""
    out: dict[str, Any] = {}
    for item in items:
        keys = list(item.nested_key) or [item.key]
        at = out
        for k in keys[:-1]:
            at = at.setdefault(k, {})
        at[keys[-1]] = json.loads(item.value_json)
    return out


@dataclass
class WandbRun:
    folder: Path
    run_id: str
    name: str
    project: str
    group: str
    job_type: str
    resumed: bool
    config: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    exit_code: int | None = None

    def table(self, key: str) -> tuple[list[str], list[list[Any]]]:
        """The last table logged under `key`: (columns, rows), read from its table file."""
        ref = next(h[key] for h in reversed(self.history) if key in h)
        data = json.loads((self.folder / "files" / ref["path"]).read_text())
        return data["columns"], data["data"]


def read_wandb_run(folder: Path) -> WandbRun:
    """An offline run folder (`offline-run-*`) read back from its `.wandb` file."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = folder.glob("run-*.wandb")
    run: WandbRun | None = None
    history, summary, args, exit_code = [], {}, [], None
    for raw in _records(path.read_bytes()):
        record = pb.Record.FromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            config = {u.key: json.loads(u.value_json) for u in r.config.update}
            names = (r.run_id, r.display_name, r.project, r.run_group, r.job_type)
            run = WandbRun(folder, *names, r.resumed, config)
        elif kind == "history":
            history.append(_items(record.history.item))
        elif kind == "summary":
            summary.update(_items(record.summary.update))
        elif kind == "environment":
            args += list(record.environment.args)
        elif kind == "exit":
            exit_code = record.exit.exit_code
    assert run is not None, f"{path} has no run record"
    run.history, run.summary, run.args, run.exit_code = history, summary, args, exit_code
    return run


def wandb_runs(wandb_dir: Path) -> list[WandbRun]:
    """Every offline run under WANDB_DIR, oldest first."""
    return [read_wandb_run(f) for f in sorted((wandb_dir / "wandb").glob("offline-run-*"))]


@dataclass
class Events:
    scalars: dict[str, dict[int, float]] = field(default_factory=dict)
    texts: dict[str, dict[int, str]] = field(default_factory=dict)


def _tfrecords(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos : pos + 8])
        out.append(data[pos + 12 : pos + 12 + length])
        pos += 12 + length + 4
    return out


def read_event_dir(folder: Path) -> Events:
    """Every event file of a TensorBoard log folder, in name order, as TensorBoard reads them."""
    from tensorboardX.proto.event_pb2 import Event, SessionLog

    found = Events()
    for path in sorted(folder.glob("events.out.tfevents.*")):  # TensorBoard's order: by name
        for raw in _tfrecords(path.read_bytes()):
            event = Event.FromString(raw)
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                for series in (*found.scalars.values(), *found.texts.values()):
                    for step in [s for s in series if s >= event.step]:
                        del series[step]
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    found.scalars.setdefault(value.tag, {})[event.step] = value.simple_value
                elif value.HasField("tensor") and value.tensor.string_val:
                    text = value.tensor.string_val[0].decode()
                    found.texts.setdefault(value.tag.removesuffix("/text_summary"), {})[event.step] = text
                elif value.HasField("tensor") and value.tensor.float_val:
                    found.scalars.setdefault(value.tag, {})[event.step] = value.tensor.float_val[0]
    return found
