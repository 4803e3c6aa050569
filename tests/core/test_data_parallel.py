"""Data-parallel `evalkit run` on the toy model: two processes on gloo under torchrun or `accelerate launch`
leave the run folder a one-process run leaves (rows, metrics.json byte for byte, config_hash); a rank
killed mid-run resumes, with two processes or one, to that same folder without answering a stored sample
again; judging runs once, on rank 0; a refusal on one rank ends every rank with the same line and exit 2."""

import json
import os
import signal
import subprocess

import pytest
from support.openai_server import FakeOpenAIServer
from support.split_runs import (
    ACCELERATE,
    ENV,
    EVALKIT,
    TORCHRUN,
    assert_same_run,
    by_hand,
    children,
    launch,
    toy_args,
    wait_for_rows,
)

from evalkit.store import read_rows

N = 18  # not a multiple of 2 x the batch size: the ranks get parts of different sizes
ARGS = toy_args(N, batch_size=4)


@pytest.fixture(scope="module")
def one(tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "run"
    proc = launch(EVALKIT, [*ARGS, "--output", str(out)])
    assert proc.returncode == 0, proc.stderr
    return out


def test_torchrun_two_processes_leave_the_one_process_run_folder(tmp_path, one):
    proc = launch(TORCHRUN, [*ARGS, "--output", str(tmp_path / "dp"), "--json"])
    assert proc.returncode == 0, proc.stderr
    assert_same_run(tmp_path / "dp", one)
    printed = json.loads(proc.stdout)  # rank 0 alone prints the table
    assert printed["metrics"] == json.loads((one / "metrics.json").read_text())


def test_accelerate_launch_two_processes_leave_the_one_process_run_folder(tmp_path, one):
    proc = launch(ACCELERATE, [*ARGS, "--output", str(tmp_path / "acc")])
    assert proc.returncode == 0, proc.stderr
    assert_same_run(tmp_path / "acc", one)


def test_the_default_run_folder_is_the_one_process_runs(tmp_path, one):
    proc = launch(TORCHRUN, ARGS, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    chash = json.loads((one / "run.json").read_text())["config_hash"]
    assert_same_run(tmp_path / "results" / f"toy-{chash}", one)  # the world size is no part of the identity


@pytest.mark.slow
@pytest.mark.parametrize("resume_with", ["torchrun", "one process"])
def test_a_killed_rank_resumes_to_the_one_process_run(tmp_path, resume_with):
    n = 60
    args = toy_args(n, batch_size=2)
    reference = tmp_path / "one"
    assert launch(EVALKIT, [*args, "--output", str(reference)]).returncode == 0
    run_dir = tmp_path / "dp"
    rank_files = [run_dir / "samples" / f"pope.rank-{r}.jsonl" for r in (0, 1)]
    proc = subprocess.Popen(
        [*TORCHRUN, "-m", "evalkit", *args, "--output", str(run_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
        start_new_session=True,
    )
    try:
        wait_for_rows(rank_files[1:], 6, proc)
        workers = children(proc.pid)
        assert len(workers) == 2, "torchrun runs one process per rank"
        os.kill(workers[1], signal.SIGKILL)  # torchrun then stops the other rank and exits non-zero
        assert proc.wait(timeout=120) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    kept = sum(len(read_rows(p)[0]) for p in rank_files if p.exists())
    assert 6 <= kept < n, "the launch must be killed mid-run"

    prefix = TORCHRUN if resume_with == "torchrun" else EVALKIT
    resumed = launch(prefix, [*args, "--output", str(run_dir)])
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(run_dir, reference)
    header = json.loads((run_dir / "run.json").read_text())
    assert header["timings"]["pope"]["generated"] == n - kept  # no stored sample answered again


def test_judging_runs_once_on_rank_0(tmp_path):
    n = 8
    args = [*toy_args(n, batch_size=2, task="mmvet"), "--judge-concurrency", "2"]
    with FakeOpenAIServer(responder=lambda body: "0.5") as server:  # one URL: the judge is in the identity
        counts = []
        for prefix, name in ((EVALKIT, "one"), (TORCHRUN, "dp")):
            env = {**ENV, "EVALKIT_JUDGE_CACHE": str(tmp_path / f"{name}.sqlite"), "OPENAI_API_KEY": "unused"}
            before = server.count
            proc = launch(
                prefix, [*args, "--output", str(tmp_path / name), "--judge-base-url", server.base_url], env
            )
            assert proc.returncode == 0, proc.stderr
            counts.append(server.count - before)
    assert counts == [n, n]  # one judge call per answer, not one per answer and process
    assert_same_run(tmp_path / "dp", tmp_path / "one", task="mmvet")


def test_a_refusal_on_rank_0_ends_every_rank_with_its_line_and_exit_2(tmp_path, one):
    other = tmp_path / "other"
    assert launch(EVALKIT, [*toy_args(4), "--output", str(other)]).returncode in (0, 1)
    results = by_hand([*ARGS, "--output", str(other)])  # rank 0 alone opens the folder and refuses it
    lines = []
    for r in results:
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        lines.append([line for line in r.stderr.splitlines() if line.strip()])
    assert lines[0] == lines[1] and len(lines[0]) == 1
    assert "holds a different run" in lines[0][0]


def test_ranks_given_different_runs_all_refuse(tmp_path):
    results = by_hand([*ARGS, "--output", str(tmp_path / "x")], per_rank=[["--seed", "0"], ["--seed", "1"]])
    lines = [[line for line in r.stderr.splitlines() if line.strip()] for r in results]
    assert [r.returncode for r in results] == [2, 2] and lines[0] == lines[1] and len(lines[0]) == 1
    assert "the processes see different runs" in lines[0][0]
    assert not (tmp_path / "x" / "run.json").exists()


def test_shard_and_openai_models_are_refused_under_a_launcher(tmp_path):
    for args, words in (
        ([*ARGS, "--shard", "0/2"], "drop --shard"),
        ([*toy_args(4, model="openai:m"), "--base-url", "http://127.0.0.1:9/v1"], "need a local checkpoint"),
    ):
        for r in by_hand([*args, "--output", str(tmp_path / "x")]):
            lines = [line for line in r.stderr.splitlines() if line.strip()]
            assert r.returncode == 2 and len(lines) == 1 and words in lines[0], r.stderr


def test_a_failed_run_ends_every_rank_with_exit_1(tmp_path):
    # 4 toy POPE samples: F1 has no value, so the run is stored and reported failed (exit 1), as alone
    alone = launch(EVALKIT, [*toy_args(4), "--output", str(tmp_path / "one")])
    assert alone.returncode == 1 and "f1_mean has no value" in alone.stderr
    results = by_hand([*toy_args(4), "--output", str(tmp_path / "dp")])
    assert [r.returncode for r in results] == [1, 1], [r.stderr for r in results]
    for r in results:
        assert "f1_mean has no value" in r.stderr and "Traceback" not in r.stderr
    assert_same_run(tmp_path / "dp", tmp_path / "one", finished=False)
