"""Diffusion noise on an image's pixel values (BDHS_noise, training.md §1b).

The alignment study (seed (b)) writes BDHS_noise's rejected answers from a noised image instead of an
attention-masked one, with the forward diffusion process of the POVID baseline: over 1000 steps

    β_k = sigmoid(−6 + 12k/1000)·(5e−3 − 1e−5) + 1e−5,   ᾱ_N = Π_{k=1..N} (1 − β_k),
    x̃ = √ᾱ_N·x + √(1 − ᾱ_N)·ε,   ε ~ N(0, I),

N = 500 by default (ᾱ_500 ≈ 0.746: x̃ is 0.86·x plus noise of standard deviation 0.50, on pixel values
normalised to about unit scale; ᾱ_1000 ≈ 0.081). It is applied to the processor's pixel values
(the normalised tensor the vision tower reads, as POVID's code noises its image tensor), elementwise, so it
works for every family whatever its pixel layout (tiles, patches, several images). ε comes from a CPU
`torch.Generator` seeded per request, so a noised image does not depend on the batch or the device.
(POVID's code spaces the sigmoid's argument with `linspace(−6, 6, 1000)` and takes ᾱ at index N, i.e. N+1
factors; the paper's formula used here differs from it by 0.1% in ᾱ_500.)
"""

from __future__ import annotations

import math
from typing import Any

TOTAL_STEPS = 1000


def beta(k: int) -> float:
    """β_k of step k (1..1000)."""
    return 1.0 / (1.0 + math.exp(-(-6.0 + 12.0 * k / TOTAL_STEPS))) * (5e-3 - 1e-5) + 1e-5


def alpha_bar(steps: int) -> float:
    """ᾱ_N = Π_{k=1..N} (1 − β_k); ᾱ_0 = 1 (no noise)."""
    if not 0 <= steps <= TOTAL_STEPS:
        raise ValueError(f"noise steps must be in [0, {TOTAL_STEPS}], got {steps}")
    out = 1.0
    for k in range(1, steps + 1):
        out *= 1.0 - beta(k)
    return out


def noise_pixels(pixel_values: Any, steps: int, seed: int) -> Any:
    """`pixel_values` after `steps` forward diffusion steps, ε drawn from a generator seeded by `seed`;
    same shape, dtype and device."""
    import torch

    a = alpha_bar(steps)
    generator = torch.Generator().manual_seed(int(seed))
    eps = torch.randn(pixel_values.shape, generator=generator, dtype=torch.float32)
    x = pixel_values.detach().to("cpu", torch.float32)
    noised = math.sqrt(a) * x + math.sqrt(1.0 - a) * eps
    return noised.to(device=pixel_values.device, dtype=pixel_values.dtype)
