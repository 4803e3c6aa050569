"""`evalkit train` never runs planted code, never writes a broken checkpoint, and ends every refusal with
one line: a planted resume/state.pt, pickled checkpoint weights, non-finite hyper-parameters, a loss that
blows up, a finished run re-run, unreadable images, overlong answers and prompts.

A planted pickle is a real one whose unpickling would create a marker file, so "never loaded" is checked
by the marker's absence, not by the error text alone. The base model is the random toy LLaVA saved to a
temp folder."""

from __future__ import annotations

import json
import math
import os
import random

import pytest
import torch
from safetensors.torch import load_file, save_file
from support.training import save_toy_base
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.models.base import BackendOptions
from evalkit.models.hf import HFBackend
from evalkit.toy.world import STYLE, render, sample_scenes
from evalkit.training.checkpointing import TrainingDiverged
from evalkit.training.config import TrainConfig
from evalkit.training.trainer import train
from evalkit.types import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPT = "name one object in the image."


class Planted:
    """Unpickling this runs `open(marker, "w")`: the payload a planted file would carry."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("safety-world")
    save_toy_base(d)
    rng = random.Random(0)
    pairs, sft = [], []
    for scene in sample_scenes(8, seed=9):
        render(scene).save(d / f"{scene.image_id}.png")
        absent = rng.choice(sorted(set(STYLE) - set(scene.objects)))
        common = {"image": f"{scene.image_id}.png", "prompt": PROMPT}
        pairs.append({**common, "chosen": f"a {scene.objects[0]}.", "rejected": f"a {absent}."})
        sft.append({**common, "response": f"a {scene.objects[0]}."})
    (d / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
    (d / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))
    return d


def _cli(*args):
    result = CliRunner().invoke(app, ["train", *map(str, args)])
    text = result.stderr.strip()
    return result.exit_code, text, " ".join(result.stdout.split())  # rich folds at 80 columns


def _one_line_error(text: str) -> str:
    last = text.splitlines()[-1]
    assert last.startswith("error:") and "Traceback" not in text, text
    return last


def _args(world, out, *extra):
    return [
        "--method",
        "dpo",
        "--model",
        world / "base",
        "--data",
        world / "pairs.jsonl",
        "--output",
        out,
        "--max-steps",
        2,
        "--batch-size",
        4,
        "--lora-rank",
        4,
        *extra,
    ]


# ---- planted pickles ---------------------------------------------------------------------------------


def test_a_planted_resume_pickle_is_refused_and_never_unpickled(world, tmp_path):
    marker = tmp_path / "payload-ran"
    out = tmp_path / "ckpt"
    (out / "resume").mkdir(parents=True)
    torch.save({"step": 1, "x": Planted(marker)}, out / "resume" / "state.pt")
    torch.load(out / "resume" / "state.pt", weights_only=False)  # the payload works when unpickled...
    assert marker.exists()
    marker.unlink()

    code, err, _ = _cli(*_args(world, out))  # ...and evalkit never unpickles it
    assert code == 2
    line = _one_line_error(err)
    assert "state.pt" in line and "old pickle format" in line and f"delete {out / 'resume'}" in line
    assert not marker.exists()
    assert not (out / "model.safetensors").exists()
    with pytest.raises(UserError, match="never loads"):
        train(method="dpo", model=str(world / "base"), data=str(world / "pairs.jsonl"), output=str(out))
    assert not marker.exists()
    code, _, _ = _cli(*_args(world, out, "--overwrite"))  # the documented way out
    assert code == 0 and (out / "model.safetensors").is_file() and not marker.exists()


def test_a_damaged_or_foreign_resume_state_is_refused_in_one_line(world, tmp_path):
    out = tmp_path / "ckpt"
    (out / "resume").mkdir(parents=True)
    (out / "resume" / "state.safetensors").write_bytes(os.urandom(300))
    code, err, _ = _cli(*_args(world, out))
    assert code == 2 and "unreadable" in _one_line_error(err) and "delete" in err

    # a well-formed safetensors file that is not evalkit's resume state
    save_file({"x": torch.zeros(2)}, str(out / "resume" / "state.safetensors"), metadata={"a": "b"})
    code, err, _ = _cli(*_args(world, out))
    assert code == 2 and "not an evalkit resume state" in _one_line_error(err)


def test_pickled_checkpoint_weights_are_refused_naming_the_file(world, tmp_path):
    marker = tmp_path / "payload-ran"
    ckpt = tmp_path / "pickled"
    ckpt.mkdir()
    for f in (world / "base").iterdir():
        if f.suffix != ".safetensors":
            (ckpt / f.name).write_bytes(f.read_bytes())
    weights = dict(load_file(world / "base" / "model.safetensors"))
    torch.save({**weights, "planted": Planted(marker)}, ckpt / "pytorch_model.bin")

    code, err, _ = _cli(
        "--method", "sft", "--model", ckpt, "--data", world / "sft.jsonl", "--output", tmp_path / "o"
    )
    assert code == 2
    line = _one_line_error(err)
    assert str(ckpt / "pytorch_model.bin") in line and "safetensors" in line and "save_pretrained" in line
    with pytest.raises(UserError, match="pytorch_model.bin: pickled PyTorch weights"):
        HFBackend(str(ckpt), BackendOptions(device="cpu"))
    run = CliRunner().invoke(
        app,
        [
            "run",
            "--model",
            str(ckpt),
            "--tasks",
            "pope",
            "--data",
            "toy",
            "--limit",
            "2",
            "--output",
            str(tmp_path / "run"),
        ],
    )
    assert run.exit_code == 2 and "pytorch_model.bin" in _one_line_error(run.stderr.strip())
    from evalkit.training.embedding import load_embedder  # a BDHS --embedder folder: the same rule

    with pytest.raises(UserError, match="pytorch_model.bin: pickled PyTorch weights"):
        load_embedder(str(ckpt))
    assert not marker.exists()


# ---- hyper-parameters and divergence -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--lr", "inf"),
        ("--lr", "nan"),
        ("--beta", "inf"),
        ("--beta", "-inf"),
        ("--sft-weight", "nan"),
        ("--epochs", "inf"),
        ("--warmup-ratio", "nan"),
        ("--temperature", "inf"),
        ("--projector-lr", "inf"),
    ],
)
def test_non_finite_hyper_parameters_are_refused_before_anything_runs(world, tmp_path, flag, value):
    out = tmp_path / "o"
    code, err, _ = _cli(*_args(world, out, flag, value))
    assert code == 2
    line = _one_line_error(err)
    assert f"invalid value for {flag} {value}" in line or f"{flag} {value} (must be" in line
    assert not out.exists()


def test_non_finite_values_in_a_config_file_are_refused(world, tmp_path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        f"method: dpo\nmodel: {world / 'base'}\ndata: {world / 'pairs.jsonl'}\noutput: o\nbeta: .inf\n"
    )
    code, err, _ = _cli(cfg)
    assert code == 2 and "--beta inf (must be a finite number > 0)" in _one_line_error(err)
    with pytest.raises(UserError, match="max-grad-norm nan"):
        TrainConfig(method="dpo", model="m", data="d", output="o", max_grad_norm=math.nan)
    with pytest.raises(UserError, match="lora-dropout 1.0"):
        TrainConfig(method="dpo", model="m", data="d", output="o", lora_dropout=1.0)
    with pytest.raises(UserError, match=r"--seed 18446744073709551616 \(must be an integer in \[0, 2"):
        TrainConfig(method="dpo", model="m", data="d", output="o", seed=2**64)
    with pytest.raises(UserError, match="--lr 'fast'"):  # the Python API gets the same one line
        TrainConfig(method="dpo", model="m", data="d", output="o", lr="fast")


def test_a_loss_that_blows_up_stops_the_run_and_nothing_non_finite_is_saved(world, tmp_path):
    # lr 1e30 is finite, so it passes validation; one AdamW step moves every trained weight by ~1e30 and
    # the next forward pass overflows: a forced non-finite loss
    out = tmp_path / "o"
    code, err, _ = _cli(*_args(world, out, "--lr", "1e30", "--max-steps", 4, "--save-every", 1))
    assert code == 1
    line = _one_line_error(err)
    assert "training diverged at step 1" in line and "loss nan" in line and "no checkpoint written" in line
    assert not (out / "model.safetensors").exists()
    info = json.loads((out / "train_config.json").read_text())
    assert info["completed"] is False
    rows = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0] and math.isfinite(rows[0]["loss"])  # no NaN row logged
    from safetensors import safe_open

    with safe_open(str(out / "resume" / "state.safetensors"), "pt") as f:  # step 1's state: finite
        for k in f.keys():  # noqa: SIM118
            t = f.get_tensor(k)
            assert not t.is_floating_point() or torch.isfinite(t).all(), k
        meta = json.loads(f.metadata()["evalkit"])
    assert meta["step"] == 1 and str(world / "base") not in json.dumps(meta)  # settings kept as hashes only

    with pytest.raises(TrainingDiverged, match="diverged at step 1"):  # the same through the API
        train(
            method="sft",
            model=str(world / "base"),
            data=str(world / "sft.jsonl"),
            output=str(tmp_path / "sft"),
            lr=1e30,
            max_steps=3,
            lora_rank=0,
            batch_size=4,
            save_every=0,
        )
    assert not (tmp_path / "sft" / "model.safetensors").exists()


# ---- a finished run ----------------------------------------------------------------------------------


def test_rerunning_a_finished_command_says_complete_and_exits_0(world, tmp_path):
    out = tmp_path / "o"
    code, _, stdout = _cli(*_args(world, out))
    assert code == 0 and "trained 2 steps" in stdout
    weights = (out / "model.safetensors").read_bytes()
    code, err, stdout = _cli(*_args(world, out))
    assert code == 0 and f"checkpoint {out} is complete (2 steps" in stdout, err
    assert (out / "model.safetensors").read_bytes() == weights
    code, err, _ = _cli(*_args(world, out, "--beta", "0.5"))  # other settings into a finished folder
    assert code == 2 and "trained with other settings (beta)" in _one_line_error(err)
    data = tmp_path / "pairs.jsonl"  # the same file name, other content
    rows = (world / "pairs.jsonl").read_text().splitlines()
    data.write_text("\n".join(rows[:-1]) + "\n")
    for f in (world).glob("*.png"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    other = _args(world, tmp_path / "o2")
    other[other.index(world / "pairs.jsonl")] = data
    assert _cli(*other)[0] == 0
    data.write_text("\n".join(rows) + "\n")
    code, err, _ = _cli(*other)
    assert code == 2 and "earlier version of" in _one_line_error(err)


# ---- data that would stop training half-way ------------------------------------------------------------


def _records_with_absolute_images(path):
    """The records of a toy data file with their image paths made absolute, to be rewritten elsewhere."""
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    for r in rows:
        r["image"] = str(path.parent / r["image"])
    return rows


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_unreadable_images_are_skipped_and_counted_before_step_0(world, tmp_path):
    rows = _records_with_absolute_images(world / "sft.jsonl")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes((world / rows[0]["image"]).read_bytes()[:120])
    (tmp_path / "text.png").write_text("not an image")
    rows[2]["image"], rows[5]["image"] = str(truncated), str(tmp_path / "text.png")
    data = tmp_path / "sft.jsonl"
    _write_jsonl(data, rows)
    out = tmp_path / "o"
    code, err, _ = _cli(
        "--method",
        "sft",
        "--model",
        world / "base",
        "--data",
        data,
        "--output",
        out,
        "--max-steps",
        2,
        "--batch-size",
        8,
        "--lora-rank",
        0,
    )
    assert code == 0, err
    assert "skipped: image unreadable 2" in err and f"{data}:3" in err and f"{data}:6" in err
    info = json.loads((out / "train_config.json").read_text())
    assert info["data"]["skipped"] == {"image unreadable": 2} and info["examples"] == 6
    assert [x.split(":")[1] for x in info["data"]["unreadable_images"]] == ["3", "6"]


def test_an_answer_longer_than_the_context_is_refused_at_load_or_cut_by_max_length(world, tmp_path):
    rows = _records_with_absolute_images(world / "sft.jsonl")
    rows[3]["response"] = "a kite and a dog. " * 600_000  # 10.8 MB
    data = tmp_path / "long.jsonl"
    _write_jsonl(data, rows)
    base = [
        "--method",
        "sft",
        "--model",
        world / "base",
        "--data",
        data,
        "--max-steps",
        1,
        "--batch-size",
        8,
        "--lora-rank",
        0,
    ]
    code, err, _ = _cli(*base, "--output", tmp_path / "o")
    assert code == 2
    line = _one_line_error(err)
    assert f"{data}:4: an answer of at least" in line and "context of 2048 tokens" in line
    assert "--max-length" in line and not (tmp_path / "o" / "model.safetensors").exists()

    code, err, _ = _cli(*base, "--output", tmp_path / "cut", "--max-length", 48)
    assert code == 0, err
    info = json.loads((tmp_path / "cut" / "train_config.json").read_text())
    assert info["data"]["notes"] == {"answers cut to --max-length 48": 1}


def test_a_prompt_with_no_room_for_an_answer_is_skipped_and_counted(world, tmp_path):
    rows = _records_with_absolute_images(world / "pairs.jsonl")
    rows[1]["prompt"] = "is there a kite? " * 40  # 160 words: over --max-length 64 on its own
    data = tmp_path / "pairs.jsonl"
    _write_jsonl(data, rows)
    out = tmp_path / "o"
    code, err, _ = _cli(
        "--method",
        "dpo",
        "--model",
        world / "base",
        "--data",
        data,
        "--output",
        out,
        "--max-steps",
        1,
        "--batch-size",
        8,
        "--lora-rank",
        4,
        "--max-length",
        64,
    )
    assert code == 0, err
    info = json.loads((out / "train_config.json").read_text())
    assert info["examples"] == 7
    assert info["data"]["skipped"] == {"prompt too long for --max-length 64": 1}
    assert info["data"]["too_long"][0].startswith(f"{data}:2: prompt of ")
