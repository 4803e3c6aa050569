"""Molmo2's image processor without torchvision (`evalkit.models.torch_images`): its output checked against
values worked out by hand from Molmo2's algorithm (bilinear resize of a linear ramp, normalisation, patch
layout, the tiling of an image into overlapping crops), and, where torchvision is installed, against
transformers' own torchvision processor on the same images. The Molmo2 checkpoint of the family matrix
loads with it in place of transformers' class, and saves under that class's name."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from PIL import Image
from support.families import FAMILIES
from support.families.molmo import CROP, PATCH

from evalkit.models.processor_loading import load_processor
from evalkit.models.torch_images import molmo2_image_processor, torch_stand_in

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = {"size": {"height": CROP, "width": CROP}, "patch_size": PATCH, "max_crops": 4}
SETTINGS["overlap_margins"] = [1, 1]


def _ramp(width: int, height: int) -> Image.Image:
    """Red rises 4 per column from 20, green is 100, blue falls 4 per column from 200."""
    x = np.arange(width)
    rgb = np.stack([20 + 4 * x, np.full(width, 100), 200 - 4 * x], axis=-1).astype(np.uint8)
    return Image.fromarray(np.broadcast_to(rgb, (height, width, 3)).copy())


def _crop_pixels(patches: torch.Tensor) -> torch.Tensor:
    """[patches, PATCH*PATCH*3], patches and their pixels row-major, RGB last -> [CROP, CROP, 3]."""
    side = CROP // PATCH
    return patches.reshape(side, side, PATCH, PATCH, 3).permute(0, 2, 1, 3, 4).reshape(CROP, CROP, 3)


def test_the_global_view_is_the_bilinear_resize_normalised():
    out = molmo2_image_processor()(**SETTINGS)(images=[_ramp(24, 16)], return_tensors="pt")
    view = _crop_pixels(out["pixel_values"][0])  # crop 0: the whole image resized to CROP x CROP
    # bilinear, half-pixel centres: output column i samples x = (i + 0.5) * 24 / 16 - 0.5 = 1.5 i + 0.25,
    # where a linear ramp 20 + 4x is 21 + 6 i (an integer: the rounding to bytes changes nothing); the
    # height (16 -> 16) is unchanged; then (v / 255 - 0.5) / 0.5
    i = torch.arange(CROP, dtype=torch.float64)
    red, blue = 21 + 6 * i, 199 - 6 * i
    expected = torch.stack([red, torch.full_like(i, 100.0), blue], -1) / 255 * 2 - 1
    assert view.double() == pytest.approx(expected.expand(CROP, CROP, 3).numpy(), abs=1e-6)


def test_tiling_into_overlapping_crops():
    processor = molmo2_image_processor()(**SETTINGS)
    out = processor(images=[_ramp(40, 30), _ramp(24, 16)], return_tensors="pt")
    # 40 x 30 (w x h): windows of 2 patches (4 per crop less a margin of 1 each side) = 8 pixels, margins 8;
    # tilings of at most 4 crops cannot cover (30 - 8, 40 - 8) = (22, 32) at scale 1, so the one needing the
    # least downscale wins: 2 x 2 (scale min(16/22, 16/32) = 0.5); canvas 2 * 8 + 8 = 24 square, 6 x 6
    # patches, pooled 2 x 2 -> 3 x 3 tokens; the global view is 4 x 4 patches -> 2 x 2 tokens; 1 + 4 crops.
    # 24 x 16: (8, 16) is covered at scale >= 1 by 1 x 2 (scale min(8/8, 16/16) = 1), the least upscale:
    # canvas 16 x 24, 4 x 6 patches -> 2 x 3 tokens; 1 + 2 crops
    assert out["image_grids"].tolist() == [[2, 2, 3, 3], [2, 2, 2, 3]]
    assert out["image_num_crops"].tolist() == [5, 3]
    assert tuple(out["pixel_values"].shape) == (8, (CROP // PATCH) ** 2, PATCH * PATCH * 3)
    # one pooled token per 2 x 2 patches of each view, every index inside its own image's crops
    assert tuple(out["image_token_pooling"].shape) == (4 + 9 + 4 + 6, 4)
    pooling = out["image_token_pooling"]
    assert int(pooling[:13].max()) < 5 * 16 and int(pooling[13:].max()) < 3 * 16


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="needs torchvision")
def test_equals_transformers_torchvision_processor():
    from transformers.models.molmo2.image_processing_molmo2 import Molmo2ImageProcessor

    images = [_ramp(40, 30), Image.new("RGB", (33, 61), (10, 200, 90)), _ramp(24, 16)]
    ours = molmo2_image_processor()(**SETTINGS)(images=images, return_tensors="pt")
    theirs = Molmo2ImageProcessor(**SETTINGS)(images=images, return_tensors="pt")
    assert set(ours) == set(theirs)
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key


def test_other_resampling_is_refused():
    processor = molmo2_image_processor()(**SETTINGS, resample=Image.Resampling.BICUBIC)
    with pytest.raises(ValueError, match="bilinearly only"):
        processor(images=[_ramp(24, 16)], return_tensors="pt")


def test_the_matrix_checkpoint_loads_with_it_and_saves_as_transformers_class(tmp_path):
    FAMILIES["Molmo2"].build(tmp_path / "m")
    processor = load_processor(str(tmp_path / "m"))
    if importlib.util.find_spec("torchvision") is None:
        assert isinstance(processor.image_processor, molmo2_image_processor())
    assert type(processor).__name__ == "Molmo2Processor"
    processor.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "processor_config.json").read_text())
    assert saved["image_processor"]["image_processor_type"] == "Molmo2ImageProcessor"
    assert saved["image_use_col_tokens"] is True and saved["use_single_crop_col_tokens"] is False
    assert torch_stand_in("Molmo2ImageProcessor") is molmo2_image_processor()
    assert torch_stand_in("CLIPImageProcessor") is None
