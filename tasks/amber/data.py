"""AMBER's official files (junyangwang0410/AMBER `data/`): annotations.json, relation.json, safe_words.txt and
query/query_all.json, read and checked entry by entry; the images; and an official responses file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.types import UserError
from evalkit.util.datafiles import read_json, read_text

DATA_FILES = ("annotations.json", "relation.json", "safe_words.txt", "query/query_all.json")


OFFICIAL_COUNTS = {"items": 15220, "generative": 1004}


@dataclass
class AmberData:
    root: Path
    queries: list[dict[str, Any]]
    annotations: list[dict[str, Any]]  # annotations[id - 1]
    association: dict[str, list[str]]
    safe_words: list[str]
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def vocabulary(self) -> list[str]:
        """The hallucination vocabulary: every key and value of relation.json."""
        words = set(self.association)
        for values in self.association.values():
            words.update(values)
        return sorted(words)

    def annotation(self, item_id: int) -> dict[str, Any]:
        return self.annotations[item_id - 1]


def find_root(data_dir: Path) -> Path:
    for root in (data_dir, data_dir / "data"):
        if all((root / f).is_file() for f in DATA_FILES):
            return root
    missing = next(f for f in DATA_FILES if not (data_dir / f).is_file())
    raise UserError(
        f"AMBER file {data_dir / missing} not found: --data-dir must be the official data/ folder of "
        "github.com/junyangwang0410/AMBER (annotations.json, relation.json, safe_words.txt, "
        "query/query_all.json), or the repository root that holds it"
    )


def read_safe_words(path: Path) -> list[str]:
    """One word a line, as the script reads it (the line up to its newline, nothing else stripped)."""
    text = read_text(path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def read_data(data_dir: Path) -> AmberData:
    root = find_root(Path(data_dir))
    paths = {f: root / f for f in DATA_FILES}
    annotations = read_json(paths["annotations.json"], list)
    association = read_json(paths["relation.json"], dict)
    queries = read_json(paths["query/query_all.json"], list)
    for word, values in association.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise UserError(f"{paths['relation.json']}: {word!r} must map to a list of words")
    for i, ann in enumerate(annotations, 1):
        where = f"{paths['annotations.json']}: entry {i}"
        if not isinstance(ann, dict) or ann.get("id") != i or not isinstance(ann.get("type"), str):
            raise UserError(f"{where} must be an object with id {i} and a type (entries are indexed by id)")
        if ann["type"] == "generative":
            for key in ("truth", "hallu"):
                objs = ann.get(key)
                if not isinstance(objs, list) or not all(isinstance(o, str) for o in objs):
                    raise UserError(f"{where}: {key!r} must be a list of object names")
                unknown = [o for o in objs if o not in association]
                if unknown:
                    raise UserError(f"{where}: {key} object {unknown[0]!r} is not a key of relation.json")
        elif ann.get("truth") not in ("yes", "no"):
            raise UserError(f"{where}: truth must be 'yes' or 'no'")
    for i, q in enumerate(queries, 1):
        where = f"{paths['query/query_all.json']}: entry {i}"
        if not isinstance(q, dict) or not isinstance(q.get("id"), int) or not isinstance(q.get("query"), str):
            raise UserError(f"{where} must be an object with an integer id and a query")
        if not isinstance(q.get("image"), str):
            raise UserError(f"{where}: missing image file name")
        if not 1 <= q["id"] <= len(annotations):
            raise UserError(f"{where}: id {q['id']} has no entry in annotations.json")
    safe = read_safe_words(paths["safe_words.txt"])
    return AmberData(root, queries, annotations, association, safe, paths)


IMAGE_DIR_CANDIDATES = ("image", "images")


def find_images(data: AmberData, data_dir: Path, image_dir: Path | None, names: list[str]) -> Path:
    candidates = (
        [image_dir]
        if image_dir
        else [p / c for p in dict.fromkeys((data_dir, data.root)) for c in IMAGE_DIR_CANDIDATES]
    )
    for c in candidates:
        if all((c / n).is_file() for n in names):
            return c
    best = max(candidates, key=lambda c: sum((c / n).is_file() for n in names))
    missing = [n for n in names if not (best / n).is_file()]
    where = str(image_dir) if image_dir else " or ".join(str(c) for c in candidates)
    raise UserError(
        f"AMBER images not found: {missing[0]} (and {len(missing) - 1} more) not in {where}; the images "
        "AMBER_1.jpg … AMBER_1004.jpg come from the Google Drive link in the AMBER README — put them in "
        "DATA_DIR/image or pass --image-dir"
    )
