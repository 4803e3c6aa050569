"""Reading hub parquet files: rows as dicts (pyarrow), and embedded images (`{"bytes", "path"}` cells,
the `datasets` Image feature) written once to files, so backends read image paths as they do for the
official files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from evalkit.types import UserError

#: leading bytes of the image formats benchmark files embed → file suffix
MAGIC = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"GIF8", ".gif"), (b"BM", ".bmp"))


def read_rows(
    path: Path, columns: tuple[str, ...] | None, optional: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The rows of a parquet file, in file order, with `columns` (each must be present; None: every
    column the file has) and those of `optional` the file has."""
    import pyarrow.parquet as pq  # a dependency; if absent, the CLI names it (evalkit.util.dependencies)

    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - any damage to the file is a user-fixable data error
        raise UserError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})") from None
    if columns is None:
        return table.to_pylist()
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise UserError(
            f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(table.column_names)})"
        )
    present = [c for c in optional if c in table.column_names and c not in columns]
    return table.select([*columns, *present]).to_pylist()


def image_suffix(data: bytes, path: str | None = None) -> str:
    """The file suffix of embedded image bytes: from their leading bytes, else the cell's path."""
    for magic, suffix in MAGIC:
        if data.startswith(magic):
            return suffix
    return Path(path).suffix if path and Path(path).suffix else ".img"


def image_bytes(cell: Any, where: str) -> tuple[bytes, str | None]:
    """The bytes (and original path) of an embedded image cell, or a `UserError` at `where`."""
    if not isinstance(cell, dict) or not isinstance(cell.get("bytes"), bytes) or not cell["bytes"]:
        raise UserError(f"{where}: no embedded image bytes (expected an image cell {{bytes, path}})")
    return cell["bytes"], cell.get("path")


def write_once(path: Path, data: bytes) -> Path:
    """Write `data` at `path` unless a file of the same size is there; atomic (a temp file renamed), so
    an interrupted run never leaves a truncated image behind."""
    if path.is_file() and path.stat().st_size == len(data):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def image_folder(repo_id: str, revision: str) -> Path:
    """Where a hub snapshot's embedded images are written: `$EVALKIT_CACHE/hub/ORG--NAME/<commit>/images`
    (one folder per commit, so images of two data versions never mix)."""
    from evalkit.util.environment import cache_root

    return cache_root() / "hub" / repo_id.replace("/", "--") / revision / "images"
