"""`evalkit train` (SFT / DPO): learning signal on toy-world pairs (spec training.md §5 item 4), the saved
checkpoint loading in the evaluation backend, resume equivalence and CLI errors. The base model is the
random toy LLaVA (`build_toy_model`) saved into a temp folder: no warm-up, no download."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from support.training import PROMPT
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.models.base import BackendOptions
from evalkit.models.hf import HFBackend
from evalkit.training.config import TrainConfig
from evalkit.training.model_setup import resolve_model
from evalkit.training.trainer import train
from evalkit.types import GenerationConfig, Message, Request, UserError

pytestmark = pytest.mark.usefixtures("one_thread")


def _rows(path):
    return [json.loads(x) for x in (path / "train_log.jsonl").read_text().splitlines()]


def test_dpo_learns_on_toy_pairs_and_checkpoint_generates(world, tmp_path):
    out = tmp_path / "dpo"
    result = train(
        method="dpo",
        model=str(world / "base"),
        data=str(world / "pairs.jsonl"),
        output=str(out),
        max_steps=30,
        lr=1e-2,
        beta=0.5,
        batch_size=16,
        lora_rank=16,
        save_every=0,
    )
    rows = _rows(out)
    assert rows == result.log and [r["step"] for r in rows] == list(range(30))
    first, last = rows[0], rows[-1]
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-6)  # policy == reference (adapter-off)
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
        assert first[key] == pytest.approx(0.0, abs=1e-7)
    assert last["loss"] < first["loss"] - 0.1
    assert min(r["loss"] for r in rows[-5:]) < min(r["loss"] for r in rows[:5])
    assert sum(r["rewards/margins"] for r in rows[-5:]) / 5 > 0.2
    assert sum(r["rewards/accuracies"] for r in rows[-5:]) / 5 >= 0.75
    assert {"lr", "tokens/s", "seconds", "grad_norm"} <= set(first)

    info = json.loads((out / "train_config.json").read_text())
    assert info["completed"] and info["config"]["reference_used"] == "adapter-off"
    assert info["data"]["items"] == 16 and {"torch", "transformers", "peft"} <= set(info["versions"])
    assert not (out / "resume").exists()

    backend = HFBackend(str(out), BackendOptions(device="cpu", dtype="float32"))
    assert not any("lora" in n for n, _ in backend.model.named_parameters())  # merged
    image = str(world / "toy_s7_000000.png")
    request = Request("q", (Message("user", PROMPT, (image,)),), GenerationConfig(max_new_tokens=4))
    [response] = backend.generate([request])
    assert response.error is None and response.completion_tokens >= 1


def test_sft_nll_falls(world, tmp_path):
    result = train(
        method="sft",
        model=str(world / "base"),
        data=str(world / "sft.jsonl"),
        output=str(tmp_path / "sft"),
        max_steps=15,
        lr=1e-3,
        batch_size=16,
        lora_rank=0,
        save_every=0,
    )
    losses = [r["loss"] for r in result.log]
    assert losses[-1] < losses[0] - 1.0 and losses[0] > 3.0  # random init: ~ln(vocab) nats per token
    backend = HFBackend(str(tmp_path / "sft"), BackendOptions(device="cpu", dtype="float32"))
    assert backend.chat_template  # saved with the base's processor and template


@pytest.mark.parametrize("reference", ["cached", "frozen"])
def test_resume_matches_uninterrupted_run(world, tmp_path, reference):
    lora_rank = 8 if reference == "cached" else 0
    common = dict(
        method="dpo",
        model=str(world / "base"),
        data=str(world / "pairs.jsonl"),
        max_steps=6,
        lr=5e-3,
        batch_size=4,
        grad_accum=2,
        lora_rank=lora_rank,
        reference=reference,
        save_every=2,
    )
    straight = train(output=str(tmp_path / "a"), **common)

    class Stop(Exception):
        pass

    def interrupt(row):
        if row["step"] == 4:  # after the checkpoint at 4 updates, before finishing step 5
            raise Stop

    with pytest.raises(Stop):
        train(output=str(tmp_path / "b"), on_step=interrupt, **common)
    assert (tmp_path / "b" / "resume" / "state.safetensors").is_file()
    with pytest.raises(UserError, match="other settings"):
        train(output=str(tmp_path / "b"), **{**common, "lr": 1e-3})
    resumed = train(output=str(tmp_path / "b"), **common)
    assert resumed.resumed_from == 4
    a, b = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert [r["step"] for r in b] == list(range(6))
    for ra, rb in zip(a, b, strict=True):
        assert rb["loss"] == pytest.approx(ra["loss"], abs=1e-6)
        assert rb["rewards/margins"] == pytest.approx(ra["rewards/margins"], abs=1e-6)
    assert straight.log[-1]["loss"] == pytest.approx(resumed.log[-1]["loss"], abs=1e-6)
    weights = [load_file(tmp_path / x / "model.safetensors") for x in ("a", "b")]
    assert weights[0].keys() == weights[1].keys()
    for name, value in weights[0].items():
        assert torch.allclose(value, weights[1][name], rtol=0, atol=1e-6), name
    before = (tmp_path / "b" / "model.safetensors").stat().st_mtime_ns
    again = train(output=str(tmp_path / "b"), **common)  # finished: complete, nothing retrained
    assert again.already_complete and again.steps == 6 and again.log == _rows(tmp_path / "b")
    assert (tmp_path / "b" / "model.safetensors").stat().st_mtime_ns == before
    with pytest.raises(UserError, match=r"finished checkpoint trained with other settings \(lr\)"):
        train(output=str(tmp_path / "b"), **{**common, "lr": 1e-3})


def test_model_toy_resolves_like_evalkit_run(monkeypatch, tmp_path):
    import evalkit.toy.model as toy

    monkeypatch.setattr(toy, "ensure_toy_model", lambda: tmp_path / "toy-ckpt")
    assert resolve_model("toy") == str(tmp_path / "toy-ckpt")
    assert resolve_model("hf:org/name") == "org/name"


def test_config_errors():
    with pytest.raises(UserError, match="pass --reward"):
        TrainConfig(method="online-dpo", model="toy", data="x", output="y")
    with pytest.raises(UserError, match="not both"):
        TrainConfig(method="rs", model="toy", data="x", output="y", reward="toy-objects", judge="openai:m")
    with pytest.raises(UserError, match="apply to rs, online-dpo, mixed-dpo only"):
        TrainConfig(method="dpo", model="toy", data="x", output="y", reward="toy-objects")
    with pytest.raises(UserError, match="cannot serve --method mixed-dpo"):
        TrainConfig(method="mixed-dpo", model="toy", data="x", output="y", reward="r:f", reference="cached")
    with pytest.raises(UserError, match="unknown SteerLM attribute 'loudness'"):
        TrainConfig(method="steerlm", model="toy", data="x", output="y", steer="loudness=2")
    with pytest.raises(UserError, match="--steer applies to --method steerlm only"):
        TrainConfig(method="sft", model="toy", data="x", output="y", steer="verbosity=2")
    with pytest.raises(UserError, match="invalid value for --offline-prob"):
        TrainConfig(method="mixed-dpo", model="toy", data="x", output="y", reward="r:f", offline_prob=1.5)
    TrainConfig(method="rs", model="toy", data="x", output="y", format="seed")  # pre-scored: no reward
    with pytest.raises(UserError, match="adapter-off needs LoRA"):
        TrainConfig(method="dpo", model="toy", data="x", output="y", lora_rank=0, reference="adapter-off")


@pytest.mark.parametrize(
    ("method", "data", "fragment"),
    [
        ("nosuch", "x.jsonl", "unknown training method 'nosuch'"),
        ("rs", "x.jsonl", "--method rs ranks samples of the policy: pass --reward"),
        ("online-dpo", "x.jsonl", "--method online-dpo ranks samples of the policy"),
        ("bdhs", "/nonexistent/sft.jsonl", "file not found"),
        ("dpo", "/nonexistent/pairs.jsonl", "file not found"),
    ],
)
def test_cli_errors_are_one_line_exit_2(tmp_path, method, data, fragment):
    args = ["train", "--method", method, "--model", "toy", "--data", data, "--output", str(tmp_path / "o")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    text = result.stderr.strip()
    assert text.startswith("error:") and len(text.splitlines()) == 1 and "Traceback" not in text
    assert fragment in text
    assert not (tmp_path / "o").exists()


def test_cli_help_lists_flags():
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in (
        "--method",
        "--model",
        "--data",
        "--output",
        "--max-steps",
        "--epochs",
        "--lr",
        "--beta",
        "--loss",
        "--batch-size",
        "--grad-accum",
        "--lora-rank",
        "--reference",
        "--seed",
        "--max-length",
        "--format",
        "--save-every",
        "--samples",
        "--temperature",
        "--reward",
        "--judge",
        "--offline-prob",
        "--steer",
        "--embedder",
        "--bdhs-keep",
        "--bdhs-threshold",
        "--bdhs-tries",
    ):
        assert flag in result.output, flag
