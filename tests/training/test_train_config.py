"""`evalkit train CONFIG.yaml`: settings from a YAML / JSON file, flags overriding it, paths relative to the
file's folder, one-line errors for unknown keys, non-mappings and missing required values, and one short
real run from a YAML file on the toy pairs of the `world` fixture (tests/training/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.training.config import TrainConfig
from evalkit.training.config_file import config_from
from evalkit.types import UserError

yaml = pytest.importorskip("yaml")

pytestmark = pytest.mark.usefixtures("one_thread")

YAML_TEXT = """\
# a DPO run
method: dpo
model: base
data: pairs.jsonl
output: runs/dpo
max_steps: 200
lr: 5e-6          # YAML 1.1 reads this as a string; it must still become a float
lora_rank: 64
max-length: 512   # dashes work too
merge: false
reference: null
"""


def _expected(folder: Path, **changes) -> TrainConfig:
    values = dict(
        method="dpo",
        model=str(folder / "base"),
        data=str(folder / "pairs.jsonl"),
        output=str(folder / "runs" / "dpo"),
        max_steps=200,
        lr=5e-6,
        lora_rank=64,
        max_length=512,
        merge=False,
    )
    return TrainConfig(**{**values, **changes})


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "cfg"
    (d / "base").mkdir(parents=True)  # a local model folder: the file's `model: base` is a path
    (d / "pairs.jsonl").write_text("")
    return d


def test_yaml_and_json_give_the_same_config(folder):
    (folder / "train.yaml").write_text(YAML_TEXT)
    as_json = {k.replace("-", "_"): v for k, v in yaml.safe_load(YAML_TEXT).items()}
    (folder / "train.json").write_text(json.dumps(as_json))
    expected = _expected(folder)
    assert config_from(folder / "train.yaml", {}) == expected
    assert config_from(str(folder / "train.json"), {}) == expected
    assert isinstance(expected.lr, float) and expected.learning_rate == 5e-6


def test_flags_override_the_file_and_defaults_fill_the_rest(folder, tmp_path):
    (folder / "train.yaml").write_text(YAML_TEXT)
    overrides = {"lr": 1e-5, "data": "elsewhere.jsonl", "merge": True, "seed": 3}
    config = config_from(folder / "train.yaml", overrides, defaults={"progress": True, "lora_rank": 8})
    # a flag's path stays as typed (relative to the working directory), not to the file's folder
    assert config == _expected(folder, lr=1e-5, data="elsewhere.jsonl", merge=True, seed=3, progress=True)
    assert config.beta == 0.1 and config.batch_size == 8  # TrainConfig's defaults
    # no file: the flags alone, as before
    flags = {"method": "sft", "model": "toy", "data": "d.jsonl", "output": tmp_path / "o"}
    assert config_from(None, flags) == TrainConfig(
        method="sft", model="toy", data="d.jsonl", output=str(tmp_path / "o")
    )


def test_paths_are_relative_to_the_files_folder(tmp_path):
    d = tmp_path / "a" / "b"
    d.mkdir(parents=True)
    (d / "local-model").mkdir()
    (d / "train.yaml").write_text("method: sft\nmodel: ../ckpt\ndata: data/sft.jsonl\noutput: ../../out\n")
    config = config_from(d / "train.yaml", {})
    assert config.model == str(d / "../ckpt")
    assert Path(config.data) == d / "data" / "sft.jsonl"
    assert Path(config.output).resolve() == tmp_path / "out"
    for model, expected in [
        ("toy", "toy"),
        ("hf:org/name", "hf:org/name"),
        ("org/name", "org/name"),  # a hub id, not a path
        ("gpt2", "gpt2"),
        ("local-model", str(d / "local-model")),  # exists beside the file: a path
        (str(tmp_path / "abs"), str(tmp_path / "abs")),
    ]:
        (d / "m.yaml").write_text(f"method: sft\nmodel: {model}\ndata: owner/dataset\noutput: o\n")
        config = config_from(d / "m.yaml", {})
        assert config.model == expected, model
        assert config.data == "owner/dataset"  # a cached hub dataset id stays one


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("method: dpo\nlearning_rate: 1e-5\n", "unknown key 'learning_rate'"),
        ("- method: dpo\n", "must hold a mapping of settings (key: value), got a list"),
        ("just a string\n", "got a str"),
        ("method: dpo\nmax_steps: many\n", "max_steps must be an integer or null, got 'many'"),
        ("method: dpo\nmerge: 3\n", "merge must be true or false"),
        ("method: [dpo\n", "is not valid YAML"),
    ],
)
def test_bad_files_are_user_errors(tmp_path, text, fragment):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(UserError) as info:
        config_from(tmp_path / "c.yaml", {})
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_unknown_key_lists_the_valid_keys(tmp_path):
    (tmp_path / "c.json").write_text('{"method": "dpo", "steps": 3}')
    with pytest.raises(UserError, match="valid keys: method, model, data, output, format, max_steps"):
        config_from(tmp_path / "c.json", {})
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="got a list"):
        config_from(tmp_path / "list.json", {})


def test_missing_required_values(tmp_path):
    (tmp_path / "c.yaml").write_text("method: dpo\nmodel: toy\n")
    with pytest.raises(UserError, match=r"^missing --data, --output: give them on the command line"):
        config_from(tmp_path / "c.yaml", {})
    assert config_from(tmp_path / "c.yaml", {"data": "d.jsonl", "output": "o"}).method == "dpo"
    with pytest.raises(UserError, match="config file not found"):
        config_from(tmp_path / "nope.yaml", {})


def test_yaml_without_pyyaml_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)  # `import yaml` raises ImportError
    (tmp_path / "c.yaml").write_text("method: dpo\n")
    with pytest.raises(UserError, match="pip install pyyaml"):
        config_from(tmp_path / "c.yaml", {})
    (tmp_path / "c.json").write_text('{"method": "dpo", "model": "toy", "data": "d", "output": "o"}')
    assert config_from(tmp_path / "c.json", {}).method == "dpo"  # JSON needs nothing


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("method: dpo\nmodel: toy\nsteps: 3\n", "unknown key 'steps'"),
        ("method: dpo\nmodel: toy\n", "missing --data, --output"),
    ],
)
def test_cli_config_errors_are_one_line_exit_2(tmp_path, text, fragment):
    (tmp_path / "c.yaml").write_text(text)
    env = {**os.environ, "COLUMNS": "300"}
    proc = subprocess.run(
        [sys.executable, "-c", "from evalkit.cli import app; app()", "train", str(tmp_path / "c.yaml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    text = proc.stderr.strip()
    assert text.startswith("error:") and len(text.splitlines()) == 1 and "Traceback" not in text
    assert fragment in text


def test_cli_missing_flag_without_file_names_it(tmp_path):
    result = CliRunner().invoke(app, ["train", "--method", "dpo", "--model", "toy", "--data", "x.jsonl"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: missing --output: give it on the command line or as a key of the config file"
    ]


def test_cli_help_explains_the_file():
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "CONFIG" in result.output and "YAML or JSON" in result.output and "override" in result.output


def test_real_cli_run_from_a_yaml_file(world, tmp_path):
    """Relative paths from the file's folder, `--max-steps 2` overriding the file's 50."""
    model, data = (os.path.relpath(world / x, tmp_path) for x in ("base", "pairs.jsonl"))
    (tmp_path / "dpo.yaml").write_text(
        f"method: dpo\nmodel: {model}\ndata: {data}\noutput: out\nmax_steps: 50\nbatch_size: 4\n"
        "lora_rank: 4\nsave_every: 0\ndevice: cpu\nlr: 1e-3\n"
    )
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    cwd = os.getcwd()
    os.chdir(elsewhere)  # the file's paths must not depend on the working directory
    try:
        result = CliRunner().invoke(
            app, ["train", str(tmp_path / "dpo.yaml"), "--max-steps", "2", "--lr", "2e-3"]
        )
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    assert "trained 2 steps" in result.stdout
    info = json.loads((tmp_path / "out" / "train_config.json").read_text())
    config = info["config"]
    assert config["max_steps"] == 2 and config["lr"] == 2e-3 and config["lora_rank"] == 4
    assert Path(config["data"]).resolve() == (world / "pairs.jsonl").resolve()
    assert [
        r["step"] for r in map(json.loads, (tmp_path / "out" / "train_log.jsonl").read_text().splitlines())
    ] == [0, 1]
