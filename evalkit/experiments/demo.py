"""`evalkit demo`: the toy alignment story offline, ending with the alignment-tax table.

It runs `evalkit.experiments.toy_alignment.run_experiment` (toy data, the toy model, a language stage
that makes it the base, a biased visual-instruction SFT stage, DPO and BDHS from it, every checkpoint
evaluated on toy POPE, AMBER, Object HalBench and toy_language; each stage kept when finished, resumed
when interrupted) and writes two tables into the work folder: what the visual stage did, the SFT
checkpoint against the base (`visual_stage/tax.*`), and the alignment-tax table of DPO and BDHS against
the SFT checkpoint they were trained from (`tax.md`, `tax.csv`, `tax.html`, `tax.json`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.experiments.toy_alignment import Settings, run_experiment


def run_demo(
    work: str | Path, settings: Settings | None = None, say=None, progress: bool = False
) -> dict[str, Any]:
    from evalkit.analysis.tax import tax_table
    from evalkit.analysis.tax_render import write_report

    work = Path(work).expanduser()
    result = run_experiment(work, settings, say=say, progress=progress)
    runs = {name: Path(run) for name, run in result.runs.items()}
    visual = tax_table(runs["base"], {"sft": runs["sft"]})
    aligned = tax_table(runs["sft"], {name: run for name, run in runs.items() if name not in ("base", "sft")})
    paths = write_report(visual, work / "visual_stage") + write_report(aligned, work)
    return {"experiment": result, "visual_stage": visual, "table": aligned, "paths": paths}
