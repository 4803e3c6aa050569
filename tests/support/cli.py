"""Running the evalkit command line as a user does: `python -m evalkit ...` in a subprocess of this
interpreter, and reading the one-line error a refused command prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EVALKIT = [sys.executable, "-m", "evalkit"]


def run_cli(*args: str, cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EVALKIT, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single line a command refused as a usage error printed (exit 2, no traceback)."""
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]
