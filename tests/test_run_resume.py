"""`evalkit run` end to end on the toy model: a run killed with SIGKILL and re-run ends exactly like an
uninterrupted run, with no sample generated twice and no duplicate rows; `rescore` reproduces metrics."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

ARGS = ["run", "--model", "toy", "--tasks", "pope", "--data", "toy", "--limit", "150", "--batch-size", "2"]


def evalkit(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "evalkit", *args], capture_output=True, text=True, timeout=600, **kw
    )


def complete_rows(path):
    if not path.exists():
        return 0
    return path.read_bytes().count(b"\n")


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    clean = evalkit(*ARGS, "--output", str(tmp_path / "clean"), "--json")
    assert clean.returncode == 0, clean.stderr
    clean_metrics = json.loads(clean.stdout)["metrics"]

    run_dir = tmp_path / "killed"
    samples = run_dir / "samples" / "pope.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "evalkit", *ARGS, "--output", str(run_dir), "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while complete_rows(samples) < 40 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = complete_rows(samples)
    assert 40 <= done_at_kill < 150, "the run must be killed mid-task"

    resumed = evalkit(*ARGS, "--output", str(run_dir), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["metrics"] == clean_metrics

    header = json.loads((run_dir / "run.json").read_text())
    assert header["resumed"] is True and header["status"] == "finished"
    assert header["timings"]["pope"]["generated"] == 150 - done_at_kill  # nothing generated twice
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    clean_rows = [
        json.loads(line) for line in (tmp_path / "clean/samples/pope.jsonl").read_text().splitlines()
    ]
    assert [r["id"] for r in rows] == [r["id"] for r in clean_rows]  # one row per sample, in task order
    assert [r["response"] for r in rows] == [r["response"] for r in clean_rows]

    # rescore recomputes the same metrics from the stored rows alone
    rescored = evalkit("rescore", str(run_dir), "--json")
    assert rescored.returncode == 0, rescored.stderr
    assert json.loads(rescored.stdout)["metrics"] == clean_metrics
