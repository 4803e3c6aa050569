"""LLaVA-Bench (In-the-Wild) from the Hugging Face hub: the official repository
liuhaotian/llava-bench-in-the-wild, read file by file (`questions.jsonl`, `context.jsonl`,
`answers_gpt4.jsonl`, `images/`) exactly as --data-dir reads the same files.

Why the raw files and not lmms-lab/llava-bench-in-the-wild's parquet: they are the files the official
`eval_gpt_review_bench.py` pairs line by line, so prompts, GPT-4 references, judge contexts and categories
are the official ones by construction. The lmms-lab copy (60 rows; question_id, question, image, caption,
gpt_answer, category, image_id) carries the same fields, but that it equals the official files row by row
is not established, and `datasets` reads the official repository only as an image folder (its 24
images), so its jsonl files are fetched through `huggingface_hub` rather than `load_dataset`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.hubdata.cache import checksums, locate
from evalkit.hubdata.source import HubSource

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
        "source": f"hf://datasets/{snap.repo_id}@{snap.revision}",
        "hub": {**snap.record(), "files": sums},
    }
    return snap.folder, info
