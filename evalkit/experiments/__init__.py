"""Orchestration: workflows that train checkpoints, evaluate them and compare the runs.

`align` is `evalkit align CONFIG.yaml` (train, evaluate, alignment-tax table); `toy_alignment` is the
toy-world alignment experiment (`benchmarks/toy_alignment.py`); `demo` is `evalkit demo`, which runs it
and writes the tables. This package sits above `evalkit.training` (a library of trainers) and the runner,
store and analysis packages it combines; none of them imports it (`tests/test_import_layering.py`).
"""
