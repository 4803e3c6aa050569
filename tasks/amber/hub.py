"""AMBER without --data-dir: the official data files from GitHub (junyangwang0410/AMBER at a pinned commit,
each pinned by its sha256) and the images from the hub copy qgallouedec/amber, assembled into the folder
layout --data-dir reads, so the samples and numbers are those of the official data folder plus its images.

Why this split: the official images exist only on Google Drive; qgallouedec/amber embeds them, but no hub
copy carries relation.json, safe_words.txt or metrics.txt, which the official scorer reads, and the query and
annotation files are taken from the same commit so ids, types and truths are the official ones by
construction. Only the `generative` config is read (1,004 rows, ids 1–1,004, ~422 MB): it holds each of the
1,004 images once (official query id n asks about AMBER_n.jpg), whereas the `discriminative` config
(14,216 rows, ~1.3 GB) repeats the same images. Each hub row's query, truth and hallu lists are compared
with the official files; the number that differ is recorded (the official files decide). The hub repository
is read at the revision the cache holds for `main` (no commit sha of it was established from public files;
the resolved sha is recorded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.hubdata import official
from evalkit.hubdata.cache import checksums, locate
from evalkit.hubdata.official import OfficialFile
from evalkit.hubdata.parquet import image_bytes, image_folder, read_rows, write_once
from evalkit.hubdata.source import HubSource
from evalkit.tasks.amber.data import DATA_FILES, AmberData
from evalkit.types import UserError
from evalkit.util.datafiles import sha256_file

COMMIT = "534babf6bbfcce2e735c26289dedfb21cef3c939"
RAW = f"https://raw.githubusercontent.com/junyangwang0410/AMBER/{COMMIT}/data/"
NOTE = f"junyangwang0410/AMBER data/ at commit {COMMIT[:7]}"


def _official(path: str, sha256: str, size: int) -> OfficialFile:
    return OfficialFile(RAW + path, sha256, size, Path(path).name, NOTE)


#: data/ path (as --data-dir lays it out) → the pinned official file
OFFICIAL = {
    "annotations.json": _official(
        "annotations.json", "db22a436c4836fbb295e60b4e80d519573077579fb7032f01b193c1bd022b797", 1813301
    ),
    "relation.json": _official(
        "relation.json", "c4c1491e9bbc3209abc1888c12a1bf8413bdbab8a0d8be04b990a2e7680cf23e", 12699
    ),
    "safe_words.txt": _official(
        "safe_words.txt", "f92cf1123f4578a2630832fac3e6ac4de36212ea55859d3bed4fd233723f4043", 57
    ),
    "query/query_all.json": _official(
        "query/query_all.json", "127680ae61f7d4a92d2f7f07a8deaec07f0689b194d2c7c0f41ead7bd2c5bcf5", 1844750
    ),
    # read by the official inference.py (its counters' initial values); recorded, not needed to score
    "metrics.txt": _official(
        "metrics.txt", "2fbe2ee584d10e7ce0a568a4902d3d2296727d45f761bf091dd35c4e4b5bc6ac", 899
    ),
}
SOURCE = HubSource(
    repo_id="qgallouedec/amber",
    revision=None,
    files=("generative/train-*.parquet",),
    config="generative",
    split="train",
    rows=1004,
    size="422 MB",
    note=(
        "the 1,004 images (embedded) only; queries, annotations, relation.json, safe_words.txt and "
        f"metrics.txt come from github.com/junyangwang0410/AMBER at {COMMIT[:7]} with pinned sha256"
    ),
)
COLUMNS = ("id", "query", "truth", "hallu", "image")


def data_dir(task: str, instead: str) -> tuple[Path, dict[str, Any]]:
    """A folder laid out as --data-dir reads it (`data/` with the official files), the hub snapshot read
    for its images, and the official files' record; the files are fetched first when allowed."""
    snap = locate(SOURCE, task, instead=instead)
    kept = {name: official.fetch(f, task) for name, f in OFFICIAL.items()}
    root = image_folder(snap.repo_id, snap.revision).parent
    for name in DATA_FILES:
        dest = root / "data" / name
        if not dest.is_file() or sha256_file(dest) != OFFICIAL[name].sha256:
            dest.unlink(missing_ok=True)
            write_once(dest, kept[name].read_bytes())
    record = {name: {**f.describe(), "path": str(kept[name])} for name, f in OFFICIAL.items()}
    return root, {"snapshot": snap, "official": record}


def write_images(
    task: str, data: AmberData, names: list[str], found: dict[str, Any]
) -> tuple[Path, dict[str, Any]]:
    """The images `names` written from the hub rows into the snapshot's image folder, and the data info
    a run records: the hub repository, revision, rows, checksums, rows that differ from the official
    files, and the official files read."""
    snap = found["snapshot"]
    sums = checksums(snap, task)  # before reading: a damaged cache is named as such
    folder = image_folder(snap.repo_id, snap.revision)
    image_of = {q["id"]: q["image"] for q in data.queries}
    query_of = {q["id"]: q["query"] for q in data.queries}
    wanted, rows, differ = set(names), 0, []
    for name in snap.files:
        for i, row in enumerate(read_rows(snap.path(name), COLUMNS), 1):
            rows += 1
            where = f"{snap.path(name)}: row {i}"
            qid = row["id"]
            if not isinstance(qid, int) or qid not in image_of:
                raise UserError(f"{where}: id {qid!r} is no query id of the official query_all.json")
            ann = data.annotation(qid)
            if ann["type"] != "generative":
                raise UserError(f"{where}: id {qid} is a {ann['type']} item in annotations.json")
            same = (
                row["query"] == query_of[qid]
                and list(row["truth"] or []) == ann["truth"]
                and list(row["hallu"] or []) == ann["hallu"]
            )
            if not same:
                differ.append(qid)
            image = image_of[qid]
            if image in wanted:
                write_once(folder / image, image_bytes(row["image"], where)[0])
                wanted.discard(image)
    if wanted:
        first = sorted(wanted)[0]
        raise UserError(
            f"{task}: {first} (and {len(wanted) - 1} more) not among the {rows} rows of {snap.repo_id} at "
            f"{snap.revision}; pass --data-dir with the official data/ folder and --image-dir with the images"
        )
    info = {
        "source": f"{snap.uri} + {RAW}",
        "hub": {
            **snap.record(),
            "split": SOURCE.split,
            "rows": rows,
            "files": sums,
            "rows_differing_from_official": sorted(differ),
        },
        "official": found["official"],
    }
    return folder, info
