"""What a task declares about its data on the Hugging Face hub (`HubSource`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class HubSource:
    """One hub repository a task reads, and which of its files.

    `revision`: the full 40-hex commit sha the task is pinned to; None where no sha could be established,
    then the revision the cache holds for `ref` (a branch, tag or `refs/pr/N`; default `main`) is used and
    the resolved sha recorded (the `note` says so). `mirrors`: repository ids accepted in place of
    `repo_id` (same files, tried in order after it). `files`: the paths or glob patterns read
    (`allow_patterns`). `config` / `split`, `rows` and `size` describe the data for people (`evalkit data
    list`); `note` says how it differs from the official release."""

    repo_id: str
    revision: str | None
    files: tuple[str, ...]
    config: str = "default"
    split: str = ""
    rows: int | None = None
    size: str = ""
    note: str = ""
    mirrors: tuple[str, ...] = ()
    repo_type: str = "dataset"
    ref: str = "main"

    def __post_init__(self) -> None:
        if self.revision is not None and not COMMIT.fullmatch(self.revision):
            raise ValueError(f"HubSource {self.repo_id}: revision must be a 40-hex commit sha or None")
        if not self.files:
            raise ValueError(f"HubSource {self.repo_id}: name the files it reads")

    @property
    def repo_ids(self) -> tuple[str, ...]:
        return (self.repo_id, *self.mirrors)

    def describe(self) -> dict[str, object]:
        """The declaration as JSON (`evalkit data list --json`)."""
        return {
            "repo_id": self.repo_id,
            "mirrors": list(self.mirrors),
            "repo_type": self.repo_type,
            "revision": self.revision,
            "pinned": self.revision is not None,
            "ref": self.ref,
            "files": list(self.files),
            "config": self.config,
            "split": self.split,
            "rows": self.rows,
            "size": self.size,
            "note": self.note,
        }
