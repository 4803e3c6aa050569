"""A third-party package that is missing, as one line naming it and the pip command that installs it.

torch, transformers and the other heavy libraries are imported inside the functions that use them (so
`--help` and the light commands start at once); in an environment where one is absent anyway (evalkit
installed with --no-deps, a broken venv) the first of those imports raises ModuleNotFoundError deep in a
command. `missing_dependency` turns it into a `MissingDependency` (a `UserError`: the CLI prints one line
and exits 2). The requirement given is the one evalkit declares (its installed metadata), so the floor and,
for an optional package, the extra that brings it are never restated here.
"""

from __future__ import annotations

import re
import shlex
import sys
from importlib import metadata

from evalkit.types import UserError

#: import name -> distribution name, where the two differ
DISTRIBUTIONS = {"PIL": "pillow", "yaml": "pyyaml", "sklearn": "scikit-learn"}
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)([^;]*)(?:;\s*extra\s*==\s*['\"]([^'\"]+)['\"])?")


class MissingDependency(UserError):
    """A package evalkit (or one of its dependencies) imports is not installed in this environment."""


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(distribution: str) -> tuple[str, str | None] | None:
    """(requirement, extra or None) as evalkit's metadata declares `distribution`, e.g.
    ("torch>=2.5", None) or ("peft>=0.13", "train"); None when evalkit does not declare it."""
    try:
        requires = metadata.requires("evalkit") or []
    except metadata.PackageNotFoundError:
        return None
    for line in requires:
        match = _REQUIREMENT.match(line)
        if match and _normalise(match.group(1)) == _normalise(distribution):
            return f"{match.group(1)}{match.group(2).strip()}", match.group(3)
    return None


def missing_dependency(exc: ModuleNotFoundError) -> MissingDependency | None:
    """The one-line error for an absent third-party package; None for a module of evalkit itself or of the
    standard library's private extensions (a bug or a broken Python, which keep their traceback)."""
    top = (exc.name or "").split(".")[0]
    if not top or top == "evalkit" or top.startswith("_") or top in sys.stdlib_module_names:
        return None
    distribution = DISTRIBUTIONS.get(top, top)
    pip = f"{shlex.quote(sys.executable)} -m pip install"
    found = declared(distribution)
    if found is None:
        how = f"{pip} {shlex.quote(distribution)}"
        role = "a package evalkit's dependencies import"
    elif found[1] is None:
        how = f"{pip} {shlex.quote(found[0])}"
        role = "an evalkit dependency"
    else:
        how = f"{pip} {shlex.quote(f'evalkit[{found[1]}]')}"
        role = f"part of the optional extra evalkit[{found[1]}]"
    if top == "torch":
        how += " (or the CUDA build for your driver, per pytorch.org)"
    return MissingDependency(f"{distribution} is not installed ({role}): {how}")
