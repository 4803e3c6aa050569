"""LLaVA-Bench (In-the-Wild) from the Hugging Face hub: the official repository
liuhaotian/llava-bench-in-the-wild, read file by file (`questions.jsonl`, `context.jsonl`,
`answers_gpt4.jsonl`, `images/`) exactly as --data-dir reads the same files.

Why the raw files and not lmms-lab/llava-bench-in-the-wild's parquet: they are the files the official
`eval_gpt_review_bench.py` pairs line by line, so prompts, GPT-4 references, judge contexts and categories
are the official ones by construction. The lmms-lab copy (60 rows; question_id, question, image, caption,
gpt_answer, category, image_id) carries the same fields, but that it equals the official files row by row
is not established, and `datasets` reads the official repository only as an image folder (its 24
images), so its jsonl files are fetched through `huggingface_hub` rather than `load_dataset`.

LLaVA-Bench (COCO) from the hub copy lmms-lab/llava-bench-coco (90 rows: question_id, question, image,
category, image_id, answer, caption) plus the official files from GitHub haotian-liu/LLaVA at a pinned
commit, each pinned by its sha256: the official judge context is built from captions AND boxes
(`caps_boxes_coco2014_val_80.jsonl`), which the hub copy lacks (one `caption` string, no boxes), so only its
embedded images are read; the questions, GPT-4 answers and contexts are the official files, assembled with
the images into the folder layout --data-dir reads. Each hub row's question and category are compared with
qa90_questions.jsonl; the ids of rows that differ are recorded (the official files decide). The hub
repository is read at the revision the cache holds for `main` (no commit sha of it was established from
public files; the resolved sha is recorded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.hubdata import official
from evalkit.hubdata.cache import checksums, locate
from evalkit.hubdata.official import OfficialFile
from evalkit.hubdata.parquet import image_bytes, image_folder, read_rows, write_once
from evalkit.hubdata.source import HubSource
from evalkit.tasks.llava_bench.data import read_questions
from evalkit.types import UserError
from evalkit.util.datafiles import sha256_file

FILES = ("questions.jsonl", "context.jsonl", "answers_gpt4.jsonl")
SOURCE = HubSource(
    repo_id="liuhaotian/llava-bench-in-the-wild",
    revision="9773b6fd2be88d4ced480dcd9bfd4ce76e47f79b",
    files=(*FILES, "images/*"),
    config="raw files",
    split="60 questions, 24 images",
    rows=60,
    size="about 10 MB",
    note=(
        "the official files themselves (LLaVA's eval_gpt_review_bench.py inputs), read as --data-dir reads "
        "them; lmms-lab/llava-bench-in-the-wild (parquet, 60 rows) is not read: its row-by-row identity "
        "with these files is not established"
    ),
)


def locate_files(task: str, instead: str) -> tuple[Path, dict[str, Any]]:
    """The cached snapshot folder (laid out as --data-dir: the three jsonl files and images/) and the
    data info a run records of it; the cache's files are checked against their hub checksums first."""
    snap = locate(SOURCE, task, instead=instead)
    sums = checksums(snap, task)  # before reading: a damaged cache is named as such
    info = {
        "source": snap.uri,
        "hub": {**snap.record(), "files": sums},
    }
    return snap.folder, info


COCO_COMMIT = "c121f0432da27facab705978f83c4ada465e46fd"
COCO_RAW = f"https://raw.githubusercontent.com/haotian-liu/LLaVA/{COCO_COMMIT}/"
COCO_NOTE = f"haotian-liu/LLaVA at commit {COCO_COMMIT[:7]}"


def _coco_file(path: str, sha256: str, size: int) -> OfficialFile:
    return OfficialFile(COCO_RAW + path, sha256, size, Path(path).name, f"{path} of {COCO_NOTE}")


#: file name in --data-dir → the pinned official file
COCO_OFFICIAL = {
    "qa90_questions.jsonl": _coco_file(
        "playground/data/coco2014_val_qa_eval/qa90_questions.jsonl",
        "2a77196696b5602b544244ace9aeac21300513be85b5e53eb2414d00cddbe1c7",
        12242,
    ),
    "qa90_gpt4_answer.jsonl": _coco_file(
        "playground/data/coco2014_val_qa_eval/qa90_gpt4_answer.jsonl",
        "5fd1a760483fb54e62a717a406add8a986f3e03a40d037b5d6515828cc90dbc5",
        41305,
    ),
    "caps_boxes_coco2014_val_80.jsonl": _coco_file(
        "llava/eval/table/caps_boxes_coco2014_val_80.jsonl",
        "818d3df2b52784699bbdc129b6bc68e035d78ff8f5093c3e2ce5e0f726549b15",
        58574,
    ),
}
COCO_SOURCE = HubSource(
    repo_id="lmms-lab/llava-bench-coco",
    mirrors=("lmms-lab-encoder/llava-bench-coco",),
    revision=None,
    files=("data/train-*.parquet",),
    config="default",
    split="train",
    rows=90,
    size="5 MB",
    note=(
        "the 30 COCO val2014 images (embedded) only; qa90_questions.jsonl, qa90_gpt4_answer.jsonl and "
        "caps_boxes_coco2014_val_80.jsonl (the captions and boxes of the official judge context, which this "
        f"copy lacks) come from github.com/haotian-liu/LLaVA at {COCO_COMMIT[:7]} with pinned sha256. Not "
        "pinned: no public file establishes a commit sha of this repo; the resolved commit is recorded"
    ),
)
COCO_COLUMNS = ("question_id", "question", "category", "image")


def coco_files(task: str, instead: str) -> tuple[Path, dict[str, Any]]:
    """A folder laid out as --data-dir reads it (the three official files and images/, written from the
    hub rows) and the data info a run records: the hub repository, revision, rows, checksums, the ids of
    rows that differ from qa90_questions.jsonl, and the official files read. The official files are
    fetched first when allowed."""
    snap = locate(COCO_SOURCE, task, instead=instead)
    kept = {name: official.fetch(f, task) for name, f in COCO_OFFICIAL.items()}
    sums = checksums(snap, task)  # before reading: a damaged cache is named as such
    images = image_folder(snap.repo_id, snap.revision)
    root = images.parent
    for name, f in COCO_OFFICIAL.items():
        dest = root / name
        if not dest.is_file() or sha256_file(dest) != f.sha256:
            dest.unlink(missing_ok=True)
            write_once(dest, kept[name].read_bytes())
    questions = {str(q["question_id"]): q for q in read_questions(root / "qa90_questions.jsonl")}
    wanted, rows, differ = {q["image"] for q in questions.values()}, 0, []
    for name in snap.files:
        for i, row in enumerate(read_rows(snap.path(name), COCO_COLUMNS), 1):
            rows += 1
            where = f"{snap.path(name)}: row {i}"
            q = questions.get(str(row["question_id"]))
            if q is None:
                raise UserError(f"{where}: question_id {row['question_id']!r} is not in qa90_questions.jsonl")
            if row["question"] != q["text"] or row["category"] != q["category"]:
                differ.append(q["question_id"])
            if q["image"] in wanted:
                write_once(images / q["image"], image_bytes(row["image"], where)[0])
                wanted.discard(q["image"])
    if wanted:
        first = sorted(wanted)[0]
        raise UserError(
            f"{task}: image {first} (and {len(wanted) - 1} more) of qa90_questions.jsonl is in none of the "
            f"{rows} rows of {snap.repo_id} at {snap.revision}; {instead}"
        )
    record = {name: {**f.describe(), "path": str(kept[name])} for name, f in COCO_OFFICIAL.items()}
    info = {
        "source": f"{snap.uri} + {COCO_RAW}",
        "hub": {
            **snap.record(),
            "split": COCO_SOURCE.split,
            "rows": rows,
            "files": sums,
            "rows_differing_from_official": sorted(differ),
        },
        "official": record,
    }
    return root, info
