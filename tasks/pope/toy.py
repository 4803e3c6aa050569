"""Write a POPE benchmark over the toy world, in the official POPE file format (AoiDragon/POPE ``utils.py``).

Layout of ``root``::

    images/<image_id>.png
    coco_pope_{random,popular,adversarial}.json   JSONL: question_id, image, text, label
    annotations.json                              {image_id: [ground-truth objects]}
    toy_meta.json                                 {seed, n_images, version, ...}; written last

Per image, as in POPE: 3 ground-truth objects, each asked as "yes" and followed by one "no" object that is
neither in the image nor already asked about for it (order yes, no, yes, no, yes, no). The "no" object is
chosen by the split's strategy:

- random: uniform among the eligible classes of ``OBJECTS`` (POPE: of the classes seen in the data set;
  the same thing once every class occurs, as it does from a few dozen images on);
- popular: the eligible class most frequent over all images of the dataset;
- adversarial: the eligible class that co-occurs most often with *the preceding "yes" object* (POPE ranks
  co-occurrence per positive object); if none of its co-occurring classes is eligible, a random one.

Ties are broken by the order of ``OBJECTS`` (POPE leaves them to dict insertion order). The positive objects
are identical across the three splits, as in the official files. The text follows POPE's current (fixed)
files: "Is there a dog in the image?", "Is there an apple in the image?".
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from evalkit.tasks.pope.protocol import SPLITS
from evalkit.toy.folders import write_once
from evalkit.toy.language import article
from evalkit.toy.world import OBJECTS, render, sample_scenes
from evalkit.util.environment import cache_root

VERSION = 1
N_POSITIVE = 3


def default_toy_dir(seed: int = 0, n_images: int = 100) -> Path:
    return cache_root() / "toy" / f"pope-s{seed}-n{n_images}"


def question_text(noun: str) -> str:
    return f"Is there {article(noun)} in the image?"


def _rank(counts: Counter[str]) -> list[str]:
    """Classes with a positive count, most frequent first, ties in ``OBJECTS`` order."""
    return sorted((o for o in counts if counts[o] > 0), key=lambda o: (-counts[o], OBJECTS.index(o)))


def build_questions(annotations: dict[str, list[str]], seed: int = 0) -> dict[str, list[dict]]:
    """POPE questions for each split from ``{image_id: objects}`` (each image needs >= 3 objects)."""
    freq = Counter(o for objs in annotations.values() for o in objs)
    co: dict[str, Counter[str]] = {o: Counter() for o in freq}
    for objs in annotations.values():
        for a in objs:
            co[a].update(b for b in objs if b != a)
    popular = _rank(freq)
    adversarial = {o: _rank(c) for o, c in co.items()}

    pos_rng = random.Random(f"pope-positive-{seed}")
    neg_rngs = {split: random.Random(f"pope-{split}-{seed}") for split in SPLITS}
    out: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for image_id, objs in annotations.items():
        positives = pos_rng.sample(objs, N_POSITIVE)
        for split in SPLITS:
            rng, asked = neg_rngs[split], []
            for pos in positives:
                asked.append(pos)
                eligible = [o for o in OBJECTS if o not in objs and o not in asked]
                ranked = {"popular": popular, "adversarial": adversarial[pos]}.get(split, [])
                neg = next((o for o in ranked if o in eligible), None) or rng.choice(eligible)
                asked.append(neg)
            for label, obj in zip(["yes", "no"] * N_POSITIVE, asked, strict=True):
                out[split].append(
                    {
                        "question_id": len(out[split]) + 1,
                        "image": f"{image_id}.png",
                        "text": question_text(obj),
                        "label": label,
                    }
                )
    return out


def _write(tmp: Path, seed: int, n_images: int) -> None:
    scenes = sample_scenes(n_images, seed)
    (tmp / "images").mkdir()
    for scene in scenes:
        render(scene).save(tmp / "images" / f"{scene.image_id}.png")
    annotations = {s.image_id: list(s.objects) for s in scenes}
    (tmp / "annotations.json").write_text(json.dumps(annotations, indent=1) + "\n")
    for split, questions in build_questions(annotations, seed).items():
        lines = "".join(json.dumps(q) + "\n" for q in questions)
        (tmp / f"coco_pope_{split}.json").write_text(lines)


def write_pope(root: Path, seed: int = 0, n_images: int = 100) -> Path:
    """Write the toy POPE data set into ``root`` unless it is already there (same seed, n_images and
    version); returns ``root``. Atomic, and never replaces a non-toy folder: see `write_once`."""
    meta = {"seed": seed, "n_images": n_images, "version": VERSION, "objects": OBJECTS, "generator": __name__}
    return write_once(
        root, meta, lambda tmp: _write(tmp, seed, n_images), keys=("seed", "n_images", "version")
    )
