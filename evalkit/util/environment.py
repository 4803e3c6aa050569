"""Where evalkit keeps its caches, and what run.json records about the software a run used."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import evalkit

PACKAGES = ("torch", "transformers", "tokenizers", "numpy", "pillow", "aiohttp", "safetensors", "vllm")


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform(), "evalkit": evalkit.__version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def cache_root() -> Path:
    """Models, toy data, weight digests and the judge cache: `$EVALKIT_CACHE`, else `~/.cache/evalkit`
    (read when called, never at import time)."""
    return Path(os.environ.get("EVALKIT_CACHE", Path.home() / ".cache" / "evalkit"))


def judge_cache_path() -> Path:
    """The judge cache: `$EVALKIT_JUDGE_CACHE`, else `judge_cache.sqlite` in `cache_root()` (read when
    called)."""
    override = os.environ.get("EVALKIT_JUDGE_CACHE")
    return Path(override) if override else cache_root() / "judge_cache.sqlite"


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Torch runs on `n` intra-op threads inside the block (None: as it is), restored after. Results of
    float reductions depend on the thread count, so work meant to be reproducible pins it."""
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. under taskset, cgroups or Slurm), else the
    machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """torch's intra-op threads for `evalkit run` when `--threads` is not given: `OMP_NUM_THREADS` when set
    (torchrun sets it to 1 for several processes), else this process's share of the CPUs it may run on
    (divided among the `LOCAL_WORLD_SIZE` processes of a launcher on this machine)."""
    given = os.environ.get("OMP_NUM_THREADS", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    local = os.environ.get("LOCAL_WORLD_SIZE", "")
    share = int(local) if local.isdigit() and int(local) > 0 else 1
    return max(1, available_cpus() // share)


def set_torch_threads(n: int) -> None:
    """torch runs its CPU kernels on `n` intra-op threads from now on (n >= 1)."""
    import torch

    torch.set_num_threads(n)
