"""A family other than LLaVA through the commands a user types: `evalkit train` (DPO, full fine-tuning) on a
tiny Qwen2-VL checkpoint built offline, then `evalkit run` of the trained checkpoint on toy POPE at batch 4.
The model matrix (tests/models/test_families.py) checks every family through the same functions."""

from __future__ import annotations

import json
import math

from PIL import Image
from support.cli import run_cli
from support.families import FAMILIES


def test_train_then_run_a_qwen2_vl_checkpoint(tmp_path):
    base = tmp_path / "base"
    FAMILIES["Qwen2-VL"].build(base)
    for i, (size, colour) in enumerate([((40, 30), "red"), ((30, 52), "blue")]):
        Image.new("RGB", size, colour).save(tmp_path / f"{i}.png")
    pairs = [
        {
            "id": f"p{i}",
            "image": f"{i}.png",
            "prompt": "what is it?",
            "chosen": "a square.",
            "rejected": "a dog.",
        }
        for i in range(2)
    ]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))

    out = tmp_path / "dpo"
    args = ["--method", "dpo", "--model", str(base), "--data", str(tmp_path / "pairs.jsonl")]
    args += ["--output", str(out), "--max-steps", "1", "--batch-size", "2", "--lora-rank", "0"]
    trained = run_cli("train", *args)
    assert trained.returncode == 0, trained.stderr
    [row] = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert math.isclose(row["loss"], math.log(2), abs_tol=1e-5)  # policy == frozen reference at step 0

    run = tmp_path / "run"
    args = ["--model", str(out), "--tasks", "pope", "--data", "toy", "--limit", "6", "--batch-size", "4"]
    done = run_cli("run", *args, "--output", str(run), "--dtype", "float32", "--device", "cpu")
    # a random model may never answer "yes": POPE's F1 is then undefined and the run exits 1 saying so
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
    rows = [json.loads(x) for x in (run / "samples" / "pope.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r.get("error") is None for r in rows), rows[:2]
    header = json.loads((run / "run.json").read_text())
    assert (header["model"]["kind"], header["model"]["model_class"]) == (
        "image-text-to-text",
        "Qwen2VLForConditionalGeneration",
    )
