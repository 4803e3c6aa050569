"""A toy MM-Vet over the toy world, in the official file format (`mm-vet.json` + `images/`).

Layout of ``root``::

    images/<image_id>.png     48×48 toy-world scenes
    mm-vet.json               {"v1_0": {"imagename", "question", "answer", "capability"}, ...}
    toy_meta.json             {seed, n_images, version, ...}; written last

Each image gets two questions of different kinds, drawn from the seed: recognition of every object
("<AND>" truth) or of any one ("<OR>" truth), counting, colour, position in the 3×3 grid, above/below,
and counting plus arithmetic. Capabilities use MM-Vet's names (rec, spat, math).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from evalkit.toy.folders import write_once
from evalkit.toy.world import COLOUR_NAME, GRID, OBJECTS, Scene, render, sample_scenes
from evalkit.util.environment import cache_root

VERSION = 1
QUESTIONS_PER_IMAGE = 2
#: `COLOUR_NAME`, except that the clock's truth accepts both spellings (an MM-Vet "<OR>" truth)
COLOUR_NAMES = {**COLOUR_NAME, "clock": "grey<OR>gray"}
ROWS = ("top", "middle", "bottom")
COLUMNS = ("left", "centre", "right")

#: (question, ground truth, capabilities), or None when the scene cannot ask it
Item = tuple[str, str, list[str]] | None


def default_toy_dir(seed: int = 0, n_images: int = 50) -> Path:
    return cache_root() / "toy" / f"mmvet-s{seed}-n{n_images}"


def position_name(cell: int) -> str:
    row, col = ROWS[cell // GRID], COLUMNS[cell % GRID]
    return "centre" if (row, col) == ("middle", "centre") else f"{row} {col}"


def _all_objects(scene: Scene, rng: random.Random) -> Item:
    return "What objects are in the image?", "<AND>".join(scene.objects), ["rec"]


def _any_object(scene: Scene, rng: random.Random) -> Item:
    return "Name one object in the image.", "<OR>".join(scene.objects), ["rec"]


def _count(scene: Scene, rng: random.Random) -> Item:
    return "How many objects are in the image?", str(len(scene.objects)), ["rec"]


def _colour(scene: Scene, rng: random.Random) -> Item:
    obj = rng.choice(scene.objects)
    return f"What colour is the {obj}?", COLOUR_NAMES[obj], ["rec"]


def _position(scene: Scene, rng: random.Random) -> Item:
    i = rng.randrange(len(scene.objects))
    where = position_name(scene.cells[i])
    article = "in the" if where == "centre" else "at the"
    return f"Which object is {article} {where} of the image?", scene.objects[i], ["rec", "spat"]


def _above_below(scene: Scene, rng: random.Random) -> Item:
    pairs = [
        (i, j)
        for i in range(len(scene.objects))
        for j in range(len(scene.objects))
        if scene.cells[i] // GRID != scene.cells[j] // GRID
    ]
    if not pairs:
        return None
    i, j = rng.choice(pairs)
    a, b = scene.objects[i], scene.objects[j]
    truth = "above" if scene.cells[i] < scene.cells[j] else "below"
    return f"Is the {a} above or below the {b}?", truth, ["rec", "spat"]


def _count_plus(scene: Scene, rng: random.Random) -> Item:
    k = rng.randint(1, 3)
    question = f"How many objects would the image have if {k} more were added?"
    return question, str(len(scene.objects) + k), ["rec", "math"]


KINDS: tuple[Callable[[Scene, random.Random], Item], ...] = (
    _all_objects,
    _any_object,
    _count,
    _colour,
    _position,
    _above_below,
    _count_plus,
)


def build_items(scenes: list[Scene], seed: int = 0) -> dict[str, dict]:
    """`mm-vet.json` content for the scenes: keys v1_0, v1_1, ... in scene order."""
    rng = random.Random(f"mmvet-toy-{seed}")
    items: dict[str, dict] = {}
    for scene in scenes:
        asked = 0
        for kind in rng.sample(KINDS, len(KINDS)):
            item = kind(scene, rng)
            if item is None:
                continue
            question, answer, capability = item
            items[f"v1_{len(items)}"] = {
                "imagename": f"{scene.image_id}.png",
                "question": question,
                "answer": answer,
                "capability": capability,
            }
            asked += 1
            if asked == QUESTIONS_PER_IMAGE:
                break
    return items


def _write(tmp: Path, seed: int, n_images: int) -> None:
    scenes = sample_scenes(n_images, seed)
    (tmp / "images").mkdir()
    for scene in scenes:
        render(scene).save(tmp / "images" / f"{scene.image_id}.png")
    (tmp / "mm-vet.json").write_text(json.dumps(build_items(scenes, seed), indent=4) + "\n")


def write_mmvet(root: Path, seed: int = 0, n_images: int = 50) -> Path:
    """Write the toy MM-Vet into ``root`` unless it is already there (same seed, n_images and version);
    returns ``root``. Atomic, and never replaces a non-toy folder: see `evalkit.toy.folders.write_once`."""
    meta = {"seed": seed, "n_images": n_images, "version": VERSION, "objects": OBJECTS, "generator": __name__}
    return write_once(
        root, meta, lambda tmp: _write(tmp, seed, n_images), keys=("seed", "n_images", "version")
    )
