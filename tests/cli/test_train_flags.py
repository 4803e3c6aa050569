"""`evalkit train`'s flags are made from TrainConfig's fields: every field carries its help, every field has
a flag unless its metadata keeps it to the config file, and each flag shows the field's own default."""

import dataclasses

import pytest
import typer.main
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.training.config import TrainConfig
from evalkit.training.config_file import config_from, read_config_file

FIELDS = dataclasses.fields(TrainConfig)
#: the fields with a flag (metadata `cli: False` keeps a setting to the config file and the Python API)
FLAGGED = [f for f in FIELDS if f.metadata.get("cli", True) is not False]


def train_options() -> dict:
    """The train command's click options by parameter name (CONFIG, an argument, left out)."""
    command = typer.main.get_command(app).commands["train"]
    return {p.name: p for p in command.params if p.param_type_name == "option"}


def is_required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


@pytest.mark.parametrize("f", FIELDS, ids=lambda f: f.name)
def test_every_field_has_help_and_a_flag(f):
    help_ = f.metadata.get("help")
    assert isinstance(help_, str) and help_.strip(), f"TrainConfig.{f.name} has no metadata help"
    options = train_options()
    if f.metadata.get("cli", True) is False:  # a config-file setting: no flag, but the file takes it
        assert f.name not in options
        return
    assert f.name in options, f"TrainConfig.{f.name} has no flag in `evalkit train`"
    option = options[f.name]
    flag = "--" + f.name.replace("_", "-")
    assert option.opts == [flag]
    assert option.help == (f"{help_}; required here or in CONFIG." if is_required(f) else help_)


def test_no_flag_without_a_field():
    fields = {f.name for f in FIELDS}
    assert set(train_options()) <= fields


@pytest.mark.parametrize("f", FLAGGED, ids=lambda f: f.name)
def test_a_flag_default_is_the_field_default(f):
    option = train_options()[f.name]
    expected = None if is_required(f) else f.default
    assert option.default == expected and type(option.default) is type(expected)


def test_help_shows_each_field_default():
    """Read off the rendered --help (one row per flag at this width), so a default shown and the field's
    default cannot drift apart."""
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "1000"})
    assert result.exit_code == 0
    rows = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│ --")}
    for f in FLAGGED:
        row = rows["--" + f.name.replace("_", "-")]
        if isinstance(f.default, bool):
            shown = f"[default: {'' if f.default else 'no-'}{f.name.replace('_', '-')}]"
        elif is_required(f) or f.default is None:
            assert "[default:" not in row, row
            continue
        else:
            shown = f"[default: {f.default}]"
        assert shown in row, row


def test_config_file_settings_without_a_flag_are_read_from_the_file(tmp_path):
    kept = [f for f in FIELDS if f not in FLAGGED]
    assert kept  # lora_alpha, weight_decay, ...: the file (and the Python API) set them
    values = {"lora_alpha": 8.0, "lora_dropout": 0.25, "weight_decay": 0.5, "max_grad_norm": 2.5}
    values = {f.name: values.get(f.name, not f.default) for f in kept}  # a value other than the default
    lines = [f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in values.items()]
    path = tmp_path / "c.yaml"
    path.write_text("\n".join(["method: dpo", "model: toy", "data: d", "output: o", *lines]) + "\n")
    assert {k: read_config_file(path)[k] for k in values} == values
    config = config_from(path, {})
    assert {k: getattr(config, k) for k in values} == values
