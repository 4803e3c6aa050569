"""Training data for the toy alignment experiment (`evalkit.experiments.toy_alignment`), written once
into a folder.

Layout of ``root``::

    images/<image_id>.png   one 48×48 scene per training image
    sft.jsonl               visual instructions, generic SFT format {"id", "image", "prompt", "response"},
                            then the text-only conversations (no "image")
    pairs.jsonl             preferences, generic format {"id", "image", "prompt", "chosen", "rejected"}
    bdhs_source.jsonl       the pairs' prompts with their faithful (chosen) answers, SFT format: what BDHS
                            turns into pairs with rejected answers of the policy's own making
    language.jsonl          text-only conversations (`evalkit.toy.language`), SFT format without "image"
    annotations.json        {image_id: [objects]} of every scene written
    toy_meta.json           {seed, sizes, version, ...}; written last

Image paths in the JSONL files are relative to the folder (``images/<id>.png``).

The SFT stage is what visual-instruction data typically is: mostly right, but biased towards objects that
usually come with the scene. Per SFT scene: one description (the prompts of the toy Object HalBench,
"Describe the image.", and of the toy AMBER, "Describe this image.", alternating), which with probability
`P_HALLU_CAPTION` also names one absent object that co-occurs often with the scene's objects; and two
existence questions in the POPE prompt format: one about a present object ("Yes") and one about an absent
object — with probability `P_HALLU_QUESTION` a co-occurring one answered "Yes" (the bias), otherwise a
uniformly drawn one answered "No". Descriptions list the objects in `OBJECTS` order, as the toy model's
warm-up captions do ("apple, cup and dog.").

Like LLaVA-1.5's SFT mix (ShareGPT text-only conversations, ~40K of 665K), the SFT data also holds
text-only conversations, so that the model keeps answering without an image: questions about which objects
go together, answered with other scenes of the world (not the biased captions), in the forms of
`evalkit.toy.language` ("Name things that go with a kite." -> "dog, ball and tree.", "Describe a scene
with a kite and a dog." -> "dog, ball, tree and kite."). A model that learnt them guesses from
co-occurrence when it cannot see. ``language.jsonl`` holds more of them, from other scenes: the language
stage that makes the toy model a base with a language side before the visual stage (`toy_language` scores
that side).

The preference pairs use other scenes. Per scene: a description pair (chosen = the faithful description,
rejected = the same description naming one absent co-occurring object: added to the list for half of the
scenes, in place of one present object for the other half, so that the shorter answer is not always the
chosen one — with additions only, DPO mostly taught the model to name fewer objects), a "No" pair about an
absent co-occurring object (chosen "No", rejected "Yes") and a "Yes" pair about a present object (chosen
"Yes", rejected "No"), so that preferring "No" everywhere is not what the pairs teach.

"Co-occurring": the absent class with the largest co-occurrence count with the scene's objects, summed
over the scene's objects (counts over all scenes written; ties in `OBJECTS` order) — how the toy AMBER
picks its hallucination candidates; one of the top `N_COOCCUR` is drawn. Scenes come from
``sample_scenes(n, SFT_SCENE_SEED + seed)``, ``sample_scenes(n, PAIR_SCENE_SEED + seed)`` and (text-only)
``sample_scenes(n, TEXT_SCENE_SEED + seed)`` / ``sample_scenes(n, LANGUAGE_SCENE_SEED + seed)``, disjoint from
the evaluation data (seed 0) and from the toy model's warm-up (`evalkit.toy.pretrain.TRAIN_SCENE_SEED`).
Draws come from ``random.Random(f"toy-alignment-{seed}")``; the same (seed, sizes) writes the same files.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from evalkit.tasks.pope.protocol import PROMPT_SUFFIX as POPE_SUFFIX
from evalkit.tasks.pope.toy import question_text
from evalkit.toy.folders import write_once
from evalkit.toy.language import describe, objects_named
from evalkit.toy.language import records as text_records
from evalkit.toy.world import OBJECTS, Scene, render, sample_scenes
from evalkit.util.environment import cache_root

VERSION = 3
SFT_SCENE_SEED = 2000
PAIR_SCENE_SEED = 3000
TEXT_SCENE_SEED = 4000
LANGUAGE_SCENE_SEED = 5000
N_SFT_SCENES = 600
N_PAIR_SCENES = 300
N_TEXT = 300  # text-only conversations (1 per text scene): 14% of the SFT records (LLaVA-1.5: 6%)
N_LANGUAGE = 1200  # the language stage's conversations
P_HALLU_CAPTION = 0.5
P_HALLU_QUESTION = 0.5
N_COOCCUR = 2
#: the description prompts of the toy Object HalBench and the toy AMBER
DESCRIBE_PROMPTS = ("Describe the image.", "Describe this image.")
YES, NO = "Yes", "No"


def default_data_dir(
    seed: int = 0,
    n_sft: int = N_SFT_SCENES,
    n_pairs: int = N_PAIR_SCENES,
    n_text: int = N_TEXT,
    n_language: int = N_LANGUAGE,
) -> Path:
    name = f"alignment-s{seed}-sft{n_sft}-pairs{n_pairs}-text{n_text}-lang{n_language}"
    return cache_root() / "toy" / name


def question(noun: str) -> str:
    """An existence question in the POPE prompt format."""
    return question_text(noun) + POPE_SUFFIX


def cooccurrence(scenes: list[Scene]) -> dict[str, Counter[str]]:
    co: dict[str, Counter[str]] = {o: Counter() for o in OBJECTS}
    for s in scenes:
        for a in s.objects:
            co[a].update(b for b in s.objects if b != a)
    return co


def cooccurring_absent(scene: Scene, co: dict[str, Counter[str]], k: int = N_COOCCUR) -> list[str]:
    """The `k` absent classes that co-occur most with the scene's objects (ties in `OBJECTS` order)."""
    score: Counter[str] = Counter()
    for a in scene.objects:
        score.update(co[a])
    absent = [o for o in OBJECTS if o not in scene.objects]
    return sorted(absent, key=lambda o: (-score[o], OBJECTS.index(o)))[:k]


def _image(scene: Scene) -> str:
    return f"images/{scene.image_id}.png"


def sft_records(scenes: list[Scene], co: dict[str, Counter[str]], rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for i, s in enumerate(scenes):
        img, likely = _image(s), cooccurring_absent(s, co)
        objects = list(s.objects)
        if rng.random() < P_HALLU_CAPTION:
            objects.append(rng.choice(likely))
        prompt = DESCRIBE_PROMPTS[i % len(DESCRIBE_PROMPTS)]
        out.append(
            {"id": f"{s.image_id}-describe", "image": img, "prompt": prompt, "response": describe(objects)}
        )
        present = rng.choice(s.objects)
        out.append({"id": f"{s.image_id}-yes", "image": img, "prompt": question(present), "response": YES})
        if rng.random() < P_HALLU_QUESTION:
            absent, answer = rng.choice(likely), YES
        else:
            absent, answer = rng.choice([o for o in OBJECTS if o not in s.objects]), NO
        out.append(
            {"id": f"{s.image_id}-absent", "image": img, "prompt": question(absent), "response": answer}
        )
    return out


def pair_records(
    scenes: list[Scene], co: dict[str, Counter[str]], rng: random.Random
) -> list[dict[str, Any]]:
    out = []
    for i, s in enumerate(scenes):
        img, likely = _image(s), cooccurring_absent(s, co)
        extra = rng.choice(likely)
        if (
            i // 2
        ) % 2:  # substitution: as long as the chosen answer, so length alone does not tell them apart
            kept = list(s.objects)
            kept.remove(rng.choice(kept))
        else:  # insertion
            kept = list(s.objects)
        out.append(
            {
                "id": f"{s.image_id}-describe",
                "image": img,
                "prompt": DESCRIBE_PROMPTS[i % len(DESCRIBE_PROMPTS)],
                "chosen": describe(s.objects),
                "rejected": describe([*kept, extra]),
            }
        )
        absent = rng.choice(likely)
        out.append(
            {
                "id": f"{s.image_id}-no",
                "image": img,
                "prompt": question(absent),
                "chosen": NO,
                "rejected": YES,
            }
        )
        present = rng.choice(s.objects)
        out.append(
            {
                "id": f"{s.image_id}-yes",
                "image": img,
                "prompt": question(present),
                "chosen": YES,
                "rejected": NO,
            }
        )
    return out


def build(
    seed: int = 0,
    n_sft: int = N_SFT_SCENES,
    n_pairs: int = N_PAIR_SCENES,
    n_text: int = N_TEXT,
    n_language: int = N_LANGUAGE,
) -> dict[str, Any]:
    """Everything the folder holds, as Python objects: scenes (with images), sft / pairs / bdhs_source /
    language records."""
    sft_scenes = sample_scenes(n_sft, SFT_SCENE_SEED + seed)
    pair_scenes = sample_scenes(n_pairs, PAIR_SCENE_SEED + seed)
    co = cooccurrence(sft_scenes + pair_scenes)
    rng = random.Random(f"toy-alignment-{seed}")
    sft = sft_records(sft_scenes, co, rng)
    pairs = pair_records(pair_scenes, co, rng)
    sft += text_records(sample_scenes(n_text, TEXT_SCENE_SEED + seed), random.Random(f"toy-text-{seed}"))
    source = [
        {"id": p["id"], "image": p["image"], "prompt": p["prompt"], "response": p["chosen"]} for p in pairs
    ]
    language = text_records(
        sample_scenes(n_language, LANGUAGE_SCENE_SEED + seed), random.Random(f"toy-language-{seed}")
    )
    return {
        "scenes": sft_scenes + pair_scenes,
        "sft": sft,
        "pairs": pairs,
        "bdhs_source": source,
        "language": language,
    }


def rejected_description_stats(rows: list[dict[str, Any]], data_dir: Path) -> dict[str, Any]:
    """What the rejected descriptions of `rows` name that the scene lacks: the share of them naming an
    absent object, the share of those absent objects that are among the scene's `N_COOCCUR` most
    co-occurring absent classes (`cooccurring_absent`), and that share's chance level (a
    uniformly drawn absent class), plus the share of present objects left out."""
    truth = json.loads((Path(data_dir) / "annotations.json").read_text())
    scenes = {k: Scene(k, v, []) for k, v in truth.items()}
    co = cooccurrence(list(scenes.values()))
    n, with_absent, absent, likely, chance, present, missed = 0, 0, 0, 0, 0.0, 0, 0
    for r in rows:
        if not r["prompt"].startswith("Describe"):
            continue
        scene = scenes[Path(r["image"]).stem]
        named = set(objects_named(r["rejected"]))
        top = set(cooccurring_absent(scene, co))
        wrong = named - set(scene.objects)
        n += 1
        with_absent += bool(wrong)
        absent += len(wrong)
        likely += len(wrong & top)
        chance += len(wrong) * len(top) / (len(OBJECTS) - len(scene.objects))
        present += len(scene.objects)
        missed += len(set(scene.objects) - named)
    return {
        "n": n,
        "share_naming_absent": with_absent / n if n else None,
        "absent_per_answer": absent / n if n else None,
        "absent_cooccurring_share": likely / absent if absent else None,
        "absent_cooccurring_chance": chance / absent if absent else None,
        "present_missed_share": missed / present if present else None,
    }


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _write(tmp: Path, seed: int, sizes: dict[str, int]) -> None:
    data = build(seed, **sizes)
    (tmp / "images").mkdir()
    for scene in data["scenes"]:
        render(scene).save(tmp / _image(scene))
    annotations = {s.image_id: list(s.objects) for s in data["scenes"]}
    (tmp / "annotations.json").write_text(json.dumps(annotations, indent=1) + "\n")
    for name in ("sft", "pairs", "bdhs_source", "language"):
        _jsonl(tmp / f"{name}.jsonl", data[name])


def write_alignment_data(
    root: Path | None = None,
    seed: int = 0,
    n_sft: int = N_SFT_SCENES,
    n_pairs: int = N_PAIR_SCENES,
    n_text: int = N_TEXT,
    n_language: int = N_LANGUAGE,
) -> Path:
    """Write the training data into `root` (default: `default_data_dir`) unless it is already there (same
    seed, sizes and version); returns `root`. Atomic; never replaces a non-toy folder (`write_once`)."""
    sizes = {"n_sft": n_sft, "n_pairs": n_pairs, "n_text": n_text, "n_language": n_language}
    root = Path(root) if root is not None else default_data_dir(seed, **sizes)
    meta = {
        "seed": seed,
        **sizes,
        "version": VERSION,
        "p_hallu_caption": P_HALLU_CAPTION,
        "p_hallu_question": P_HALLU_QUESTION,
        "generator": __name__,
    }
    return write_once(root, meta, lambda tmp: _write(tmp, seed, sizes))
