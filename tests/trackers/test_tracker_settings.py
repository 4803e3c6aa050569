"""`--report-to` parsing, the one-line error for a tracker library that is not installed, and the scrubbing
of secrets from what a tracker receives."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support.cli import error_line, run_cli

from evalkit.trackers import TrackerSettings, parse_report_to
from evalkit.trackers.redaction import holds_secret, scrub
from evalkit.types import UserError


@pytest.mark.parametrize(
    "value, expected",
    [
        ("none", ()),
        (None, ()),
        ("wandb", ("wandb",)),
        ("wandb,tensorboard", ("wandb", "tensorboard")),
        (" TensorBoard , wandb,wandb ", ("tensorboard", "wandb")),
        (["tensorboard", "none"], ("tensorboard",)),
    ],
)
def test_report_to_takes_names_commas_and_lists(value, expected):
    assert parse_report_to(value) == expected
    assert bool(TrackerSettings.of(value)) is bool(expected)


def test_an_unknown_tracker_is_one_line_naming_the_known_ones():
    with pytest.raises(UserError, match=r"--report-to 'mlflow': trackers are wandb, tensorboard or none"):
        parse_report_to("wandb,mlflow")
    proc = run_cli("run", "--model", "toy", "--tasks", "pope", "--data", "toy", "--report-to", "comet")
    assert "trackers are wandb, tensorboard or none" in error_line(proc)
    proc = run_cli("train", "--method", "sft", "--model", "toy", "--data", "x.jsonl", "--output", "o",
                   "--report-to", "comet")  # fmt: skip
    assert "trackers are wandb, tensorboard or none" in error_line(proc)


@pytest.mark.parametrize(
    "name, module, extra", [("wandb", "wandb", "wandb"), ("tensorboard", "tensorboardX", "tensorboard")]
)
def test_a_missing_library_is_one_line_with_the_pip_command(tmp_path, name, module, extra):
    """The library made unimportable in a real `evalkit run` process: refused before any model loads."""
    code = (
        f"import sys; sys.modules[{module!r}] = None; from evalkit.cli import app; "
        "sys.argv[0] = 'evalkit'; app()"
    )
    args = ["run", "--model", "toy", "--tasks", "pope", "--data", "toy", "--limit", "2",
            "--output", str(tmp_path / "run"), "--report-to", name]  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    line = error_line(proc)
    assert f"--report-to {name}: {extra if name == 'wandb' else 'tensorboardX'} is not installed" in line, (
        line
    )
    assert "pip install" in line and f"evalkit[{extra}]" in line, line
    assert not (tmp_path / "run").exists()
    args = ["train", "--method", "sft", "--model", "toy", "--data", str(tmp_path / "none.jsonl"),
            "--output", str(tmp_path / "ckpt"), "--report-to", f"tensorboard,{name}"]  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert "pip install" in error_line(proc) and f"evalkit[{extra}]" in error_line(proc)
    assert not (tmp_path / "ckpt").exists()


def test_scrub_removes_secret_values_and_url_credentials(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_API_KEY", "sk-live-0123456789")
    monkeypatch.setenv("JUDGE_CRED", "judge-secret-value")  # not a secret by its name: named by the config
    monkeypatch.setenv("PLAIN_SETTING", "visible-value-123")
    config = {
        "judge_api_key_env": "JUDGE_CRED",
        "base_url": "https://user:pa55word@api.example.com/v1?key=abcdefgh",
        "plain_url": "http://localhost:8000/v1",
        "note": ["key sk-live-0123456789 in text", "judge-secret-value", "visible-value-123"],
        "n": 3,
    }
    clean = scrub(config)
    assert clean["base_url"] == "https://api.example.com/v1"
    assert clean["plain_url"] == "http://localhost:8000/v1"
    assert clean["note"] == ["key *** in text", "***", "visible-value-123"]
    assert clean["n"] == 3
    assert holds_secret(["--base-url", "https://u:p@host/v1"])
    assert holds_secret(["--x", "sk-live-0123456789"])
    assert not holds_secret(["--base-url", "http://localhost:8000/v1", "--tasks", "pope"])
