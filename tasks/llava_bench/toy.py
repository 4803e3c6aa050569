"""A toy LLaVA-Bench over the toy world (`evalkit.toy.world`), in the official file formats of both variants.

Layout of ``root`` (written once into the cache, deterministic from the seed)::

    images/<image_id>.png
    questions.jsonl, context.jsonl, answers_gpt4.jsonl     In-the-Wild format (HF llava-bench-in-the-wild)
    qa90_questions.jsonl, qa90_gpt4_answer.jsonl,          COCO format (the same questions and answers)
    caps_boxes_coco2014_val_80.jsonl
    toy_meta.json                                          {seed, n_images, version, ...}; written last

Each scene gets one question per category, as LLaVA-Bench (COCO) does: "conv" asks what is at a position,
how many objects there are or what colour one is; "detail" asks for a description; "complex" asks what
kind of place the scene shows and why (the toy world's themes: kitchen, park, street). The reference
answers are templated from the scene, and the judge's context names every object with its colour and
position (In-the-Wild: one caption; COCO: five captions plus one normalized box per object).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from evalkit.toy.folders import write_once
from evalkit.toy.language import a_or_an, article, listing
from evalkit.toy.world import COLOUR_NAME, GRID, SIZE, THEMES, Scene, cell_box, render, sample_scenes
from evalkit.util.environment import cache_root

VERSION = 1
N_IMAGES = 24
COLOURS = COLOUR_NAME  # the name tests import
#: where each grid cell (row-major) is, as a phrase that follows "is"
POSITIONS = (
    "in the top left corner",
    "at the top",
    "in the top right corner",
    "on the left",
    "in the center",
    "on the right",
    "in the bottom left corner",
    "at the bottom",
    "in the bottom right corner",
)
THEME_NAMES = ("kitchen", "park", "street")  # in the order of `evalkit.toy.world.THEMES`
DETAIL_QUESTIONS = (
    "Describe the image in detail.",
    "What do you see in this image? Describe it in detail.",
    "Describe the following image.",
)
COMPLEX_QUESTIONS = (
    "What kind of place might this scene show, and why?",
    "Based on the objects in the image, where could this be? Explain your reasoning.",
)


def default_toy_dir(seed: int = 0) -> Path:
    return cache_root() / "toy" / f"llava-bench-s{seed}-n{N_IMAGES}-v{VERSION}"


def _with_articles(nouns: list[str]) -> list[str]:
    return [article(o) for o in nouns]


def _things(scene: Scene) -> list[str]:
    """'a red apple in the top left corner', ... in cell order."""
    return [
        f"{a_or_an(COLOURS[o])} {COLOURS[o]} {o} {POSITIONS[c]}"
        for o, c in zip(scene.objects, scene.cells, strict=True)
    ]


def caption(scene: Scene) -> str:
    things = _things(scene)
    return (
        f"A small picture of a {GRID}×{GRID} grid on a black background with {len(things)} objects: "
        f"{listing(things)}."
    )


def theme_of(scene: Scene) -> tuple[str, list[str]]:
    """The theme most of the scene's objects belong to (first in theme order on ties), and those objects."""
    members = [[o for o in scene.objects if o in classes] for _, classes in THEMES]
    best = max(range(len(THEMES)), key=lambda i: (len(members[i]), -i))
    return THEME_NAMES[best], members[best]


def questions_for(scene: Scene, rng: random.Random) -> list[tuple[str, str, str]]:
    """(category, question, reference answer) for one scene: conv, detail, complex."""
    nouns = list(scene.objects)
    kind = rng.randrange(3)
    if kind == 0:
        i = rng.randrange(len(nouns))
        o, where = nouns[i], POSITIONS[scene.cells[i]]
        conv = (
            f"What object is {where} of the image?",
            f"There is {a_or_an(COLOURS[o])} {COLOURS[o]} {o} {where} of the image.",
        )
    elif kind == 1:
        conv = (
            "How many objects are there in the image?",
            f"There are {len(nouns)} objects in the image: {listing(_with_articles(nouns))}.",
        )
    else:
        o = rng.choice(nouns)
        conv = (f"What color is the {o} in the image?", f"The {o} is {COLOURS[o]}.")
    detail = (
        rng.choice(DETAIL_QUESTIONS),
        f"The image shows {listing(_things(scene))}. The background is black, and each object fills one "
        f"cell of a {GRID}×{GRID} grid.",
    )
    theme, members = theme_of(scene)
    others = [o for o in nouns if o not in members]
    verb = "is something" if len(members) == 1 else "are things"
    reason = f"The scene most likely shows a {theme}: the {listing(members)} {verb} found in a {theme}."
    if others:
        reason += f" The {listing(others)} {'does' if len(others) == 1 else 'do'} not fit that theme as well."
    complex_ = (rng.choice(COMPLEX_QUESTIONS), reason)
    return [("conv", *conv), ("detail", *detail), ("complex", *complex_)]


def coco_context(scene: Scene) -> dict[str, Any]:
    """The COCO context line: five captions and one normalized box per object."""
    theme, _ = theme_of(scene)
    nouns = list(scene.objects)
    captions = [
        caption(scene),
        f"{len(nouns)} simple coloured shapes on a black background.",
        f"A {theme} scene with {listing(_with_articles(nouns))}.",
        f"Objects arranged on a grid: {listing(nouns)}.",
        f"A dark image showing {listing([f'{COLOURS[o]} {o}' for o in nouns])}.",
    ]
    instances = [
        {"category": o, "bbox": [round(v / SIZE, 3) for v in cell_box(c)]}
        for o, c in zip(scene.objects, scene.cells, strict=True)
    ]
    return {
        "id": scene.image_id,
        "image": f"{scene.image_id}.png",
        "captions": captions,
        "instances": instances,
    }


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _write(tmp: Path, seed: int) -> None:
    scenes = sample_scenes(N_IMAGES, seed)
    rng = random.Random(f"llava-bench-toy-{seed}")
    (tmp / "images").mkdir()
    questions, answers, coco_answers = [], [], []
    for scene in scenes:
        image = f"{scene.image_id}.png"
        render(scene).save(tmp / "images" / image)
        for category, text, reference in questions_for(scene, rng):
            qid = len(questions)
            questions.append({"question_id": qid, "image": image, "text": text, "category": category})
            answers.append(
                {
                    "question_id": qid,
                    "prompt": text,
                    "answer_id": f"toy-{seed}-{qid}",
                    "model_id": "toy-reference",
                    "metadata": {},
                    "text": reference,
                }
            )
            coco_answers.append({"question_id": qid, "text": reference, "category": category})
    _jsonl(tmp / "questions.jsonl", questions)
    _jsonl(tmp / "context.jsonl", [{"image": f"{s.image_id}.png", "caption": caption(s)} for s in scenes])
    _jsonl(tmp / "answers_gpt4.jsonl", answers)
    _jsonl(tmp / "qa90_questions.jsonl", questions)
    _jsonl(tmp / "qa90_gpt4_answer.jsonl", coco_answers)
    _jsonl(tmp / "caps_boxes_coco2014_val_80.jsonl", [coco_context(s) for s in scenes])


def write_toy(root: Path, seed: int = 0) -> Path:
    """Write the toy data set into ``root`` unless it is already there; returns ``root``. Atomic, and never
    replaces a non-toy folder: see `evalkit.toy.folders.write_once`."""
    meta = {"seed": seed, "n_images": N_IMAGES, "version": VERSION, "generator": __name__}
    return write_once(root, meta, lambda tmp: _write(tmp, seed))
