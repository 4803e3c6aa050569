"""A tiny synthetic world of coloured shapes on a 3×3 grid, deterministic from a seed.

Each object class is a lowercase English noun drawn as a fixed shape in a fixed, unique colour, filling one
16×16 cell of a 48×48 image, so that one 16-pixel vision patch sees exactly one cell. Scenes are not uniform
draws: each scene picks a *theme* (a group of classes that tend to appear together) and takes most of its
objects from it, and classes have unequal frequencies. That gives the dataset the two statistics POPE's
harder splits exploit: global popularity (popular split) and co-occurrence (adversarial split).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

CELL = 16
GRID = 3
SIZE = CELL * GRID  # 48
BACKGROUND = (0, 0, 0)
MIN_OBJECTS, MAX_OBJECTS = 3, 5

# name -> (shape, RGB colour). Every colour is unique, so colour alone identifies the class; the shape is a
# second, redundant cue. All shapes cover the cell centre (no rings), which the tests rely on.
STYLE: dict[str, tuple[str, tuple[int, int, int]]] = {
    "apple": ("circle", (230, 25, 25)),  # red
    "cake": ("square", (250, 160, 190)),  # pink
    "cup": ("triangle", (40, 80, 230)),  # blue
    "egg": ("diamond", (245, 245, 245)),  # white
    "dog": ("square", (140, 80, 30)),  # brown
    "ball": ("circle", (240, 220, 30)),  # yellow
    "tree": ("triangle", (40, 180, 40)),  # green
    "kite": ("diamond", (220, 40, 200)),  # magenta
    "car": ("plus", (30, 210, 220)),  # cyan
    "bus": ("square", (250, 140, 20)),  # orange
    "umbrella": ("xcross", (120, 50, 180)),  # purple
    "clock": ("plus", (128, 128, 128)),  # grey
}
OBJECTS: list[str] = list(STYLE)
#: the colour of each class in `STYLE`, as a word (in `STYLE` order)
COLOUR_NAME: dict[str, str] = {
    "apple": "red",
    "cake": "pink",
    "cup": "blue",
    "egg": "white",
    "dog": "brown",
    "ball": "yellow",
    "tree": "green",
    "kite": "magenta",
    "car": "cyan",
    "bus": "orange",
    "umbrella": "purple",
    "clock": "grey",
}

# Themes: (theme weight, {class: weight within the theme}). Unequal weights at both levels make some classes
# globally frequent (popular split) and tie classes to their theme-mates (adversarial split).
THEMES: list[tuple[float, dict[str, float]]] = [
    (0.5, {"apple": 4.0, "cup": 2.0, "cake": 1.5, "egg": 1.0}),  # kitchen
    (0.3, {"dog": 4.0, "ball": 2.0, "tree": 1.5, "kite": 1.0}),  # park
    (0.2, {"car": 4.0, "bus": 2.0, "umbrella": 1.5, "clock": 1.0}),  # street
]
P_THEME = 0.8  # chance that each object slot is filled from the scene's theme (while it has classes left)
OFF_THEME_WEIGHT = 1.0  # weight of any class drawn from outside the theme


@dataclass
class Scene:
    image_id: str
    objects: list[str]  # class names, in cell order
    cells: list[int]  # cell index 0..8 (row-major) of each object, ascending


def _weighted_pick(rng: random.Random, weights: dict[str, float]) -> str:
    names = list(weights)
    return rng.choices(names, weights=[weights[n] for n in names], k=1)[0]


def _sample_scene(rng: random.Random, image_id: str) -> Scene:
    _, theme = THEMES[rng.choices(range(len(THEMES)), weights=[w for w, _ in THEMES], k=1)[0]]
    k = rng.randint(MIN_OBJECTS, MAX_OBJECTS)
    chosen: list[str] = []
    for _ in range(k):
        in_theme = {n: w for n, w in theme.items() if n not in chosen}
        off_theme = {n: OFF_THEME_WEIGHT for n in OBJECTS if n not in theme and n not in chosen}
        pool = in_theme if in_theme and rng.random() < P_THEME else off_theme
        chosen.append(_weighted_pick(rng, pool))
    cells = sorted(rng.sample(range(GRID * GRID), k))
    rng.shuffle(chosen)
    return Scene(image_id=image_id, objects=chosen, cells=cells)


def sample_scenes(n: int, seed: int) -> list[Scene]:
    """``n`` scenes with ids ``toy_s{seed}_{i:06d}``; same (n, seed) gives the same scenes."""
    rng = random.Random(seed)
    return [_sample_scene(rng, f"toy_s{seed}_{i:06d}") for i in range(n)]


def cell_box(cell: int) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1), exclusive end, of grid cell ``cell`` (row-major)."""
    x0, y0 = (cell % GRID) * CELL, (cell // GRID) * CELL
    return x0, y0, x0 + CELL, y0 + CELL


def _draw(draw: ImageDraw.ImageDraw, shape: str, colour: tuple[int, int, int], x: int, y: int) -> None:
    m = 2  # margin inside the cell
    lo, hi, c = m, CELL - 1 - m, CELL // 2
    if shape == "circle":
        draw.ellipse([x + lo, y + lo, x + hi, y + hi], fill=colour)
    elif shape == "square":
        draw.rectangle([x + lo + 1, y + lo + 1, x + hi - 1, y + hi - 1], fill=colour)
    elif shape == "triangle":
        draw.polygon([(x + c, y + lo), (x + hi, y + hi), (x + lo, y + hi)], fill=colour)
    elif shape == "diamond":
        draw.polygon([(x + c, y + lo), (x + hi, y + c), (x + c, y + hi), (x + lo, y + c)], fill=colour)
    elif shape == "plus":
        draw.rectangle([x + c - 2, y + lo, x + c + 1, y + hi], fill=colour)
        draw.rectangle([x + lo, y + c - 2, x + hi, y + c + 1], fill=colour)
    elif shape == "xcross":
        draw.line([(x + lo, y + lo), (x + hi, y + hi)], fill=colour, width=4)
        draw.line([(x + lo, y + hi), (x + hi, y + lo)], fill=colour, width=4)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def render(scene: Scene) -> Image.Image:
    """Draw the scene as a 48×48 RGB image (aliased drawing, so pixels are exact and deterministic)."""
    img = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    draw = ImageDraw.Draw(img)
    for name, cell in zip(scene.objects, scene.cells, strict=True):
        shape, colour = STYLE[name]
        x0, y0, _, _ = cell_box(cell)
        _draw(draw, shape, colour, x0, y0)
    return img
