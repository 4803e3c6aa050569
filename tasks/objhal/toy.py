"""A toy Object HalBench over the toy world (`evalkit.toy.world`), in the official file formats.

Layout of the folder (written once into the cache, see `default_toy_dir`; deterministic from the seed)::

    obj_halbench_300_with_image.jsonl   one record per scene: image_id, question, image (base64 PNG)
    synonyms_refine.txt                 the 12 toy classes, each with synonyms (some of two words)
    annotations/instances_val2014.json  COCO instance format: one box per object, categories = the classes
    annotations/captions_val2014.json   COCO caption format: two captions per scene
    toy_meta.json                       {seed, version, ...}; written last

Every question is the description prompt the toy model was warmed up on. Image ids are 1..N (COCO ids are
integers); the ground truth of a scene is its objects: the instance boxes name them, and so do both captions
(the second with a synonym of each, drawn with `random.Random(f"objhal-toy-{seed}")`). No train2014 files:
the loader needs them only for images missing from the val2014 files.
"""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path
from typing import Any

from evalkit.toy.folders import write_once
from evalkit.toy.language import article, listing
from evalkit.toy.world import COLOUR_NAME, OBJECTS, THEMES, Scene, cell_box, render, sample_scenes
from evalkit.util.environment import cache_root

VERSION = 1
N_IMAGES = 100
#: the caption prompt of the toy model's warm-up (`evalkit.toy.pretrain.CAPTION_PROMPT`)
QUESTION = "Describe the image."
#: class → synonyms (the line of synonyms_refine.txt after the class)
SYNONYMS = {
    "apple": ["crabapple", "green apple"],
    "cake": ["cupcake", "cheesecake", "birthday cake"],
    "cup": ["mug", "teacup", "coffee cup"],
    "egg": ["eggshell", "boiled egg"],
    "dog": ["puppy", "pup", "doggy", "hound"],
    "ball": ["football", "tennis ball", "beach ball"],
    "tree": ["pine", "oak", "pine tree"],
    "kite": ["paper kite"],
    "car": ["automobile", "sedan", "taxi"],
    "bus": ["minibus", "coach", "school bus"],
    "umbrella": ["parasol", "sunshade"],
    "clock": ["wall clock", "alarm clock"],
}
THEME_NAMES = ("kitchen", "park", "street")


def default_toy_dir(seed: int = 0) -> Path:
    return cache_root() / "toy" / f"objhal-s{seed}-n{N_IMAGES}"


def synonym_text() -> str:
    return "".join(", ".join([c, *SYNONYMS[c]]) + "\n" for c in OBJECTS)


def captions(scene: Scene, rng: random.Random) -> list[str]:
    plain = [f"a {COLOUR_NAME[o]} {o}" for o in scene.objects]
    other = [rng.choice(SYNONYMS[o]) for o in scene.objects]
    return [
        f"{listing(plain).capitalize()} on a black background.",
        f"There are {len(scene.objects)} things here: {listing([article(w) for w in other])}.",
    ]


def _theme(name: str) -> str:
    return next(THEME_NAMES[i] for i, (_, classes) in enumerate(THEMES) if name in classes)


def toy_files(seed: int = 0) -> tuple[list[Scene], dict[str, Any]]:
    """The scenes and the contents of every file (deterministic from `seed`)."""
    scenes = sample_scenes(N_IMAGES, seed)
    rng = random.Random(f"objhal-toy-{seed}")
    category = {name: i + 1 for i, name in enumerate(OBJECTS)}
    images, boxes, caps, questions = [], [], [], []
    for i, scene in enumerate(scenes):
        image_id = i + 1
        images.append({"id": image_id, "file_name": f"{scene.image_id}.png", "width": 48, "height": 48})
        for name, cell in zip(scene.objects, scene.cells, strict=True):
            x0, y0, x1, y1 = cell_box(cell)
            boxes.append(
                {
                    "id": len(boxes) + 1,
                    "image_id": image_id,
                    "category_id": category[name],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                    "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
                }
            )
        for text in captions(scene, rng):
            caps.append({"id": len(caps) + 1, "image_id": image_id, "caption": text})
        questions.append({"image_id": image_id, "question": QUESTION})
    categories = [{"id": category[n], "name": n, "supercategory": _theme(n)} for n in OBJECTS]
    info = {"description": "evalkit toy world", "version": str(VERSION)}
    files = {
        "instances": {
            "info": info,
            "licenses": [],
            "images": images,
            "annotations": boxes,
            "categories": categories,
        },
        "captions": {"info": info, "licenses": [], "images": images, "annotations": caps},
        "questions": questions,
    }
    return scenes, files


def _png_base64(scene: Scene) -> str:
    buf = io.BytesIO()
    render(scene).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _write(tmp: Path, seed: int) -> None:
    scenes, files = toy_files(seed)
    lines = [
        json.dumps({**q, "image": _png_base64(s)}) + "\n"
        for q, s in zip(files["questions"], scenes, strict=True)
    ]
    (tmp / "obj_halbench_300_with_image.jsonl").write_text("".join(lines))
    (tmp / "synonyms_refine.txt").write_text(synonym_text())
    (tmp / "annotations").mkdir()
    for kind in ("instances", "captions"):
        (tmp / "annotations" / f"{kind}_val2014.json").write_text(json.dumps(files[kind]))


def write_toy_objhal(root: Path, seed: int = 0) -> Path:
    """Write the toy data into `root` unless it is there already; returns `root`. Atomic, and never
    replaces a non-toy folder: see `evalkit.toy.folders.write_once`."""
    meta = {"seed": seed, "version": VERSION, "n_images": N_IMAGES, "generator": __name__}
    return write_once(root, meta, lambda tmp: _write(tmp, seed))
