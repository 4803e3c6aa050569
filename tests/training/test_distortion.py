"""POVID-style distortion (`training.distortion`): the distorted answer's log-probability against a
position-by-position hand computation on the toy model, and one training run."""

from __future__ import annotations

import json
import math

import pytest
import torch

from evalkit.toy.model import build_toy_model
from evalkit.training.batching import Encoder
from evalkit.training.data_records import SFTExample
from evalkit.training.distortion import distorted_logps
from evalkit.training.image_noise import noise_pixels
from evalkit.training.trainer import train
from evalkit.types import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_distorted_logps_by_hand(world):
    model, processor = build_toy_model(seed=0)
    model.eval()
    encoder = Encoder(processor)
    rows = [json.loads(x) for x in (world / "sft.jsonl").read_text().splitlines()][:3]
    examples = [SFTExample(r["prompt"], r["response"], str(world / r["image"]), "t", r["id"]) for r in rows]
    batch = encoder.encode_sft(examples)
    noised = noise_pixels(batch.extras["pixel_values"], 500, 4)
    with torch.no_grad():
        got = distorted_logps(model, batch, noised)
        expected = []
        for i, ex in enumerate(examples):  # one row at a time, full logits, position by position
            one = encoder.encode_sft([ex])
            inputs = one.model_inputs()
            clean = model(**inputs).logits[0].double()
            noisy = model(**{**inputs, "pixel_values": noised[i : i + 1]}).logits[0].double()
            total = 0.0
            for t in range(1, one.input_ids.shape[1]):
                if one.answer_mask[0, t]:
                    token = int(noisy[t - 1].argmax())
                    total += float(torch.log_softmax(clean[t - 1], -1)[token])
            expected.append(total)
    assert got.tolist() == pytest.approx(expected, abs=1e-4)


def test_distortion_trains_as_the_second_rejected(world, tmp_path):
    out = tmp_path / "d"
    result = train(
        method="dpo", second_rejected="distortion", model=str(world / "base"),
        data=str(world / "pairs.jsonl"), output=str(out), max_steps=3, batch_size=4, lora_rank=4,
        save_every=0, lr=1e-2,
    )  # fmt: skip
    ln2 = math.log(2)  # step 0: policy and reference pick the same distorted tokens, every margin is 0
    assert result.log[0]["second/loss"] == pytest.approx(ln2, abs=1e-6)
    assert result.log[0]["loss"] == pytest.approx(ln2, abs=1e-6)
    assert result.log[-1]["second/loss"] != pytest.approx(ln2, abs=1e-6)
    info = json.loads((out / "train_config.json").read_text())
    assert info["config"]["second_rejected"] == "distortion" and info["config"]["noise_steps"] == 500


def test_distortion_needs_an_image_on_every_pair(world, tmp_path):
    path = tmp_path / "text.jsonl"
    path.write_text(json.dumps({"prompt": "hi", "chosen": "hello.", "rejected": "go."}) + "\n")
    with pytest.raises(UserError, match="noises each pair's image"):
        train(method="dpo", second_rejected="distortion", model=str(world / "base"), data=str(path),
              output=str(tmp_path / "o"), max_steps=1)  # fmt: skip


def test_the_pair_batch_pass_scores_the_chosen_rows_like_the_answers_alone(world):
    from evalkit.training.data import load_preferences
    from evalkit.training.distortion import _scores

    model, processor = build_toy_model(seed=0)
    model.eval()
    encoder = Encoder(processor)
    pairs = load_preferences(world / "pairs.jsonl").items[:3]
    batch = encoder.encode_pairs(pairs)
    noised = noise_pixels(batch.extras["pixel_values"], 500, 2)
    answers = encoder.encode_sft([SFTExample(p.prompt, p.chosen, p.image, p.source, p.id) for p in pairs])
    with torch.no_grad():
        sums, second = _scores(model, batch, noised)
        alone = distorted_logps(model, answers, noised[:3])  # the toy layout: one image per row
    assert second.tolist() == pytest.approx(alone.tolist(), abs=1e-4)
    assert sums.shape == (6,)
