"""The package list is read from the folders, so a new benchmark folder under tasks/ (or a new subpackage
anywhere) is installed without an edit here or in pyproject.toml; everything else is in pyproject.toml."""

from setuptools import find_packages, setup

ROOTS = {"evalkit": "evalkit", "evalkit.tasks": "tasks", "evalkit.training": "training"}

setup(
    packages=[
        p for name, folder in ROOTS.items() for p in (name, *(f"{name}.{s}" for s in find_packages(folder)))
    ]
)
