"""Orchestration: workflows that train checkpoints, evaluate them and compare the runs.

`align` is `evalkit align CONFIG.yaml`: an align plan (a base, checkpoints trained in order, an evaluation
suite, a reference) run stage by stage (`run_stages`: train, then evaluate; `tax_stage`: the
alignment-tax table). `toy_alignment` is the toy-world alignment experiment (`benchmarks/toy_alignment.py`):
toy data, then its checkpoints as an align plan run by `run_stages`, then the paired comparisons; `demo`
is `evalkit demo`, which runs it and writes its two tables with `tax_stage`; `toy_study_a` runs the first
study's judged-pair pipeline (`evalkit annotate` with the toy judge, then DPO) on the toy world
(`benchmarks/toy_study_a.py`). This package sits above
`evalkit.training` (a library of trainers) and the runner, store and analysis packages it combines; none
of them imports it (`tests/test_import_layering.py`).
"""
