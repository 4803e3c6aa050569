"""Reading benchmark and answer files with errors a user can act on, and checksums for run.json.

Every JSON / JSON-lines / text file evalkit reads from a user goes through `read_text`, `read_json` or
`read_jsonl`, so damaged input always ends the same way: one `UserError` naming file:line (or the file)
and what was expected, never a traceback. Refused: bytes that are not UTF-8 (0xff, UTF-16, binary), JSON
with a lone surrogate (``"\\ud800"``: it cannot be written back as UTF-8), values nested deeper than
`MAX_DEPTH` (a 200k-deep list would otherwise raise RecursionError here or in any later json.dumps).
"""

from __future__ import annotations

import codecs
import hashlib
import json
from pathlib import Path
from typing import Any

from evalkit.types import UserError

#: deepest nesting accepted in an input file; benchmark records are a few levels deep
MAX_DEPTH = 64


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digest(obj: Any) -> str:
    """A short content hash of a JSON-able value (key order does not matter)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def decode_text(path: Path, data: bytes) -> str:
    """`data` as UTF-8 text (a UTF-8 byte-order mark is dropped), or a `UserError` saying what it is."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise UserError(f"{path}: the file is UTF-16 text; save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = data[exc.start : exc.start + 1].hex()
        kind = "binary data" if b"\x00" in data[:4096] else "not UTF-8 text"
        raise UserError(
            f"{path}:{line}: {kind} (byte 0x{byte} at offset {exc.start}); expected a UTF-8 text file"
        ) from None


def read_text(path: Path) -> str:
    """The text of a user's file; missing, a folder, or not UTF-8 is a `UserError` naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder; expected a file") from None
    return decode_text(path, data)


def check_value(where: str, value: Any) -> Any:
    """`value` (parsed JSON) if it nests at most `MAX_DEPTH` deep and every string is valid Unicode
    (no lone surrogate), else a `UserError` at `where`. Iterative: no recursion limit to hit."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, str):
            _check_string(where, v)
        elif isinstance(v, dict | list):
            if depth > MAX_DEPTH:
                raise UserError(f"{where}: JSON nested more than {MAX_DEPTH} levels deep")
            if isinstance(v, dict):
                for k, x in v.items():
                    _check_string(where, k)
                    stack.append((x, depth + 1))
            else:
                stack.extend((x, depth + 1) for x in v)
    return value


def _check_string(where: str, s: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UserError(
            f"{where}: a string holds a lone surrogate (U+{ord(s[exc.start]):04X}); "
            "expected valid Unicode text"
        ) from None


def parse_json(where: str, text: str) -> Any:
    """Parse one JSON document read from `where` ("file" or "file:line"), checked by `check_value`."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: malformed JSON at line {exc.lineno} ({exc.msg})") from None
    except RecursionError:
        raise UserError(f"{where}: JSON nested too deeply (more than {MAX_DEPTH} levels)") from None
    return check_value(where, value)


def jsonl_records(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSON-lines text read from `path`; a malformed
    line is a `UserError` naming the file and line. Lines end at "\n" only: U+2028 may sit in a string."""
    rows = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: malformed JSON line ({exc.msg})") from None
        except RecursionError:
            raise UserError(f"{where}: JSON nested too deeply (more than {MAX_DEPTH} levels)") from None
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected a JSON object, got {_kind(row)}")
        rows.append((lineno, check_value(where, row)))
    return rows


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file of objects; anything else is a `UserError` naming the file and line."""
    return [row for _, row in jsonl_records(Path(path), read_text(path))]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    """Write `records` as a JSON-lines file at `path` (its folder created); returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_json(path: Path, doc: Any) -> Path:
    """Write `doc` as a JSON file at `path` (its folder created); returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def read_json(path: Path, expect: type | None = None) -> Any:
    """Read a JSON file; a missing, undecodable or malformed file, or a top-level value that is not
    `expect`, is a `UserError` naming the file."""
    data = parse_json(str(path), read_text(path))
    if expect is not None and not isinstance(data, expect):
        kind = {list: "a JSON list of records", dict: "a JSON object"}.get(expect, expect.__name__)
        raise UserError(f"{path}: expected {kind}, got {_kind(data)}")
    return data


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def require_fields(path: Path, lineno: int, row: Any, fields: dict[str, type | tuple[type, ...]]) -> None:
    """`row` is an object holding each of `fields` with a value of its type (bool is no int here)."""
    if not isinstance(row, dict):
        raise UserError(f"{path}:{lineno}: expected a JSON object, got {_kind(row)}")
    for name, kind in fields.items():
        if name not in row:
            raise UserError(f"{path}:{lineno}: missing field {name!r}")
        value = row[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in kinds):
            raise UserError(
                f"{path}:{lineno}: field {name!r} has the wrong type ({_kind(value)}; expected "
                f"{' or '.join(k.__name__ for k in kinds)})"
            )


# ------------------------------------------------------------------------------------------ identity

#: keys of a task's data info (`LoadedData.info`) that say where files lie: kept in run.json for people,
#: never part of a run's identity (`data/pope` and its absolute path are the same data; MT-Bench's bundled
#: question file and the same bytes under --data-dir too)
PATH_KEYS = ("source", "image_dir", "paths", "questions_bundled")
#: keys of an import's data info holding the checksums of the user's own files (answers, judgments):
#: part of the run's identity, not of the data version (the benchmark files are the same)
INPUT_KEYS = ("inputs",)


def data_identity(info: dict[str, Any]) -> dict[str, Any]:
    """What of a data info identifies the data: everything but where the files lie (`PATH_KEYS`)."""
    return {k: v for k, v in info.items() if k not in PATH_KEYS}


def _checksums(value: Any, at: str = "") -> list[tuple[str, str]]:
    """(key path, sha256 hex) of every checksum in a data info, outside paths and the user's inputs."""
    if isinstance(value, dict):
        return [
            pair
            for k, v in value.items()
            if not (at == "" and k in PATH_KEYS + INPUT_KEYS)
            for pair in _checksums(v, f"{at}/{k}")
        ]
    if isinstance(value, list):
        return [pair for i, v in enumerate(value) for pair in _checksums(v, f"{at}/{i}")]
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return [(at, value)]
    return []


def content_version(info: dict[str, Any]) -> dict[str, Any]:
    """`info` with a data version that names its content: the task's label (official version, toy world,
    item counts) followed by "#" and a short hash of the checksums of the benchmark files read. Two runs
    share a data version only when they read the same bytes, whatever the folder or `--data` spelling;
    a version already hashed, or an info without checksums, is left as it is."""
    sums = _checksums(info)
    version = info.get("version")
    if not sums or (isinstance(version, str) and " #" in version):
        return info
    label = version if isinstance(version, str) and version else "unlabelled"
    note = (info.get("partial") or {}).get("note", "")
    if note and label.endswith(note):  # the hash names the benchmark files; the note what was answered
        label = label[: -len(note)]
    return {**info, "version": f"{label} #{digest(sorted(sums))[:8]}{note}"}


def toy_label(folder: Path | None) -> str | None:
    """The data label of a folder written by an evalkit toy writer, read from its `toy_meta.json` (so the
    toy files passed with `--data toy` or `--data-dir` get the same label); None for any other folder."""
    if folder is None:
        return None
    try:
        meta = json.loads((Path(folder) / "toy_meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or "seed" not in meta:
        return None
    counts = [("n_images", "images"), ("n_records", "records"), ("n_scenes", "scenes")]
    parts = [f"seed {meta['seed']}"] + [f"{meta[k]} {word}" for k, word in counts if k in meta]
    return f"toy world ({', '.join(parts)})"


def mark_partial(
    info: dict[str, Any], answered: int, total: int, what: str = "items", where: str = ""
) -> dict[str, Any]:
    """Label an import that covers `answered` of the benchmark's `total` items as partial: counted under
    `info["partial"]` and given its own data version (the label plus "; N of M ... answered"), so it is
    never merged with complete runs in a leaderboard column or a comparison. `evalkit import` warns."""
    if answered >= total:
        return info
    note = f"; {answered} of {total} {what} answered{where}"
    info["partial"] = {"answered": answered, "of": total, "missing": total - answered, "unit": what}
    info["partial"]["note"] = note
    info["version"] = f"{info.get('version') or 'unlabelled'}{note}"
    return info
