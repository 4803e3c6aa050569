"""`evalkit train --report-to wandb,tensorboard`: every train_log.jsonl row is in both trackers at its step,
the config is train_config.json's, and a run interrupted after a resume save continues the same W&B run
(its id kept in CKPT/trackers.json) and TensorBoard's folder (points after the save replaced)."""

from __future__ import annotations

import json

import pytest
from support.tracker_files import read_event_dir, wandb_runs
from support.training import write_train_world

pytest.importorskip("wandb", reason="wandb is not installed (pip install 'evalkit[wandb]')")
pytest.importorskip(
    "tensorboardX", reason="tensorboardX is not installed (pip install 'evalkit[tensorboard]')"
)

from evalkit.training.trainer import train  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
FIELDS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "lr",
          "grad_norm", "tokens/s")  # fmt: skip


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    world = write_train_world(tmp_path_factory.mktemp("world"))
    root = tmp_path_factory.mktemp("tracked-train")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_DIR", str(root))
    mp.setenv("WANDB_SILENT", "true")
    mp.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    common = dict(method="dpo", model=str(world / "base"), data=str(world / "pairs.jsonl"), max_steps=5,
                  lr=5e-3, batch_size=4, lora_rank=0, save_every=2, output=str(root / "ckpt"),
                  report_to="wandb,tensorboard", run_name="dpo-toy")  # fmt: skip

    def interrupt(row):
        if row["step"] == 2:  # after the save at 2 updates: step 2 is logged, then trained again
            raise Stop

    try:
        with pytest.raises(Stop):
            train(on_step=interrupt, **common)
        first_id = json.loads((root / "ckpt" / "trackers.json").read_text())["wandb"]["id"]
        result = train(**common)
    finally:
        mp.undo()
    assert result.resumed_from == 2
    return root, root / "ckpt", first_id


def _log(ckpt):
    return [json.loads(line) for line in (ckpt / "train_log.jsonl").read_text().splitlines()]


def test_wandb_has_every_step_of_train_log_in_one_continued_run(trained):
    root, ckpt, first_id = trained
    first, second = wandb_runs(root)
    assert first.run_id == second.run_id == first_id
    assert json.loads((ckpt / "trackers.json").read_text())["wandb"]["id"] == first_id
    assert second.name == "dpo-toy" and second.job_type == "train"
    assert first.exit_code == 1 and second.exit_code == 0  # the interrupted part ends as failed
    config = json.loads((ckpt / "train_config.json").read_text())
    assert second.config["config"]["beta"] == config["config"]["beta"] == 0.1
    assert second.config["total_steps"] == config["total_steps"] == 5
    assert second.config["data"]["sha256"] == config["data"]["sha256"]
    rows = _log(ckpt)
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    # the continued run holds steps 2..4 as they are in the finished log; the first, 0..2 (2 logged then
    # trained again after the resume: W&B keeps both points)
    assert [h["step"] for h in first.history] == [0, 1, 2]
    assert [h["step"] for h in second.history] == [2, 3, 4]
    final = {h["step"]: h for h in first.history[:2] + second.history}
    for row in rows:
        logged = final[row["step"]]
        for name in FIELDS:
            assert logged[f"train/{name}"] == pytest.approx(row[name], rel=1e-9), (row["step"], name)


def test_tensorboard_has_every_step_once_after_the_resume(trained):
    _, ckpt, _ = trained
    events = read_event_dir(ckpt / "tensorboard")
    rows = _log(ckpt)
    for name in FIELDS:
        series = events.scalars[f"train/{name}"]
        assert sorted(series) == [0, 1, 2, 3, 4], name
        for row in rows:
            assert series[row["step"]] == pytest.approx(row[name], rel=1e-6), (row["step"], name)
    assert '"method": "dpo"' in events.texts["train/config"][2]  # the resumed writer's config at its start
