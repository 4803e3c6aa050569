"""Data-parallel training: two processes launched by torchrun (gloo on CPU, through accelerate) end with the
weights one process reaches on the same global batches, and only the main process writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from support.training import save_toy_base

from evalkit.toy.world import STYLE, render, sample_scenes

pytest.importorskip("accelerate")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist-world")
    save_toy_base(d)
    rows = []
    for scene in sample_scenes(8, seed=5):
        render(scene).save(d / f"{scene.image_id}.png")
        absent = sorted(set(STYLE) - set(scene.objects))[0]
        rows.append({"id": scene.image_id, "image": f"{scene.image_id}.png", "prompt": "name an object.",
                     "chosen": f"a {scene.objects[0]}.", "rejected": f"a {absent}."})  # fmt: skip
    (d / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def _train(world, out, nproc):
    args = ["train", "--method", "dpo", "--model", str(world / "base"), "--data", str(world / "pairs.jsonl"),
            "--output", str(out), "--max-steps", "3", "--batch-size", "4", "--grad-accum", "2",
            "--lora-rank", "4", "--lr", "1e-2", "--save-every", "0", "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if nproc == 1:
        cmd = [sys.executable, "-m", "evalkit", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "-m", "evalkit"]
        cmd += args
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_two_processes_reach_the_single_process_weights(world, tmp_path):
    _train(world, tmp_path / "one", 1)
    two = _train(world, tmp_path / "two", 2)
    assert "2 processes" in two.stderr
    a = load_file(tmp_path / "one" / "model.safetensors")
    b = load_file(tmp_path / "two" / "model.safetensors")
    base = load_file(world / "base" / "model.safetensors")
    changed = [k for k in a if not torch.equal(a[k], base[k])]
    assert changed  # training moved the weights
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    log_one = [json.loads(x) for x in (tmp_path / "one" / "train_log.jsonl").read_text().splitlines()]
    log_two = [json.loads(x) for x in (tmp_path / "two" / "train_log.jsonl").read_text().splitlines()]
    assert len(log_two) == 3  # one writer: no duplicated rows
    for r1, r2 in zip(log_one, log_two, strict=True):
        assert r2["loss"] == pytest.approx(r1["loss"], rel=1e-4, abs=1e-6)
        assert r2["rewards/margins"] == pytest.approx(r1["rewards/margins"], rel=1e-3, abs=1e-6)
    assert json.loads((tmp_path / "two" / "train_config.json").read_text())["processes"] == 2
