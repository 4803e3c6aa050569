"""What every command prints besides its result: one-line errors and warnings on stderr (the message
shown as typed, since paths may hold rich markup), and the shared consoles."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

out = Console()
err = Console(stderr=True)


def fail(message: str, code: int) -> None:
    """One line on stderr (the message is shown as typed: paths may hold rich markup) and exit `code`."""
    err.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True, emoji=False)
    raise typer.Exit(code)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False, soft_wrap=True, emoji=False)
