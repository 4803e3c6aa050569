"""The measurement side of `benchmarks/dpo_step.py`: peak memory above a baseline (`MemoryProbe`) and the
time between consecutive optimizer-step ends (`StepClock`); see that script's docstring for the method."""

from __future__ import annotations

import re
import time
from pathlib import Path


class MemoryProbe:
    """Peak memory allocated after `start()`, in MiB (see the module docstring)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.method = ""
        self.base = 0

    def start(self) -> None:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base, self.method = torch.cuda.memory_allocated(), "cuda max_memory_allocated"
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.method = "VmHWM (reset)"
        except OSError:
            self.method = "ru_maxrss (not reset)"
        self.base = _status_kib("VmRSS") * 1024

    def peak_mib(self) -> float:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        elif self.method.startswith("VmHWM"):
            peak = _status_kib("VmHWM") * 1024
        else:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return (peak - self.base) / 2**20


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field}")
    return int(match.group(1))


class StepClock:
    """Wall and CPU time at the end of every optimizer step; the memory peak at the end of the last one."""

    def __init__(self, total: int, probe: MemoryProbe) -> None:
        self.total, self.probe = total, probe
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.peak_mib: float | None = None

    def tick(self) -> None:
        if self.probe.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())
        if len(self.wall) == self.total:
            self.peak_mib = self.probe.peak_mib()

    def result(self, warmup: int, final_loss: float | None) -> dict:
        """Per-step seconds between consecutive step ends, the warm-up steps left out."""

        def steps(stamps: list[float]) -> list[float]:
            return [b - a for a, b in zip(stamps[warmup - 1 : -1], stamps[warmup:], strict=True)]

        if len(self.wall) != self.total or self.peak_mib is None:
            raise RuntimeError(f"saw {len(self.wall)} optimizer steps, expected {self.total}")
        return {
            "seconds": steps(self.wall),
            "cpu_seconds": steps(self.cpu),
            "peak_mib": self.peak_mib,
            "memory": self.probe.method,
            "final_loss": final_loss,
        }
