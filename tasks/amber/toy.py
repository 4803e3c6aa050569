"""A toy AMBER over the toy world (`evalkit.toy.world`), in the official `data/` layout.

Layout of the folder (written once into the cache, see `default_toy_dir`)::

    annotations.json, relation.json, safe_words.txt, metrics.txt, query/query_all.json
    images/AMBER_<i>.png     one 48×48 scene per generative item i (1..n_images)
    toy_meta.json            {seed, n_images, version, ...}; written last

Items, numbered as the official file orders them (generative, attribute, existence, relation):

- generative i: "Describe this image." with `truth` = the scene's objects and `hallu` = the three absent
  classes that co-occur most often with them over the data set (ties in `OBJECTS` order) — plausible but
  absent, as AMBER's hallu lists are;
- attribute: per image, state = its colour ("Is the apple red in this image?" yes; the same object with
  another class's colour, no) and number ("Is there one apple in this image?" yes; "Are there two apples
  in this image?" no — every class appears at most once per scene);
- existence: "Is there a cup in this image?" for each hallu object, all "no" (as in AMBER);
- relation: two objects in different rows or columns; "Is the apple to the left of the cup in this
  image?" (or "above") with the true relation (`discriminative-relation`, yes) and the reversed one
  (`relation`, no — the official file types its "no" relation items so).

relation.json holds the 12 classes with synonyms (cup → mug, dog → puppy, car/bus → vehicle, person →
people, ...) plus nouns the toy world never draws (person, table, plate, grass, orange, light ...), so a
description that names one is a hallucination; safe_words.txt holds "orange" and "light", which the toy
world uses as colour words only. Choices come from `random.Random(f"amber-toy-{seed}")`.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from evalkit.toy.folders import write_once
from evalkit.toy.world import COLOUR_NAME, GRID, OBJECTS, Scene, render, sample_scenes
from evalkit.util.environment import cache_root

VERSION = 1
N_IMAGES = 60
N_HALLU = 3
RELATION = {
    "apple": ["fruit"],
    "cake": ["dessert"],
    "cup": ["mug"],
    "egg": [],
    "dog": ["puppy"],
    "ball": [],
    "tree": ["plant"],
    "kite": [],
    "car": ["vehicle"],
    "bus": ["vehicle", "coach"],
    "umbrella": ["parasol"],
    "clock": [],
    "person": ["people", "man", "woman"],
    "table": ["desk"],
    "plate": [],
    "grass": ["ground"],
    "cat": [],
    "orange": ["fruit"],
    "light": [],
}
SAFE_WORDS = ["orange", "light"]
#: metrics.txt as the official file lays it out (counters start at 0, denominators at 0.001)
_GEN = ("chair", "safe_cover", "hallu_cover")
_QA = ("qa_correct", "qa_no", "qa_ans_no")
METRICS_TXT = "\n".join(
    [line for name in _GEN for line in (f"{name}_num=0.001", f"{name}_score=0")]
    + ["non_hallu_score=0", "non_hallu_num=0.001"]
    + [
        line
        for prefix in ("", "as_", "an_", "aa_", "asso_", "ha_")
        for name in _QA
        for line in (f"{prefix}{name}_score=0", f"{prefix}{name}_num=0.001")
    ]
)


def default_toy_dir(seed: int = 0, n_images: int = N_IMAGES) -> Path:
    return cache_root() / "toy" / f"amber-s{seed}-n{n_images}"


def article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def _hallu(scenes: list[Scene]) -> dict[str, list[str]]:
    co: dict[str, Counter[str]] = {o: Counter() for o in OBJECTS}
    for s in scenes:
        for a in s.objects:
            co[a].update(b for b in s.objects if b != a)
    out = {}
    for s in scenes:
        score = Counter()
        for a in s.objects:
            score.update(co[a])
        absent = [o for o in OBJECTS if o not in s.objects]
        out[s.image_id] = sorted(absent, key=lambda o: (-score[o], OBJECTS.index(o)))[:N_HALLU]
    return out


def _relation(a: str, b: str, cell: dict[str, int]) -> tuple[str, str]:
    """(true statement, false statement) about where `a` is relative to `b`."""
    (ra, ca), (rb, cb) = divmod(cell[a], GRID), divmod(cell[b], GRID)
    if ca != cb:
        left, right = (a, b) if ca < cb else (b, a)
        return f"Is the {left} to the left of the {right}", f"Is the {right} to the left of the {left}"
    top, bottom = (a, b) if ra < rb else (b, a)
    return f"Is the {top} above the {bottom}", f"Is the {bottom} above the {top}"


def build(scenes: list[Scene], seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(annotations, queries) in the official schemas and id order."""
    rng = random.Random(f"amber-toy-{seed}")
    hallu = _hallu(scenes)
    image = {s.image_id: f"AMBER_{i}.png" for i, s in enumerate(scenes, 1)}
    parts: dict[str, list[tuple[str, str, str, str]]] = {"g": [], "a": [], "e": [], "r": []}
    for s in scenes:
        img = image[s.image_id]
        parts["g"].append((img, "Describe this image.", "generative", ""))
        obj = rng.choice(s.objects)
        wrong = rng.choice([c for o, c in COLOUR_NAME.items() if c != COLOUR_NAME[obj]])
        for colour, truth in ((COLOUR_NAME[obj], "yes"), (wrong, "no")):
            parts["a"].append(
                (img, f"Is the {obj} {colour} in this image?", "discriminative-attribute-state", truth)
            )
        obj = rng.choice(s.objects)
        parts["a"].append(
            (img, f"Is there one {obj} in this image?", "discriminative-attribute-number", "yes")
        )
        parts["a"].append(
            (img, f"Are there two {plural(obj)} in this image?", "discriminative-attribute-number", "no")
        )
        for h in hallu[s.image_id]:
            parts["e"].append(
                (img, f"Is there {article(h)} {h} in this image?", "discriminative-hallucination", "no")
            )
        a, b = rng.sample(s.objects, 2)
        true, false = _relation(a, b, dict(zip(s.objects, s.cells, strict=True)))
        parts["r"].append((img, f"{true} in this image?", "discriminative-relation", "yes"))
        parts["r"].append((img, f"{false} in this image?", "relation", "no"))
    annotations: list[dict[str, Any]] = []
    queries: list[dict[str, Any]] = []
    objects = {image[s.image_id]: s.objects for s in scenes}
    for img, query, kind, truth in parts["g"] + parts["a"] + parts["e"] + parts["r"]:
        i = len(annotations) + 1
        if kind == "generative":
            scene_id = next(k for k, v in image.items() if v == img)
            annotations.append({"id": i, "type": kind, "truth": list(objects[img]), "hallu": hallu[scene_id]})
        else:
            annotations.append({"id": i, "type": kind, "truth": truth})
        queries.append({"id": i, "image": img, "query": query})
    return annotations, queries


def _write(tmp: Path, seed: int, n_images: int) -> None:
    scenes = sample_scenes(n_images, seed)
    (tmp / "images").mkdir()
    for i, scene in enumerate(scenes, 1):
        render(scene).save(tmp / "images" / f"AMBER_{i}.png")
    annotations, queries = build(scenes, seed)
    (tmp / "annotations.json").write_text(json.dumps(annotations, indent=1) + "\n")
    (tmp / "relation.json").write_text(json.dumps(RELATION, indent=1) + "\n")
    (tmp / "safe_words.txt").write_text("\n".join(SAFE_WORDS))
    (tmp / "metrics.txt").write_text(METRICS_TXT)
    (tmp / "query").mkdir()
    (tmp / "query" / "query_all.json").write_text(json.dumps(queries, indent=1) + "\n")


def write_amber(root: Path, seed: int = 0, n_images: int = N_IMAGES) -> Path:
    """Write the toy AMBER data into `root` unless it is already there (same seed, n_images and version);
    returns `root`. Atomic, and never replaces a non-toy folder: see `evalkit.toy.folders.write_once`."""
    meta = {"seed": seed, "n_images": n_images, "version": VERSION, "generator": __name__}
    return write_once(
        root, meta, lambda tmp: _write(tmp, seed, n_images), keys=("seed", "n_images", "version")
    )
