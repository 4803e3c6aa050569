"""`evalkit run --shard I/N` and `evalkit merge` on the toy model: the merged shards leave the folder a
one-process run leaves (rows, metrics.json byte for byte, config_hash), for any order of the folders and a
number of samples no multiple of the split; a shard killed mid-run resumes without answering a stored
sample again; merge refuses, in one line and exit 2, shards of another run or split, a missing, duplicate
or unfinished shard, and a folder that is no shard; a shard folder refuses another shard's command."""

import json
import os
import signal
import subprocess

import pytest
from support.cli import error_line
from support.openai_server import FakeOpenAIServer
from support.split_runs import ENV, EVALKIT, assert_same_run, launch, toy_args, wait_for_rows

from evalkit.runner.parallel import Part, interleave
from evalkit.store import read_rows

N = 22  # 22 samples in batches of 4: shards of 3 get 8, 8 and 6
ARGS = toy_args(N, batch_size=4)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The one-process run and the three shards of the same command: {name: folder}."""
    root = tmp_path_factory.mktemp("shards")
    out = {"one": root / "one"}
    assert launch(EVALKIT, [*ARGS, "--output", str(out["one"])]).returncode == 0
    for i in range(3):
        out[i] = root / f"shard{i}"
        proc = launch(EVALKIT, [*ARGS, "--shard", f"{i}/3", "--output", str(out[i])])
        assert proc.returncode == 0, proc.stderr
    return out


def test_merged_shards_equal_the_one_process_run(tmp_path, runs):
    for i in range(3):
        header = json.loads((runs[i] / "run.json").read_text())
        assert header["shard"] == {"index": i, "count": 3, "block": 4}
        assert header["status"] == "shard-finished" and not (runs[i] / "metrics.json").exists()
    assert [len(read_rows(runs[i] / "samples" / "pope.jsonl")[0]) for i in range(3)] == [8, 8, 6]
    proc = launch(
        EVALKIT, ["merge", str(runs[2]), str(runs[0]), str(runs[1]), "--output", str(tmp_path / "m")]
    )
    assert proc.returncode == 0, proc.stderr
    assert_same_run(tmp_path / "m", runs["one"])
    merged = json.loads((tmp_path / "m" / "run.json").read_text())
    assert merged["timings"]["pope"]["generated"] == N
    assert merged["merged_from"] == [str(runs[i]) for i in range(3)]


def test_the_default_shard_folder_is_named_from_the_run(tmp_path, runs):
    proc = launch(EVALKIT, [*toy_args(N, batch_size=4), "--shard", "1/3"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    chash = json.loads((runs["one"] / "run.json").read_text())["config_hash"]
    shard = tmp_path / "results" / f"toy-{chash}-shard-1-of-3"
    assert (shard / "samples" / "pope.jsonl").read_bytes().count(b"\n") == 8
    assert json.loads((shard / "run.json").read_text())["config_hash"] == chash


def test_merge_refuses_what_is_not_the_shards_of_one_run(tmp_path, runs):
    other = tmp_path / "other"  # another --limit: another run
    assert (
        launch(EVALKIT, [*toy_args(12, batch_size=4), "--shard", "1/3", "--output", str(other)]).returncode
        == 0
    )
    two = tmp_path / "two"  # the same run split in two
    assert launch(EVALKIT, [*ARGS, "--shard", "1/2", "--output", str(two)]).returncode == 0
    batch = tmp_path / "batch"  # the same run split in three in batches of 2
    assert (
        launch(EVALKIT, [*toy_args(N, batch_size=2), "--shard", "1/3", "--output", str(batch)]).returncode
        == 0
    )
    s0, s1, s2 = (str(runs[i]) for i in range(3))
    out = ["--output", str(tmp_path / "m")]
    for folders, words in (
        ([s0, str(other), s2], "is a shard of another run"),
        ([s0, str(two), s2], "merge the shards of one split"),
        ([s0, str(batch), s2], "merge the shards of one split"),
        ([s0, s2], "shard 1/3 missing"),
        ([s0, s1, s1, s2], "shard 1/3 is given twice"),
        ([s0, str(runs["one"]), s2], "is not a shard"),
        ([s0, str(tmp_path / "nowhere"), s2], "is not a run folder"),
    ):
        line = error_line(launch(EVALKIT, ["merge", *folders, *out]))
        assert words in line, line
    assert not (tmp_path / "m").exists()
    # the merged folder's path holds a shard: refused, not overwritten
    line = error_line(launch(EVALKIT, ["merge", s0, s1, s2, "--output", str(runs[0])]))
    assert "holds shard 0/3" in line, line


def test_a_shard_folder_refuses_another_shard_and_a_bad_shard_is_one_line(runs):
    line = error_line(launch(EVALKIT, [*ARGS, "--shard", "1/3", "--output", str(runs[0])]))
    assert "holds shard 0/3 in batches of 4 of this run, not shard 1/3" in line, line
    for bad in ("3/3", "1", "a/b", "0/0"):
        line = error_line(launch(EVALKIT, [*ARGS, "--shard", bad, "--output", str(runs[0])]))
        assert line.endswith("expected I/N with 0 <= I < N, e.g. --shard 0/4"), line


@pytest.mark.slow
def test_a_killed_shard_resumes_and_merges_to_the_one_process_run(tmp_path):
    n = 60
    args = toy_args(n, batch_size=2)
    assert launch(EVALKIT, [*args, "--output", str(tmp_path / "one")]).returncode == 0
    shards = [tmp_path / "s0", tmp_path / "s1"]
    assert launch(EVALKIT, [*args, "--shard", "1/2", "--output", str(shards[1])]).returncode == 0
    samples = shards[0] / "samples" / "pope.jsonl"
    proc = subprocess.Popen(
        [*EVALKIT, *args, "--shard", "0/2", "--output", str(shards[0])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    wait_for_rows([samples], 6, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = len(read_rows(samples)[0])
    assert 6 <= kept < n // 2, "the shard must be killed mid-run"

    line = error_line(launch(EVALKIT, ["merge", *map(str, shards), "--output", str(tmp_path / "m")]))
    assert "shard 0/2 has not finished" in line, line
    resumed = launch(EVALKIT, [*args, "--shard", "0/2", "--output", str(shards[0])])
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((shards[0] / "run.json").read_text())["timings"]["pope"]["generated"] == n // 2 - kept
    merged = launch(EVALKIT, ["merge", *map(str, shards), "--output", str(tmp_path / "m")])
    assert merged.returncode == 0, merged.stderr
    assert_same_run(tmp_path / "m", tmp_path / "one")


@pytest.mark.parametrize("n", [0, 1, 7, 22, 24])
@pytest.mark.parametrize("count,block", [(1, 1), (2, 1), (3, 4), (5, 2)])
def test_the_parts_cover_every_sample_once_and_interleave_back(n, count, block):
    items = list(range(n))
    parts = [Part(i, count, block).select(items) for i in range(count)]
    for i, part in enumerate(parts):  # part i holds the blocks i, i + count, ... (by position, computed here)
        assert part == [k for k in items if (k // block) % count == i]
        assert Part(i, count, block).size(n) == len(part)
    assert interleave(parts, block) == items


def test_judged_shards_judge_their_answers_and_merge_to_the_one_process_run(tmp_path):
    n = 8
    args = [*toy_args(n, batch_size=2, task="mmvet"), "--judge-concurrency", "2"]
    with FakeOpenAIServer(responder=lambda body: "0.5") as server:  # one URL: the judge is in the identity
        env = {**ENV, "EVALKIT_JUDGE_CACHE": str(tmp_path / "one.sqlite"), "OPENAI_API_KEY": "unused"}
        judge = ["--judge-base-url", server.base_url]
        assert launch(EVALKIT, [*args, *judge, "--output", str(tmp_path / "one")], env).returncode == 0
        assert server.count == n
        env["EVALKIT_JUDGE_CACHE"] = str(tmp_path / "shards.sqlite")
        for i in range(2):
            out = ["--shard", f"{i}/2", "--output", str(tmp_path / f"s{i}")]
            proc = launch(EVALKIT, [*args, *judge, *out], env)
            assert proc.returncode == 0, proc.stderr
        assert server.count == 2 * n  # each answer judged once, by its shard
    proc = launch(
        EVALKIT, ["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--output", str(tmp_path / "m")]
    )
    assert proc.returncode == 0, proc.stderr
    assert_same_run(tmp_path / "m", tmp_path / "one", task="mmvet")
    usage = json.loads((tmp_path / "m" / "run.json").read_text())["judges"]["mmvet"]["usage"]
    assert usage["calls"] == n


def test_rescore_refuses_a_shard(runs):
    line = error_line(launch(EVALKIT, ["rescore", str(runs[1])]))
    assert "is shard 1/3 of a run: merge the shards" in line, line
    assert not (runs[1] / "metrics.json").exists()
