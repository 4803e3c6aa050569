"""A toy TextVQA over the toy world (`evalkit.toy.world`), in the official annotation format.

Layout of the folder (written once into the cache, see `default_toy_dir`)::

    TextVQA_0.5.1_val.json   {"data": [...]}: question_id, image_id, question, answers (10), ocr_tokens
    train_images/<image_id>.png
    toy_meta.json            {seed, n_scenes, version, ...}; written last

Two questions per scene of `sample_scenes(N_SCENES, seed)`, cycling through three kinds the toy model can
answer: "Is there a NOUN in the image?" (half about an object it shows, half about one it lacks),
"What is the COLOUR object?" (a noun) and "How many objects are there?" (a number). The world has no
written text, so a scene's OCR tokens are its object names, as if each object were labelled. Each question
gets 10 human answers as annotators give them: the right answer in spellings the EvalAI normalisation
folds together ("Yes.", "the apple", "three") from 7 to 10 annotators (soft accuracy 1), a wrong one from
the rest (soft accuracy 0 to 0.9).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from evalkit.toy.folders import write_once
from evalkit.toy.language import article
from evalkit.toy.world import COLOUR_NAME, OBJECTS, Scene, render, sample_scenes
from evalkit.util.environment import cache_root

VERSION = 2
N_SCENES = 50
KINDS = ("exists", "colour", "count")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def default_toy_dir(seed: int = 0) -> Path:
    return cache_root() / "toy" / f"textvqa-s{seed}"


def _question(kind: str, scene: Scene, rng: random.Random, shown: bool) -> tuple[str, list[str], str]:
    """(question, spellings of the right answer, a wrong answer)."""
    if kind == "exists":
        absent = [o for o in OBJECTS if o not in scene.objects]
        noun = rng.choice(scene.objects if shown else absent)
        right, wrong = ("yes", "no") if shown else ("no", "yes")
        return f"Is there {article(noun)} in the image?", [right, right.capitalize(), right + "."], wrong
    if kind == "colour":
        noun = rng.choice(scene.objects)
        other = rng.choice([o for o in OBJECTS if o != noun])
        return f"What is the {COLOUR_NAME[noun]} object?", [noun, f"the {noun}", article(noun)], other
    n = len(scene.objects)
    return "How many objects are there?", [str(n), NUMBER_WORDS[n], NUMBER_WORDS[n].capitalize()], str(n + 1)


def toy_records(seed: int = 0) -> list[dict[str, Any]]:
    """The annotation records (deterministic from `seed`)."""
    rng = random.Random(f"textvqa-toy-{seed}")
    records = []
    for i, scene in enumerate(sample_scenes(N_SCENES, seed)):
        for j in range(2):
            kind = KINDS[(2 * i + j) % len(KINDS)]
            question, spellings, wrong = _question(kind, scene, rng, shown=(i + j) % 2 == 0)
            n_right = rng.randint(7, 10)
            answers = [rng.choice(spellings) for _ in range(n_right)] + [wrong] * (10 - n_right)
            rng.shuffle(answers)
            records.append(
                {
                    "question_id": len(records) + 1,
                    "image_id": scene.image_id,
                    "question": question,
                    "answers": answers,
                    "ocr_tokens": sorted(scene.objects, key=OBJECTS.index),
                    "set_name": "val",
                }
            )
    return records


def _write(tmp: Path, seed: int) -> None:
    (tmp / "train_images").mkdir()
    for scene in sample_scenes(N_SCENES, seed):
        render(scene).save(tmp / "train_images" / f"{scene.image_id}.png")
    doc = {"dataset_name": "textvqa", "dataset_version": "toy", "data": toy_records(seed)}
    (tmp / "TextVQA_0.5.1_val.json").write_text(json.dumps(doc, indent=1) + "\n")


def write_toy_textvqa(root: Path, seed: int = 0) -> Path:
    """Write the toy set into `root` unless it is there already; returns `root`. Atomic, and never replaces
    a non-toy folder: see `evalkit.toy.folders.write_once`."""
    meta = {"seed": seed, "version": VERSION, "n_scenes": N_SCENES, "generator": __name__}
    return write_once(root, meta, lambda tmp: _write(tmp, seed))
