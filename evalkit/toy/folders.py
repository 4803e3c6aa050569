"""Write a toy data folder once, atomically.

`write_once` fills a temporary sibling of ``root`` and renames it into place, so a reader never sees a
half-written folder, and writes ``toy_meta.json`` last. A ``root`` whose meta already matches is left as it
is; any other ``root`` is replaced only if it is a toy folder (has ``toy_meta.json``) or empty, anything else
is an error rather than deleted. Losing the final rename to a writer of matching meta is fine.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

META = "toy_meta.json"


def meta_matches(root: Path, meta: dict[str, Any], keys: tuple[str, ...] | None = None) -> bool:
    """Whether ``root/toy_meta.json`` equals ``meta`` (or agrees with it on ``keys``, when given)."""
    try:
        old = json.loads((root / META).read_text())
    except (OSError, ValueError):
        return False
    if keys is None:
        return old == meta
    return all(old.get(k) == meta[k] for k in keys)


def write_once(
    root: Path, meta: dict[str, Any], write: Callable[[Path], None], keys: tuple[str, ...] | None = None
) -> Path:
    """Have ``write(tmp)`` fill a fresh folder and move it to ``root`` with ``meta`` as its
    ``toy_meta.json``, unless ``root`` holds it already (`meta_matches` with ``keys``); returns ``root``."""
    root = Path(root)
    if meta_matches(root, meta, keys):
        return root
    if root.exists() and any(root.iterdir()) and not (root / META).exists():
        raise FileExistsError(f"{root} exists and is not a toy data folder; refusing to overwrite it")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        tmp.chmod(0o755)
        write(tmp)
        (tmp / META).write_text(json.dumps(meta, indent=1) + "\n")
        if root.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
            root.rename(old / "x")
            shutil.rmtree(old, ignore_errors=True)
        try:
            tmp.rename(root)
        except OSError:
            if not meta_matches(root, meta, keys):  # lost a race to a writer of the same data: fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
