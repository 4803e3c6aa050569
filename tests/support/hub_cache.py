"""A Hugging Face hub cache laid out on disk exactly as `huggingface_hub` lays it out, for tests that read
benchmark data "from the hub" without a network:

    HF_HUB_CACHE/datasets--ORG--NAME/refs/main                      the commit sha of main
    HF_HUB_CACHE/datasets--ORG--NAME/blobs/<sha256 | git sha1>      each file's bytes, named by its hash
    HF_HUB_CACHE/datasets--ORG--NAME/snapshots/<commit>/<path>      relative symlink to its blob

Files stored with LFS on the hub (parquet, archives, images) get blobs named by their sha256, small files
by their git blob sha1, as the hub client names them. `HubCache.install` points `HF_HUB_CACHE` at the
folder and sets `HF_HUB_OFFLINE=1`. `parquet_bytes` writes rows with the `datasets` feature metadata
(an `Image` column is a struct of bytes and path, as the hub's parquet files hold images).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LFS_SUFFIXES = (".parquet", ".zip", ".png", ".jpg", ".jpeg", ".tsv", ".arrow")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def blob_name(name: str, data: bytes) -> str:
    """What the hub client names the blob of file `name`: sha256 for LFS files, else the git sha1."""
    lfs = name.lower().endswith(LFS_SUFFIXES)
    return hashlib.sha256(data).hexdigest() if lfs else git_blob_sha1(data)


@dataclass
class HubCache:
    root: Path

    @classmethod
    def install(cls, root: Path, monkeypatch) -> HubCache:
        """An empty cache at `root`, made the process's hub cache, with the network forbidden."""
        root.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv("HF_HUB_CACHE", str(root))
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        return cls(root)

    def repo_folder(self, repo_id: str, repo_type: str = "dataset") -> Path:
        return self.root / f"{repo_type}s--{repo_id.replace('/', '--')}"

    def add(
        self,
        repo_id: str,
        revision: str,
        files: dict[str, bytes],
        *,
        repo_type: str = "dataset",
        ref: str | None = "main",
    ) -> Path:
        """Files of `repo_id` at commit `revision` (and `refs/<ref>` naming it); returns the snapshot."""
        repo = self.repo_folder(repo_id, repo_type)
        snapshot = repo / "snapshots" / revision
        for name, data in files.items():
            blob = repo / "blobs" / blob_name(name, data)
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(data)
            link = snapshot / name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
        if ref is not None:
            (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)  # refs/pr/N nests
            (repo / "refs" / ref).write_text(revision)
        return snapshot


def png_bytes(color: tuple[int, int, int], size: int = 16) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def parquet_bytes(rows: list[dict[str, Any]], features: dict[str, str]) -> bytes:
    """`rows` as a parquet file with `datasets` metadata; `features`: column → "string", "int32",
    "int64", "list[string]" (a `Sequence` of strings) or "Image" (a {"bytes", "path"} struct), in column
    order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    kinds = {
        "string": pa.string(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "list[string]": pa.list_(pa.string()),
        "Image": image,
    }
    schema = pa.schema([(name, kinds[kind]) for name, kind in features.items()])
    string = {"dtype": "string", "_type": "Value"}
    meta = {
        name: {"_type": "Image"}
        if kind == "Image"
        else {"feature": string, "_type": "Sequence"}
        if kind == "list[string]"
        else {"dtype": kind, "_type": "Value"}
        for name, kind in features.items()
    }
    schema = schema.with_metadata({"huggingface": json.dumps({"info": {"features": meta}})})
    table = pa.Table.from_pylist(rows, schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()
