"""Reading benchmark files with errors a user can act on, and checksums for run.json."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from evalkit.types import UserError


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def jsonl_records(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSON-lines text read from `path`; a malformed
    line is a `UserError` naming the file and line. Lines end at "\n" only: U+2028 may sit in a string."""
    rows = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{lineno}: malformed JSON line ({exc.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        rows.append((lineno, row))
    return rows


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file; a malformed line is a `UserError` naming the file and line number."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    return [row for _, row in jsonl_records(path, text)]


def read_json(path: Path, expect: type | None = None) -> Any:
    """Read a JSON file; a missing, undecodable or malformed file, or a top-level value that is not
    `expect`, is a `UserError` naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: malformed JSON at line {exc.lineno} ({exc.msg})") from None
    except (UnicodeDecodeError, IsADirectoryError):
        raise UserError(f"{path}: not a UTF-8 JSON file") from None
    if expect is not None and not isinstance(data, expect):
        kind = {list: "a JSON list of records", dict: "a JSON object"}.get(expect, expect.__name__)
        raise UserError(f"{path}: expected {kind}, got {type(data).__name__}")
    return data


def require_fields(
    path: Path, lineno: int, row: dict[str, Any], fields: dict[str, type | tuple[type, ...]]
) -> None:
    for name, kind in fields.items():
        if name not in row:
            raise UserError(f"{path}:{lineno}: missing field {name!r}")
        if not isinstance(row[name], kind):
            raise UserError(
                f"{path}:{lineno}: field {name!r} has the wrong type ({type(row[name]).__name__})"
            )
