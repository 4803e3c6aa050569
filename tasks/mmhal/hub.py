"""MMHal-Bench from the Hugging Face hub: the official repository Shengcao1006/MMHal-Bench, read file by file
(`response_template.json` and `images/`) exactly as --data-dir reads the same files.

Why the raw files: the repository is a loading-script dataset (`MMHal-Bench.py`), which `datasets` ≥ 4 no
longer runs, and the script only unpacks `test_data.zip` (174 MB: the same template and images). The
template is read in its file order, which the scorer needs (question type = index % 8); each image is
`images/<last part of the record's image_src URL>`, as the official scripts name them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.hubdata.cache import checksums, locate
from evalkit.hubdata.source import HubSource
from evalkit.tasks.mmhal.data import IMAGE_SUBDIR, TEMPLATE_NAMES

SOURCE = HubSource(
    repo_id="Shengcao1006/MMHal-Bench",
    revision=None,
    files=(TEMPLATE_NAMES[0], f"{IMAGE_SUBDIR}/*"),
    config="raw files",
    split="test (96 records, 96 images)",
    rows=96,
    size="template 50.5 kB; images/ not sized (test_data.zip, the same images zipped, is 174 MB)",
    note=(
        "the official template and images themselves, read as --data-dir reads them, in the template's "
        "order (the scorer maps question type by position); test_data.zip, which holds the same files, "
        "is not read. Not pinned: no public file establishes a commit sha of this repository, so the "
        "cache's main is read and the resolved commit recorded in run.json"
    ),
)


def locate_files(task: str, instead: str) -> tuple[Path, dict[str, Any]]:
    """The cached snapshot folder (laid out as --data-dir: the template and images/) and the data info a
    run records of it; the cache's files are checked against their hub checksums first."""
    snap = locate(SOURCE, task, instead=instead)
    sums = checksums(snap, task)  # before reading: a damaged cache is named as such
    info = {
        "source": snap.uri,
        "hub": {**snap.record(), "files": sums},
    }
    return snap.folder, info
