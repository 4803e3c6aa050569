"""`evalkit run CONFIG` (keys are the flag names, flags override the file) and `evalkit --version`."""

import json
from importlib import metadata

from support.cli import error_line, run_cli

from evalkit.cli.evaluate import run
from evalkit.cli.run_settings import run_flags, settings_from


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_version_is_the_installed_package_version():
    proc = run_cli("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"evalkit {metadata.version('evalkit')}"


def test_config_file_settings_reach_the_run_and_flags_override_them(tmp_path):
    """MT-Bench has two judged turns per question: the dry run's call count is 2 x --limit, and the judge
    is the file's; the model path is never opened."""
    config = write(
        tmp_path / "mt.yaml",
        "model: not-a-checkpoint\ntasks: [mt_bench]\njudge: openai:gpt-4o\nlimit: 5\n"
        "dry-run: true\njson: true\n",
    )
    proc = run_cli("run", str(config))
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)["mt_bench"]
    assert (plan["judge"], plan["calls"]) == ("openai:gpt-4o", 10)

    proc = run_cli("run", str(config), "--limit", "3", "--judge", "openai:gpt-4")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)["mt_bench"]
    assert (plan["judge"], plan["calls"]) == ("openai:gpt-4", 6)


def test_a_json_config_file_is_read_too(tmp_path):
    config = tmp_path / "mt.json"
    settings = {"model": "x", "tasks": "mt_bench", "limit": 2, "dry_run": True, "json": True}
    config.write_text(json.dumps(settings))
    proc = run_cli("run", str(config))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["mt_bench"]["calls"] == 4


def test_unknown_key_is_refused_naming_the_close_match(tmp_path):
    config = write(tmp_path / "c.yaml", "model: toy\ntasks: pope\nbatch_szie: 4\n")
    line = error_line(run_cli("run", str(config)))
    assert "unknown setting 'batch_szie'" in line and "did you mean batch_size" in line


def test_wrong_type_and_missing_model_are_one_line_errors(tmp_path):
    config = write(tmp_path / "c.yaml", "model: toy\ntasks: pope\nlimit: many\n")
    assert "limit must be an integer" in error_line(run_cli("run", str(config)))
    config = write(tmp_path / "d.yaml", "tasks: pope\n")
    assert "missing --model" in error_line(run_cli("run", str(config)))
    assert "missing --model, --tasks" in error_line(run_cli("run"))


def test_relative_paths_are_relative_to_the_file_and_flags_keep_theirs(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "ckpt").mkdir()
    config = write(
        folder / "c.yaml",
        "model: ckpt\ntasks: [pope, amber]\ndata_dir: data\noutput: ../runs/a\n"
        "task_option:\n  amber.suffix: short\nreport_to: [wandb, tensorboard]\n",
    )
    settings = settings_from(run, config, {"seed": 3})
    assert settings["model"] == str(folder / "ckpt")
    assert settings["tasks"] == "pope,amber"
    assert settings["data_dir"] == folder / "data"
    assert settings["output"] == folder / "../runs/a"
    assert settings["task_option"] == ["amber.suffix=short"]
    assert settings["report_to"] == "wandb,tensorboard"  # a list, as transformers' report_to takes it
    assert settings["seed"] == 3 and settings["batch_size"] is None and settings["dtype"] == "auto"
    # a hub id and the built-in names are kept as they are
    for model in ("org/model", "openai:gpt-4o", "toy"):
        config = write(folder / "m.yaml", f"model: {model}\ntasks: pope\n")
        assert settings_from(run, config, {})["model"] == model


def test_every_run_flag_is_a_config_key():
    """The keys are read from `run`'s own signature: every long flag of `evalkit run` is one."""
    import typer.main

    from evalkit.cli import app

    command = typer.main.get_command(app).commands["run"]
    long_flags = {o[2:].replace("-", "_") for p in command.params for o in p.opts if o.startswith("--")}
    flags = run_flags(run)
    assert set(flags) == long_flags
    assert {"json", "all_metrics", "judge_base_url", "tensor_parallel_size", "shard"} <= set(flags)
