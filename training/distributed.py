"""One process, or several launched by `accelerate launch` / `torchrun` (data parallel through accelerate).

The trainer talks to `Processes`, whichever it is:
- `Single`: plain torch on one device.
- `Accelerated` (WORLD_SIZE > 1): `accelerate.Accelerator` wraps the model and optimizer (DDP, or FSDP /
  DeepSpeed when the accelerate config asks for them); each process takes its share of every micro-batch
  (rows rank, rank + world, …), gradients are averaged across processes, so a step sees the same global
  batch as one process would (exactly when the micro-batch divides evenly; a process left without an
  example runs one with weight 0). Data preparation (rejection sampling, BDHS) runs on the main process
  first and the others reuse its CKPT/prepared/ files; the main process alone writes the log, resume
  states and the checkpoint; logged metrics are averaged (counts summed) over all processes' micro-batches.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any


class Single:
    rank, world, is_main = 0, 1, True

    def __init__(self, device) -> None:
        self.device = device

    def prepare(self, model, optimizer):
        return model, optimizer

    def unwrap(self, model):
        return model

    def barrier(self) -> None:
        pass

    def share(self, examples: list[Any]) -> tuple[list[Any], float]:
        return examples, 1.0

    def no_sync(self, model, last: bool):
        return contextlib.nullcontext()

    def backward(self, loss) -> None:
        loss.backward()

    def clip(self, params, max_norm: float):
        import torch

        return torch.nn.utils.clip_grad_norm_(params, max_norm)

    def gather(self, part: dict[str, Any]) -> list[dict[str, Any]]:
        """Every process's `part` (the step's metrics), in rank order."""
        return [part]

    def close(self) -> None:
        pass


class Accelerated(Single):
    def __init__(self, bf16: bool) -> None:
        import torch
        from accelerate import Accelerator

        # without CUDA, accelerate only goes multi-process (gloo) when told it is on CPU
        self.acc = Accelerator(mixed_precision="bf16" if bf16 else "no", cpu=not torch.cuda.is_available())
        self.device = self.acc.device
        self.rank, self.world = self.acc.process_index, self.acc.num_processes
        self.is_main = self.acc.is_main_process

    def prepare(self, model, optimizer):
        return self.acc.prepare(model, optimizer)

    def unwrap(self, model):
        return self.acc.unwrap_model(model)

    def barrier(self) -> None:
        self.acc.wait_for_everyone()

    def share(self, examples: list[Any]) -> tuple[list[Any], float]:
        mine = examples[self.rank :: self.world]
        return (mine, 1.0) if mine else (examples[:1], 0.0)

    def no_sync(self, model, last: bool):
        return contextlib.nullcontext() if last else self.acc.no_sync(model)

    def backward(self, loss) -> None:
        self.acc.backward(loss)

    def clip(self, params, max_norm: float):
        return self.acc.clip_grad_norm_(params, max_norm)

    def gather(self, part: dict[str, Any]) -> list[dict[str, Any]]:
        import torch.distributed as dist

        parts: list[Any] = [None] * self.world
        dist.all_gather_object(parts, part)
        return parts

    def close(self) -> None:
        """Wait for every process (the main one is saving), then take the process group down: left to
        interpreter exit, gloo's threads can abort a process ("terminate called without an active
        exception") after its work is done."""
        import torch.distributed as dist

        self.acc.wait_for_everyone()
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def processes(device_name: str, bf16_if_cuda: bool = True) -> Single:
    """`Accelerated` under a multi-process launcher, else `Single` on `device_name` (auto: cuda if any)."""
    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return Accelerated(bf16=bf16_if_cuda and torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device_name == "auto":
        return Single(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return Single(torch.device(device_name))


def merge_parts(parts: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float], int, int]:
    """A step's metrics over every process's micro-batches: (means, counts, tokens, micro-batches)."""
    from evalkit.training.online import add_counts

    used = sum(p["used"] for p in parts)
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for p in parts:
        for k, v in p["sums"].items():
            sums[k] = sums.get(k, 0.0) + v
        add_counts(counts, p["counts"])
    return {k: v / used for k, v in sums.items()}, counts, sum(p["tokens"] for p in parts), used
