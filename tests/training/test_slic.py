"""SLiC (hinge) loss and the label-noise option (`--flip-fraction`): the loss against a float64 hand
computation, gradcheck, one `evalkit train --loss slic` run on the toy world, and the flipped pairs."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.training.config import TrainConfig
from evalkit.training.data import load_preferences
from evalkit.training.dpo import dpo_loss
from evalkit.training.label_noise import flip_pairs, flipped_positions
from evalkit.types import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_slic_loss_matches_hand_computation_float64():
    pc, pr = np.array([-4.0, -10.5, -2.0]), np.array([-6.5, -3.0, -2.25])
    rc, rr = np.array([-5.0, -9.0, -2.0]), np.array([-5.5, -7.0, -2.0])
    t64 = [torch.tensor(x) for x in (pc, pr, rc, rr)]
    for beta, delta in [(0.1, 1.0), (0.5, 1.0), (2.0, 0.25)]:
        # h by hand: pair 0: (1) - (-1) = 2; pair 1: (-1.5) - (4) = -5.5; pair 2: 0 - (-0.25) = 0.25
        h = np.array([2.0, -5.5, 0.25])
        want = np.mean(np.maximum(0.0, delta - beta * h))
        out = dpo_loss(*t64, beta, "slic", delta=delta)
        assert out.loss.dtype == torch.float64
        assert abs(out.loss.item() - want) < 1e-12, (beta, delta)
        np.testing.assert_allclose(out.losses.numpy(), np.maximum(0.0, delta - beta * h), atol=1e-12)
        np.testing.assert_allclose(out.margins.numpy(), beta * h, atol=1e-12)
    # beta 2, delta 0.25: pair 0 (β·h = 4) and pair 2 (β·h = 0.5) are past the margin and cost nothing
    assert dpo_loss(*t64, 2.0, "slic", delta=0.25).losses.tolist() == [0.0, 11.25, 0.0]
    # the default delta is 1 (TRL's hinge, relu(1 - β·h)); at step 0 (h = 0) the loss is exactly delta
    assert abs(dpo_loss(*t64, 0.1, "slic").loss.item() - np.mean(np.maximum(0, 1 - 0.1 * h))) < 1e-12
    zero = [torch.zeros(2, dtype=torch.float64)] * 4
    assert dpo_loss(*zero, 0.3, "slic", delta=0.7).loss.item() == pytest.approx(0.7, abs=1e-15)
    with pytest.raises(ValueError, match="delta"):
        dpo_loss(*t64, 0.1, "slic", delta=0.0)


def test_gradcheck_slic_loss():
    # margins kept away from the hinge's kink (β·h = δ), where it has no derivative
    pc = torch.tensor([-1.0, -8.0, -3.0, -2.0], dtype=torch.float64, requires_grad=True)
    pr = torch.tensor([-9.0, -2.0, -3.5, -8.0], dtype=torch.float64, requires_grad=True)
    rc = torch.tensor([-2.0, -6.0, -3.0, -2.5], dtype=torch.float64, requires_grad=True)
    rr = torch.tensor([-2.0, -6.0, -3.0, -2.5], dtype=torch.float64, requires_grad=True)
    inputs = (pc, pr, rc, rr)
    assert torch.autograd.gradcheck(lambda a, b, c, d: dpo_loss(a, b, c, d, 0.2, "slic").loss, inputs)
    loss = dpo_loss(pc, pr, rc, rr, 0.2, "slic")
    loss.loss.backward()
    # d/d pc of mean(relu(1 - 0.2 h)) = -0.2/4 where active; pair 0 has h = 8 (0.2·8 > 1): no gradient
    np.testing.assert_allclose(pc.grad.numpy(), [0.0, -0.05, -0.05, 0.0], atol=1e-15)


def test_flipped_positions_exact_set_and_count():
    for n, fraction in [(16, 0.25), (16, 0.5), (16, 0.75), (7, 0.5), (10, 1.0), (3, 0.1)]:
        where = flipped_positions(n, fraction, seed=3)
        assert len(where) == round(fraction * n) and len(set(where)) == len(where)
        assert where == sorted(random.Random("flip:3").sample(list(range(n)), round(fraction * n)))
    assert flipped_positions(7, 0.5, 3) == flipped_positions(7, 0.5, 3)
    assert flipped_positions(16, 0.5, 3) != flipped_positions(16, 0.5, 4)
    assert flipped_positions(10, 1.0, 0) == list(range(10)) and flipped_positions(10, 0.0, 0) == []


def test_flip_pairs_swaps_exactly_the_seeded_pairs(world):
    data = load_preferences(world / "pairs.jsonl")
    records = [json.loads(x) for x in (world / "pairs.jsonl").read_text().splitlines()]
    n = len(records)
    assert n == 16 and flip_pairs(data, 0.0, 5) is data  # F = 0: untouched
    noisy = flip_pairs(data, 0.25, 5)
    expect = set(random.Random("flip:5").sample(range(n), 4))
    for i, (rec, pair) in enumerate(zip(records, noisy.items, strict=True)):
        if i in expect:
            assert (pair.chosen, pair.rejected) == (rec["rejected"], rec["chosen"]) and pair.scores["flipped"]
        else:
            assert (pair.chosen, pair.rejected) == (rec["chosen"], rec["rejected"])
            assert pair == data.items[i]
    assert noisy.info["label_noise"]["flipped_pairs"] == 4 and noisy.info["sha256"] == data.info["sha256"]
    assert "swapped in 4 of 16 pairs" in noisy.summary()
    assert [p.chosen for p in data.items] == [r["chosen"] for r in records]  # the loaded data is not changed


def test_flip_fraction_config_errors_and_resume_identity():
    base = {"method": "dpo", "model": "toy", "data": "x", "output": "y"}
    with pytest.raises(UserError, match=r"--flip-fraction 1.5 .*\[0, 1\]"):
        TrainConfig(**base, flip_fraction=1.5)
    with pytest.raises(UserError, match="--flip-fraction flips preference pairs.*not --method sft"):
        TrainConfig(**{**base, "method": "sft"}, flip_fraction=0.25)
    with pytest.raises(UserError, match="applies to dpo and mixed-dpo, not --method bdhs"):
        TrainConfig(**{**base, "method": "bdhs"}, flip_fraction=0.25)  # its rejected answers are generated
    with pytest.raises(UserError, match="--loss must be sigmoid, ipo or slic"):
        TrainConfig(**base, loss="hinge")
    with pytest.raises(UserError, match="--slic-delta nan"):
        TrainConfig(**base, loss="slic", slic_delta=float("nan"))
    assert TrainConfig(**base, flip_fraction=0.25).resume_key() != TrainConfig(**base).resume_key()
    assert TrainConfig(**base, slic_delta=0.5).resume_key() != TrainConfig(**base).resume_key()


def test_cli_flip_fraction_on_sft_is_one_line_exit_2(tmp_path):
    args = ["train", "--method", "sft", "--model", "toy", "--data", "x.jsonl"]
    args += ["--output", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*args, "--flip-fraction", "0.5"])
    assert result.exit_code == 2, result.output
    text = result.stderr.strip()
    assert text.startswith("error:") and len(text.splitlines()) == 1 and "--flip-fraction" in text


def test_cli_train_slic_with_flipped_pairs(world, tmp_path):
    out = tmp_path / "slic"
    args = ["train", "--method", "dpo", "--model", str(world / "base"), "--data", str(world / "pairs.jsonl")]
    args += ["--output", str(out), "--max-steps", "2", "--lr", "1e-2", "--beta", "0.5", "--batch-size", "4"]
    args += ["--lora-rank", "4", "--loss", "slic", "--slic-delta", "0.8", "--flip-fraction", "0.5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    assert rows[0]["loss"] == pytest.approx(0.8, abs=1e-6)  # policy == reference: h = 0, loss = delta
    info = json.loads((out / "train_config.json").read_text())
    assert info["completed"] and info["config"]["loss"] == "slic" and info["config"]["slic_delta"] == 0.8
    assert info["config"]["flip_fraction"] == 0.5
    assert info["data"]["label_noise"]["flipped_pairs"] == 8 and info["data"]["label_noise"]["of_pairs"] == 16
