"""Official files fetched from their public release with a pinned checksum, for data the hub lacks or holds
incompletely (e.g. AMBER's relation.json, safe_words.txt and metrics.txt, which no hub copy carries).

A task declares each file as an `OfficialFile` (HTTPS url, sha256, size). It is downloaded once (urllib; a
progress bar for large files; written to a temporary file and renamed, so an interrupted download leaves
nothing behind), its sha256 checked (a mismatch is a one-line `UserError` and the bytes are not kept), and
kept at `$EVALKIT_CACHE/official/<sha256[:16]>/<name>`. Why evalkit's cache and not the Hugging Face one:
these files do not come from a hub repository, and the hub cache's layout (repo / refs / snapshots / blobs)
would have to be faked for them; a folder named by the content hash keeps two versions of a file apart and
lets `verify` re-hash each against the name it was pinned by. With `HF_HUB_OFFLINE=1` or `EVALKIT_OFFLINE=1`
nothing is downloaded: a missing file is one line naming `evalkit data fetch TASK`.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from evalkit.hubdata.cache import TRUE
from evalkit.hubdata.cache import offline as hub_offline
from evalkit.types import UserError
from evalkit.util.datafiles import sha256_file

SHA256 = re.compile(r"[0-9a-f]{64}")
#: files at least this large show a progress bar while downloading
PROGRESS_BYTES = 1 << 20
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class OfficialFile:
    """One file of an official release: where it is downloaded from (`url`, HTTPS; plain HTTP only on the
    loopback host), its `sha256` and `size` in bytes, the file `name` it is kept under, and a `note` for
    people (what it is, which release)."""

    url: str
    sha256: str
    size: int
    name: str
    note: str = ""

    def __post_init__(self) -> None:
        if not SHA256.fullmatch(self.sha256):
            raise ValueError(f"OfficialFile {self.name}: sha256 must be 64 lowercase hex digits")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"OfficialFile {self.name!r}: name must be a plain file name")
        url = urlparse(self.url)
        if url.scheme != "https" and not (url.scheme == "http" and url.hostname in LOOPBACK):
            raise ValueError(f"OfficialFile {self.name}: {self.url} is not an https URL")

    @property
    def path(self) -> Path:
        """Where the file is kept (read from the environment when called)."""
        return official_dir() / self.sha256[:16] / self.name

    def describe(self) -> dict[str, object]:
        """The declaration as JSON (`evalkit data list --json`; a run's data info)."""
        keys = ("name", "url", "sha256", "size", "note")
        return {k: getattr(self, k) for k in keys}


def official_dir() -> Path:
    from evalkit.util.environment import cache_root

    return cache_root() / "official"


def offline() -> bool:
    """Whether downloading is forbidden: `HF_HUB_OFFLINE` (the switch a cluster already sets) or
    `EVALKIT_OFFLINE`."""
    return os.environ.get("EVALKIT_OFFLINE", "").strip().lower() in TRUE or hub_offline()


def verify(f: OfficialFile) -> dict[str, str]:
    """The kept copy of `f` re-hashed: `status` "ok", "corrupt" (other bytes than the pinned sha256) or
    "missing"."""
    if not f.path.is_file():
        return {"file": f.name, "status": "missing", "expected": f.sha256}
    actual = sha256_file(f.path)
    status = "ok" if actual == f.sha256 else "corrupt"
    return {"file": f.name, "status": status, "hash": "sha256", "expected": f.sha256, "actual": actual}


def _download(f: OfficialFile, task: str) -> None:
    dest = f.path
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
    digest, got = hashlib.sha256(), 0
    bar = None
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(f.url, timeout=60) as resp:  # noqa: S310
            if f.size >= PROGRESS_BYTES:
                from tqdm.auto import tqdm

                bar = tqdm(total=f.size, unit="B", unit_scale=True, desc=f.name)
            for block in iter(lambda: resp.read(1 << 16), b""):
                out.write(block)
                digest.update(block)
                got += len(block)
                if bar is not None:
                    bar.update(len(block))
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(
            f"{task}: could not download {f.url} ({type(exc).__name__}: {exc}); check the network and run "
            f"`evalkit data fetch {task}`, or put the file at {dest}"
        ) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    if digest.hexdigest() != f.sha256:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(
            f"{task}: {f.url} gave {got} bytes with sha256 {digest.hexdigest()}, not the pinned "
            f"{f.sha256} ({f.size} bytes); the file was not kept"
        )
    os.replace(tmp, dest)


def fetch(f: OfficialFile, task: str, *, download: bool = True) -> Path:
    """The kept copy of `f`, downloaded first when it is missing or damaged and the network is allowed
    (`download` and not offline). A `UserError` in one line otherwise, naming `evalkit data fetch TASK`."""
    state = verify(f)["status"]
    if state == "ok":
        return f.path
    if download and not offline():
        _download(f, task)
        return f.path
    why = "HF_HUB_OFFLINE / EVALKIT_OFFLINE forbid downloading it" if offline() else "it was not fetched"
    if state == "corrupt":
        raise UserError(
            f"{task}: {f.path} does not match its pinned sha256 {f.sha256}; delete it and run "
            f"`evalkit data fetch {task}` where {f.url} can be reached"
        )
    raise UserError(
        f"{task} needs the official file {f.name} ({f.url}, sha256 {f.sha256}) at {f.path} and {why}; "
        f"run `evalkit data fetch {task}` where it can be reached (same EVALKIT_CACHE), or download it "
        "there by hand"
    )
