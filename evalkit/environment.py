"""What run.json records about the software a run used."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

import evalkit

PACKAGES = ("torch", "transformers", "tokenizers", "numpy", "pillow", "aiohttp", "safetensors", "vllm")


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform(), "evalkit": evalkit.__version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
