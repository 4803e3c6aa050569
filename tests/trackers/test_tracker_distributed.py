"""Two training processes (torchrun, gloo on CPU): only the main one reports, so there is one W&B run and
one TensorBoard event file, holding the steps of train_log.jsonl."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support.tracker_files import read_event_dir, wandb_runs
from support.training import save_toy_base

from evalkit.toy.world import STYLE, render, sample_scenes

pytest.importorskip("accelerate")
pytest.importorskip("wandb", reason="wandb is not installed (pip install 'evalkit[wandb]')")
pytest.importorskip(
    "tensorboardX", reason="tensorboardX is not installed (pip install 'evalkit[tensorboard]')"
)


def test_only_the_main_process_reports(tmp_path):
    save_toy_base(tmp_path)
    rows = []
    for scene in sample_scenes(8, seed=5):
        render(scene).save(tmp_path / f"{scene.image_id}.png")
        absent = sorted(set(STYLE) - set(scene.objects))[0]
        rows.append({"id": scene.image_id, "image": f"{scene.image_id}.png", "prompt": "name an object.",
                     "chosen": f"a {scene.objects[0]}.", "rejected": f"a {absent}."})  # fmt: skip
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "ckpt"
    args = ["train", "--method", "dpo", "--model", str(tmp_path / "base"),
            "--data", str(tmp_path / "pairs.jsonl"), "--output", str(out), "--max-steps", "3",
            "--batch-size", "4", "--lora-rank", "4", "--lr", "1e-2",
            "--save-every", "0", "--device", "cpu", "--report-to", "wandb,tensorboard"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path),
           "WANDB_SILENT": "true"}  # fmt: skip
    env.pop("TENSORBOARD_LOGGING_DIR", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "evalkit", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes" in done.stderr
    (run,) = wandb_runs(tmp_path)
    assert run.config["processes"] == 2
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [h["step"] for h in run.history] == [r["step"] for r in log] == [0, 1, 2]
    assert [h["train/loss"] for h in run.history] == pytest.approx([r["loss"] for r in log], rel=1e-9)
    losses = read_event_dir(out / "tensorboard").scalars["train/loss"]
    assert [losses[r["step"]] for r in log] == pytest.approx([r["loss"] for r in log], rel=1e-6)
