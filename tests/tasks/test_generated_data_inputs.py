"""Damaged benchmark files never end a task's data loading in a traceback: for every task with a toy
data writer (the official file formats), generated damage to one of its files (truncation, byte flips,
invalid UTF-8, UTF-16, 200k-deep nesting, records retyped or dropped) either still loads or is one
`UserError` of one line naming the file."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.damage import DAMAGE, damaged

from evalkit.registry import get_task
from evalkit.task import DataSpec
from evalkit.tasks.amber.toy import write_amber
from evalkit.tasks.llava_bench.toy import write_toy
from evalkit.tasks.mmbench.toy import TOY_FILE, write_toy_mmbench
from evalkit.tasks.mmhal.toy import write_toy_mmhal
from evalkit.tasks.mmvet.toy import write_mmvet
from evalkit.tasks.objhal.toy import write_toy_objhal
from evalkit.tasks.pope.toy import write_pope
from evalkit.types import UserError

WRITERS = {
    "pope": lambda root: write_pope(root, n_images=4),
    "mmvet": lambda root: write_mmvet(root, n_images=6),
    "llava_bench": write_toy,
    "mmhal": write_toy_mmhal,
    "amber": lambda root: write_amber(root, n_images=6),
    "objhal": write_toy_objhal,
    "mmbench": write_toy_mmbench,
}
#: the options `--data toy` implies, so the same files load through --data-dir
OPTIONS = {
    "amber": {"amber.answers": "normalize"},
    "mmbench": {"mmbench.matcher": "none", "mmbench.file": TOY_FILE},
    "objhal": {"objhal.extraction": "words"},
}
TEXT = (".json", ".jsonl", ".tsv", ".txt")
_BUILT: dict[str, Path] = {}


def _toy(name: str) -> Path:
    if name not in _BUILT:
        _BUILT[name] = WRITERS[name](Path(tempfile.mkdtemp(prefix=f"evalkit-data-{name}-")) / name)
    return _BUILT[name]


def _files(folder: Path) -> list[str]:
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in TEXT and p.name != "toy_meta.json"
    )


def _load(name: str, folder: Path):
    return get_task(name).load(DataSpec(data_dir=folder, options=OPTIONS.get(name, {})))


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_undamaged_toy_files_load_from_a_data_dir(name):
    assert _files(_toy(name)) and _load(name, _toy(name)).samples


@pytest.mark.parametrize("name", sorted(WRITERS))
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_damaged_benchmark_files_load_or_fail_in_one_line(name, data, tmp_path):
    folder = Path(shutil.copytree(_toy(name), Path(tempfile.mkdtemp(dir=tmp_path)) / name))
    which = data.draw(st.sampled_from(_files(folder)), label="file")
    damage = data.draw(DAMAGE, label="damage")
    path = folder / which
    path.write_bytes(damaged(path.read_bytes(), damage))
    outcome = "loaded"
    try:
        _load(name, folder)
    except UserError as exc:
        outcome = "UserError"
        assert "\n" not in str(exc) and str(exc).strip(), str(exc)
    except Exception as exc:
        outcome = type(exc).__name__
        if not os.environ.get("EVALKIT_FUZZ_LOG"):
            raise
    finally:
        if os.environ.get("EVALKIT_FUZZ_LOG"):
            with open(os.environ["EVALKIT_FUZZ_LOG"], "a") as f:
                f.write(f'["{name}", "{which}", "{damage[0]}", "{outcome}"]\n')
