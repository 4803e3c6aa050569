"""`evalkit demo`: the toy alignment story offline, ending with the alignment-tax table.

It runs `evalkit.experiments.toy_alignment.run_experiment`: toy data, then an align plan run by
`evalkit.experiments.align.run_stages` (the toy model, a language stage that makes it the base, a biased
visual-instruction SFT stage, DPO and BDHS from it, every checkpoint evaluated on toy POPE, AMBER, Object
HalBench and toy_language; each stage kept when finished, resumed when interrupted). It writes two tables
with align's `tax_stage` into the work folder: what the visual stage did, the SFT checkpoint against the
base (`visual_stage/tax.*`), and the alignment-tax table of DPO and BDHS against the SFT checkpoint they
were trained from (`tax.md`, `tax.csv`, `tax.html`, `tax.json`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.experiments.align import tax_stage
from evalkit.experiments.toy_alignment import Settings, run_experiment


def run_demo(
    work: str | Path, settings: Settings | None = None, say=None, progress: bool = False
) -> dict[str, Any]:
    work = Path(work).expanduser()
    result = run_experiment(work, settings, say=say, progress=progress)
    runs = {name: Path(run) for name, run in result.runs.items()}
    visual, visual_paths = tax_stage(runs["base"], {"sft": runs["sft"]}, work / "visual_stage")
    aligned = {name: run for name, run in runs.items() if name not in ("base", "sft")}
    table, paths = tax_stage(runs["sft"], aligned, work)
    return {"experiment": result, "visual_stage": visual, "table": table, "paths": visual_paths + paths}
