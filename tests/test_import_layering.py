"""Import layering: a lower layer never imports a higher one.

Every module under evalkit/, tasks/ (installed as `evalkit.tasks`) and training/ (`evalkit.training`) is
parsed with `ast`; every import counts, at module level or inside a function (the lazy imports that keep
torch out of light commands), relative or absolute, `import a.b`, `from a import b` and
`importlib.import_module("a.b")` with a literal name. The layers, lowest first (`LAYERS`):

    util and types -> models (and the tracker writers) -> judges -> tasks -> runner and store -> analysis,
    interop and hub -> training -> experiments (and annotation) -> cli

A module may import its own layer and the layers below it. Two packages span layers by role: the toy world
(shapes, words, folders) sits with util, the toy model with the models, the toy
training data with the tasks; the judge itself (spec, cache, pricing) is the judges layer, while judging a
run's rows (judging, settings, endpoints) sits with the runner. Training, a library of trainers, also
reaches neither the runner, the store, the analysis nor the interop package (`RULES`). An edge that breaks
the order on purpose is listed in `ALLOWED` with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> the package it is installed as (pyproject.toml's package-dir)
SOURCES = {"evalkit": "evalkit", "tasks": "evalkit.tasks", "training": "evalkit.training"}

#: (layer, the packages and modules in it), lowest first; a module belongs to the longest entry it is within
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "util",
        (
            "evalkit.util",
            "evalkit.hubdata",  # hub sources, the Hugging Face cache, parquet files: knows no task
            "evalkit.types",
            "evalkit.stats",
            "evalkit.toy",  # the toy world: evalkit.toy.world, .language, .folders
        ),
    ),
    (
        "models",
        (
            "evalkit.models",
            "evalkit.toy.model",
            "evalkit.toy.pretrain",
            "evalkit.toy.judge",
            # the tracker writers: fed by training and the runner alike; their redaction is the models'
            "evalkit.trackers",
        ),
    ),
    ("judges", ("evalkit.judges",)),
    ("tasks", ("evalkit.task", "evalkit.registry", "evalkit.tasks", "evalkit.toy.alignment_data")),
    (
        "runner",
        (
            "evalkit.runner",
            "evalkit.store",
            "evalkit.scoring",
            # judging a run's rows: the judge loop, the run's judge settings, the endpoint probe
            "evalkit.judges.judging",
            "evalkit.judges.settings",
            "evalkit.judges.endpoints",
            "evalkit.trackers.evaluation",  # a stored run, as the trackers show it
        ),
    ),
    ("analysis", ("evalkit.analysis", "evalkit.interop", "evalkit.hub")),
    ("training", ("evalkit.training",)),
    ("experiments", ("evalkit.experiments", "evalkit.annotation")),
    ("cli", ("evalkit.cli", "evalkit.__main__")),
)
#: besides the order: (importing package, packages it must not import). Training is a library of trainers
#: that orchestration calls: it reaches neither the runner, the store, the analysis nor the interop package.
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "evalkit.training",
        ("evalkit.runner", "evalkit.store", "evalkit.scoring", "evalkit.analysis", "evalkit.interop"),
    ),
)
#: (importing module, imported module or package) edges that break the order on purpose, with the reason
ALLOWED: dict[tuple[str, str], str] = {
    ("evalkit.toy.pretrain", "evalkit.tasks.pope"): (
        "the toy model is warmed up on POPE's questions and prompt suffix (`tasks.pope.toy.question_text`, "
        "`tasks.pope.protocol.PROMPT_SUFFIX`), so the toy POPE it is scored on reads as the task's own"
    ),
}


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


def layer(name: str) -> int | None:
    """The index in `LAYERS` of the longest entry `name` is within; None for what is not evalkit's (and for
    the root package `evalkit`, the public facade: `import evalkit` for its version is no layer edge)."""
    best: tuple[int, int] | None = None
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if _within(name, member) and (best is None or len(member) > best[1]):
                best = (index, len(member))
    return None if best is None else best[0]


def _allowed(module: str, name: str) -> bool:
    return any(module == m and _within(name, target) for m, target in ALLOWED)


def violations(module: str, names: set[str]) -> list[str]:
    here = layer(module)
    if here is None:  # the root package's lazy `evalkit.evaluate` sits above every layer
        return []
    out = []
    for name in sorted(names):
        there = layer(name)
        if there is not None and there > here and not _allowed(module, name):
            out.append(f"{module} ({LAYERS[here][0]}) imports {name} ({LAYERS[there][0]})")
    for importer, forbidden in RULES:
        if _within(module, importer):
            hits = [n for n in sorted(names) if any(_within(n, f) for f in forbidden)]
            out += [f"{module} imports {n} ({importer} must not import {', '.join(forbidden)})" for n in hits]
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
    # the walk saw every layer (an empty walk would pass vacuously), and every module has a layer
    for index, (name, _) in enumerate(LAYERS):
        assert any(layer(m) == index for m in modules), name
    assert [m for m in modules if layer(m) is None] == ["evalkit"]
    assert "evalkit.experiments.align" in modules and "evalkit.training.trainer" in modules
    bad = [v for module, names in modules.items() for v in violations(module, names)]
    assert not bad, "\n".join(bad)


def test_allowed_edges_still_exist():
    """An allowed edge that no module has any more is removed from ALLOWED, so the list stays true."""
    modules = all_modules()
    stale = [(m, t) for m, t in ALLOWED if not any(_within(n, t) for n in modules.get(m, set()))]
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
        # the layer order
        ("from evalkit.runner import evaluate\n", "evalkit.tasks.pope", True, True),
        ("from evalkit.judges.judge import JudgeSpec\n", "evalkit.models.hf", False, True),
        ("from evalkit.models.base import Backend\n", "evalkit.util.datafiles", False, True),
        ("from evalkit.task import JudgedTask\n", "evalkit.judges.judging", False, False),
        ("from evalkit.task import Task\n", "evalkit.judges.cache", False, True),
        ("from evalkit.tasks.pope.protocol import PROMPT_SUFFIX\n", "evalkit.toy.pretrain", False, False),
        ("from evalkit.tasks.amber.toy import write_amber\n", "evalkit.toy.pretrain", False, True),
        ("import evalkit\n", "evalkit.util.environment", False, False),
    ],
)
def test_the_check_sees_every_form_of_import(source, module, is_package, expected):
    names = imported_names(source, module, is_package)
    assert bool(violations(module, names)) is expected, (names, violations(module, names))
