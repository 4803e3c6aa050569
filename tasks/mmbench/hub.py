"""MMBench (English) from the Hugging Face hub: lmms-lab/MMBench's `en` config, split `dev` (answers given)
or `test` (answers hidden, for `evalkit export`), parquet files `en/<split>-*.parquet` with the columns of
the official TSV (index, question, hint, A-D, answer, category, L2-category, split, source, comment) and the
image embedded, read as the official TSV is.

Each row becomes the TSV's row: every cell as text (`index` is text in the `en` config, an integer
elsewhere), a null or pandas-NaN cell missing as in the TSV, `L2-category` read as the TSV's
`l2-category`; the circular passes come from the rows whose index is at least 1,000,000 when the file has
them, else are built by rotating the options, exactly as for the TSV (`data.build_passes`). Each distinct
image is written once under `$EVALKIT_CACHE/hub/`, named by its sha256. The samples (prompts, options,
answers, categories, passes) are thus those the official MMBench_DEV_EN.tsv gives for the same rows.
"""

from __future__ import annotations

import hashlib
from typing import Any

from evalkit.hubdata.cache import checksums, locate
from evalkit.hubdata.parquet import image_bytes, image_folder, image_suffix, read_rows, write_once
from evalkit.hubdata.source import HubSource
from evalkit.tasks.mmbench.data import CANDIDATES, Pass, build_passes, check_unique, row_index
from evalkit.types import UserError

NOTE = (
    "the English MMBench with its images embedded, rows as in VLMEvalKit's MMBench_{}_EN.tsv (which release, "
    "2023-07-12 or the 2023-10-03 clean-up, is not established; EvalScope counts 4,329 en dev rows, as "
    "many as the cn dev split). Not pinned: no public record of a commit sha of this repository was "
    "found, so the cache's main is read and the resolved commit recorded in run.json"
)
SOURCES = {
    split: HubSource(
        repo_id="lmms-lab/MMBench",
        mirrors=("lmms-lab-encoder/MMBench",),
        revision=None,
        files=(f"en/{split}-*.parquet",),
        config="en",
        split=split,
        rows=rows,
        size="size not stated on the card",
        note=NOTE.format(split.upper())
        + ("" if split == "dev" else "; answers hidden (export, then submit)"),
    )
    for split, rows in (("dev", 4329), ("test", 6718))
}
#: hub column → TSV column (the hub spells one column differently)
RENAMED = {"L2-category": "l2-category"}
REQUIRED = ("index", "question", "A", "B")
#: read when present (the test split has no answers; the `cc` config no hint)
OPTIONAL = ("hint", "C", "D", "answer", "category", "L2-category", "split", "source", "comment")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    return str(value)


def read_hub(split: str, circular: bool) -> tuple[list[Pass], dict[str, Any]]:
    """Every pass of the split's rows (grouped by question, as `data.load_passes` gives them for the TSV),
    and the data info a run records."""
    source = SOURCES[split]
    tsv, legacy = CANDIDATES[split][:2]
    instead = f"pass --data toy, or --data-dir DIR with {tsv} (or the legacy {legacy})"
    snap = locate(source, "mmbench", instead=instead)
    sums = checksums(snap, "mmbench")  # before reading: a damaged cache is named as such
    images = image_folder(snap.repo_id, snap.revision)
    rows: list[dict[str, str | None]] = []
    files: list[str] = []
    for name in snap.files:
        path = snap.path(name)
        for i, row in enumerate(read_rows(path, (*REQUIRED, "image"), OPTIONAL), 1):
            data, original = image_bytes(row.pop("image"), f"{path}: row {i}")
            file = images / (hashlib.sha256(data).hexdigest()[:24] + image_suffix(data, original))
            files.append(str(write_once(file, data)))
            rows.append({RENAMED.get(k, k): _text(v) for k, v in row.items()})
    if not rows:
        raise UserError(f"{snap.folder}: the MMBench {split} parquet file(s) hold no rows")
    where = snap.folder
    indices = [row_index(where, r, i) for i, r in enumerate(rows)]
    check_unique(where, indices)
    passes, counts = build_passes(where, rows, indices, files, circular)
    info = {
        "source": snap.uri,
        "image_dir": str(images),
        "version": f"hub MMBench en {split} ({len(rows):,} rows)",
        **counts,
        "hub": {**snap.record(), "split": {split: len(rows)}, "rows": len(rows), "files": sums},
    }
    return passes, info
