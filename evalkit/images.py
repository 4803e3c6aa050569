"""Image loading shared by every backend, so a bad image fails the same way everywhere."""

from __future__ import annotations

from pathlib import Path


class ImageLoadError(Exception):
    """An image is missing, unreadable or corrupt; the runner stores it as a typed `image_error`."""


def load_image(path: str | Path):
    """Open an image fully (not lazily) as RGB, or raise `ImageLoadError` naming the file."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"cannot read image {path}: {exc}") from exc
