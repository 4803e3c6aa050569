"""Image loading shared by every backend, so a bad image fails the same way everywhere."""

from __future__ import annotations

from pathlib import Path


class ImageLoadError(Exception):
    """An image is missing, unreadable or corrupt; the runner stores it as a typed `image_error`."""


def load_image(path: str | Path):
    """Open an image fully (not lazily) as RGB, or raise `ImageLoadError` naming the file.

    Every failure of one image is that image's failure, never the run's: a missing file, a truncated or
    corrupt one (PIL raises OSError, SyntaxError, ValueError, struct.error, EOFError, ... by format), and
    one over PIL's decompression-bomb limit (`DecompressionBombError`, which is no OSError) all become
    `ImageLoadError`, which the backends store as one `image_error` row and the run goes on."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(
            f"image {path} is too large to decode safely ({exc}); resize it below "
            f"{Image.MAX_IMAGE_PIXELS:,} pixels"
        ) from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"cannot read image {path}: not an image format PIL knows") from None
    except MemoryError:
        raise ImageLoadError(f"cannot read image {path}: out of memory while decoding it") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this image's failure
        raise ImageLoadError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None
