"""`evalkit run` end to end on the toy model: a run killed with SIGKILL (once, or repeatedly at random
points) or stopped by a full disk and re-run ends exactly like an uninterrupted run, with no stored row
lost, no sample generated twice and no duplicate rows; `rescore` reproduces metrics."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from evalkit.store import read_rows

N = 60  # samples: a few seconds of generation, killed mid-task
ARGS = ["run", "--model", "toy", "--tasks", "pope", "--data", "toy", "--limit", str(N), "--batch-size", "2"]


def evalkit(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "evalkit", *args], capture_output=True, text=True, timeout=600, **kw
    )


def complete_rows(path):
    if not path.exists():
        return 0
    return path.read_bytes().count(b"\n")


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """An uninterrupted run: (its folder, its metrics)."""
    out = tmp_path_factory.mktemp("clean") / "clean"
    proc = evalkit(*ARGS, "--output", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)["metrics"]


def stored_rows(path):
    return read_rows(path)[0] if path.exists() else {}


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, clean):
    clean_dir, clean_metrics = clean

    run_dir = tmp_path / "killed"
    samples = run_dir / "samples" / "pope.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "evalkit", *ARGS, "--output", str(run_dir), "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while complete_rows(samples) < 20 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = complete_rows(samples)
    assert 20 <= done_at_kill < N, "the run must be killed mid-task"

    resumed = evalkit(*ARGS, "--output", str(run_dir), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["metrics"] == clean_metrics

    header = json.loads((run_dir / "run.json").read_text())
    assert header["resumed"] is True and header["status"] == "finished"
    assert header["timings"]["pope"]["generated"] == N - done_at_kill  # nothing generated twice
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    clean_rows = [json.loads(line) for line in (clean_dir / "samples/pope.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [r["id"] for r in clean_rows]  # one row per sample, in task order
    assert [r["response"] for r in rows] == [r["response"] for r in clean_rows]

    # rescore recomputes the same metrics from the stored rows alone
    rescored = evalkit("rescore", str(run_dir), "--json")
    assert rescored.returncode == 0, rescored.stderr
    assert json.loads(rescored.stdout)["metrics"] == clean_metrics


@pytest.mark.slow
def test_repeated_sigkill_at_random_points_loses_nothing(tmp_path, clean):
    """Three SIGKILLs at random row counts (seeded, bounded in time), then a run to the end."""
    clean_dir, clean_metrics = clean
    run_dir = tmp_path / "killed"
    samples = run_dir / "samples" / "pope.jsonl"
    rng = random.Random(12)
    deadline = time.time() + 120
    before: dict = {}
    for target in sorted(rng.sample(range(3, 40), 3)):  # 20+ rows left: the kill lands before the end
        proc = subprocess.Popen(
            [sys.executable, "-m", "evalkit", *ARGS, "--output", str(run_dir), "--json"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while complete_rows(samples) < target and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(rng.random() * 0.03)  # anywhere, even mid-row (a toy batch of 2 takes ~20-50 ms)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        after = stored_rows(samples)
        assert all(after[i] == row for i, row in before.items())  # no stored row lost or changed
        assert len(after) < N, "each kill must land mid-task"
        before = after
    final = evalkit(*ARGS, "--output", str(run_dir), "--json")
    assert final.returncode == 0, final.stderr
    assert json.loads(final.stdout)["metrics"] == clean_metrics
    header = json.loads((run_dir / "run.json").read_text())
    assert header["timings"]["pope"]["generated"] == N - len(before)
    rows = stored_rows(samples)
    assert list(rows) == list(stored_rows(clean_dir / "samples" / "pope.jsonl"))
    assert all(rows[i] == row for i, row in before.items())


@pytest.mark.slow
def test_full_disk_stops_with_one_line_keeps_rows_and_resumes(tmpfs, clean):
    out = tmpfs / "run"
    full = evalkit(*ARGS, "--output", str(out), "--json")
    assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr
    (line,) = [x for x in full.stderr.splitlines() if x.startswith("error:")]
    assert str(out) in line and "disk is full" in line and "re-run the same command" in line
    kept = stored_rows(out / "samples" / "pope.jsonl")
    assert 0 < len(kept) < N  # stopped mid-task, with the rows written so far
    subprocess.run(["mount", "-o", "remount,size=1m", str(tmpfs)], check=True)
    resumed = evalkit(*ARGS, "--output", str(out), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["metrics"] == clean[1]
    header = json.loads((out / "run.json").read_text())
    assert header["resumed"] is True and header["timings"]["pope"]["generated"] == N - len(kept)
    final = stored_rows(out / "samples" / "pope.jsonl")
    assert all(final[i] == row for i, row in kept.items())  # nothing stored was lost or redone
