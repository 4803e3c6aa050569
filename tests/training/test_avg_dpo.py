"""The two-rejected loss (`training.avg_dpo`): by hand in float64 for each loss type, gamma = 1 is the
one-rejected loss exactly, one training run on the toy model per second-rejected source, and the
configuration errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.training.avg_dpo import avg_dpo_loss, doubled
from evalkit.training.config import TrainConfig
from evalkit.training.data_records import PreferencePair
from evalkit.training.dpo import dpo_loss
from evalkit.training.trainer import train
from evalkit.types import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


def _hand(h: np.ndarray, loss: str, beta: float, delta: float) -> np.ndarray:
    if loss == "sigmoid":
        return np.log1p(np.exp(-beta * h))
    if loss == "ipo":
        return (h - 1.0 / (2.0 * beta)) ** 2
    return np.maximum(0.0, delta - beta * h)


@pytest.mark.parametrize("loss", ["sigmoid", "ipo", "slic"])
@pytest.mark.parametrize("gamma", [0.5, 0.2])
def test_two_rejected_loss_by_hand(loss, gamma):
    rng = np.random.default_rng(3)
    pc, pr, ps, rc, rr, rs = (rng.normal(-20, 4, size=6) for _ in range(6))
    beta, delta, lam = 0.3, 0.8, 0.05
    h1 = (pc - rc) - (pr - rr)
    h2 = (pc - rc) - (ps - rs)
    expected = np.mean(gamma * _hand(h1, loss, beta, delta) + (1 - gamma) * _hand(h2, loss, beta, delta))
    expected += lam * np.mean(-pc)
    t = [torch.tensor(x, dtype=torch.float64) for x in (pc, pr, ps, rc, rr, rs)]
    out = avg_dpo_loss(*t, beta=beta, loss_type=loss, gamma=gamma, sft_weight=lam, delta=delta)
    assert float(out.loss) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    metrics = out.metrics()
    assert metrics["first/loss"] == pytest.approx(np.mean(_hand(h1, loss, beta, delta)), rel=1e-12)
    assert metrics["second/loss"] == pytest.approx(np.mean(_hand(h2, loss, beta, delta)), rel=1e-12)
    assert metrics["second/rewards/margins"] == pytest.approx(np.mean(beta * h2), rel=1e-12)
    assert metrics["rewards/margins"] == pytest.approx(np.mean(beta * h1), rel=1e-12)
    assert metrics["second/rewards/accuracies"] == np.mean(h2 > 0)


@pytest.mark.parametrize("loss", ["sigmoid", "ipo", "slic"])
def test_gamma_one_is_the_one_rejected_loss_exactly(loss):
    g = torch.Generator().manual_seed(0)
    pc, pr, ps, rc, rr, rs = (torch.randn(5, generator=g, dtype=torch.float64) * 5 for _ in range(6))
    one = dpo_loss(pc, pr, rc, rr, 0.1, loss, sft_weight=0.1)
    two = avg_dpo_loss(pc, pr, ps, rc, rr, rs, 0.1, loss, gamma=1.0, sft_weight=0.1)
    assert torch.equal(one.loss, two.loss) and torch.equal(one.losses, two.losses)


def test_gamma_outside_the_unit_interval_is_refused():
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="gamma"):
        avg_dpo_loss(x, x, x, x, x, x, 0.1, gamma=1.5)


def test_doubled_pairs_put_the_second_rejected_in_the_second_half():
    a = PreferencePair("q", "yes.", "no.", None, "f:1", "a", second_rejected="maybe.")
    b = PreferencePair("q", "red.", "blue.", None, "f:2", "b", second_rejected="green.")
    out = doubled([a, b])
    assert [(p.chosen, p.rejected, p.id) for p in out] == [
        ("yes.", "no.", "a"), ("red.", "blue.", "b"),
        ("yes.", "maybe.", "a#second"), ("red.", "green.", "b#second"),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="no second rejected"):
        doubled([PreferencePair("q", "yes.", "no.", None, "f:3", "c")])


def _with_second(world, tmp_path, second="a clock."):
    rows = [json.loads(x) for x in (world / "pairs.jsonl").read_text().splitlines()]
    keep = [r for r in rows if r["chosen"] != second]
    for r in keep:
        r["second_rejected"], r["image"] = second, str(world / r["image"])
    path = tmp_path / "pairs2.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in keep))
    return path, len(keep)


def test_second_rejected_from_the_data_trains_and_gamma_one_matches_plain_dpo(world, tmp_path):
    data, n = _with_second(world, tmp_path)
    common = dict(model=str(world / "base"), data=str(data), method="dpo", max_steps=3, batch_size=4,
                  lora_rank=4, save_every=0, lr=1e-3)  # fmt: skip
    two = train(output=str(tmp_path / "two"), second_rejected="data", **common)
    row0 = two.log[0]
    ln2 = math.log(2)  # policy == reference at step 0: both terms are ln 2
    assert row0["loss"] == pytest.approx(ln2, abs=1e-6)
    assert row0["first/loss"] == pytest.approx(ln2, abs=1e-6) and row0["second/loss"] == pytest.approx(
        ln2, abs=1e-6
    )
    assert two.log[-1]["second/loss"] < ln2  # the second rejected answer is trained against
    info = json.loads((tmp_path / "two" / "train_config.json").read_text())
    assert info["config"]["second_rejected"] == "data" and info["config"]["gamma"] == 0.5
    assert info["examples"] == n
    # gamma = 1: the second term has no weight, the run is plain DPO on the same pairs
    plain = train(output=str(tmp_path / "plain"), **common)
    only_first = train(output=str(tmp_path / "g1"), second_rejected="data", gamma=1.0, **common)
    for a, b in zip(plain.log, only_first.log, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-6)
        assert b["rewards/margins"] == pytest.approx(a["rewards/margins"], abs=1e-6)


def test_second_rejected_settings_are_in_the_resume_identity():
    base = dict(method="dpo", model="toy", data="d.jsonl", output="o")
    a = TrainConfig(**base, second_rejected="data").resume_key()
    b = TrainConfig(**base, second_rejected="data", gamma=0.3).resume_key()
    c = TrainConfig(**base, second_rejected="bdhs").resume_key()
    assert a != b and a != c and a["second_rejected"] == "data" and b["gamma"] == 0.3


def test_second_rejected_bdhs_is_written_by_the_starting_model(world, tmp_path, word_embedder):
    out = tmp_path / "bdhs2"
    result = train(
        method="dpo", model=str(world / "base"), data=str(world / "pairs.jsonl"), output=str(out),
        second_rejected="bdhs", embedder=str(word_embedder), bdhs_tries=2, max_steps=1, batch_size=4,
        lora_rank=4, save_every=0,
    )  # fmt: skip
    lines = (out / "prepared" / "bdhs_second_rejected.jsonl").read_text().splitlines()
    header, rows = json.loads(lines[0]), [json.loads(x) for x in lines[1:]]
    pairs = {r["id"]: r for r in map(json.loads, (world / "pairs.jsonl").read_text().splitlines())}
    assert rows and header["key"]["bdhs"]["image"] == "mask"
    for r in rows:
        assert r["second_rejected"].strip() and r["second_rejected"].strip() != pairs[r["id"]]["chosen"]
    info = json.loads((out / "train_config.json").read_text())
    assert info["second_rejected_bdhs"]["pairs"] == len(rows) == info["examples"]
    assert result.log[0]["second/loss"] == pytest.approx(math.log(2), abs=1e-6)


def test_second_rejected_data_without_the_field_is_one_line(world, tmp_path):
    with pytest.raises(UserError, match="second_rejected' field; .* has none") as err:
        train(method="dpo", model=str(world / "base"), data=str(world / "pairs.jsonl"),
              output=str(tmp_path / "o"), second_rejected="data", max_steps=1)  # fmt: skip
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"method": "dpo", "second_rejected": "gpt"}, "--second-rejected must be one of"),
        ({"method": "sft", "second_rejected": "data"}, "applies to --method dpo"),
        ({"method": "dpo", "second_rejected": "data", "gamma": 1.5}, "--gamma 1.5"),
        ({"method": "dpo", "gamma": 0.3}, "give --second-rejected"),
        ({"method": "dpo", "second_rejected": "data", "reference": "cached"}, "cached cannot serve"),
        ({"method": "dpo", "bdhs_image": "noise"}, "--bdhs-image noise applies"),
        ({"method": "bdhs", "bdhs_image": "blur"}, "mask or noise"),
        ({"method": "bdhs", "bdhs_image": "noise", "noise_steps": 0}, "--noise-steps 0"),
        ({"method": "online-bdhs", "reference": "cached"}, "cached cannot serve --method online-bdhs"),
    ],
)
def test_bad_combinations_are_one_line_errors(settings, message):
    with pytest.raises(UserError, match=message) as err:
        TrainConfig(model="toy", data="d.jsonl", output="o", **settings)
    assert "\n" not in str(err.value)


def test_help_explains_the_new_flags():
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in ("--second-rejected", "--gamma", "--bdhs-image", "--noise-steps", "online-bdhs"):
        assert flag in result.output


def test_generic_records_carry_the_second_rejected_field(tmp_path):
    from evalkit.training.data import load_preferences

    rows = [
        {"id": "a", "prompt": "q", "chosen": "yes.", "rejected": "no.", "second_rejected": "maybe."},
        {"id": "b", "prompt": "q", "chosen": "red.", "rejected": "blue.", "second_rejected": None},
        {"id": "c", "prompt": "q", "chosen": "one.", "rejected": "two.", "second_rejected": " "},
        {"id": "d", "prompt": "q", "chosen": "up.", "rejected": "down.", "second_rejected": "up."},
    ]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_preferences(path)
    assert {p.id: p.second_rejected for p in data.items} == {"a": "maybe.", "b": None}
    assert data.info["skipped"] == {"empty second_rejected": 1, "chosen == second_rejected": 1}


def test_an_overlong_second_rejected_answer_is_refused_at_load(world, tmp_path):
    # 2,400 tokens: over the toy model's context of 2,048
    data, _ = _with_second(world, tmp_path, second="a clock. " * 800)
    with pytest.raises(UserError, match="does not fit the model's context") as err:
        train(method="dpo", model=str(world / "base"), data=str(data), output=str(tmp_path / "o"),
              second_rejected="data", max_steps=1, lora_rank=4)  # fmt: skip
    assert "\n" not in str(err.value)
