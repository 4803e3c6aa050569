"""Errors that reach the user as one line: what failed, on which path, and how to fix it.

`UserError` (evalkit.types) is input the user can fix (exit 2). `CommandFailed` is a command that ran and
failed (exit 1); its `StorageError` is the machine refusing to store or read results (disk full, read-only
file system, permission denied, a locked or full SQLite file), and nothing already stored is lost, so
re-running the same command after the fix resumes.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

#: errno -> how to fix it
FIXES = {
    errno.ENOSPC: "the disk is full: free space (or pass --output on another disk) and re-run the same "
    "command; what is stored is kept and the run resumes",
    errno.EDQUOT: "the disk quota is exhausted: free space and re-run the same command to resume",
    errno.EROFS: "the file system is read-only: pass --output on a writable disk",
    errno.EACCES: "permission denied: fix the folder's permissions or pass --output to a folder you own",
    errno.EPERM: "operation not permitted: fix the folder's permissions or pass --output to a folder you own",
    errno.ENOTDIR: "a path component is a file, not a folder: pass another path",
    errno.EISDIR: "the path is a folder where a file is expected: pass a file path",
    errno.EEXIST: "the path exists already: remove it or pass another path",
    errno.ENAMETOOLONG: "the path is too long: pass a shorter one",
    errno.ENOENT: "no such file or folder: check the path",
}


class CommandFailed(Exception):
    """The command ran and failed (not a usage error): printed as one line, exit 1."""


class StorageError(CommandFailed):
    """Results could not be stored or read for a reason outside evalkit."""


def describe_os_error(exc: OSError, path: str | Path | None = None) -> str:
    """One line naming the path, the system's reason and the fix."""
    where = path if path is not None else (exc.filename or "?")
    reason = exc.strerror or str(exc) or type(exc).__name__
    fix = FIXES.get(exc.errno or 0, "check the path and re-run the same command")
    return f"{where}: {reason} ({fix})"


def describe_sqlite_error(exc: sqlite3.Error, path: str | Path) -> str:
    text = str(exc)
    if "full" in text:
        fix = "the disk is full: free space and re-run the same command; cached answers are kept"
    elif "locked" in text or "busy" in text:
        fix = "another process holds the database: wait for it or point the cache elsewhere"
    elif "readonly" in text or "read-only" in text:
        fix = "the file or its folder is read-only: fix its permissions or point the cache elsewhere"
    else:
        fix = "the file may be damaged: move it away and re-run (its answers will be asked again)"
    return f"{path}: {text} ({fix})"
