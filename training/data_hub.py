"""Hugging Face dataset ids as training data, read through `evalkit.hubdata`: the same cache, offline
mode and checksums as the benchmarks' hub data.

`load_preferences("openbmb/RLAIF-V-Dataset")` fetches the set's files into the Hugging Face cache (or, with
`HF_HUB_OFFLINE=1`, reads them from it; an empty cache is one line naming `evalkit data fetch ID`), reads
the rows of its parquet / JSON files, writes each embedded image once under
`$EVALKIT_CACHE/hub/<owner>--<name>/<commit>/images/` so that every example carries a file path, and hands
the rows to the usual format detection and skip counting. The known sets (`training.data_hub_sources`)
declare their files; any other id reads its parquet files at `main`, else its JSON / JSONL files. What was
read (repository, revision, files with their sha256, rows) is in `Loaded.info["hub"]`, which the trainer
writes to CKPT/train_config.json. Sets whose images are referenced by path (POVID: COCO train2014) read
them from `image_root` (`evalkit train --image-dir`), by file name.

Exporting a set to JSONL (with `datasets`, on a machine with internet) still works:

    python -m evalkit.training.data_hub openbmb/RLAIF-V-Dataset DIR --split train

writes `DIR/train.jsonl` with each image saved under `DIR/images/` and referenced by a relative path, which
`load_preferences("DIR/train.jsonl")` then reads like any local file.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

from evalkit.training.data_hub_sources import TrainingSet, training_set
from evalkit.types import UserError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_DATA_SUFFIXES = {".json", ".jsonl", ".parquet", ".csv", ".tsv", ".txt", ".arrow"}


def looks_like_hub_id(path: str) -> bool:
    """`owner/name` with no data-file suffix (a missing `data/x.jsonl` stays a missing file)."""
    return bool(_HUB_ID.match(path)) and Path(path).suffix.lower() not in _DATA_SUFFIXES


def fetch(dataset_id: str, *, download: bool = True, split: str = "train"):
    """The cached snapshot of a training set (downloaded first when allowed): `evalkit data fetch ID`."""
    from evalkit.hubdata.cache import locate

    ts = training_set(dataset_id)
    instead = (
        f"export it on a machine with internet (`python -m evalkit.training.data_hub {dataset_id} DIR "
        f"--split {split}`) and pass DIR/{split}.jsonl"
    )
    return locate(ts.source, dataset_id, download=download, instead=instead)


def _split_files(ts: TrainingSet, files: tuple[str, ...], split: str, dataset_id: str) -> list[str]:
    """The files holding `split`: a known set's declared files (it has one split); for another id its
    parquet files, else its JSON / JSONL files, narrowed to those named after the split when some are."""
    if ts.known:
        if split != ts.source.split:
            raise UserError(f"{dataset_id} has only the {ts.source.split!r} split, not {split!r}")
        return list(files)
    parquet = [f for f in files if f.endswith(".parquet")]
    chosen = parquet or [f for f in files if f.endswith((".json", ".jsonl"))]
    named = [f for f in chosen if re.search(rf"(^|[/_-]){re.escape(split)}([/_.-]|$)", f)]
    return named or chosen


def _rows_of(path: Path) -> list[dict]:
    from evalkit.hubdata.parquet import read_rows
    from evalkit.training.data_records import read_records

    if path.suffix == ".parquet":
        return read_rows(path, None)
    return [row for _, row in read_records(path)]


def _external_image(row: dict, image_dir: Path) -> tuple[str, str] | None:
    """(key, name) of a row's image path, pointed at `image_dir` by file name (None: no image)."""
    from evalkit.training.data_records import IMAGE_KEYS

    for key in IMAGE_KEYS:
        value = row.get(key)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, str) and value:
            return key, str(image_dir / Path(value).name)
    return None


def _resolve_external(
    ts: TrainingSet, rows: list[tuple[int, dict]], image_dir: Path | None, skip_missing: bool, dataset_id: str
) -> None:
    """Point each row's image path at `image_dir`; a missing folder or image is one line naming the folder
    and where the images come from (with `skip_missing`, missing images are left to the usual skip)."""
    where = f"{dataset_id}'s images are not in the dataset: they are {ts.external_images}"
    if image_dir is None:
        raise UserError(f"{where}; pass --image-dir DIR (image_root=) with those files")
    if not image_dir.is_dir():
        raise UserError(f"--image-dir {image_dir} is not a folder; {where}")
    missing = []
    for _, row in rows:
        found = _external_image(row, image_dir)
        if found is None:
            continue
        key, path = found
        row[key] = path
        if not Path(path).is_file():
            missing.append(Path(path).name)
    if missing and not skip_missing:
        raise UserError(
            f"{len(missing)} of {len(rows)} images of {dataset_id} not found in --image-dir {image_dir} "
            f"(first: {missing[0]}); {where}"
        )


def load_hub_rows(
    dataset_id: str, split: str, image_dir: str | Path | None = None, skip_missing_images: bool = False
) -> tuple[list[tuple[int, dict]], dict[str, Any]]:
    """(row index, record) for a hub training set, embedded images written as files, path-referenced ones
    pointed at `image_dir`; and the info the run records. A `UserError` (one line) when it cannot."""
    from evalkit.hubdata.cache import checksums
    from evalkit.hubdata.parquet import image_folder

    ts = training_set(dataset_id)
    snap = fetch(dataset_id, split=split)
    names = _split_files(ts, snap.files, split, dataset_id)
    if not names:
        raise UserError(f"{dataset_id}: no parquet or JSON file in {snap.folder} ({', '.join(snap.files)})")
    sums = {n: s for n, s in checksums(snap, dataset_id).items() if n in names}
    images = image_folder(snap.repo_id, snap.revision)
    rows: list[tuple[int, dict]] = []
    for name in names:
        for row in _rows_of(snap.path(name)):
            rows.append((len(rows), {k: _materialise(v, images, None) for k, v in row.items()}))
    if ts.external_images:
        folder = Path(image_dir).expanduser().resolve() if image_dir is not None else None
        _resolve_external(ts, rows, folder, skip_missing_images, dataset_id)
    hub = {**snap.record(), "ref": ts.source.ref, "split": split, "files": sums, "rows": len(rows)}
    info = {
        "hub_id": dataset_id,
        "split": split,
        "source": snap.uri,
        "hf_cache": str(snap.folder),
        "fingerprint": hashlib.sha256(json.dumps(sums, sort_keys=True).encode()).hexdigest(),
        "hub": hub,
    }
    if not ts.known:
        info["hub"]["note"] = ts.source.note
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
