"""BDHS_noise (`training.image_noise`, training.md §1b): ᾱ_N against a hand computation of the study's β
schedule, the noised tensor's statistics, determinism per seed, the sampler noising the pixel values it
feeds the model, and one BDHS_noise run on the toy model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from evalkit.toy.model import build_toy_model
from evalkit.training.batching import Encoder
from evalkit.training.image_noise import alpha_bar, noise_pixels
from evalkit.training.sampling import SampleRequest, sample
from evalkit.training.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")


def _alpha_bar_by_hand(n: int) -> float:
    k = np.arange(1, n + 1, dtype=np.float64)
    beta = 1.0 / (1.0 + np.exp(6.0 - 12.0 * k / 1000.0)) * (5e-3 - 1e-5) + 1e-5
    return float(np.prod(1.0 - beta))


@pytest.mark.parametrize("n", [1, 100, 500, 1000])
def test_alpha_bar_matches_the_schedule_by_hand(n):
    assert alpha_bar(n) == pytest.approx(_alpha_bar_by_hand(n), rel=1e-12)


def test_alpha_bar_is_close_to_the_povid_code_and_bounded():
    # POVID's code: linspace(-6, 6, 1000) and the cumulative product at index N (N + 1 factors)
    betas = 1.0 / (1.0 + np.exp(-np.linspace(-6, 6, 1000))) * (5e-3 - 1e-5) + 1e-5
    assert alpha_bar(500) == pytest.approx(np.cumprod(1.0 - betas)[500], rel=2e-3)
    assert alpha_bar(1) > alpha_bar(500) > alpha_bar(1000) > 0
    with pytest.raises(ValueError):
        alpha_bar(1001)


def test_noised_tensor_statistics():
    x = torch.full((4, 3, 64, 64), 0.7)
    a = _alpha_bar_by_hand(500)
    y = noise_pixels(x, 500, seed=5)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.mean()) == pytest.approx(np.sqrt(a) * 0.7, abs=0.01)
    assert float(y.std()) == pytest.approx(np.sqrt(1 - a), rel=0.01)
    z = noise_pixels(torch.zeros(2, 3, 8, 8), 1, seed=5)  # one step: tiny noise
    assert float(z.std()) == pytest.approx(np.sqrt(1 - _alpha_bar_by_hand(1)), rel=0.1)


def test_noise_is_deterministic_per_seed_and_keeps_the_dtype():
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(noise_pixels(x, 500, 1), noise_pixels(x, 500, 1))
    assert not torch.equal(noise_pixels(x, 500, 1), noise_pixels(x, 500, 2))
    assert noise_pixels(x.bfloat16(), 500, 1).dtype == torch.bfloat16


def test_the_sampler_feeds_the_model_the_noised_pixel_values(tmp_path):
    model, processor = build_toy_model(seed=0)
    encoder = Encoder(processor)
    Image.new("RGB", (48, 48), "red").save(tmp_path / "r.png")
    image = str(tmp_path / "r.png")
    seen = []
    hook = model.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs.get("pixel_values")), with_kwargs=True
    )
    try:
        sample(model, encoder, [SampleRequest("what?", image, noise=(500, 9))], max_new_tokens=1)
        sample(model, encoder, [SampleRequest("what?", image)], max_new_tokens=1)
    finally:
        hook.remove()
    clean = encoder.encode_prompt("what?", image).extras["pixel_values"]
    assert torch.allclose(seen[1], clean)
    assert torch.allclose(seen[0], noise_pixels(clean, 500, 9))


def test_bdhs_noise_writes_rejected_answers_from_noised_images(world, tmp_path, word_embedder):
    out = tmp_path / "noise"
    result = train(
        method="bdhs", bdhs_image="noise", noise_steps=300, model=str(world / "base"),
        data=str(world / "sft.jsonl"), output=str(out), embedder=str(word_embedder), bdhs_tries=2,
        max_steps=1, batch_size=4, lora_rank=4, save_every=0,
    )  # fmt: skip
    lines = (out / "prepared" / "bdhs_pairs.jsonl").read_text().splitlines()
    header, pairs = json.loads(lines[0]), [json.loads(x) for x in lines[1:]]
    assert header["key"]["bdhs"]["image"] == "noise" and header["key"]["bdhs"]["noise_steps"] == 300
    assert pairs and all(p["rejected"].strip() != p["chosen"].strip() for p in pairs)
    for p in pairs:  # noise instead of masking: every image token stays attendable
        record = p["scores"]["bdhs"]
        assert record["image_positions"] > 0 and record["image_kept"] == record["image_positions"]
    info = json.loads((out / "train_config.json").read_text())
    assert info["config"]["bdhs_image"] == "noise" and info["config"]["noise_steps"] == 300
    assert result.log[0]["loss"] == pytest.approx(0.6931471805599453, abs=1e-6)
