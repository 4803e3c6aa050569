"""Import layering: a lower layer never imports a higher one.

Every module under evalkit/, tasks/ (installed as `evalkit.tasks`) and training/ (`evalkit.training`) is
parsed with `ast`; every import counts, at module level or inside a function (the lazy imports that keep
torch out of light commands), relative or absolute, `import a.b`, `from a import b` and
`importlib.import_module("a.b")` with a literal name. The rules:

- `evalkit.training` is a library of trainers: it imports neither the runner, the store, the analysis
  package nor the experiments (orchestration lives in `evalkit.experiments`);
- the analysis, judges, interop and models packages import neither `evalkit.experiments` nor
  `evalkit.training`;
- `evalkit.toy` (the toy world, the toy model, the toy data writers) imports neither the runner, the store,
  the analysis package nor the experiments.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> the package it is installed as (pyproject.toml's package-dir)
SOURCES = {"evalkit": "evalkit", "tasks": "evalkit.tasks", "training": "evalkit.training"}

_ORCHESTRATION = ("evalkit.runner", "evalkit.store", "evalkit.analysis", "evalkit.experiments")
#: (importing package, packages it must not import)
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("evalkit.training", _ORCHESTRATION),
    ("evalkit.analysis", ("evalkit.experiments", "evalkit.training")),
    ("evalkit.judges", ("evalkit.experiments", "evalkit.training")),
    ("evalkit.interop", ("evalkit.experiments", "evalkit.training")),
    ("evalkit.models", ("evalkit.experiments", "evalkit.training")),
    ("evalkit.toy", _ORCHESTRATION),
)
#: (importing module, imported module) edges that break a rule on purpose, each with its reason.
#: None at present. (`evalkit.training.model_setup` and `evalkit.training.rewards` import `evalkit.toy`
#: for `--model toy` and `--reward toy-objects`; the rules above allow that, as the toy package is below
#: training.)
ALLOWED: dict[tuple[str, str], str] = {}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    parts = [SOURCES[rel.parts[0]], *rel.with_suffix("").parts[1:]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module `source` (the module `module`) imports, anywhere in it, as absolute names.
    `from a import b` counts as both `a` and `a.b` (b may be a submodule)."""
    names: set[str] = set()
    here = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = here[: len(here) - (node.level - 1)]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def violations(module: str, names: set[str]) -> list[str]:
    out = []
    for importer, forbidden in RULES:
        if not _within(module, importer):
            continue
        for name in sorted(names):
            if any(_within(name, f) for f in forbidden) and (module, name) not in ALLOWED:
                out.append(f"{module} imports {name} ({importer} must not import {', '.join(forbidden)})")
    return out


def all_modules() -> dict[str, set[str]]:
    found = {}
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = module_name(path)
            found[name] = imported_names(path.read_text(), name, path.name == "__init__.py")
    return found


def test_no_lower_layer_imports_a_higher_one():
    modules = all_modules()
    # the walk saw every layer the rules speak of (an empty walk would pass vacuously)
    for package, _ in RULES:
        assert any(_within(m, package) for m in modules), package
    assert "evalkit.experiments.align" in modules and "evalkit.training.trainer" in modules
    bad = [v for module, names in modules.items() for v in violations(module, names)]
    assert not bad, "\n".join(bad)


def test_allowed_edges_still_exist():
    """An allowed edge that no module has any more is removed from ALLOWED, so the list stays true."""
    modules = all_modules()
    stale = [edge for edge in ALLOWED if edge[1] not in modules.get(edge[0], set())]
    assert not stale, stale


@pytest.mark.parametrize(
    "source, module, is_package, expected",
    [
        # a lazy import inside a function
        ("def f():\n    from evalkit.runner import evaluate\n", "evalkit.training.x", False, True),
        # `from package import module`
        ("from evalkit import store\n", "evalkit.training.x", False, True),
        ("import evalkit.analysis.tax as t\n", "evalkit.training.trainer", False, True),
        ("from evalkit.analysis.tax_render import write_report\n", "evalkit.training.x", False, True),
        # a relative import from a training module is still training (allowed) ...
        ("from .config import TrainConfig\n", "evalkit.training.x", False, False),
        # ... a package's __init__ resolves against the package itself, a module against its package
        ("from ..experiments import align\n", "evalkit.judges", True, True),
        ("from ..experiments import demo\n", "evalkit.models.hf", False, True),
        ("from .experiments import demo\n", "evalkit.models.hf", False, False),
        ("importlib.import_module('evalkit.experiments.demo')\n", "evalkit.models.x", False, True),
        ("from evalkit.training.config import TrainConfig\n", "evalkit.analysis.runs", False, True),
        ("def f():\n    from evalkit.runner import evaluate\n", "evalkit.toy.model", False, True),
        # what the rules allow
        ("from evalkit.toy.model import ensure_toy_model\n", "evalkit.training.model_setup", False, False),
        ("from evalkit.runner import evaluate\n", "evalkit.experiments.align", False, False),
        ("from evalkit.storage import x\n", "evalkit.training.x", False, False),  # not evalkit.store
    ],
)
def test_the_check_sees_every_form_of_import(source, module, is_package, expected):
    names = imported_names(source, module, is_package)
    assert bool(violations(module, names)) is expected, (names, violations(module, names))
