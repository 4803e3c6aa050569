"""Object HalBench data: the question file, the synonym list, the COCO 2014 annotations, and the ground truth
built from them as the official script builds it.

Where the files are looked for (each can also be named with a task option):

- questions (`objhal.questions=PATH`): `obj_halbench_300_with_image.jsonl` in DIR or DIR/eval/data — one JSON
  object a line with `image_id`, `question` and the picture, either inline as base64 (`image`, the official
  file: decoded once into the cache) or as a path (`image_path`, relative to --image-dir or the file's
  folder);
- synonyms (`objhal.synonyms=PATH`): `synonyms_refine.txt` in DIR or DIR/eval/data (RLHF-V eval/data; not
  bundled: its licence is unclear);
- COCO annotations (`objhal.coco=DIR`, the official `--coco_path`): a folder among DIR/annotations,
  DIR/coco2014/annotations and DIR holding `instances_val2014.json` and `captions_val2014.json` (from
  annotations_trainval2014.zip). The official script also reads the train2014 files; they are read here when
  present, and needed only when a question's image is not a val2014 image (COCO image ids are unique across
  the two splits, so for the official 300 val2014 images the train files add nothing).

Ground truth of an image: the classes of its instance annotations (category name → class through the
synonyms) ∪ the classes the classic matching finds in its captions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from evalkit.tasks.objhal.nouns import Nlp
from evalkit.tasks.objhal.protocol import Vocabulary, caption_words
from evalkit.types import UserError
from evalkit.util.datafiles import read_json, read_jsonl, sha256_file
from evalkit.util.environment import cache_root

QUESTION_FILE = "obj_halbench_300_with_image.jsonl"
SYNONYM_FILE = "synonyms_refine.txt"
FILE_DIRS = (".", "eval/data")
COCO_DIRS = ("annotations", "coco2014/annotations", ".")
SPLITS = ("val", "train")
KINDS = ("instances", "captions")
QUESTION_SOURCE = "github.com/RLHF-V/RLHF-V (or RLAIF-V) eval/data/" + QUESTION_FILE
SYNONYM_SOURCE = "github.com/RLHF-V/RLHF-V eval/data/" + SYNONYM_FILE
COCO_SOURCE = "cocodataset.org annotations_trainval2014.zip (its annotations/ folder)"
#: where each file is downloaded by hand (no hub copy exists, and neither the question file nor the
#: annotations zip has a published checksum evalkit could pin, so evalkit does not fetch them itself)
RLHF_V_COMMIT = "8daac8a8f30df123818ae9d3a0e3f0018497714c"
QUESTION_URL = f"https://raw.githubusercontent.com/RLHF-V/RLHF-V/main/eval/data/{QUESTION_FILE}"
SYNONYM_URL = f"https://raw.githubusercontent.com/RLHF-V/RLHF-V/{RLHF_V_COMMIT}/eval/data/{SYNONYM_FILE}"
SYNONYM_SHA256 = "681041d2958d7871ed6fa69c3108f34aa6a0a354eb53ed4c5a425e65f86bc72a"
COCO_URL = "http://images.cocodataset.org/annotations/annotations_trainval2014.zip"
COCO_FILES = tuple(f"{kind}_{split}2014.json" for split in SPLITS for kind in KINDS)
#: what to download and where to put it, in one line (the error without data and `evalkit data list`)
DOWNLOAD = (
    f"download {QUESTION_FILE} ({QUESTION_URL}) and {SYNONYM_FILE} ({SYNONYM_URL}, sha256 {SYNONYM_SHA256}) "
    f"into DIR, and unpack {', '.join(COCO_FILES)} from {COCO_URL} into DIR/annotations (the val2014 pair "
    "is required, the train2014 pair read when present), then pass --data-dir DIR; no hub copy exists and "
    "the question file and the annotations have no published checksum, so evalkit does not fetch them"
)
GT_VERSION = 1


@dataclass(frozen=True)
class Question:
    index: int
    image_id: int
    question: str
    image: Path


def _option_path(options: dict[str, Any], key: str) -> Path | None:
    """The path an `objhal.<key>` task option names (`options` as `ObjHal.read_options` returns them)."""
    value = options.get(key)
    return Path(str(value)).expanduser() if value else None


def _find(data_dir: Path | None, name: str, option: Path | None, key: str, source: str) -> Path:
    if option is not None:
        if not option.is_file():
            raise UserError(
                f"--task-option objhal.{key}={option}: file not found (expected {name} from {source})"
            )
        return option
    candidates = [data_dir / d / name for d in FILE_DIRS] if data_dir is not None else []
    for path in candidates:
        if path.is_file():
            return path
    where = " or ".join(str(c) for c in candidates) or "(no --data-dir given)"
    raise UserError(
        f"objhal: {name} not found: looked for {where}; it comes from {source}; "
        f"or pass --task-option objhal.{key}=PATH"
    )


def find_questions(data_dir: Path | None, options: dict[str, Any]) -> Path:
    return _find(data_dir, QUESTION_FILE, _option_path(options, "questions"), "questions", QUESTION_SOURCE)


def find_synonyms(data_dir: Path | None, options: dict[str, Any]) -> Path:
    return _find(data_dir, SYNONYM_FILE, _option_path(options, "synonyms"), "synonyms", SYNONYM_SOURCE)


def find_coco(data_dir: Path | None, options: dict[str, Any]) -> dict[str, Path]:
    """`{"instances_val": path, ...}` for the annotation files present; the val2014 pair is required."""
    given = _option_path(options, "coco")
    folders = [given] if given else [data_dir / d for d in COCO_DIRS] if data_dir else []
    needed = [f"{kind}_val2014.json" for kind in KINDS]
    for folder in folders:
        if all((folder / n).is_file() for n in needed):
            return {
                f"{kind}_{split}": folder / f"{kind}_{split}2014.json"
                for split in SPLITS
                for kind in KINDS
                if (folder / f"{kind}_{split}2014.json").is_file()
            }
    where = " or ".join(str(f) for f in folders) or "(no --data-dir given)"
    missing = [n for n in needed if not any((f / n).is_file() for f in folders)] or needed
    flag = "--task-option objhal.coco=DIR" if given else "--task-option objhal.coco=DIR to name the folder"
    raise UserError(
        f"objhal: COCO 2014 annotations not found: {' and '.join(missing)} missing in {where}; they come "
        f"from {COCO_SOURCE} (with instances_train2014.json and captions_train2014.json, read when present); "
        f"{flag}"
    )


def read_vocabulary(path: Path) -> Vocabulary:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the synonym list ({exc})") from None
    return Vocabulary.parse(text, str(path))


# ------------------------------------------------------------------------------------------ questions


def _image_id(path: Path, lineno: int, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserError(f"{path}:{lineno}: image_id {value!r} is not a COCO image id (an integer)") from None


def _suffix(data: bytes) -> str:
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if data.startswith(b"\x89PNG"):
        return ".png"
    return ".img"


def _write_once(path: Path, data: bytes) -> None:
    if path.is_file() and path.stat().st_size == len(data):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def read_questions(path: Path, image_dir: Path | None, limit: int | None = None) -> list[Question]:
    """The question records in file order (the first `limit`); base64 images are decoded into
    `cache_root()/objhal/images-<file digest>/`."""
    rows = read_jsonl(path)
    if not rows:
        raise UserError(f"{path}: no questions")
    cache = cache_root() / "objhal" / f"images-{sha256_file(path)[:16]}"
    out = []
    for i, row in enumerate(rows[:limit], 1):
        if "image_id" not in row or not isinstance(row.get("question"), str):
            raise UserError(f"{path}:{i}: each record needs 'image_id' and a 'question' string")
        image_id = _image_id(path, i, row["image_id"])
        if isinstance(row.get("image"), str):
            try:
                data = base64.b64decode(row["image"], validate=False)
            except (binascii.Error, ValueError):
                raise UserError(f"{path}:{i}: 'image' is not base64 image data") from None
            image = cache / f"{i - 1:04d}-{image_id}{_suffix(data)}"
            _write_once(image, data)
        elif isinstance(row.get("image_path"), str):
            image = Path(row["image_path"]).expanduser()
            if not image.is_absolute():
                image = (image_dir or path.parent) / image
            if not image.is_file():
                hint = (
                    ""
                    if image_dir
                    else " (relative paths are read from the question file's folder, or --image-dir)"
                )
                raise UserError(f"{path}:{i}: image {image} not found{hint}")
        else:
            raise UserError(f"{path}:{i}: no picture: expected 'image' (base64) or 'image_path'")
        out.append(Question(i - 1, image_id, row["question"], image))
    return out


# ------------------------------------------------------------------------------------------ ground truth


def _relevant(path: Path, kind: str, image_ids: set[int]) -> tuple[set[int], list[tuple[int, str]]]:
    """(ids of the file's images, (image id, category name or caption) of the annotations of `image_ids`);
    the rest of the file is dropped at once (the instance files hold every segmentation polygon)."""
    data = read_json(path, dict)
    fields = ("annotations", "images", "categories") if kind == "instances" else ("annotations", "images")
    for name in fields:
        if not isinstance(data.get(name), list):
            raise UserError(f"{path}: not a COCO {kind} file (no '{name}' list)")
    ids = {img.get("id") for img in data["images"]}
    if kind == "instances":
        names = {c.get("id"): c.get("name") for c in data["categories"]}
        found = [(a["image_id"], names.get(a.get("category_id"))) for a in data["annotations"]]
    else:
        found = [(a["image_id"], str(a.get("caption", ""))) for a in data["annotations"]]
    return ids, [(i, v) for i, v in found if i in image_ids]


def ground_truth(
    image_ids: set[int], coco: dict[str, Path], vocab: Vocabulary, nlp: Nlp
) -> tuple[dict[int, set[str]], list[Path]]:
    """Ground-truth classes per image, and the annotation files read. The train2014 files are read only
    when an image is missing from the val2014 files (and must then be present)."""
    read: dict[str, list[tuple[int, str]]] = {}
    seen: set[int] = set()
    for key in ("instances_val", "captions_val"):
        ids, read[key] = _relevant(coco[key], key.split("_")[0], image_ids)
        seen |= ids
    if image_ids - seen:
        absent = [f"{k}_train2014.json" for k in KINDS if f"{k}_train" not in coco]
        if absent:
            first = min(image_ids - seen)
            raise UserError(
                f"objhal: image {first} ({len(image_ids - seen)} of the question images) is not in the "
                f"val2014 annotations; {' and '.join(absent)} (from {COCO_SOURCE}) must be next to them"
            )
        for key in ("instances_train", "captions_train"):
            read[key] = _relevant(coco[key], key.split("_")[0], image_ids)[1]
    objects: dict[int, set[str]] = {i: set() for i in image_ids}
    for key, found in read.items():
        for image_id, value in found:
            if key.startswith("instances"):
                if value not in vocab.canonical:
                    raise UserError(f"{coco[key]}: category {value!r} is not in the synonym list")
                objects[image_id].add(vocab.canonical[value])
            else:
                objects[image_id].update(vocab.canonical[w] for w in caption_words(value, vocab, nlp))
    return objects, [coco[k] for k in read]


def cached_ground_truth(
    image_ids: set[int], coco: dict[str, Path], vocab_path: Path, vocab: Vocabulary, nlp: Nlp
) -> tuple[dict[int, set[str]], dict[str, str]]:
    """`ground_truth`, kept in the cache under a key of the files' digests, the images and the NLP tools
    (reading the COCO files takes seconds); also returns the digests of the files it depends on."""
    digests = {p.name: sha256_file(p) for p in [vocab_path, *coco.values()]}
    key = json.dumps([GT_VERSION, digests, sorted(image_ids), nlp.name], sort_keys=True)
    path = cache_root() / "objhal" / f"gt-{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"
    try:
        stored = json.loads(path.read_text())
        return {int(k): set(v) for k, v in stored["objects"].items()}, stored["digests"]
    except (OSError, ValueError, KeyError):
        pass
    objects, used = ground_truth(image_ids, coco, vocab, nlp)
    used_digests = {p.name: digests[p.name] for p in [vocab_path, *used]}
    payload = {"objects": {str(k): sorted(v) for k, v in objects.items()}, "digests": used_digests}
    _write_once(path, json.dumps(payload).encode())
    return objects, used_digests


@lru_cache(maxsize=8)
def checked_vocabulary(path: str, sha256: str) -> Vocabulary:
    """The synonym list a row was scored with, refused when the file is gone or its bytes changed."""
    p = Path(path)
    if not p.is_file() or sha256_file(p) != sha256:
        raise UserError(
            f"objhal: rows are scored with the synonym list {path} (sha256 {sha256[:12]}…), which is missing "
            "or changed; put that file back to rescore"
        )
    return read_vocabulary(p)
