"""Runs split across processes, launched as a user launches them: `python -m evalkit` (one process or a
`--shard`), `python -m torch.distributed.run` (torchrun), `accelerate launch`, or two processes given the
launcher's environment by hand; and the comparison of their run folders with a one-process run's, read
from the files (rows without their timing, metrics.json byte for byte)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
EVALKIT = [sys.executable, "-m", "evalkit"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
ACCELERATE += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]


def toy_args(n: int, batch_size: int = 2, task: str = "pope", model: str = "toy") -> list[str]:
    args = ["run", "--model", model, "--tasks", task, "--data", "toy", "--limit", str(n)]
    return [*args, "--batch-size", str(batch_size)]


def launch(
    prefix: list[str], args: list[str], env: dict | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """`prefix -m evalkit args` (prefix: EVALKIT's interpreter, TORCHRUN or ACCELERATE)."""
    command = [*EVALKIT, *args] if prefix is EVALKIT else [*prefix, "-m", "evalkit", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env or ENV, cwd=cwd)


def rows(run_dir: Path, task: str = "pope") -> list[dict]:
    """The task's rows in file order, without `latency_s` (the one field that is a wall-clock time)."""
    out = []
    for line in (Path(run_dir) / "samples" / f"{task}.jsonl").read_text().splitlines():
        row = json.loads(line)
        row.pop("latency_s")
        out.append(row)
    return out


def assert_same_run(run_dir: Path, reference: Path, task: str = "pope", finished: bool = True) -> None:
    """`run_dir` holds what the one-process run `reference` holds: rows, metrics.json, identity, status,
    and no file of its own beside them."""
    assert rows(run_dir, task) == rows(reference, task)
    assert (run_dir / "metrics.json").read_bytes() == (reference / "metrics.json").read_bytes()
    header, ref = (json.loads((d / "run.json").read_text()) for d in (run_dir, reference))
    assert header["config_hash"] == ref["config_hash"]
    assert header["status"] == ref["status"] == ("finished" if finished else "failed")
    assert "shard" not in header
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == [f"{task}.jsonl"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def by_hand(
    args: list[str], world: int = 2, per_rank: list[list[str]] | None = None
) -> list[subprocess.CompletedProcess]:
    """`world` evalkit processes given the environment torchrun gives its workers (rank R's command line
    ends with `per_rank[R]` when given), each one's result."""
    port = str(free_port())
    procs = []
    for rank in range(world):
        env = {**ENV, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "WORLD_SIZE": str(world)}
        env.update(RANK=str(rank), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        own = per_rank[rank] if per_rank else []
        procs.append(subprocess.Popen([*EVALKIT, *args, *own], text=True, env=env, **pipes))
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


def complete_rows(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def wait_for_rows(paths: list[Path], at_least: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Wait until one of `paths` holds `at_least` complete rows (or the process ended)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if any(complete_rows(p) >= at_least for p in paths):
            return
        time.sleep(0.02)


def children(pid: int) -> list[int]:
    """The process ids of `pid`'s children (Linux)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found
