"""`evalkit demo`: the toy alignment story offline, ending with the alignment-tax table.

It runs `evalkit.toy.alignment.run_experiment` (toy data, the toy model, a biased visual-instruction SFT
stage, DPO and BDHS from it, every checkpoint evaluated on toy POPE, AMBER and Object HalBench; each stage
kept when finished, resumed when interrupted) and writes the alignment-tax table of DPO and BDHS against the
SFT checkpoint into the work folder (tax.md, tax.csv, tax.html, tax.json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.toy.alignment import Settings, run_experiment


def run_demo(work: str | Path, settings: Settings | None = None, say=None) -> dict[str, Any]:
    from evalkit.tax import tax_table
    from evalkit.tax_render import write_report

    work = Path(work).expanduser()
    result = run_experiment(work, settings, say=say)
    aligned = {name: Path(run) for name, run in result.runs.items() if name != "sft"}
    table = tax_table(Path(result.runs["sft"]), aligned)
    return {"experiment": result, "table": table, "paths": write_report(table, work)}
