"""`evalkit train` killed with SIGKILL mid-training, a few times, then finished: the checkpoint equals the
one an uninterrupted run writes, bit for bit.

Each kill lands at a seeded random moment after the log has grown (inside a step, during a resume save, or
between the two), and the same command is run again. Resume restores the trainable weights, AdamW's
moments and step, the scheduler and the RNG from CKPT/resume/state.safetensors, and the data order is a
function of (seed, step), so the resumed run does exactly the arithmetic of the uninterrupted one: on the
same machine and thread count (one thread here, in both) the final weights are identical, not just close.
The loop is bounded: at most 3 kills, each process given at most 60 s.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from support.training import save_toy_base

from evalkit.toy.world import STYLE, render, sample_scenes
from evalkit.training.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 8
SETTINGS = dict(max_steps=STEPS, lr=5e-3, batch_size=4, lora_rank=8, save_every=1, seed=3)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("kill-world")
    save_toy_base(d)
    rng = random.Random(0)
    pairs = []
    for scene in sample_scenes(12, seed=5):
        render(scene).save(d / f"{scene.image_id}.png")
        absent = rng.choice(sorted(set(STYLE) - set(scene.objects)))
        pairs.append(
            {
                "image": f"{scene.image_id}.png",
                "prompt": "name one object in the image.",
                "chosen": f"a {scene.objects[0]}.",
                "rejected": f"a {absent}.",
            }
        )
    (d / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
    return d


def _steps_logged(out) -> int:
    try:
        return sum(1 for line in (out / "train_log.jsonl").read_text().splitlines() if line.endswith("}"))
    except FileNotFoundError:
        return 0


def test_sigkill_then_resume_gives_the_uninterrupted_weights(world, tmp_path):
    common = dict(method="dpo", model=str(world / "base"), data=str(world / "pairs.jsonl"), **SETTINGS)
    train(output=str(tmp_path / "straight"), **common)

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "evalkit", "train", "--method", "dpo", "--model", str(world / "base")]
    cmd += ["--data", str(world / "pairs.jsonl"), "--output", str(out)]
    for key, value in SETTINGS.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    rng = random.Random(12)
    kills = 0
    for _ in range(3):
        logged = _steps_logged(out)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        target = logged + rng.randint(1, 2)
        while proc.poll() is None and _steps_logged(out) < target and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.15))  # somewhere in the next step or its resume save
        if proc.poll() is not None:
            break  # finished before the kill
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills += 1
    assert kills >= 2, "training finished before it could be killed twice; lengthen it"

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    info = json.loads((out / "train_config.json").read_text())
    assert info["completed"] and info["resumed_from"] > 0  # the last run resumed, it did not start over
    assert not (out / "resume").exists()
    rows, straight_rows = (
        [json.loads(x) for x in (d / "train_log.jsonl").read_text().splitlines()]
        for d in (out, tmp_path / "straight")
    )
    assert [r["step"] for r in rows] == list(range(STEPS))
    assert [r["loss"] for r in rows] == [r["loss"] for r in straight_rows]

    want = load_file(tmp_path / "straight" / "model.safetensors")
    got = load_file(out / "model.safetensors")
    assert want.keys() == got.keys()
    for name, value in want.items():
        assert torch.equal(value, got[name]), name
    # the base is not the answer: training moved the weights
    base = load_file(world / "base" / "model.safetensors")
    assert any(not torch.equal(base[n], want[n]) for n in base if n in want)

    assert train(output=str(out), **common).already_complete  # the same settings as the command line
