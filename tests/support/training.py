"""The training tests' world: a saved random toy base model (no warm-up, no download), 16 DPO pairs whose
chosen answer names an object in the image and rejected one an absent object, and the SFT examples."""

from __future__ import annotations

import json
import random
from pathlib import Path

from evalkit.toy.model import build_toy_model
from evalkit.toy.world import STYLE, render, sample_scenes

PROMPT = "name one object in the image."


def save_toy_base(d: Path) -> Path:
    """The random toy LLaVA (seed 0: no warm-up, no download) saved to `d/base` as a checkpoint."""
    model, processor = build_toy_model(seed=0)
    model.save_pretrained(d / "base")
    processor.save_pretrained(d / "base")
    return d / "base"


def write_train_world(d: Path) -> Path:
    """Write the base model to `d/base`, the images, `d/pairs.jsonl` and `d/sft.jsonl`; return `d`."""
    save_toy_base(d)
    rng = random.Random(0)
    pairs, sft = [], []
    for scene in sample_scenes(16, seed=7):
        render(scene).save(d / f"{scene.image_id}.png")
        present = scene.objects[0]
        absent = rng.choice(sorted(set(STYLE) - set(scene.objects)))
        common = {"id": scene.image_id, "image": f"{scene.image_id}.png", "prompt": PROMPT}
        pairs.append({**common, "chosen": f"a {present}.", "rejected": f"a {absent}."})
        sft.append({**common, "response": f"a {present}."})
    (d / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
    (d / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))
    return d
