"""A toy MMBench over the toy world (`evalkit.toy.world`), in the official TSV schema.

Layout of the folder (written once into the cache, see `default_toy_dir`)::

    mmbench_toy_dev.tsv   index, question, hint, A, B, C, D, answer, category, l2-category, split, image,
                          source, comment; images as base64 PNG; no circular rows (the loader builds them)
    toy_meta.json         {seed, version, ...}; written last

One question per scene of `sample_scenes(N_SCENES, seed)`, its type cycling through four MMBench leaf
categories the toy world can ask about: image_topic (kitchen / park / street, 3 options),
attribute_recognition (an object's colour, 4 options), object_localization (an object's grid cell, 4
options, with a hint) and spatial_relationship (above/below or left/right of another object, 2 options).
Every sixth scene gets a second question whose image cell is the first question's index, as VLMEvalKit's
TSVs store repeated images. Options are shuffled with `random.Random(f"mmbench-toy-{seed}")`; unused
option cells are empty.
"""

from __future__ import annotations

import base64
import csv
import io
import random
from pathlib import Path
from typing import Any

from evalkit.tasks.mmhal.toy import THEME_NAMES
from evalkit.toy.folders import write_once
from evalkit.toy.world import COLOUR_NAME, GRID, THEMES, Scene, render, sample_scenes
from evalkit.util.environment import cache_root

VERSION = 1
TOY_FILE = "mmbench_toy_dev.tsv"
N_SCENES = 48
COLUMNS = (
    "index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category", "split", "image",
    "source", "comment",
)  # fmt: skip
KINDS = ("image_topic", "attribute_recognition", "object_localization", "spatial_relationship")
L2 = {
    "image_topic": "coarse_perception",
    "attribute_recognition": "finegrained_perception (instance-level)",
    "object_localization": "finegrained_perception (instance-level)",
    "spatial_relationship": "finegrained_perception (cross-instance)",
}
CELLS = tuple(f"{r} {c}" for r in ("top", "middle", "bottom") for c in ("left", "centre", "right"))
GRID_HINT = "The image is a 3 by 3 grid of objects on a black background."


def default_toy_dir(seed: int = 0) -> Path:
    return cache_root() / "toy" / f"mmbench-s{seed}"


def _topic(scene: Scene) -> str:
    """The theme most of the scene's objects come from (the first on a tie)."""
    counts = [sum(o in classes for o in scene.objects) for _, classes in THEMES]
    return THEME_NAMES[counts.index(max(counts))]


def _question(kind: str, scene: Scene, rng: random.Random) -> tuple[str, str | None, list[str], str]:
    """(question, hint, options in order, correct option text) of type `kind` about `scene`."""
    cell = dict(zip(scene.objects, scene.cells, strict=True))
    obj = rng.choice(scene.objects)
    if kind == "image_topic":
        options = list(THEME_NAMES)
        rng.shuffle(options)
        return "Which place does this scene most likely show?", None, options, _topic(scene)
    if kind == "attribute_recognition":
        others = rng.sample(sorted(set(COLOUR_NAME.values()) - {COLOUR_NAME[obj]}), 3)
        options = [COLOUR_NAME[obj], *others]
        rng.shuffle(options)
        return f"What colour is the {obj}?", None, options, COLOUR_NAME[obj]
    if kind == "object_localization":
        right = CELLS[cell[obj]]
        options = [right, *rng.sample([c for c in CELLS if c != right], 3)]
        rng.shuffle(options)
        return f"Where is the {obj} in the image?", GRID_HINT, options, right
    a, b = rng.sample(scene.objects, 2)
    if cell[a] // GRID != cell[b] // GRID:
        answer = "above" if cell[a] < cell[b] else "below"
        return f"Is the {a} above or below the {b}?", None, ["above", "below"], answer
    answer = "left" if cell[a] < cell[b] else "right"
    return f"Is the {a} to the left or to the right of the {b}?", None, ["left", "right"], answer


def _png_b64(scene: Scene) -> str:
    buf = io.BytesIO()
    render(scene).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def toy_rows(seed: int = 0) -> list[dict[str, Any]]:
    """The TSV rows (deterministic from `seed`)."""
    rng = random.Random(f"mmbench-toy-{seed}")
    rows: list[dict[str, Any]] = []
    for i, scene in enumerate(sample_scenes(N_SCENES, seed)):
        kinds = [KINDS[i % len(KINDS)]] + ([KINDS[(i + 1) % len(KINDS)]] if i % 6 == 0 else [])
        first_index = len(rows) + 1
        for j, kind in enumerate(kinds):
            question, hint, options, answer = _question(kind, scene, rng)
            letters = "ABCD"[: len(options)]
            row = {
                "index": len(rows) + 1,
                "question": question,
                "hint": hint or "",
                **{c: "" for c in "ABCD"},
                **dict(zip(letters, options, strict=True)),
                "answer": letters[options.index(answer)],
                "category": kind,
                "l2-category": L2[kind],
                "split": "dev",
                "image": _png_b64(scene) if j == 0 else str(first_index),
                "source": "toy",
                "comment": "",
            }
            rows.append(row)
    return rows


def write_tsv(path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(c, "") for c in columns])


def write_toy_mmbench(root: Path, seed: int = 0) -> Path:
    """Write the toy TSV into `root` unless it is there already; returns `root`. Atomic, and never replaces
    a non-toy folder: see `evalkit.toy.folders.write_once`."""
    meta = {"seed": seed, "version": VERSION, "n_scenes": N_SCENES, "generator": __name__}
    return write_once(root, meta, lambda tmp: write_tsv(tmp / TOY_FILE, toy_rows(seed)))
