"""`evalkit run --report-to wandb,tensorboard`: the run's metrics with their intervals, its sample rows and
its identity, read back from W&B's offline run files and TensorBoard's event files and compared with the
run folder's metrics.json, samples and run.json; no secret reaches either."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from support.tracker_files import read_event_dir, wandb_runs

pytest.importorskip("wandb", reason="wandb is not installed (pip install 'evalkit[wandb]')")
pytest.importorskip(
    "tensorboardX", reason="tensorboardX is not installed (pip install 'evalkit[tensorboard]')"
)

from evalkit.trackers.tensorboard_tracker import MAX_TEXT_ROWS  # noqa: E402

TOKEN = "tok-0a1b2c3d4e5f"  # an API token in the environment, and in the run folder's name
PASSWORD = "s3cret-pa55"  # in a URL on the command line


def _same(a, b) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == pytest.approx(b, rel=1e-6)


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracked")
    run_dir = root / f"run-{TOKEN}"
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(root),
        "WANDB_SILENT": "true",
        "WANDB_PROJECT": "from-env",
        "MY_TRACKER_TEST_TOKEN": TOKEN,
        "OMP_NUM_THREADS": "1",
    }
    env.pop("TENSORBOARD_LOGGING_DIR", None)
    args = ["run", "--model", "toy", "--tasks", "pope", "--data", "toy", "--limit", "150", "--threads", "1",
            "--output", str(run_dir), "--base-url", f"http://user:{PASSWORD}@127.0.0.1:9/v1",
            "--report-to", "wandb,tensorboard", "--tracker-project", "evalkit-tests"]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "evalkit", *args], capture_output=True, text=True, env=env,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return root, run_dir


def test_wandb_holds_the_metrics_with_intervals_the_rows_and_the_identity(reported):
    root, run_dir = reported
    (run,) = wandb_runs(root)
    metrics = json.loads((run_dir / "metrics.json").read_text())["pope"]
    header = json.loads((run_dir / "run.json").read_text())
    assert run.project == "evalkit-tests"  # the flag over WANDB_PROJECT
    assert run.name == "run-***" and run.job_type == "eval" and run.exit_code == 0
    assert run.config["config_hash"] == header["config_hash"]
    assert run.config["model"]["fingerprint"] == header["model"]["fingerprint"]
    assert run.config["tasks"]["pope"]["version"] == header["tasks"]["pope"]["version"]
    (logged,) = [h for h in run.history if "eval/pope/f1_mean" in h]
    assert logged["step"] == 0
    assert len(metrics["metrics"]) > 5
    for name, m in metrics["metrics"].items():
        for part in ("value", "ci_low", "ci_high", "n"):
            key = f"eval/pope/{name}" + ("" if part == "value" else f"/{part}")
            assert _same(logged[key], m[part]), (key, logged[key], m[part])
    assert not math.isnan(metrics["metrics"]["f1_mean"]["ci_low"])  # intervals present at this size
    columns, table = run.table("eval/metrics")
    assert columns == ["task", "metric", "value", "ci_low", "ci_high", "n", "headline"]
    by_name = {r[1]: r for r in table}
    assert by_name.keys() == metrics["metrics"].keys()
    assert by_name["f1_mean"][6] is True and sum(r[6] for r in table) == 1
    assert _same(by_name["f1_mean"][3], metrics["metrics"]["f1_mean"]["ci_low"])
    stored = [json.loads(line) for line in (run_dir / "samples" / "pope.jsonl").read_text().splitlines()]
    columns, rows = run.table("eval/pope/samples")
    assert columns[0] == "id" and "images" not in columns and "prompt_hash" not in columns
    got = {r[0]: dict(zip(columns, r, strict=True)) for r in rows}
    assert len(rows) == len(stored) == 150
    for row in stored:
        assert got[row["id"]]["response"] == row["response"]
        assert got[row["id"]]["correct"] == row["correct"]


def test_tensorboard_holds_the_same_scalars_and_bounded_text_tables(reported):
    _, run_dir = reported
    events = read_event_dir(run_dir / "tensorboard")
    metrics = json.loads((run_dir / "metrics.json").read_text())["pope"]["metrics"]
    for name, m in metrics.items():
        for part in ("value", "ci_low", "ci_high", "n"):
            key = f"eval/pope/{name}" + ("" if part == "value" else f"/{part}")
            if math.isnan(m[part]):  # an interval over too few units: no point
                assert key not in events.scalars
            else:
                assert _same(events.scalars[key][0], m[part]), key
    samples = events.texts["eval/pope/samples"][0]
    assert samples.count("\n| ") == MAX_TEXT_ROWS  # the header row starts the text
    assert f"the first {MAX_TEXT_ROWS} of 150 rows" in samples
    assert "| pope | f1_mean |" in events.texts["eval/metrics"][0]


def test_no_secret_reaches_a_tracker(reported):
    root, run_dir = reported
    (run,) = wandb_runs(root)
    assert run.args == []  # wandb's record of the command line is off: the command line held a password
    for folder in (root / "wandb", run_dir / "tensorboard"):
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert TOKEN.encode() not in data, path
                assert PASSWORD.encode() not in data, path


def test_a_failed_run_is_reported_as_failed_from_the_python_api(tmp_path, monkeypatch):
    import evalkit
    from evalkit.runner import RunFailed

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))
    with pytest.raises(RunFailed, match="f1_mean has no value"):  # F1 over one sample: undefined
        evalkit.evaluate(model="toy", tasks="pope", data="toy", limit=1, output=tmp_path / "run", threads=1,
                         progress=False, report_to=["wandb", "tensorboard"], run_name="smoke")  # fmt: skip
    (run,) = wandb_runs(tmp_path)
    assert run.name == "smoke" and run.exit_code == 1
    assert math.isnan(run.history[0]["eval/pope/f1_mean"]) and run.history[0]["eval/pope/f1_mean/n"] == 1
    events = read_event_dir(tmp_path / "tb" / "smoke")  # $TENSORBOARD_LOGGING_DIR/NAME
    assert "eval/pope/f1_mean" not in events.scalars  # NaN: no point, but in the text table
    assert events.scalars["eval/pope/f1_mean/n"] == {0: 1}
    assert "| pope | f1_mean | NaN | NaN | NaN | 1 | true |" in events.texts["eval/metrics"][0]
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_online_wandb_without_a_login_stops_before_any_work(tmp_path):
    """No API key (no WANDB_API_KEY, no netrc, no terminal to prompt at) in online mode: one line, exit 2,
    and no run folder, rather than a finished run whose report fails."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(home), WANDB_CONFIG_DIR=str(home / "wandb-config"), OMP_NUM_THREADS="1")
    env.pop("NETRC", None)
    run_dir = tmp_path / "run"
    args = ["run", "--model", "toy", "--tasks", "pope", "--data", "toy", "--limit", "5",
            "--output", str(run_dir), "--report-to", "wandb"]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "evalkit", *args], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=600)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "--report-to wandb:" in proc.stderr and "WANDB_MODE=offline" in proc.stderr
    assert not (run_dir / "samples").exists()
