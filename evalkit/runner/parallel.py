"""A run split across processes: data-parallel ranks (`torchrun` / `accelerate launch`, one model replica per
process) or independent shards (`--shard I/N`, merged later by `evalkit merge`).

Sample k of a task (in the task's sample order) belongs to part (k // B) % N, B the batch size, for ranks
and shards alike: each part answers whole batches of the one-process run (so a batched model sees the same
neighbours and padding), and a part's rows interleave back into the task's order without the data.

Data-parallel storage: each rank appends its rows to a file of its own, `samples/<task>.rank-R.jsonl`; once
every rank has answered the task, rank 0 alone folds those files into `samples/<task>.jsonl`, judges, and
compacts it. No two processes ever write one file, every row is on disk the moment it is answered (a kill of
any rank loses at most the row being written, as in a one-process run), and rows never travel over the
process group: only small status objects do. (Rank 0 as the only writer, receiving rows over gloo, would
lose every row in flight when it dies and make each rank wait on its writes.) Re-running the command resumes
from the task file and every rank file left, whatever the new number of processes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from evalkit.types import UserError
from evalkit.util.errors import CommandFailed

T = TypeVar("T")

#: how long ranks wait for each other at one step (rank 0 judging while the others wait is the long one)
WAIT = timedelta(hours=24)


@dataclass(frozen=True)
class Part:
    """Part `index` of `count`: the samples in blocks index, index + count, ... of `block` consecutive
    samples each. With `block` the batch size, a part's batches are batches of the one-process run, so a
    batched model answers each sample alongside the same neighbours (and padding) as in one process."""

    index: int = 0
    count: int = 1
    block: int = 1

    def owns(self, k: int) -> bool:
        return (k // self.block) % self.count == self.index

    def select(self, items: list[T]) -> list[T]:
        return [item for k, item in enumerate(items) if self.owns(k)]

    def size(self, n: int) -> int:
        return sum(1 for k in range(n) if self.owns(k))


def parse_shard(text: str) -> Part:
    """`--shard I/N` → Part(I, N); anything else is a one-line `UserError`."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or int(m[2]) < 1 or int(m[1]) >= int(m[2]):
        raise UserError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. --shard 0/4")
    return Part(int(m[1]), int(m[2]))


def interleave(parts: list[list[T]], block: int) -> list[T]:
    """The items of `parts` (each holding what `Part(i, len(parts), block).select` took) in their original
    order."""
    count = len(parts)
    taken = [0] * count
    out = []
    for k in range(sum(len(p) for p in parts)):
        i = (k // block) % count
        out.append(parts[i][taken[i]])
        taken[i] += 1
    return out


def rank_samples_path(samples_path: Path, rank: int) -> Path:
    return samples_path.with_name(f"{samples_path.stem}.rank-{rank}.jsonl")


def rank_files(samples_path: Path) -> list[Path]:
    """Every rank file of a task, of this launch or of an earlier one with another number of processes."""
    found = samples_path.parent.glob(f"{samples_path.stem}.rank-*.jsonl")
    return sorted(found, key=lambda p: int(re.findall(r"\d+", p.name.rsplit(".rank-", 1)[1])[0]))


def launched_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the launcher's environment (torchrun, accelerate launch, or
    Slurm's srun through either); (0, 1, 0) for a plain process."""

    def number(name: str, default: int) -> int:
        value = os.environ.get(name, "")
        if not value:
            return default
        if not value.isdigit():
            raise UserError(f"{name}={value!r} in the environment is not a number; launch with torchrun")
        return int(value)

    world = number("WORLD_SIZE", 1)
    rank = number("RANK", 0)
    local = number("LOCAL_RANK", rank)
    if world > 1 and rank >= world:
        raise UserError(f"RANK={rank} is not below WORLD_SIZE={world}; launch with torchrun")
    return (rank, world, local) if world > 1 else (0, 1, 0)


def is_main_process() -> bool:
    """True in a plain process and on rank 0 of a data-parallel launch (the one that prints)."""
    return launched_world()[0] == 0


class Failed(CommandFailed):
    """Another rank failed at the same step: its reason, so every rank stops with one line and exit 1."""


class Group:
    """The processes of a data-parallel launch. The default process group uses nccl where the replicas are on
    CUDA (gloo otherwise); a gloo group beside it carries the status objects, so control needs no device."""

    def __init__(self, rank: int, world: int, local_rank: int):
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self._control = None

    @classmethod
    def from_environment(cls) -> Group | None:
        rank, world, local = launched_world()
        return cls(rank, world, local) if world > 1 else None

    def device(self, asked: str) -> str:
        """The device of this rank's replica for `--device auto|cuda`: cuda:LOCAL_RANK where CUDA is there;
        cpu for auto without CUDA (cuda without it is a `UserError`)."""
        import torch

        if torch.cuda.is_available():
            if self.local_rank >= torch.cuda.device_count():
                raise UserError(
                    f"LOCAL_RANK={self.local_rank} but this machine shows {torch.cuda.device_count()} CUDA "
                    "devices: launch at most one process per GPU (--nproc_per_node)"
                )
            return f"cuda:{self.local_rank}"
        if asked == "cuda":
            raise UserError("--device cuda: CUDA is not available on this machine (use --device cpu)")
        return "cpu"

    def start(self, device: str) -> None:
        """Join the launch's process group: nccl when this rank's replica is on CUDA, gloo otherwise."""
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            cuda = device.startswith("cuda")
            if cuda:
                torch.cuda.set_device(torch.device(device))
            dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=WAIT)
        self._control = dist.new_group(backend="gloo", timeout=WAIT)

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()

    def gather(self, value: Any) -> list[Any]:
        import torch.distributed as dist

        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value, group=self._control)
        return values

    def step(self, fn: Callable[[], T]) -> T:
        """Run `fn` on every rank, then agree: when any rank raised, every rank raises (its own exception,
        or `Failed`/`UserError` with the first failing rank's message), so all of them exit alike."""
        error: BaseException | None = None
        result: Any = None
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 (re-raised below, after the other ranks know)
            error = exc
        report = None if error is None else (type(error).__name__, str(error), isinstance(error, UserError))
        reports = self.gather(report)
        if error is not None:
            raise error
        for rank, r in enumerate(reports):
            if r is not None:
                name, message, user = r
                if user:
                    raise UserError(message)
                raise Failed(f"rank {rank}: {name}: {message}")
        return result

    def share(self, value: T) -> T:
        """Rank 0's `value` on every rank."""
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0, group=self._control)
        return box[0]
