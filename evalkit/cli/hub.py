"""`evalkit push`: publish a finished run folder as a Hugging Face dataset repository."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from evalkit.cli.display import out

PUSH_HELP = (
    "Publish a finished run (metrics, sample rows, run.json and a dataset card; never API keys, tokens or "
    "credentials in URLs) as a Hugging Face dataset repository: `load_dataset(REPO)` reads its metrics, "
    '`load_dataset(REPO, "rows")` its sample rows, and `evalkit compare` / `evalkit leaderboard` read it as '
    "a run (hf://REPO). Pushing again replaces the repository's run files. Log in first (`hf auth login`, "
    "or set HF_TOKEN)."
)


def push(
    run_dir: Annotated[
        Path,
        typer.Argument(metavar="RUN_DIR", help="A finished run folder (holds run.json and metrics.json)."),
    ],
    repo: Annotated[str, typer.Option(help="Dataset repository to create or update: USER/NAME or ORG/NAME.")],
    private: Annotated[bool, typer.Option(help="Create the repository private (when it is new).")] = False,
    revision: Annotated[
        str | None, typer.Option(help="Branch to commit to (created from main when missing; default: main).")
    ] = None,
) -> None:
    from evalkit.hub.push import push_run

    url = push_run(run_dir, repo, private=private, revision=revision)
    out.print(f"pushed {escape(str(run_dir))} to {escape(url)}", highlight=False)
