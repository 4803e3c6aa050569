"""A hub repository named where a run folder is expected (`evalkit compare`, `evalkit leaderboard`).

The rule: `hf://USER/NAME[@REVISION]` always names a dataset repository on the hub; a bare `USER/NAME`
(letters, digits, `-_.`, one slash) names one only when no file or folder of that name exists here, so a
local path always wins. The repository is read through the Hugging Face cache (`snapshot_download`): once
fetched, it is read offline too (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from evalkit.types import UserError

PREFIX = "hf://"
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: what a run needs of a pushed repository (the dataset's parquet files are not read)
RUN_FILES = ["run.json", "metrics.json", "samples/*.jsonl"]


def hub_reference(text: str | Path) -> tuple[str, str | None] | None:
    """(repo id, revision or None) when `text` names a hub repository by the rule above, else None."""
    text = str(text)
    explicit = text.startswith((PREFIX, "hf:/"))  # `hf:/` is what pathlib leaves of `hf://`
    if explicit:
        text = text.split(":", 1)[1].lstrip("/")
    repo, _, revision = text.partition("@")
    if not _REPO.match(repo) or repo.endswith((".json", ".jsonl")):
        if explicit:
            raise UserError(f"{PREFIX}{text}: expected {PREFIX}USER/NAME or {PREFIX}USER/NAME@REVISION")
        return None
    if not explicit and os.path.lexists(text):
        return None
    return repo, revision or None


def fetch_run(repo_id: str, revision: str | None = None) -> Path:
    """The local snapshot of a pushed run (downloaded into the hub cache when online and not cached)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from evalkit.hubdata.cache import hub_cache_dir, offline

    name = f"{PREFIX}{repo_id}" + (f"@{revision}" if revision else "")
    try:  # the cache and offline mode as the environment says now (the client fixes both at import)
        folder = snapshot_download(
            repo_id,
            repo_type="dataset",
            revision=revision,
            allow_patterns=RUN_FILES,
            cache_dir=hub_cache_dir(),
            local_files_only=offline(),
        )
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise UserError(
            f"{name}: no such dataset repository or revision on the hub (or it is private: "
            "log in with `hf auth login`)"
        ) from None
    except LocalEntryNotFoundError:
        raise UserError(
            f"{name} is not a local run folder and is not in the Hugging Face cache; fetch it once with "
            "network access (unset HF_HUB_OFFLINE), or pass a local run folder"
        ) from None
    except HfHubHTTPError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise UserError(f"{name}: the hub refused the download ({detail})") from None
    path = Path(folder)
    if not (path / "run.json").is_file():
        raise UserError(f"{name} holds no run.json: it is not a run pushed by `evalkit push`")
    return path


def run_location(text: str | Path) -> Path:
    """`text` as a folder to read a run from: the hub snapshot it names, else the local path."""
    ref = hub_reference(text)
    if ref is None:
        return Path(text)
    try:
        return fetch_run(*ref)
    except UserError as exc:
        if str(text).startswith("hf:"):
            raise
        raise UserError(f"{text} is no local path; read as a hub repository: {exc}") from None
