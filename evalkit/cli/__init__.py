"""The `evalkit` command line: the typer `app`, the error mapping every command shares (`command`), and
the commands in the order `evalkit --help` lists them, from the modules by role: `evaluate` (run, import,
rescore, export, tasks), `merge`, `data` (data list, fetch, verify), `train` (train, align, demo),
`annotate` (the first study's judged training data) and `analyze` (compare, leaderboard).

Heavy libraries (torch, transformers) are imported inside the commands, so `--help` and the light commands
start at once; where one is missing anyway, the command ends in one line naming it and the pip command."""

from __future__ import annotations

import functools
import sqlite3

import typer

from evalkit.cli import analyze, annotate, data, evaluate, merge, train
from evalkit.cli.display import fail
from evalkit.types import UserError
from evalkit.util.dependencies import missing_dependency
from evalkit.util.errors import CommandFailed, describe_os_error

app = typer.Typer(
    help="Evaluate (multimodal) language models on alignment benchmarks with the official protocols.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def command(*args, **kwargs):
    """`app.command` whose errors end as one line: a `UserError` or a missing third-party package exits 2,
    a `CommandFailed` (a storage error, diverged training) or an OSError (disk full, read-only, permission
    denied) exits 1 naming the path and the fix, never a traceback."""

    def wrap(fn):
        @functools.wraps(fn)
        def guarded(*a, **kw):
            try:
                return fn(*a, **kw)
            except UserError as exc:
                fail(str(exc), 2)
            except ModuleNotFoundError as exc:
                missing = missing_dependency(exc)
                if missing is None:  # a module of evalkit itself: a bug, which keeps its traceback
                    raise
                fail(str(missing), 2)
            except CommandFailed as exc:  # StorageError, TrainingDiverged
                fail(str(exc), 1)
            except OSError as exc:
                fail(describe_os_error(exc), 1)
            except sqlite3.OperationalError as exc:
                fail(f"SQLite: {exc}", 1)

        return app.command(*args, **kwargs)(guarded)

    return wrap


command()(evaluate.run)
command("import")(evaluate.import_)
command(help=merge.HELP)(merge.merge)
command()(evaluate.rescore)
command()(evaluate.export)
command()(train.train)
command()(train.align)
command()(train.demo)
command()(annotate.annotate)
command("tasks")(evaluate.list_tasks)
command("data", help=data.HELP)(data.data)
command(help=analyze.COMPARE_HELP)(analyze.compare)
command(help=analyze.LEADERBOARD_HELP)(analyze.leaderboard)


def main() -> None:  # pragma: no cover
    app()
