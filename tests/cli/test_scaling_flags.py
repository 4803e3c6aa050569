"""`evalkit run`'s scaling flags as a user meets them: `--model vllm:...` where vLLM is not installed,
the vllm-only engine settings refused for other backends, and `--threads` (checked, applied, recorded in
run.json and not part of the run's identity)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import pytest
from support.cli import error_line, run_cli

from evalkit.util.environment import default_threads

TOY_RUN = ["run", "--model", "toy", "--tasks", "pope", "--data", "toy", "--limit", "30", "--batch-size", "8"]


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_vllm_model_without_vllm_names_the_extra(tmp_path):
    proc = run_cli(*TOY_RUN[:2], "vllm:toy", *TOY_RUN[3:], "--output", str(tmp_path / "out"))
    line = error_line(proc)
    assert line.startswith("error: vllm is not installed (part of the optional extra evalkit[vllm])")
    assert line.endswith(f"{sys.executable} -m pip install 'evalkit[vllm]'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--tensor-parallel-size", "2"], "--tensor-parallel-size apply to vllm: models only"),
        (["--max-model-len", "512"], "--max-model-len apply to vllm: models only"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--threads", "-3"], "--threads must be at least 1"),
    ],
)
def test_flags_are_checked_in_one_line(tmp_path, extra, fragment):
    line = error_line(run_cli(*TOY_RUN, "--output", str(tmp_path / "out"), *extra))
    assert fragment in line


def test_threads_are_recorded_and_not_part_of_the_identity(tmp_path):
    one = run_cli(*TOY_RUN, "--output", str(tmp_path / "a"), "--threads", "1", "--json")
    assert one.returncode == 0, one.stderr[-2000:]
    header = json.loads((tmp_path / "a" / "run.json").read_text())
    assert header["command"]["threads"] == 1
    again = run_cli(*TOY_RUN, "--output", str(tmp_path / "a"), "--threads", "2", "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    resumed = json.loads((tmp_path / "a" / "run.json").read_text())
    assert resumed["config_hash"] == header["config_hash"] and resumed["command"]["threads"] == 2
    assert json.loads(again.stdout)["metrics"] == json.loads(one.stdout)["metrics"]


def test_default_threads(monkeypatch):
    cpus = len(os.sched_getaffinity(0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert default_threads() == cpus
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(cpus + 1))  # more processes than CPUs: still one each
    assert default_threads() == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert default_threads() == max(1, cpus // 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "garbage")
    assert default_threads() == max(1, cpus // 2)


def test_a_vllm_run_folder_is_named_for_the_engine():
    from evalkit.runner import slug

    assert slug("vllm:/models/llava-1.5-7b/") == "vllm-llava-1.5-7b"
    assert slug("vllm:llava-hf/llava-1.5-7b-hf") == "vllm-llava-1.5-7b-hf"
    assert slug("/models/llava-1.5-7b") == "llava-1.5-7b"
