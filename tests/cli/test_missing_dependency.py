"""A heavy dependency missing from the environment (evalkit installed with --no-deps, a broken venv) ends a
command in one line naming the package and the pip command, exit 2, never a ModuleNotFoundError traceback.

The commands run for real in a subprocess whose `import torch` (or transformers) is blocked the way Python
blocks it (`sys.modules[name] = None`); the requirement expected is read from pyproject.toml."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from evalkit.util.dependencies import MissingDependency, missing_dependency

PROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]


def requirement(name: str) -> str:
    """The requirement pyproject.toml declares for distribution `name` ("torch>=2.5")."""
    for line in PROJECT["dependencies"]:
        if re.match(rf"{re.escape(name)}\b", line):
            return line
    raise AssertionError(f"{name} is not a dependency in pyproject.toml")


def extra_of(name: str) -> str:
    for extra, lines in PROJECT["optional-dependencies"].items():
        if any(re.match(rf"{re.escape(name)}\b", line) for line in lines):
            return extra
    raise AssertionError(f"{name} is in no extra of pyproject.toml")


def run_blocked(blocked: list[str], args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    code = (
        "import sys\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None\n"
        "from evalkit.cli import app\n"
        f"app({args!r}, prog_name='evalkit')\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "300", "EVALKIT_CACHE": str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def assert_one_line(proc: subprocess.CompletedProcess, package: str, pip_argument: str) -> None:
    """Exit 2 and one error line, the last one (a progress line such as "building the toy model" may
    come before it)."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], proc.stderr[-3000:]
    assert lines[-1].startswith(f"error: {package} is not installed")
    assert f"{sys.executable} -m pip install {pip_argument}" in lines[-1]


@pytest.mark.parametrize("package", ["torch", "transformers"])
def test_run_without_a_heavy_package_fails_in_one_line(tmp_path, package):
    proc = run_blocked(
        [package],
        ["run", "--model", "toy", "--tasks", "pope", "--data", "toy", "--limit", "5", "--output", "out"],
        tmp_path,
    )
    assert_one_line(proc, package, f"'{requirement(package)}'")
    assert not list(tmp_path.rglob("*.safetensors"))  # it stopped before a model was built or run


def test_train_without_torch_fails_in_one_line(tmp_path):
    pairs = [{"prompt": "Is there a cat?", "chosen": "yes", "rejected": "no"}] * 4
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    args = ["train", "--method", "dpo", "--model", "toy", "--data", "pairs.jsonl", "--output", "ckpt"]
    proc = run_blocked(["torch"], [*args, "--max-steps", "1"], tmp_path)
    assert_one_line(proc, "torch", f"'{requirement('torch')}'")
    assert not (tmp_path / "ckpt").exists()


def test_optional_package_names_its_extra():
    message = str(missing_dependency(ModuleNotFoundError("No module named 'peft'", name="peft")))
    assert message.startswith("peft is not installed (part of the optional extra")
    assert message.endswith(f"-m pip install 'evalkit[{extra_of('peft')}]'")


def test_import_name_maps_to_its_distribution():
    error = missing_dependency(ModuleNotFoundError("No module named 'PIL'", name="PIL"))
    assert isinstance(error, MissingDependency)
    assert str(error).startswith("pillow is not installed (an evalkit dependency)")
    assert str(error).endswith(f"-m pip install '{requirement('pillow')}'")


def test_a_dependency_of_a_dependency_is_named_by_its_top_level_package():
    # dill: imported by datasets, not listed by evalkit itself
    error = ModuleNotFoundError("No module named 'dill._dill'", name="dill._dill")
    message = str(missing_dependency(error))
    assert message.startswith("dill is not installed (a package evalkit's dependencies import)")
    assert message.endswith(f"{sys.executable} -m pip install dill")


def test_a_direct_dependency_is_named_with_its_declared_floor():
    error = ModuleNotFoundError("No module named 'pyarrow.lib'", name="pyarrow.lib")
    message = str(missing_dependency(error))
    assert message.startswith("pyarrow is not installed (an evalkit dependency)")
    assert message.endswith(f"{sys.executable} -m pip install 'pyarrow>=15'")


@pytest.mark.parametrize("name", ["evalkit.tasks.nope", "_ctypes", "sqlite3", None])
def test_own_modules_and_the_standard_library_keep_their_traceback(name):
    assert missing_dependency(ModuleNotFoundError("No module", name=name)) is None
