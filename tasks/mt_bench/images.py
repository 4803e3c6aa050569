"""MT-Bench with an irrelevant image in context (Li et al. 2024, Table 7), in both readings of that study.

`image`: every question gets one image drawn from a folder (file names sorted; image index =
sha256("<seed>:<question_id>") as an integer modulo the number of images), attached to every user message
of its conversation, so both turns see it. `text-token`: no image; the first user message starts with the
literal text "<image>\\n", which is what the study's LLaVA code path sent (it tokenised "<image>" as text,
so its published rows probably never saw an image). The judge always sees the original questions.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

from evalkit.types import Message, UserError
from evalkit.util.datafiles import sha256_file

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
MODES = ("image", "text-token")
TEXT_TOKEN = "<image>\n"


def folder_images(folder: Path) -> list[Path]:
    """The folder's image files (by suffix, case-insensitive), sorted by name."""
    if not folder.is_dir():
        raise UserError(
            f"--task-option mt_bench.image_dir={folder}: folder not found (name a folder of images, "
            "e.g. COCO val2014)"
        )
    images = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    images.sort(key=lambda p: p.name)
    if not images:
        raise UserError(
            f"--task-option mt_bench.image_dir={folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in "
            "the folder; name a folder holding image files"
        )
    return images


def draw_index(seed: int, question_id: int, n_images: int) -> int:
    """The drawn image's position among the sorted names, the same for a question whatever else is run."""
    digest = hashlib.sha256(f"{seed}:{question_id}".encode()).hexdigest()
    return int(digest, 16) % n_images


def with_image(messages: tuple[Message, ...], mode: str, image: str | None) -> tuple[Message, ...]:
    """`messages` in the given reading: `image` on every user message, or the "<image>\\n" text before
    the first user message's text."""
    if mode == "image":
        return tuple(replace(m, images=(image,)) if m.role == "user" else m for m in messages)
    first = next(i for i, m in enumerate(messages) if m.role == "user")
    return tuple(replace(m, text=TEXT_TOKEN + m.text) if i == first else m for i, m in enumerate(messages))


def read_image_options(options: dict[str, str | None]) -> dict[str, Any] | None:
    """(mode, seed, folder) from the task options, checked; None when no option asks for an image."""
    folder, seed, mode = options["image_dir"], options["image_seed"], options["image_mode"]
    if folder is None and seed is None and mode is None:
        return None
    mode = mode or "image"
    if mode == "image" and folder is None:
        raise UserError(
            "--task-option mt_bench.image_mode=image needs mt_bench.image_dir=FOLDER (the images to draw "
            "from)"
        )
    if mode == "text-token" and (folder is not None or seed is not None):
        raise UserError(
            "--task-option mt_bench.image_mode=text-token sends no image: leave out mt_bench.image_dir and "
            "mt_bench.image_seed"
        )
    try:
        seed_value = int(seed) if seed is not None else 0
    except ValueError:
        raise UserError(f"--task-option mt_bench.image_seed={seed}: expected an integer") from None
    return {"mode": mode, "seed": seed_value, "folder": Path(folder).expanduser() if folder else None}


def draw_images(setting: dict[str, Any], question_ids: list[int]) -> tuple[dict[int, Path], dict[str, Any]]:
    """Per question its image (none in text-token mode) and what the run records of the setting: mode,
    seed, how many images the folder holds and the checksum of every drawn image."""
    if setting["mode"] == "text-token":
        return {}, {"mode": "text-token", "text": TEXT_TOKEN}
    images = folder_images(setting["folder"])
    drawn = {qid: images[draw_index(setting["seed"], qid, len(images))] for qid in question_ids}
    checksums = {p.name: sha256_file(p) for p in sorted(set(drawn.values()))}
    info = {"mode": "image", "seed": setting["seed"], "n_images": len(images), "drawn": checksums}
    return drawn, info
