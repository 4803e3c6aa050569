import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"official benchmark files not found at {SHARED}")
    return SHARED


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    """Every test writes toy data and models into one session-wide temp cache, never into ~/.cache."""
    root = tmp_path_factory.getbasetemp() / "evalkit-cache"
    monkeypatch.setenv("EVALKIT_CACHE", str(root))
