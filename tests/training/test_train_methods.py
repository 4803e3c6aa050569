"""The training methods beyond plain SFT / DPO: SteerLM (prompt suffix, attribute-conditioned answers at
inference), rejection sampling (with a reward function and with a judge on a real local server), online
and mixed DPO. The base model is the random toy LLaVA saved into a temp folder (no warm-up)."""

from __future__ import annotations

import json
import math
import random
import re

import pytest
import torch
from support.openai_server import completion
from support.training import save_toy_base
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.models.base import BackendOptions
from evalkit.models.hf import HFBackend
from evalkit.models.steerlm import format_attributes, parse_attributes, parse_steer, steer_prompt
from evalkit.toy.model import build_toy_model
from evalkit.toy.world import OBJECTS, STYLE, render, sample_scenes
from evalkit.training.batching import Encoder
from evalkit.training.data_records import PreferencePair
from evalkit.training.methods import prepared
from evalkit.training.online import OnlinePairs
from evalkit.training.rewards import RATING_PROMPT, RewardFunction, parse_rating, toy_objects
from evalkit.training.trainer import train
from evalkit.types import GenerationConfig, Message, Request, UserError

PROMPT = "describe the image."


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A saved random toy base, 32 scenes; SteerLM records whose verbosity decides the answer's length."""
    d = tmp_path_factory.mktemp("methods-world")
    save_toy_base(d)
    rng = random.Random(0)
    steer, sft = [], []
    for scene in sample_scenes(32, seed=11):
        render(scene).save(d / f"{scene.image_id}.png")
        objs = sorted(scene.objects, key=OBJECTS.index)
        common = {"image": f"{scene.image_id}.png", "prompt": PROMPT}
        sft.append({**common, "id": scene.image_id, "response": f"{', '.join(objs[:-1])} and {objs[-1]}."})
        for verbosity in (0, 4):
            attrs = {"helpfulness": rng.randint(2, 4), "correctness": 4, "coherence": 4, "complexity": 2}
            answer = f"{objs[0]}." if verbosity == 0 else f"{', '.join(objs[:-1])} and {objs[-1]}."
            steer.append(
                {**common, "id": f"{scene.image_id}-v{verbosity}", "response": answer,
                 "attributes": {**attrs, "verbosity": verbosity}}
            )  # fmt: skip
    (d / "steer.jsonl").write_text("".join(json.dumps(r) + "\n" for r in steer))
    (d / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))
    return d


# ---- SteerLM ---------------------------------------------------------------------------------------


def test_steer_prompt_is_the_seed_format():
    attrs = {"Helpfulness": 1, "Correctness": 4, "Coherence": 4, "Complexity": 2, "Verbosity": 1}
    expected = (
        "What is it?\nPlease answer the question such that your response is in the following attributes in "
        "5-point Likert scale:\nHelpfulness:1,Correctness:4,Coherence:4,Complexity:2,Verbosity:1"
    )
    assert steer_prompt("What is it?", attrs) == expected
    assert parse_attributes(format_attributes(attrs)) == {k.lower(): v for k, v in attrs.items()}
    assert format_attributes({**attrs, "Verbosity": 3.0}).endswith("Verbosity:3")
    assert parse_steer("verbosity=1, Complexity:2") == {
        "helpfulness": 4, "correctness": 4, "coherence": 4, "complexity": 2, "verbosity": 1
    }  # fmt: skip
    for bad, fragment in [
        ("verbosity=7", "0-4 scale"),
        ("loud=1", "unknown SteerLM attribute"),
        ("verbosity", "NAME=VALUE"),
    ]:
        with pytest.raises(UserError, match=fragment):
            parse_steer(bad)
    with pytest.raises(UserError, match="lack complexity, verbosity"):
        format_attributes({"helpfulness": 1, "correctness": 1, "coherence": 1})


def _answers(ckpt, scenes_dir, scenes, steer=None):
    backend = HFBackend(str(ckpt), BackendOptions(device="cpu", steer=steer))
    reqs = [
        Request(s.image_id, (Message("user", PROMPT, (str(scenes_dir / f"{s.image_id}.png"),)),),
                GenerationConfig(max_new_tokens=20, temperature=0.0))
        for s in scenes
    ]  # fmt: skip
    return backend, [r.text for r in backend.generate(reqs)]


def test_steerlm_trains_on_attribute_prompts_and_answers_by_the_targets(world, tmp_path):
    out = tmp_path / "steer"
    train(
        method="steerlm", model=str(world / "base"), data=str(world / "steer.jsonl"), output=str(out),
        max_steps=60, lr=2e-3, batch_size=16, lora_rank=0, save_every=0,
    )  # fmt: skip
    saved = json.loads((out / "steerlm.json").read_text())
    assert saved["targets"] == dict.fromkeys(("helpfulness", "correctness", "coherence", "complexity"), 4) | {
        "verbosity": 4
    }
    scenes = sample_scenes(32, seed=11)[:12]
    backend, long = _answers(out, world, scenes)
    # the prompt evaluation renders carries the suffix, exactly as the training prompts did
    rendered = backend.prompting.render((Message("user", PROMPT, ("x.png",)),))
    assert rendered == (
        "<s><user> <image> describe the image.\nPlease answer the question such that your response is in the "
        "following attributes in 5-point Likert scale:\n"
        "Helpfulness:4,Correctness:4,Coherence:4,Complexity:4,Verbosity:4\n<assistant>"
    )
    assert backend.fingerprint()["steer"]["verbosity"] == 4
    _, short = _answers(out, world, scenes, steer="verbosity=0")
    n_long = sum(len(re.findall(r"[a-z]+", t)) for t in long) / len(long)
    n_short = sum(len(re.findall(r"[a-z]+", t)) for t in short) / len(short)
    assert n_long > n_short + 1.5, (long, short)


def test_steer_flag_needs_a_steerlm_checkpoint(world):
    with pytest.raises(UserError, match="has no steerlm.json"):
        HFBackend(str(world / "base"), BackendOptions(device="cpu", steer="verbosity=1"))


def test_steerlm_refuses_examples_without_attributes(world, tmp_path):
    with pytest.raises(UserError, match="needs attribute scores on every example"):
        train(method="steerlm", model=str(world / "base"), data=str(world / "sft.jsonl"),
              output=str(tmp_path / "o"), max_steps=1, save_every=0)  # fmt: skip


# ---- rejection sampling -------------------------------------------------------------------------------


REWARD_FILE = """
def reward(prompt, response, reference, image):
    return float(len(response.split()))
"""


def test_rejection_sampling_keeps_the_best_rated_sample(world, tmp_path):
    (tmp_path / "r.py").write_text(REWARD_FILE)
    out = tmp_path / "rs"
    train(
        method="rs", model=str(world / "base"), data=str(world / "sft.jsonl"), output=str(out),
        reward=f"{tmp_path / 'r.py'}:reward", samples=3, max_new_tokens=6, max_steps=2, batch_size=8,
        lora_rank=4, save_every=0,
    )  # fmt: skip
    lines = (out / "prepared" / "rs_samples.jsonl").read_text().splitlines()
    header, records = json.loads(lines[0]), [json.loads(x) for x in lines[1:]]
    assert len(records) == 32 and header["key"]["samples"] == 3 and header["key"]["temperature"] == 0.7
    for r in records:
        assert len(r["samples"]) == 3
        ratings = [float(len(s["text"].split())) for s in r["samples"]]  # the reward, recomputed
        assert [s["rating"] for s in r["samples"]] == ratings
        keys = [(s["finished"], x) for s, x in zip(r["samples"], ratings, strict=True)]
        assert r["best"] == keys.index(max(keys))
    info = json.loads((out / "train_config.json").read_text())
    assert info["rejection_sampling"]["kept"] == 32 and info["examples"] == 32


def test_prepared_data_is_reused_with_the_same_settings(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return [{"a": 1}], {"n": 1}

    assert prepared(tmp_path, "x", {"k": 1}, build) == ([{"a": 1}], {"n": 1}, False)
    assert prepared(tmp_path, "x", {"k": 1}, build) == ([{"a": 1}], {"n": 1}, True)
    assert prepared(tmp_path, "x", {"k": 2}, build)[2] is False
    assert len(calls) == 2


def test_rejection_sampling_with_a_judge_on_a_local_server(world, tmp_path, monkeypatch, openai_server):
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    seen = []

    def respond(body):
        text = body["messages"][-1]["content"]
        seen.append(text)
        answer = text.rsplit("[The assistant's response]\n", 1)[1]
        return completion(body, f"The answer has {len(answer)} characters. Rating: [[{len(answer) % 10}]]")

    sft = [json.loads(x) for x in (world / "sft.jsonl").read_text().splitlines()][:4]
    for r in sft:
        r["image"] = str(world / r["image"])
    (tmp_path / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))
    server = openai_server(respond)
    out = tmp_path / "rs"
    train(
        method="rs", model=str(world / "base"), data=str(tmp_path / "sft.jsonl"), output=str(out),
        judge="openai:rater", judge_base_url=server.base_url, samples=2, max_new_tokens=5,
        max_steps=1, batch_size=4, lora_rank=4, save_every=0,
    )  # fmt: skip
    records = [json.loads(x) for x in (out / "prepared" / "rs_samples.jsonl").read_text().splitlines()[1:]]
    first = records[0]["samples"][0]["text"]
    expected = RATING_PROMPT.format(question=PROMPT, reference=sft[0]["response"], response=first)
    assert expected in seen
    for r in records:
        assert [s["rating"] for s in r["samples"]] == [float(len(s["text"]) % 10) for s in r["samples"]]
    info = json.loads((out / "train_config.json").read_text())
    assert info["rejection_sampling"]["judge_usage"]["calls"] == 8


def test_parse_rating():
    assert parse_rating("fine. Rating: [[7]]") == 7.0
    assert parse_rating("Rating: [6.5]") == 6.5
    assert parse_rating("no rating") is None and parse_rating(None) is None


def test_toy_objects_reward_by_hand():
    assert toy_objects("q", "Yes", "yes, it is", None) == 1.0
    assert toy_objects("q", "no.", "Yes", None) == -1.0
    assert toy_objects("q", "apple, dogs and kite.", "apple and dog.", None) == 2 - 2 * 1
    assert toy_objects("q", "", "apple.", None) == 0.0


# ---- online and mixed DPO ------------------------------------------------------------------------------


def _length_scorer():
    return RewardFunction("length", lambda prompt, response, reference, image: float(len(response)))


def _pairs_world(world):
    scenes = sample_scenes(32, seed=11)[:6]
    pairs = []
    for s in scenes:
        absent = sorted(set(STYLE) - set(s.objects))[0]
        pairs.append(
            PreferencePair(PROMPT, f"{s.objects[0]}.", f"{absent}.", str(world / f"{s.image_id}.png"),
                           "t:1", s.image_id)
        )  # fmt: skip
    return pairs


def test_online_pairs_are_ordered_by_reward_and_change_across_steps(world):
    model, processor = build_toy_model(seed=0)
    maker = OnlinePairs(_length_scorer(), Encoder(processor), 1.0, 6, seed=3)
    pairs = _pairs_world(world)
    made0, stats0 = maker.make(model, pairs, step=0, micro=0)
    made1, _ = maker.make(model, pairs, step=1, micro=0)
    assert stats0["online/pairs"] + stats0["online/ties"] + stats0["online/unscored"] == len(pairs)
    assert stats0["online/pairs"] == len(made0) > 0
    for p in made0:
        assert p.scores["online"]["chosen"] == len(p.chosen) and p.scores["online"]["rejected"] == len(
            p.rejected
        )
        assert len(p.chosen) > len(p.rejected) or p.chosen != p.rejected
        assert p.chosen not in (pairs[0].chosen,)  # sampled, not the offline answer
    assert [p.chosen for p in made0] != [p.chosen for p in made1]
    again, _ = maker.make(model, pairs, step=0, micro=0)
    assert [(p.chosen, p.rejected) for p in again] == [(p.chosen, p.rejected) for p in made0]


def test_mixed_dpo_draws_the_offline_pair_with_probability_p(world):
    maker = OnlinePairs(_length_scorer(), None, 1.0, 4, seed=0, offline_prob=0.5)
    draws = [d for step in range(250) for d in maker.offline_draws(8, step, 0)]
    assert abs(sum(draws) / len(draws) - 0.5) < 0.03
    assert maker.offline_draws(8, 5, 1) == maker.offline_draws(8, 5, 1)
    always = OnlinePairs(_length_scorer(), None, 1.0, 4, seed=0, offline_prob=1.0)
    pairs = _pairs_world(world)
    made, stats = always.make(None, pairs, step=0, micro=0)  # no sampling happens: the model is unused
    assert made == pairs and stats["mixed/offline"] == len(pairs) and stats["online/pairs"] == 0


def test_online_dpo_trains_and_logs_its_pairs(world, tmp_path):
    out = tmp_path / "online"
    result = train(
        method="online-dpo", model=str(world / "base"), data=str(world / "sft.jsonl"), output=str(out),
        reward="toy-objects", max_new_tokens=6, max_steps=3, batch_size=4, lora_rank=4, save_every=0,
    )  # fmt: skip
    rows = result.log
    assert len(rows) == 3
    for r in rows:
        assert r["online/pairs"] + r["online/ties"] + r["online/unscored"] == 4
        if r["online/pairs"]:
            assert r["online/reward_chosen"] > r["online/reward_rejected"]
            assert r["loss"] is not None
    assert (out / "config.json").is_file()


def test_mixed_dpo_cli_runs(world, tmp_path):
    pairs = [json.loads(x) for x in (world / "sft.jsonl").read_text().splitlines()][:8]
    for r in pairs:
        r["chosen"], r["rejected"] = r.pop("response"), "clock."
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps({**r, "image": str(world / r["image"])}) + "\n"
                                                  for r in pairs))  # fmt: skip
    out = tmp_path / "mixed"
    args = ["train", "--method", "mixed-dpo", "--model", str(world / "base"), "--data",
            str(tmp_path / "pairs.jsonl"), "--output", str(out), "--reward", "toy-objects",
            "--max-steps", "2", "--batch-size", "4", "--lora-rank", "4", "--max-new-tokens", "5"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert all("mixed/offline" in r for r in rows)


# ---- recipe knobs -----------------------------------------------------------------------------------------


def test_projector_lr_trains_the_projector_at_its_own_rate_and_cosine_schedule(world, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "proj"
    result = train(
        method="sft", model=str(world / "base"), data=str(world / "sft.jsonl"), output=str(out),
        max_steps=4, lr=1e-3, projector_lr=5e-4, schedule="cosine", warmup_ratio=0.0, batch_size=4,
        lora_rank=4, gradient_checkpointing=True, save_every=0,
    )  # fmt: skip
    base = load_file(world / "base" / "model.safetensors")
    tuned = load_file(out / "model.safetensors")
    proj = [k for k in base if "multi_modal_projector" in k]
    vision = [k for k in base if "vision_tower" in k]
    assert proj and all(not torch.equal(base[k], tuned[k]) for k in proj)
    assert all(torch.equal(base[k], tuned[k]) for k in vision)
    # cosine decay from the peak with no warmup: lr_t = lr * (1 + cos(pi * t / T)) / 2, by hand
    import math

    assert [r["lr"] for r in result.log] == pytest.approx(
        [1e-3 * 0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(4)]
    )


# ---- BDHS through the trainer ---------------------------------------------------------------------------


def test_bdhs_writes_rejected_answers_with_the_masked_model_then_trains(world, tmp_path, word_embedder):
    out = tmp_path / "bdhs"
    settings = dict(
        method="bdhs", model=str(world / "base"), data=str(world / "sft.jsonl"), output=str(out),
        embedder=str(word_embedder), bdhs_tries=2, max_steps=2, batch_size=8, lora_rank=4, save_every=0,
    )  # fmt: skip
    result = train(**settings)
    lines = (out / "prepared" / "bdhs_pairs.jsonl").read_text().splitlines()
    header, pairs = json.loads(lines[0]), [json.loads(x) for x in lines[1:]]
    assert header["key"]["bdhs"]["keep"] == 0.01 and header["key"]["bdhs"]["similarity_threshold"] == 0.97
    sft = {r["id"]: r for r in map(json.loads, (world / "sft.jsonl").read_text().splitlines())}
    assert pairs and len(pairs) + sum(header["stats"].get("skipped", {}).values()) == len(sft)
    for p in pairs:
        assert p["chosen"] == sft[p["id"]]["response"] and p["rejected"].strip() != p["chosen"].strip()
        assert 1 <= p["scores"]["bdhs"]["tries"] <= 2
    info = json.loads((out / "train_config.json").read_text())
    assert info["bdhs"]["pairs"] == len(pairs) == info["examples"]
    assert result.log[0]["loss"] == pytest.approx(0.6931471805599453, abs=1e-6)  # ln 2: pairs from the base
    # a crash before the first save: the same command reuses the pairs instead of sampling again
    (out / "model.safetensors").unlink()
    info["completed"] = False
    (out / "train_config.json").write_text(json.dumps(info))
    before = (out / "prepared" / "bdhs_pairs.jsonl").stat().st_mtime_ns
    train(**settings)
    assert (out / "prepared" / "bdhs_pairs.jsonl").stat().st_mtime_ns == before


def test_sft_weight_adds_the_chosen_nll(world, tmp_path):
    pairs = [json.loads(x) for x in (world / "sft.jsonl").read_text().splitlines()][:8]
    for r in pairs:
        r["chosen"], r["rejected"], r["image"] = r.pop("response"), "clock.", str(world / r["image"])
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
    first = {}
    for weight in (0.5, 1.0):
        result = train(
            method="dpo", model=str(world / "base"), data=str(tmp_path / "pairs.jsonl"),
            output=str(tmp_path / f"w{weight}"), max_steps=1, batch_size=8, lora_rank=4, save_every=0,
            sft_weight=weight,
        )  # fmt: skip
        first[weight] = result.log[0]["loss"] - math.log(2)  # step 0: the DPO part is exactly ln 2
    assert first[0.5] > 1.0  # a random model's NLL of a whole answer is large
    assert first[1.0] == pytest.approx(2 * first[0.5], rel=1e-5)
