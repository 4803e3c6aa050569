"""benchmarks/judge_throughput_sdk.py runs in a tiny mode: it reads the openai SDK transport from git, sends
every call of each arm (the script asserts the server's count), and its ratios are those of the printed
throughputs. The SDK is not an evalkit dependency (the measurement kept evalkit's own client): skipped
without `openai`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("openai")
pytest.importorskip("openai._vendor.httpx_aiohttp")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "judge_throughput_sdk.py"


def test_the_script_prints_every_round_and_ratios_of_the_printed_throughputs():
    has_ref = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", "6c42890a1532d26900786ed0974f6bb84074ff49"],
        capture_output=True,
    )
    if has_ref.returncode != 0:
        pytest.skip("not a git checkout with the commit that holds the SDK transport")
    args = ["--rounds", "2", "--calls", "40", "--concurrency", "8", "--sleep", "0.01"]
    out = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ideal 800 calls/s" in out.stdout, out.stdout  # 8 in flight / 10 ms
    rounds = re.findall(
        r"^round (\d+):  A ([0-9.]+) \(\d+ µs CPU/call\)  B ([0-9.]+) \(\d+ µs CPU/call\)  "
        r"C ([0-9.]+) \(\d+ µs CPU/call\)  B/A ([0-9.]+)  C/A ([0-9.]+)$",
        out.stdout,
        re.M,
    )
    assert [r[0] for r in rounds] == ["1", "2"], out.stdout
    for _, a, b, c, ba, ca in rounds:
        assert 0 < float(a) <= 1.05 and 0 < float(b) <= 1.05 and 0 < float(c) <= 1.05
        assert float(ba) == pytest.approx(float(b) / float(a), abs=0.002)
        assert float(ca) == pytest.approx(float(c) / float(a), abs=0.002)
    ratios = sorted(float(r[4]) for r in rounds)
    (median,) = re.findall(r"^B/A: median ([0-9.]+),", out.stdout, re.M)
    assert float(median) == pytest.approx(sum(ratios) / 2, abs=0.002)
