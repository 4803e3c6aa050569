"""Damaged input files never end an import in a traceback: for every importer and the official-file
readers behind it, generated damage (truncation, byte flips, invalid UTF-8, UTF-16, lone surrogates,
200k-deep nesting, records of the wrong type, fields dropped or retyped) either still imports or is one
`UserError` of one line. Inputs are small files (toy data, hand-made answers: support/import_cases.py), so no
official download is needed; hypothesis example counts stay modest so the file runs in seconds."""

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.damage import DAMAGE, damaged
from support.import_cases import BUILDERS, run_import, target_file

from evalkit.tasks.objhal import importing as objhal_import
from evalkit.tasks.objhal.nouns import resolve
from evalkit.types import UserError

#: EVALKIT_FUZZ_LOG=FILE: write each generated input's outcome to FILE and go on after a traceback
#: (for counting which inputs fail), instead of failing at the first one
TALLY = os.environ.get("EVALKIT_FUZZ_LOG")


@pytest.fixture(autouse=True)
def _builtin_nlp(monkeypatch):
    monkeypatch.setattr(objhal_import, "resolve", lambda name: resolve("builtin"))


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_undamaged_inputs_import(name, tmp_path):
    case = BUILDERS[name](tmp_path)
    result = run_import(case, tmp_path / "run")
    assert result.metrics[case["task"]]["n_samples"] > 0


@pytest.mark.parametrize("name", sorted(BUILDERS))
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_damaged_inputs_import_or_fail_in_one_line(name, data, tmp_path):
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    case = BUILDERS[name](root)
    which = data.draw(st.sampled_from(case["damage"]), label="file")
    damage = data.draw(DAMAGE, label="damage")
    path = target_file(case, which)
    path.write_bytes(damaged(path.read_bytes(), damage))
    outcome = "imported"
    try:
        run_import(case, root / "run")
    except UserError as exc:
        outcome = "UserError: " + str(exc)[:150]
        assert "\n" not in str(exc) and str(exc).strip(), str(exc)
    except Exception as exc:
        outcome = type(exc).__name__
        if not TALLY:
            raise
    finally:
        if TALLY:
            with open(TALLY, "a") as f:
                f.write(json.dumps([name, which, damage[0], outcome]) + "\n")
