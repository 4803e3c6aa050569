"""Online-BDHS (`training.online_bdhs`): the rejected answers of step s are written by the policy as it is
at step s (equal to offline BDHS from the starting model at step 0 with the same seeds, different after
updates), the counts are logged, and a resumed run makes the same pairs as an uninterrupted one."""

from __future__ import annotations

import json

import pytest

from evalkit.toy.model import build_toy_model
from evalkit.training import online_bdhs as online_bdhs_mod
from evalkit.training.batching import Encoder
from evalkit.training.bdhs import BdhsConfig, bdhs_pairs
from evalkit.training.embedding import load_embedder
from evalkit.training.online_bdhs import OnlineBdhs
from evalkit.training.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")


def _settings(world, out, embedder, **extra):
    base = dict(
        method="online-bdhs", model=str(world / "base"), data=str(world / "sft.jsonl"), output=str(out),
        embedder=str(embedder), bdhs_tries=2, batch_size=4, lora_rank=4, save_every=0,
    )  # fmt: skip
    return {**base, **extra}


def _record(monkeypatch):
    """Wrap OnlineBdhs.make: every call's step, micro-batch, examples and pairs, and whether the model it
    was given had been updated (LoRA's B matrices start at zero)."""
    calls = []
    real = OnlineBdhs.make

    def make(self, model, examples, step, micro):
        pairs, counts = real(self, model, examples, step, micro)
        updated = any(float(p.detach().abs().sum()) > 0 for n, p in model.named_parameters() if "lora_B" in n)
        calls.append({"step": step, "micro": micro, "examples": list(examples), "pairs": pairs,
                      "updated": updated, "counts": counts})  # fmt: skip
        return pairs, counts

    monkeypatch.setattr(online_bdhs_mod.OnlineBdhs, "make", make)
    return calls


def _offline(world, embedder, examples, step, micro):
    """Offline BDHS from the starting model, on the examples under the ids online BDHS gives them."""
    from dataclasses import replace

    model, processor = build_toy_model(seed=0)
    renamed = [replace(ex, id=OnlineBdhs.bdhs_id(ex, step, micro, k)) for k, ex in enumerate(examples)]
    config = BdhsConfig(max_tries=2, seed=0)
    pairs, _ = bdhs_pairs(model, Encoder(processor), renamed, load_embedder(str(embedder)), config)
    return {p.id.split("@")[0]: p.rejected for p in pairs}


def test_rejected_answers_come_from_the_policy_of_each_step(world, tmp_path, word_embedder, monkeypatch):
    calls = _record(monkeypatch)
    result = train(**_settings(world, tmp_path / "o", word_embedder, max_steps=4, lr=5e-2))
    assert [c["step"] for c in calls] == [0, 1, 2, 3]
    assert [c["updated"] for c in calls] == [False, True, True, True]  # the current policy, not the start
    for c, row in zip(calls, result.log, strict=True):
        assert row["bdhs/pairs"] == len(c["pairs"]) and row["bdhs/pairs"] + row["bdhs/skipped"] == 4
        for p in c["pairs"]:  # y+ is the example's own answer
            assert p.chosen == next(e.response for e in c["examples"] if e.id == p.id)
    first = calls[0]
    offline0 = _offline(world, word_embedder, first["examples"], 0, 0)
    assert {p.id: p.rejected for p in first["pairs"]} == offline0  # step 0: the starting model's answers
    later = [
        ({p.id: p.rejected for p in c["pairs"]}, _offline(world, word_embedder, c["examples"], c["step"], 0))
        for c in calls[1:]
    ]
    assert any(online != offline for online, offline in later)  # updated policy: other answers


def test_a_resumed_run_makes_the_same_pairs(world, tmp_path, word_embedder, monkeypatch):
    calls = _record(monkeypatch)
    whole = train(**_settings(world, tmp_path / "whole", word_embedder, max_steps=4, lr=5e-2))
    uninterrupted = {c["step"]: [(p.id, p.rejected) for p in c["pairs"]] for c in calls}

    class Stop(Exception):
        pass

    def stop_at_2(row):
        if row["step"] == 2:
            raise Stop

    settings = _settings(world, tmp_path / "cut", word_embedder, max_steps=4, lr=5e-2, save_every=2)
    with pytest.raises(Stop):
        train(**settings, on_step=stop_at_2)
    calls.clear()
    resumed = train(**settings)
    assert resumed.resumed_from == 2 and [c["step"] for c in calls] == [2, 3]
    assert {c["step"]: [(p.id, p.rejected) for p in c["pairs"]] for c in calls} == {
        s: uninterrupted[s] for s in (2, 3)
    }
    for a, b in zip(whole.log[2:], resumed.log[2:], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-6)
        assert b["bdhs/pairs"] == a["bdhs/pairs"] and b["bdhs/resampled"] == a["bdhs/resampled"]


def test_second_rejected_online_bdhs_keeps_the_data_rejected(world, tmp_path, word_embedder, monkeypatch):
    calls = _record(monkeypatch)
    result = train(
        method="dpo", second_rejected="online-bdhs", model=str(world / "base"),
        data=str(world / "pairs.jsonl"), output=str(tmp_path / "o"), embedder=str(word_embedder),
        bdhs_tries=2, batch_size=4, lora_rank=4, save_every=0, max_steps=2,
    )  # fmt: skip
    data = {r["id"]: r for r in map(json.loads, (world / "pairs.jsonl").read_text().splitlines())}
    for c in calls:
        for p in c["pairs"]:
            assert (p.chosen, p.rejected) == (data[p.id]["chosen"], data[p.id]["rejected"])
            assert p.second_rejected.strip() and p.second_rejected.strip() != p.chosen.strip()
    assert "second/loss" in result.log[0] and "bdhs/pairs" in result.log[0]
    info = json.loads((tmp_path / "o" / "train_config.json").read_text())
    assert info["config"]["second_rejected"] == "online-bdhs"
