"""A toy MMHal-Bench over the toy world (`evalkit.toy.world`), in the official template format.

Layout of the folder (written once into the cache, see `default_toy_dir`)::

    response_template.json   96 records, the official schema; record i is a QUESTION_TYPES[i % 8] question
    images/<image_id>.png    one 48×48 scene per record; image_src ends with that file name
    toy_meta.json            {seed, version, ...}; written last

Record i asks about scene i of `sample_scenes(96, seed)`; `image_content` is the scene's object nouns
(capitalised, as OpenImages labels are). The questions follow the 8 official types as far as the toy world
allows: attribute (an object's colour), adversarial (the colour of an object that is not there), comparison
(which of two objects is higher up, or further left when they share a row), counting (how many objects),
relation (where one object is relative to another), environment (the background), holistic (describe the
image) and other (an object's shape). Objects are picked with `random.Random(f"mmhal-toy-{seed}")`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from evalkit.tasks.mmhal.protocol import N_ITEMS, question_type
from evalkit.toy.folders import write_once
from evalkit.toy.world import COLOUR_NAME, GRID, OBJECTS, STYLE, THEMES, Scene, render, sample_scenes
from evalkit.util.environment import cache_root

VERSION = 1
TEMPLATE = "response_template.json"
SHAPE = {
    "circle": "circle",
    "square": "square",
    "triangle": "triangle",
    "diamond": "diamond",
    "plus": "plus sign",
    "xcross": "cross",
}
#: `THEMES` in order: the scene's topic is the theme most of its objects come from
THEME_NAMES = ("kitchen", "park", "street")
BACKGROUND_NAME = "black"
ROWS = ("top", "middle", "bottom")
COLUMNS = ("left", "centre", "right")


def default_toy_dir(seed: int = 0) -> Path:
    return cache_root() / "toy" / f"mmhal-s{seed}"


def _where(cell: int) -> str:
    row, col = ROWS[cell // GRID], COLUMNS[cell % GRID]
    return "in the centre" if (row, col) == ("middle", "centre") else f"in the {row} {col}"


def _topic(scene: Scene) -> str:
    counts = [sum(o in classes for o in scene.objects) for _, classes in THEMES]
    return THEME_NAMES[counts.index(max(counts))]


def _question(kind: str, scene: Scene, rng: random.Random) -> tuple[str, str]:
    """(question, human answer) of type `kind` about `scene`."""
    cell = dict(zip(scene.objects, scene.cells, strict=True))
    obj = rng.choice(scene.objects)
    if kind == "attribute":
        return f"What color is the {obj} in the image?", f"The {obj} in the image is {COLOUR_NAME[obj]}."
    if kind == "adversarial":
        absent = rng.choice([o for o in OBJECTS if o not in scene.objects])
        return (
            f"What color is the {absent} in the image?",
            f"There is no {absent} in the image, so its color cannot be told.",
        )
    if kind == "comparison":
        a, b = rng.sample(scene.objects, 2)
        ra, rb = cell[a] // GRID, cell[b] // GRID
        if ra != rb:
            higher = a if ra < rb else b
            return f"Which is higher up in the image, the {a} or the {b}?", f"The {higher} is higher up."
        left = a if cell[a] < cell[b] else b
        return f"Which is further left in the image, the {a} or the {b}?", f"The {left} is further left."
    if kind == "counting":
        n = len(scene.objects)
        return "How many objects are there in the image?", f"There are {n} objects in the image."
    if kind == "relation":
        a, b = rng.sample(scene.objects, 2)
        ca, cb = cell[a] % GRID, cell[b] % GRID
        if ca != cb:
            side = "to the left of" if ca < cb else "to the right of"
        else:
            side = "above" if cell[a] < cell[b] else "below"
        return f"Where is the {a} relative to the {b}?", f"The {a} is {side} the {b}."
    if kind == "environment":
        return (
            "What does the background of the image look like?",
            f"The background is plain {BACKGROUND_NAME}.",
        )
    if kind == "holistic":
        parts = [
            f"a {COLOUR_NAME[o]} {o} {_where(c)}" for o, c in zip(scene.objects, scene.cells, strict=True)
        ]
        listed = ", ".join(parts[:-1]) + f" and {parts[-1]}"
        return (
            "Describe this image in detail.",
            f"On a {BACKGROUND_NAME} background the image shows {listed}.",
        )
    if kind == "other":
        shape = SHAPE[STYLE[obj][0]]
        return (
            f"What shape is the {obj} in the image?",
            f"The {obj} is drawn as a {COLOUR_NAME[obj]} {shape}.",
        )
    raise ValueError(f"unknown question type {kind!r}")


def toy_records(seed: int = 0) -> tuple[list[Scene], list[dict[str, Any]]]:
    """The toy scenes and their template records (deterministic from `seed`)."""
    scenes = sample_scenes(N_ITEMS, seed)
    rng = random.Random(f"mmhal-toy-{seed}")
    records = []
    for i, scene in enumerate(scenes):
        kind = question_type(i)
        question, answer = _question(kind, scene, rng)
        records.append(
            {
                "question_type": kind,
                "question_topic": _topic(scene),
                "image_id": scene.image_id,
                "image_src": f"toy://mmhal/images/{scene.image_id}.png",
                "image_content": [o.capitalize() for o in scene.objects],
                "question": question,
                "gt_answer": answer,
                "model_answer": "",
            }
        )
    return scenes, records


def _write(tmp: Path, seed: int) -> None:
    scenes, records = toy_records(seed)
    (tmp / "images").mkdir()
    for scene in scenes:
        render(scene).save(tmp / "images" / f"{scene.image_id}.png")
    (tmp / TEMPLATE).write_text(json.dumps(records, indent=1) + "\n")


def write_toy_mmhal(root: Path, seed: int = 0) -> Path:
    """Write the toy data into `root` unless it is there already; returns `root`. Atomic, and never
    replaces a non-toy folder: see `evalkit.toy.folders.write_once`."""
    meta = {"seed": seed, "version": VERSION, "n_records": N_ITEMS, "generator": __name__}
    return write_once(root, meta, lambda tmp: _write(tmp, seed))
