"""Locating a `HubSource` in the standard Hugging Face cache, fetching it there, and checking it.

The cache is the one `huggingface_hub` keeps (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
`~/.cache/huggingface/hub`): `datasets--ORG--NAME/snapshots/<commit>/<path>` links to
`blobs/<name>`, where a blob's name is its sha256 (files stored with LFS or Xet) or its git blob sha1 (small
files): `verify` re-hashes each file read against that name. Downloads go through `snapshot_download`
with the source's `allow_patterns` and pinned revision, and show its progress bars. With `HF_HUB_OFFLINE=1`
(or `download=False`) only the cache is read, and a missing snapshot is one `UserError` naming the
`evalkit data fetch` command that fills it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from evalkit.hubdata.source import COMMIT, HubSource
from evalkit.types import UserError
from evalkit.util.datafiles import sha256_file

TRUE = ("1", "true", "yes", "on")


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment when called (tests and users may set
    `HF_HUB_CACHE` or `HF_HOME` after `huggingface_hub` was imported, whose constants are fixed at import
    time), with the hub client's defaults: `$HF_HOME/hub`, `HF_HOME` being `$XDG_CACHE_HOME/huggingface`
    or `~/.cache/huggingface`."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):  # the second: the client's legacy name
        if os.environ.get(name):
            return Path(os.environ[name]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache"))
    return Path(xdg).expanduser() / "huggingface" / "hub"


def offline() -> bool:
    """Whether `HF_HUB_OFFLINE` forbids network access (read when called)."""
    from huggingface_hub import constants

    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE or bool(constants.HF_HUB_OFFLINE)


@dataclass(frozen=True)
class Snapshot:
    """A source's files as the cache holds them: the repository id read (the source's or a mirror's), the
    commit sha, the snapshot folder and the files matching the source's patterns (sorted, relative)."""

    source: HubSource
    repo_id: str
    revision: str
    folder: Path
    files: tuple[str, ...]

    def path(self, name: str) -> Path:
        return self.folder / name

    @property
    def uri(self) -> str:
        """`hf://datasets/ORG/NAME@COMMIT`: where a run's data info says its files came from."""
        return f"hf://{self.source.repo_type}s/{self.repo_id}@{self.revision}"

    def record(self) -> dict[str, object]:
        """What a run records of the snapshot (besides the checksums of the files it read)."""
        return {
            "repo": self.repo_id,
            "revision": self.revision,
            "pinned": self.source.revision is not None,
            "config": self.source.config,
        }


def _matching(folder: Path, patterns: tuple[str, ...]) -> tuple[str, ...]:
    from huggingface_hub.utils import filter_repo_objects

    names = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return tuple(sorted(filter_repo_objects(names, allow_patterns=list(patterns))))


def _describe(source: HubSource) -> str:
    at = f"revision {source.revision[:12]}" if source.revision else f"revision {source.ref} (not pinned)"
    return f"{source.repo_id} ({source.config}, {at}, {', '.join(source.files)})"


def locate(source: HubSource, task: str, *, download: bool = True, instead: str | None = None) -> Snapshot:
    """The cached snapshot of `source`, downloaded first when the network is allowed (`download` and not
    `HF_HUB_OFFLINE`); the source's id is tried, then each mirror. A `UserError` naming the fix when no
    id gives the files; `instead` is the task's own wording of the other ways to give it data (after "or")."""
    from huggingface_hub import snapshot_download

    cache = hub_cache_dir()
    local_only = not download or offline()
    errors = []
    for repo_id in source.repo_ids:
        try:
            folder = Path(
                snapshot_download(
                    repo_id,
                    repo_type=source.repo_type,
                    revision=source.revision or source.ref,
                    allow_patterns=list(source.files),
                    cache_dir=cache,
                    local_files_only=local_only,
                )
            )
        except Exception as exc:  # noqa: BLE001 - not cached, not reachable, gated: try the next id
            errors.append(f"{repo_id}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        files = _matching(folder, source.files)
        if not files:
            errors.append(f"{repo_id}: no file matching {', '.join(source.files)} in {folder}")
            continue
        if not COMMIT.fullmatch(folder.name):
            errors.append(f"{repo_id}: {folder} is not a snapshot folder named by its commit")
            continue
        return Snapshot(source, repo_id, folder.name, folder, files)
    fix = f"run `evalkit data fetch {task}`"
    if local_only:
        why = "HF_HUB_OFFLINE=1 forbids downloading it" if offline() else "it was not fetched"
        raise UserError(
            f"{task} needs data: {_describe(source)} is not in the Hugging Face cache {cache} and {why}; "
            f"{fix} where the hub can be reached (same HF_HUB_CACHE or HF_HOME), or "
            f"{instead or 'pass --data-dir DIR with the official files (--data toy for the toy set)'}"
        )
    raise UserError(
        f"{task} needs data: could not fetch {_describe(source)} into {cache} ({'; '.join(errors)}); "
        f"check the network and {fix}, or {instead or 'pass --data-dir DIR with the official files'}"
    )


def git_blob_sha1(path: Path) -> str:
    """The git blob id of a file (what the hub names a small file's blob and its etag)."""
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(snapshot: Snapshot) -> list[dict[str, str]]:
    """Each file of the snapshot re-hashed against its blob's name: `status` "ok", "corrupt" (the
    content's hash differs from the name the hub recorded) or "unchecked" (a blob name that is no hash)."""
    out = []
    for name in snapshot.files:
        blob = snapshot.path(name).resolve()
        expected = blob.name
        if len(expected) == 64:
            actual, kind = sha256_file(blob), "sha256"
        elif len(expected) == 40:
            actual, kind = git_blob_sha1(blob), "git-sha1"
        else:
            out.append({"file": name, "status": "unchecked", "blob": str(blob)})
            continue
        status = "ok" if actual == expected else "corrupt"
        out.append({"file": name, "status": status, "hash": kind, "expected": expected, "actual": actual})
    return out


def damaged(snapshot: Snapshot, task: str, files: list[str]) -> str:
    """The one-line message for cached files whose content no longer matches their hub checksum."""
    return (
        f"{task}: {len(files)} cached file(s) of {snapshot.repo_id} at {snapshot.revision} do not match "
        f"their hub checksum ({', '.join(files)}); delete {snapshot.folder.parent.parent} (the repository's "
        f"cache folder) and run `evalkit data fetch {task}`"
    )


def checksums(snapshot: Snapshot, task: str) -> dict[str, str]:
    """The sha256 of each file of the snapshot, for the run's data info. A file whose blob is named by
    its sha256 (LFS) and holds other bytes is a `UserError` (`damaged`): a run never reads a damaged
    cache as if it were the pinned data."""
    sums = {name: sha256_file(snapshot.path(name)) for name in snapshot.files}
    bad = [n for n, h in sums.items() if len(b := snapshot.path(n).resolve().name) == 64 and b != h]
    if bad:
        raise UserError(damaged(snapshot, task, bad))
    return sums
