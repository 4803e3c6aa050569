"""Hugging Face dataset ids as training data: read from the local cache only, never downloaded.

`load_preferences("openbmb/RLAIF-V-Dataset")` works when the dataset is already in the local Hugging Face
cache and the optional `datasets` package is installed (evalkit does not depend on it); images are written
once to `$EVALKIT_CACHE/hub-images/<owner>--<name>/` so that every example carries a file path. Otherwise
the error says how to export the dataset to JSONL on a machine with internet:

    python -m evalkit.training.data_hub openbmb/RLAIF-V-Dataset DIR --split train

writes `DIR/train.jsonl` with each image saved under `DIR/images/` and referenced by a relative path, which
`load_preferences("DIR/train.jsonl")` then reads like any local file.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from evalkit.types import UserError
from evalkit.util.environment import cache_root

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_DATA_SUFFIXES = {".json", ".jsonl", ".parquet", ".csv", ".tsv", ".txt", ".arrow"}


def looks_like_hub_id(path: str) -> bool:
    """`owner/name` with no data-file suffix (a missing `data/x.jsonl` stays a missing file)."""
    return bool(_HUB_ID.match(path)) and Path(path).suffix.lower() not in _DATA_SUFFIXES


def cache_locations(dataset_id: str) -> list[Path]:
    """Where `datasets` (`<owner>___<name>`) and `huggingface_hub` (`datasets--<owner>--<name>`) keep it."""
    owner, name = dataset_id.split("/")
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE", home / "datasets"))
    hub_cache = Path(os.environ.get("HF_HUB_CACHE", os.environ.get("HUGGINGFACE_HUB_CACHE", home / "hub")))
    return [datasets_cache / f"{owner}___{name}", hub_cache / f"datasets--{owner}--{name}"]


def export_hint(dataset_id: str, split: str) -> str:
    return (
        f"evalkit never downloads training data: on a machine with internet run `python -m "
        f"evalkit.training.data_hub {dataset_id} DIR --split {split}` (needs `pip install datasets`), "
        f"copy DIR here and pass DIR/{split}.jsonl"
    )


def load_hub_rows(dataset_id: str, split: str) -> tuple[list[tuple[int, dict]], dict[str, Any]]:
    """(row index, record) for a cached hub dataset, images saved as files; else a UserError."""
    places = cache_locations(dataset_id)
    cached = [p for p in places if p.is_dir()]
    if not cached:
        raise UserError(
            f"{dataset_id!r} is not a file, and as a Hugging Face dataset id it is not in the "
            f"local cache ({' or '.join(map(str, places))}); {export_hint(dataset_id, split)}"
        )
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    try:
        for key in saved:  # cache only, unless the user said otherwise
            os.environ.setdefault(key, "1")
        try:
            import datasets
        except ImportError:
            hint = export_hint(dataset_id, split)
            raise UserError(
                f"{dataset_id!r} is in the local Hugging Face cache but the optional `datasets` "
                f"package is not installed (pip install datasets); or {hint}"
            ) from None
        try:
            ds = datasets.load_dataset(dataset_id, split=split)
        except Exception as exc:  # noqa: BLE001 (any failure of the optional package is the user's to fix)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise UserError(
                f"could not load {dataset_id!r} split {split!r} from the local cache "
                f"({type(exc).__name__}: {first}); {export_hint(dataset_id, split)}"
            ) from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    image_dir = cache_root() / "hub-images" / dataset_id.replace("/", "--")
    rows = list(enumerate(iter_rows(ds, image_dir)))
    info = {
        "hub_id": dataset_id,
        "split": split,
        "hf_cache": str(cached[0]),
        "fingerprint": getattr(ds, "_fingerprint", None),
    }
    return rows, info


def iter_rows(ds, image_dir: Path, relative_to: Path | None = None):
    """Each row as a plain dict, every image (PIL image or `{"bytes", "path"}`) saved under `image_dir`
    by content hash and replaced by its path (relative to `relative_to` when given)."""
    for row in _undecoded(ds):
        yield {key: _materialise(value, image_dir, relative_to) for key, value in dict(row).items()}


def _undecoded(ds):
    try:
        from datasets import Image
    except ImportError:
        return ds
    for name, feature in (getattr(ds, "features", None) or {}).items():
        if isinstance(feature, Image):
            ds = ds.cast_column(name, Image(decode=False))  # keep the original bytes, no re-encoding
    return ds


def _materialise(value: Any, image_dir: Path, relative_to: Path | None) -> Any:
    if isinstance(value, dict) and isinstance(value.get("bytes"), bytes | bytearray):
        suffix = Path(str(value.get("path") or "")).suffix or ".png"
        return _save(bytes(value["bytes"]), suffix, image_dir, relative_to)
    if type(value).__module__.startswith("PIL.") and hasattr(value, "save"):
        buf = io.BytesIO()
        value.save(buf, format="PNG")
        return _save(buf.getvalue(), ".png", image_dir, relative_to)
    if isinstance(value, list):
        return [_materialise(v, image_dir, relative_to) for v in value]
    return value


def _save(data: bytes, suffix: str, image_dir: Path, relative_to: Path | None) -> str:
    path = image_dir / f"{hashlib.sha256(data).hexdigest()[:24]}{suffix.lower()}"
    if not path.is_file():
        image_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return str(path.relative_to(relative_to)) if relative_to is not None else str(path)


def export(dataset_id: str, out_dir: Path, split: str = "train") -> tuple[Path, int]:
    """Write `out_dir/<split>.jsonl` (images under `out_dir/images/`, referenced relatively)."""
    try:
        import datasets
    except ImportError:
        raise UserError(
            "exporting a hub dataset needs the `datasets` package: pip install datasets"
        ) from None
    ds = datasets.load_dataset(dataset_id, split=split)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{split}.jsonl"
    tmp = out.with_name(out.name + ".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for row in iter_rows(ds, out_dir / "images", relative_to=out_dir):
            f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            n += 1
    tmp.replace(out)
    return out, n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export a Hugging Face dataset to JSONL + image files.")
    parser.add_argument("dataset_id")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--split", default="train")
    args = parser.parse_args(argv)
    try:
        out, n = export(args.dataset_id, args.out_dir, args.split)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {n} records to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
