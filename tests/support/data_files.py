"""Small data files the training-data tests write: 2×2 PNG images and JSON-lines files."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image


def png(path: Path, color: tuple[int, int, int] = (255, 0, 0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (2, 2), color).save(path)
    return path


def jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
