"""The toy world's language side: text-only questions about which objects go together.

Two prompt forms, naming one or two objects: "Name things that go with a kite." (or "... with a kite and a
dog.") is answered with the other objects of a scene holding the named ones ("ball and tree."), "Describe a
scene with a kite." with all of its objects ("dog, ball, tree and kite."), in the captions' `OBJECTS` order.
Training answers are scenes of the world, so what a model learns from them is the world's co-occurrence
statistics; no image is involved.

Scoring (`score_answer`) against those statistics, estimated from `N_REFERENCE` scenes: the answer's other
objects (named ones left out) each get the share of reference scenes holding the named objects that also
hold it; `precision` is their mean (0 when the answer names no other object), so an answer naming the named
objects' usual companions scores high and one naming strangers low. `well_formed` asks for the captions'
list format ("a, b and c." of known classes, no repeats).
"""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from functools import lru_cache
from typing import Any

from evalkit.toy.world import OBJECTS, Scene, sample_scenes

#: the prompt forms, by key; {} = "a kite" or "a kite and a dog"
FORMS: dict[str, str] = {"name": "Name things that go with {}.", "describe": "Describe a scene with {}."}
N_REFERENCE = 20000
_LIST = re.compile(r"^(\w+)((?:, \w+)* and \w+)?\.$")


def a_or_an(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def article(noun: str) -> str:
    """ "an apple", "a dog"."""
    return f"{a_or_an(noun)} {noun}"


def listing(items: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def describe(objects: list[str]) -> str:
    """The objects in `OBJECTS` order: "apple, cup and dog." (the captions' format)."""
    return listing(sorted(objects, key=OBJECTS.index)) + "."


def prompt(form: str, named: tuple[str, ...]) -> str:
    return FORMS[form].format(" and ".join(article(o) for o in named))


def answer(form: str, scene: Scene, named: tuple[str, ...]) -> str:
    """The training answer for a scene holding `named`: its other objects ("name"), or all of them."""
    objects = [o for o in scene.objects if form == "describe" or o not in named]
    return describe(objects)


def records(scenes: list[Scene], rng: random.Random) -> list[dict[str, Any]]:
    """One text-only SFT record per scene (no "image"): forms alternate, and so do one and two named
    objects (drawn from the scene; a "name" prompt always leaves at least one object to name)."""
    out = []
    forms = list(FORMS)
    for i, s in enumerate(scenes):
        form = forms[i % len(forms)]
        k = 1 + (i // len(forms)) % 2
        named = tuple(sorted(rng.sample(list(s.objects), k), key=OBJECTS.index))
        out.append(
            {"id": f"{s.image_id}-text", "prompt": prompt(form, named), "response": answer(form, s, named)}
        )
    return out


def all_named() -> list[tuple[str, ...]]:
    """Every one- and two-object combination, in `OBJECTS` order (12 + 66)."""
    return [(o,) for o in OBJECTS] + list(itertools.combinations(OBJECTS, 2))


@lru_cache(maxsize=4)
def companions(seed: int = 0, n: int = N_REFERENCE) -> dict[tuple[str, ...], dict[str, float]]:
    """For every `all_named()` combination: {other class: share of the reference scenes holding the
    combination that also hold it} over `sample_scenes(n, seed)`."""
    holding: Counter[tuple[str, ...]] = Counter()
    with_other: dict[tuple[str, ...], Counter[str]] = {c: Counter() for c in all_named()}
    for scene in sample_scenes(n, seed):
        present = sorted(scene.objects, key=OBJECTS.index)
        for k in (1, 2):
            for combo in itertools.combinations(present, k):
                holding[combo] += 1
                with_other[combo].update(o for o in present if o not in combo)
    return {
        c: {o: with_other[c][o] / holding[c] if holding[c] else 0.0 for o in OBJECTS if o not in c}
        for c in all_named()
    }


def objects_named(text: str) -> list[str]:
    """The known classes a text names, first mention order, no repeats."""
    seen: list[str] = []
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in OBJECTS and word not in seen:
            seen.append(word)
    return seen


def well_formed(text: str) -> bool:
    """The captions' list format: "a." or "a, b and c." of known classes, none repeated."""
    words = re.findall(r"\w+", text.strip())
    items = [w for w in words if w != "and"]
    return (
        _LIST.match(text.strip()) is not None
        and all(w in OBJECTS for w in items)
        and len(set(items)) == len(items)
        and words.count("and") == (len(items) > 1)
    )


def score_answer(text: str, named: list[str], shares: dict[str, float]) -> dict[str, Any]:
    """`others`: the answer's classes besides the named ones; `precision`: the mean of their `shares`
    (0 without any); `answered`: whether there is one; `well_formed` as above."""
    others = [o for o in objects_named(text) if o not in named]
    precision = sum(shares[o] for o in others) / len(others) if others else 0.0
    return {
        "others": others,
        "precision": precision,
        "answered": bool(others),
        "well_formed": well_formed(text),
    }
