"""Phi-4-multimodal without torchvision: evalkit's torch image processor (`evalkit.models.torch_images`)
checked against crop layouts, masks, token counts and pixel values worked out by hand from Phi-4's
algorithm (uniform colours, so the resize cannot change a value inside the image), against transformers'
own torchvision processor where torchvision is installed, and the vision tower's attention made
bidirectional at load (`evalkit.models.phi4mm`): an image's features are the same alone, beside a padded
image, and under eager attention."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from PIL import Image
from support.families import FAMILIES

from evalkit.models.phi4mm import make_vision_attention_bidirectional
from evalkit.models.processor_loading import load_processor
from evalkit.models.torch_images import phi4_multimodal_image_processor

pytestmark = pytest.mark.usefixtures("one_thread")

RED, SKY = (255, 0, 0), (0, 128, 255)
WHITE = 1.0  # padding (255) normalised: (255 / 255 - 0.5) / 0.5


def _norm(rgb) -> torch.Tensor:
    return (torch.tensor(rgb, dtype=torch.float32) / 255 - 0.5) / 0.5


def _processor():
    return phi4_multimodal_image_processor()(size={"height": 448, "width": 448}, dynamic_hd=36)


def test_crop_layout_masks_and_token_counts_by_hand():
    out = _processor()(images=[Image.new("RGB", (40, 30), RED), Image.new("RGB", (500, 300), SKY)])
    # 40 x 30 (w x h): one 448 crop; widths scale by 448 / 40 = 11.2 < 448 / 30, so 448 x int(30 * 11.2) =
    # 448 x 336, padded 112 rows at the bottom = 8 patch rows of 14 masked; pooled 2 x 2 the grid's 16 x 16
    # keeps 12 rows: 192 tokens + 12 row separators, after the global view's 16 x 16 + 16 and 1 separator.
    # 500 x 300: 2 x 1 crops (896 x 448); 896 / 500 > 448 / 300, so int(500 * 448 / 300) = 746 x 448,
    # padded 150 columns = 10 patch columns masked of 64; pooled: columns 0..26 of 32 remain, 16 rows:
    # 432 tokens + 16 separators
    assert out["num_img_tokens"] == [256 + 16 + 1 + 192 + 12, 256 + 16 + 1 + 432 + 16]
    assert out["image_sizes"].tolist() == [[448, 448], [448, 896]]
    pixels, masks = out["image_pixel_values"], out["image_attention_mask"]
    assert tuple(pixels.shape) == (2, 3, 3, 448, 448)  # global view + crops, padded to the most crops
    assert masks[0, 1].sum() == 32 * 24 and masks[0, 1, :24].all()
    assert masks[1, 1].all() and masks[1, 2].sum() == 32 * 22 and masks[1, 2, :, :22].all()
    assert masks[0, 2].all() and (pixels[0, 2] == 0).all()  # the padding crop: zeros, mask ones
    red, sky = _norm(RED)[:, None, None], _norm(SKY)[:, None, None]
    assert torch.equal(pixels[0, 1, :, :336], red.expand(3, 336, 448))
    assert (pixels[0, 1, :, 336:] == WHITE).all()
    assert torch.equal(pixels[0, 0], pixels[0, 1])  # the global view of one crop: bicubic at scale 1
    # (128 is normalised as (128 - 127.5) / 127.5 by the fused rescale: equal up to float rounding)
    assert torch.allclose(pixels[1, 1], sky.expand(3, 448, 448), atol=1e-6)  # crop (0, 0): all image
    assert torch.allclose(pixels[1, 2, :, :, :298], sky.expand(3, 448, 298), atol=1e-6)  # columns 448..745
    assert (pixels[1, 2, :, :, 298:] == WHITE).all()


def test_many_crops_take_the_closest_aspect_ratio():
    processor = phi4_multimodal_image_processor()(size={"height": 448, "width": 448}, dynamic_hd=4)
    # 2000 x 500 would need 5 x 2 crops > 4: aspect 4 is matched exactly by 4 x 1 -> 1792 x 448
    out = processor(images=[Image.new("RGB", (2000, 500), RED)])
    assert out["image_sizes"].tolist() == [[448, 1792]]
    assert tuple(out["image_pixel_values"].shape) == (1, 5, 3, 448, 448)


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="needs torchvision")
def test_equals_transformers_torchvision_processor():
    from transformers.models.phi4_multimodal.image_processing_phi4_multimodal import (
        Phi4MultimodalImageProcessor,
    )

    gen = torch.Generator().manual_seed(0)
    noise = (torch.rand(61, 97, 3, generator=gen) * 255).to(torch.uint8).numpy()
    images = [Image.new("RGB", (40, 30), RED), Image.fromarray(noise), Image.new("RGB", (500, 300), SKY)]
    settings = {"size": {"height": 448, "width": 448}, "dynamic_hd": 36}
    ours = phi4_multimodal_image_processor()(**settings)(images=images, return_tensors="pt")
    theirs = Phi4MultimodalImageProcessor(**settings)(images=images, return_tensors="pt")
    assert set(ours) == set(theirs)
    for key in theirs:
        assert torch.equal(torch.as_tensor(ours[key]), torch.as_tensor(theirs[key])), key


def test_saved_under_transformers_class_name(tmp_path):
    FAMILIES["Phi-4-multimodal"].build(tmp_path / "phi4")
    processor = load_processor(str(tmp_path / "phi4"))
    if importlib.util.find_spec("torchvision") is None:
        assert isinstance(processor.image_processor, phi4_multimodal_image_processor())
    assert processor.image_processor.to_dict()["image_processor_type"] == "Phi4MultimodalImageProcessor"


def test_vision_attention_is_bidirectional_whatever_the_batch(tmp_path):
    from transformers import Phi4MultimodalForCausalLM

    FAMILIES["Phi-4-multimodal"].build(tmp_path / "phi4")
    model = Phi4MultimodalForCausalLM.from_pretrained(tmp_path / "phi4", dtype=torch.float32).eval()
    assert make_vision_attention_bidirectional(model) == model.config.vision_config.num_hidden_layers
    embed = model.model.embed_tokens_extend.image_embed
    processor = _processor()
    square = Image.new("RGB", (64, 64), SKY)  # fills its crop: no padding, no mask
    alone = processor(images=[square], return_tensors="pt")
    beside = processor(images=[Image.new("RGB", (40, 30), RED), square], return_tensors="pt")

    def features(inputs):
        with torch.no_grad():
            return embed.get_img_features(
                inputs["image_pixel_values"].flatten(0, 1),
                attention_mask=inputs["image_attention_mask"].flatten(0, 1).bool(),
            )

    first = features(alone)
    assert torch.allclose(first, features(beside)[2:], atol=1e-5)
    embed.img_processor.config._attn_implementation = "eager"  # eager never applies a causal mask
    assert torch.allclose(first, features(alone), atol=1e-4)
