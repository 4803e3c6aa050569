"""`evalkit align` with `report_to` in its plan: each training, each checkpoint's evaluation and the
alignment-tax table are tracker runs of one W&B group (the plan's output folder), and the table logged is
tax.json's rows."""

from __future__ import annotations

import json
import math
import random

import pytest
from support.tracker_files import read_event_dir, wandb_runs
from support.training import save_toy_base

pytest.importorskip("wandb", reason="wandb is not installed (pip install 'evalkit[wandb]')")
pytest.importorskip(
    "tensorboardX", reason="tensorboardX is not installed (pip install 'evalkit[tensorboard]')"
)

from evalkit.experiments.align import run_align  # noqa: E402
from evalkit.toy.world import STYLE, render, sample_scenes  # noqa: E402

CONFIG = """
base: base
output: out
evaluate: {tasks: pope, data: toy, limit: 24}
checkpoints:
  dpo: {method: dpo, data: pairs.jsonl, max_steps: 2, batch_size: 4, lora_rank: 4, save_every: 0}
min_common: 2
report_to: [wandb, tensorboard]
tracker_project: align-tests
"""

pytestmark = pytest.mark.usefixtures("one_thread")


def test_align_reports_trainings_evaluations_and_the_table(tmp_path, monkeypatch):
    save_toy_base(tmp_path)
    rng = random.Random(0)
    pairs = []
    for s in sample_scenes(8, seed=21):
        render(s).save(tmp_path / f"{s.image_id}.png")
        absent = rng.choice(sorted(set(STYLE) - set(s.objects)))
        common = {"id": s.image_id, "image": f"{s.image_id}.png", "prompt": "describe the image."}
        pairs.append({**common, "chosen": f"{s.objects[0]}.", "rejected": f"{absent}."})
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
    (tmp_path / "align.yaml").write_text(CONFIG)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_RUN_GROUP", raising=False)
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    run_align(tmp_path / "align.yaml")

    runs = {(r.job_type, r.name): r for r in wandb_runs(tmp_path)}
    assert set(runs) == {("train", "dpo"), ("eval", "eval-base"), ("eval", "eval-dpo"), ("align", "tax")}
    assert {r.group for r in runs.values()} == {"out"} and {r.project for r in runs.values()} == {
        "align-tests"
    }
    train_log = [
        json.loads(x) for x in (tmp_path / "out/checkpoints/dpo/train_log.jsonl").read_text().splitlines()
    ]
    history = runs[("train", "dpo")].history
    assert [h["train/loss"] for h in history] == pytest.approx([r["loss"] for r in train_log], rel=1e-9)
    metrics = json.loads((tmp_path / "out/eval/dpo/metrics.json").read_text())["pope"]["metrics"]
    (logged,) = runs[("eval", "eval-dpo")].history[:1]
    assert logged["eval/pope/f1_mean"] == pytest.approx(metrics["f1_mean"]["value"])

    tax = json.loads((tmp_path / "out/tax.json").read_text())
    columns, rows = runs[("align", "tax")].table("align/tax")
    assert len(rows) == len(tax["rows"]) > 0
    for got, want in zip(rows, tax["rows"], strict=True):
        got = dict(zip(columns, got, strict=True))
        assert (got["checkpoint"], got["task"], got["metric"]) == (
            want["checkpoint"],
            want["task"],
            want["metric"],
        )
        for key in ("diff", "ci_low", "ci_high"):
            if want[key] is None:
                assert got[key] is None or math.isnan(got[key])
            else:
                assert got[key] == pytest.approx(want[key])
    assert runs[("align", "tax")].config["reference"] == "base"

    assert "align/tax" in read_event_dir(tmp_path / "out" / "tensorboard").texts
    assert "train/loss" in read_event_dir(tmp_path / "out/checkpoints/dpo/tensorboard").scalars
    assert "eval/pope/f1_mean" in read_event_dir(tmp_path / "out/eval/base/tensorboard").scalars
