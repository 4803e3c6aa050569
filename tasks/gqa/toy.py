"""A toy GQA over the toy world (`evalkit.toy.world`), in the official question-file format.

Layout of the folder (written once into the cache, see `default_toy_dir`)::

    testdev_balanced_questions.json   {question id: {imageId, question, answer, fullAnswer, isBalanced,
                                      types: {structural, semantic, detailed}}}
    images/<imageId>.png
    toy_meta.json                     {seed, n_scenes, version, ...}; written last

Two questions per scene of `sample_scenes(N_SCENES, seed)`, cycling through five GQA question kinds the toy
world can ask, each with its official structural / semantic type: existence (verify / obj, "Is there a
dog?"), an object's colour (query / attr), which object has a colour (query / cat), either of two objects
(logical / obj, "Is there a dog or a cake?") and above or below (choose / rel). Answers are single
lower-case words, as GQA's are; yes / no answers are balanced.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from evalkit.toy.folders import write_once
from evalkit.toy.language import article
from evalkit.toy.world import COLOUR_NAME, GRID, OBJECTS, Scene, render, sample_scenes
from evalkit.util.environment import cache_root

VERSION = 1
N_SCENES = 60
KINDS = ("exist", "colour", "category", "logical", "relation")
TYPES = {
    "exist": ("verify", "obj", "exist"),
    "colour": ("query", "attr", "color"),
    "category": ("query", "cat", "category"),
    "logical": ("logical", "obj", "logicOr"),
    "relation": ("choose", "rel", "positionChoose"),
}


def default_toy_dir(seed: int = 0) -> Path:
    return cache_root() / "toy" / f"gqa-s{seed}"


def _question(kind: str, scene: Scene, rng: random.Random, yes: bool) -> tuple[str, str]:
    absent = [o for o in OBJECTS if o not in scene.objects]
    if kind == "exist":
        noun = rng.choice(scene.objects if yes else absent)
        return f"Is there {article(noun)} in the image?", "yes" if yes else "no"
    if kind == "colour":
        noun = rng.choice(scene.objects)
        return f"What colour is the {noun}?", COLOUR_NAME[noun]
    if kind == "category":
        noun = rng.choice(scene.objects)
        return f"Which object is {COLOUR_NAME[noun]}?", noun
    if kind == "logical":
        a, b = rng.sample(absent, 2)
        if yes:
            a = rng.choice(scene.objects)
        first, second = (a, b) if rng.random() < 0.5 else (b, a)
        return f"Is there {article(first)} or {article(second)}?", "yes" if yes else "no"
    cell = dict(zip(scene.objects, scene.cells, strict=True))
    pairs = [(a, b) for a in scene.objects for b in scene.objects if cell[a] // GRID != cell[b] // GRID]
    a, b = rng.choice(pairs) if pairs else rng.sample(scene.objects, 2)
    if cell[a] // GRID == cell[b] // GRID:
        return f"Is the {a} to the left or to the right of the {b}?", "left" if cell[a] < cell[b] else "right"
    return f"Is the {a} above or below the {b}?", "above" if cell[a] < cell[b] else "below"


def toy_questions(seed: int = 0) -> dict[str, dict[str, Any]]:
    """The question file (deterministic from `seed`)."""
    rng = random.Random(f"gqa-toy-{seed}")
    out: dict[str, dict[str, Any]] = {}
    for i, scene in enumerate(sample_scenes(N_SCENES, seed)):
        for j in range(2):
            kind = KINDS[(2 * i + j) % len(KINDS)]
            question, answer = _question(kind, scene, rng, yes=(i // 2 + j) % 2 == 0)
            structural, semantic, detailed = TYPES[kind]
            out[f"{seed}{len(out) + 1:07d}"] = {
                "imageId": scene.image_id,
                "question": question,
                "answer": answer,
                "fullAnswer": f"The answer is {answer}.",
                "isBalanced": True,
                "types": {"structural": structural, "semantic": semantic, "detailed": detailed},
            }
    return out


def _write(tmp: Path, seed: int) -> None:
    (tmp / "images").mkdir()
    for scene in sample_scenes(N_SCENES, seed):
        render(scene).save(tmp / "images" / f"{scene.image_id}.png")
    (tmp / "testdev_balanced_questions.json").write_text(json.dumps(toy_questions(seed), indent=1) + "\n")


def write_toy_gqa(root: Path, seed: int = 0) -> Path:
    """Write the toy set into `root` unless it is there already; returns `root`. Atomic, and never replaces
    a non-toy folder: see `evalkit.toy.folders.write_once`."""
    meta = {"seed": seed, "version": VERSION, "n_scenes": N_SCENES, "generator": __name__}
    return write_once(root, meta, lambda tmp: _write(tmp, seed))
