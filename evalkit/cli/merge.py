"""`evalkit merge`: the shard folders of one run (`evalkit run --shard I/N`) into one run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evalkit.cli.display import fail

HELP = (
    "Merge the shard folders of one run (evalkit run --shard I/N, e.g. a Slurm array) into one run folder "
    "whose rows and metrics are those of the run in one process."
)


def merge(
    run_dirs: Annotated[list[Path], typer.Argument(help="The N shard folders (any order).")],
    output: Annotated[Path, typer.Option(help="Run folder to write.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    all_metrics: Annotated[
        bool, typer.Option("--all-metrics", help="Show every metric of each task, not only its headline.")
    ] = False,
) -> None:
    """Merge shard runs; refuses shards of different runs, or a missing or duplicate shard (exit 2)."""
    from evalkit.cli.run_display import show
    from evalkit.runner import RunFailed
    from evalkit.runner.merge import merge_shards

    try:
        result = merge_shards(run_dirs, output)
    except RunFailed as exc:
        if exc.result is not None:
            show(exc.result, as_json, title=f"evalkit · merged {output}", all_metrics=all_metrics)
        fail(str(exc), 1)
    show(result, as_json, title=f"evalkit · merged {output}", all_metrics=all_metrics)
