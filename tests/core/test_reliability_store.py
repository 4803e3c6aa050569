"""The store under damage and faults: generated damaged samples files, run.json and metrics.json never give
a traceback and never lose a good row (readers skip and report, `rescore` refuses); a full or read-only
disk ends `evalkit run` / `rescore` with one line and exit 1, nothing stored is lost, and a re-run after
the fix resumes to the metrics of an uninterrupted run. Disk faults use a small tmpfs (root only)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.runs import pope_items, pope_rows, write_run
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.store import SampleLog, read_rows

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------------------------- damaged lines


def is_row(line: bytes) -> bool:
    """Independent of the store: a line is a row when it is UTF-8 JSON text for an object with a string id."""
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(value, dict) and isinstance(value.get("id"), str) and bool(value["id"])


GOOD = json.dumps({"id": "g", "response": "yes", "error": None}).encode()
damaged_line = st.one_of(
    st.binary(min_size=1, max_size=60),
    st.lists(st.integers() | st.text(max_size=5), max_size=4).map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.text(max_size=5).filter(lambda k: k != "id"), st.integers(), max_size=3).map(
        lambda d: json.dumps(d).encode()
    ),
    st.sampled_from(
        [
            GOOD.replace(b'"g"', b'"g\x00"'),  # NUL byte inside the row
            GOOD.replace(b"yes", b"y\xffs"),  # invalid UTF-8
            GOOD.replace(b'"g"', b'"\xed\xa0\x80"'),  # an encoded lone surrogate
            json.dumps({"id": 7}).encode(),
            b'"just a string"',
            b"[" * 5000,  # nested too deep
            GOOD[:-5],  # cut in the middle
        ]
    ),
).filter(lambda b: b"\n" not in b and bool(b.strip()) and not is_row(b))


@st.composite
def damaged_file(draw):
    """(file bytes, good rows by id, number of damaged lines): good rows with damaged lines between."""
    n = draw(st.integers(1, 12))
    rows = {f"s{i}": {"id": f"s{i}", "response": draw(st.text(max_size=8)), "error": None} for i in range(n)}
    lines: list[bytes] = [json.dumps(r, ensure_ascii=False).encode() for r in rows.values()]
    bad = draw(st.lists(damaged_line, min_size=1, max_size=6))
    for b in bad:
        lines.insert(draw(st.integers(0, len(lines))), b)
    return b"\n".join(lines) + b"\n", rows, len(bad)


@FUZZ
@given(damaged_file())
def test_readers_keep_every_good_row_and_report_every_damaged_line(tmp_path, case):
    data, rows, n_bad = case
    path = tmp_path / f"{uuid.uuid4().hex}.jsonl"
    path.write_bytes(data)
    found, problems, _ = read_rows(path)
    assert found == rows and len(problems) == n_bad
    assert all(p.startswith(f"{path}:") and p.endswith("skipped") for p in problems)
    assert path.read_bytes() == data  # read only
    log = SampleLog(path)  # a resuming run: keeps every good row, redoes only what is missing
    log.close()
    assert log.rows == rows and path.read_bytes() == data


@FUZZ
@given(damaged_file(), st.binary(min_size=1, max_size=30).filter(lambda b: b"\n" not in b))
def test_a_torn_final_line_is_cut_on_resume_only(tmp_path, case, tail):
    data, rows, _ = case
    path = tmp_path / f"{uuid.uuid4().hex}.jsonl"
    path.write_bytes(data + tail)
    expected = {**rows, json.loads(tail)["id"]: json.loads(tail)} if is_row(tail) else rows
    assert read_rows(path)[0] == expected
    assert path.read_bytes() == data + tail
    log = SampleLog(path)
    log.close()
    if is_row(tail):  # a whole row without its newline is kept and its line ended
        assert path.read_bytes() == data + tail + b"\n" and log.rows == expected
    else:
        assert path.read_bytes() == data and log.rows == rows


# --------------------------------------------------------------------------- the commands on damage


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    items = pope_items(100)
    write_run(root / "base", "pope", pope_rows(items))
    write_run(root / "new", "pope", pope_rows(items, flip=frozenset(i[0] for i in items[:10])))
    return root


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert all(line.startswith(("error:", "warning:")) for line in result.stderr.splitlines()), result.stderr
    assert result.stderr.count("error:") <= 1
    return result


def copy_run(runs: Path, tmp_path: Path, name: str) -> Path:
    dest = tmp_path / uuid.uuid4().hex / name
    shutil.copytree(runs / name, dest)
    return dest


@FUZZ
@given(st.lists(damaged_line, min_size=1, max_size=5), st.randoms(use_true_random=False))
def test_compare_rescore_leaderboard_skip_or_refuse_damaged_lines(runs, tmp_path, bad, rng):
    new = copy_run(runs, tmp_path, "new")
    path = new / "samples" / "pope.jsonl"
    lines = path.read_bytes().split(b"\n")[:-1]
    for b in bad:
        lines.insert(rng.randint(0, len(lines)), b)
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(data)
    metrics = (new / "metrics.json").read_bytes()

    result = invoke("compare", runs / "base", new, "--json")
    assert result.exit_code in (0, 1), result.stderr
    (m,) = json.loads(result.stdout)["metrics"]
    assert m["n_samples"] == 100  # every good row paired
    assert result.stderr.count(f"{path}:") == len(bad)

    result = invoke("rescore", new)
    assert result.exit_code == 2 and result.stderr.startswith(f"error: {path}:")
    assert (new / "metrics.json").read_bytes() == metrics  # no metrics from a folder not read whole

    result = invoke("leaderboard", new.parent, "--format", "json")
    assert result.exit_code == 0 and len(json.loads(result.stdout)["runs"]) == 1
    assert path.read_bytes() == data  # no command rewrote the samples file


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@FUZZ
@given(st.sampled_from(["value", "ci_low", "metric", "summary", "file"]), json_value, st.binary(max_size=40))
def test_leaderboard_on_generated_metrics_json(runs, tmp_path, where, value, raw):
    run = copy_run(runs, tmp_path, "base")
    path = run / "metrics.json"
    metrics = json.loads(path.read_text())
    good = metrics["pope"]["metrics"]["f1_mean"]["value"]
    if where == "file":
        path.write_bytes(raw)
    else:
        target = {
            "value": metrics["pope"]["metrics"]["f1_mean"],
            "ci_low": metrics["pope"]["metrics"]["f1_mean"],
        }
        if where in target:
            target[where][where] = value
        elif where == "metric":
            metrics["pope"]["metrics"]["f1_mean"] = value
        else:
            metrics["pope"] = value
        path.write_text(json.dumps(metrics))
    result = invoke("leaderboard", run.parent, "--format", "json")
    assert result.exit_code in (0, 2)
    if result.exit_code == 0:
        board = json.loads(result.stdout)
        cells = [c for r in board["runs"] for c in r["values"].values()]
        for cell in cells:  # what is shown is a number, never a string or a list
            assert all(v is None or isinstance(v, (int, float)) for v in cell.values())
        if where == "ci_low" and cells:
            assert cells[0]["value"] == good


@FUZZ
@given(st.one_of(json_value.map(lambda v: json.dumps(v).encode()), st.binary(max_size=60)))
def test_compare_and_rescore_on_a_generated_run_json(runs, tmp_path, raw):
    new = copy_run(runs, tmp_path, "new")
    (new / "run.json").write_bytes(raw)
    metrics = (new / "metrics.json").read_bytes()
    result = invoke("compare", runs / "base", new)
    assert result.exit_code in (2, 3), result.output
    assert invoke("rescore", new).exit_code == 2
    assert (new / "metrics.json").read_bytes() == metrics
    board = invoke("leaderboard", new.parent)
    assert board.exit_code == 0 and f"{new}" in board.stderr  # left out, and said so


@pytest.mark.parametrize(
    "header",
    [
        b"[]",
        b'{"run_id": "new", "tasks": {"pope": {"version": "1"',
        b'{"tasks": {"pope": 3}, "status": "finished"}',
        b'{"tasks": {"nosuch": {}}, "status": "finished"}',
    ],
)
def test_damaged_run_json_examples(runs, tmp_path, header):
    new = copy_run(runs, tmp_path, "new")
    (new / "run.json").write_bytes(header)
    assert invoke("compare", runs / "base", new).exit_code in (2, 3)
    assert invoke("rescore", new).exit_code == 2


def test_a_metric_value_that_is_a_string_is_left_out_with_a_warning(runs, tmp_path):
    run = copy_run(runs, tmp_path, "base")
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["pope"]["metrics"]["f1_mean"]["value"] = "91.2"
    (run / "metrics.json").write_text(json.dumps(metrics))
    result = invoke("leaderboard", run.parent)
    assert result.exit_code == 0 and "'value' is not a number, left out" in result.stderr


# ------------------------------------------------------------------------------------ disk faults

ARGS = ["run", "--model", "toy", "--tasks", "pope", "--data", "toy", "--limit", "40", "--batch-size", "4"]


def evalkit(*args):
    return subprocess.run(
        [sys.executable, "-m", "evalkit", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def one_line_error(proc, code):
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_read_only_disk_one_line_and_nothing_lost(runs, tmpfs):
    subprocess.run(["mount", "-o", "remount,size=1m", str(tmpfs)], check=True)
    run = tmpfs / "base"
    shutil.copytree(runs / "base", run)
    metrics = (run / "metrics.json").read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    rescored = evalkit("rescore", run)
    line = one_line_error(rescored, 1)
    assert "metrics.json" in line and "read-only" in line
    assert (run / "metrics.json").read_bytes() == metrics
    # --output on a read-only disk is refused before the model is loaded (the model does not exist)
    refused = evalkit(*ARGS[:2], "/nonexistent/model", *ARGS[3:], "--output", tmpfs / "new")
    assert "--output" in one_line_error(refused, 2) and "read-only" in refused.stderr


def test_output_that_is_a_file_is_refused_before_the_model_loads(tmp_path):
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "run.json").write_text("[]")
    proc = evalkit(*ARGS[:2], "/nonexistent/model", *ARGS[3:], "--output", tmp_path / "damaged")
    assert "run.json: expected a JSON object" in one_line_error(proc, 2)
    (tmp_path / "file").write_text("x")
    proc = evalkit(*ARGS[:2], "/nonexistent/model", *ARGS[3:], "--output", tmp_path / "file")
    assert "--output" in one_line_error(proc, 2) and "is a file" in proc.stderr
    inside = evalkit(*ARGS[:2], "/nonexistent/model", *ARGS[3:], "--output", tmp_path / "file" / "run")
    assert "is a file" in one_line_error(inside, 2)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions (the tmpfs tests cover root)")
def test_permission_denied_one_line(runs, tmp_path):
    run = copy_run(runs, tmp_path, "base")
    metrics = (run / "metrics.json").read_bytes()
    run.chmod(0o555)
    try:
        line = one_line_error(evalkit("rescore", run), 1)
        assert "permission denied" in line.lower() or "Permission denied" in line
        assert (run / "metrics.json").read_bytes() == metrics
        proc = evalkit(*ARGS[:2], "/nonexistent/model", *ARGS[3:], "--output", run / "sub")
        assert "--output" in one_line_error(proc, 2)
    finally:
        run.chmod(0o755)


@settings(FUZZ, max_examples=20)
@given(
    st.sampled_from(["response", "target", "cluster", "meta", "error", "judge", "correct", "parsed"]),
    json_value,
    st.integers(0, 99),
)
def test_rows_with_fields_of_the_wrong_type_never_give_a_traceback(runs, tmp_path, field, value, index):
    new = copy_run(runs, tmp_path, "new")
    path = new / "samples" / "pope.jsonl"
    lines = path.read_text().splitlines()
    row = json.loads(lines[index])
    row[field] = value
    lines[index] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    metrics = (new / "metrics.json").read_bytes()
    assert invoke("compare", runs / "base", new).exit_code in (0, 1, 2, 3)
    if invoke("rescore", new).exit_code != 0:
        assert (new / "metrics.json").read_bytes() == metrics
    assert invoke("leaderboard", new.parent).exit_code == 0
