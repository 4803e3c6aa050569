"""evalkit.models.processor_loading: processors whose class declares a video processor load without
torchvision (this machine has none), process images and text exactly as the processor's definition says,
and save checkpoints that still carry the video processor's configuration."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from support.families.qwen import build_internvl, build_qwen2_vl, build_qwen3_vl
from transformers import AutoTokenizer
from transformers.models.auto.image_processing_auto import (
    AutoImageProcessor,  # 5.13: the top-level name needs torchvision
)

from evalkit.models import processor_loading
from evalkit.models.processor_loading import load_processor, processor_class, torchvision_available

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGES = [Image.new("RGB", (64, 64), "red"), Image.new("RGB", (30, 52), "blue")]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    out = {}
    for name, build in [("qwen2", build_qwen2_vl), ("qwen3", build_qwen3_vl), ("internvl", build_internvl)]:
        out[name] = tmp_path_factory.mktemp(name)
        build(out[name])
    return out


def test_this_machine_has_no_torchvision():
    """The rest of this module tests the path taken without torchvision."""
    assert not torchvision_available()


@pytest.mark.parametrize(
    ("name", "cls", "image_cls"),
    [
        ("qwen2", "Qwen2VLProcessor", "Qwen2VLImageProcessorPil"),
        ("qwen3", "Qwen3VLProcessor", "Qwen2VLImageProcessorPil"),
        ("internvl", "InternVLProcessor", "GotOcr2ImageProcessorPil"),
    ],
)
def test_loads_the_named_processor_without_its_video_processor(checkpoints, name, cls, image_cls):
    saved = json.loads((checkpoints[name] / "processor_config.json").read_text())
    assert saved["processor_class"] == cls and "video_processor" in saved  # the hub's declaration
    assert "video_processor" in processor_class(str(checkpoints[name])).get_attributes()
    processor = load_processor(str(checkpoints[name]))
    assert type(processor).__name__ == cls
    assert isinstance(processor, processor_class(str(checkpoints[name])))
    assert type(processor.image_processor).__name__ == image_cls
    assert not hasattr(processor, "video_processor")


@pytest.mark.parametrize("name", ["qwen2", "qwen3"])
def test_qwen_images_and_text_as_the_image_processor_and_tokenizer_give_them(checkpoints, name):
    """Qwen's definition: each <|image_pad|> becomes prod(grid_thw) / merge_size² pads; pixel values are
    the image processor's."""
    path = str(checkpoints[name])
    image_processor, tok = AutoImageProcessor.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    pad = "<|vision_start|><|image_pad|><|vision_end|>"
    texts = [f"{pad}what is it?", f"{pad}is it blue?"]
    got = load_processor(path)(images=IMAGES, text=texts, return_tensors="pt", padding=True)
    pixels = image_processor(images=IMAGES, return_tensors="pt")
    assert torch.equal(got["pixel_values"], pixels["pixel_values"])
    assert torch.equal(got["image_grid_thw"], pixels["image_grid_thw"])
    for i, (text, grid) in enumerate(zip(texts, pixels["image_grid_thw"], strict=True)):
        n = int(grid.prod()) // image_processor.merge_size**2
        expected = tok(text.replace("<|image_pad|>", "<|image_pad|>" * n))["input_ids"]
        row = got["input_ids"][i][got["attention_mask"][i].bool()].tolist()
        assert row == expected and n > 1


def test_internvl_images_and_text_as_the_image_processor_and_tokenizer_give_them(checkpoints):
    """InternVL's definition: each <IMG_CONTEXT> becomes <img>, image_seq_length context tokens per tile,
    </img>; pixel values are the image processor's tiles."""
    path = str(checkpoints["internvl"])
    image_processor, tok = AutoImageProcessor.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    texts = ["<IMG_CONTEXT>\nwhat is it?", "<IMG_CONTEXT>\nis it blue?"]
    got = load_processor(path)(images=IMAGES, text=texts, return_tensors="pt", padding=True)
    pixels = image_processor(images=IMAGES, return_tensors="pt")
    assert torch.equal(got["pixel_values"], pixels["pixel_values"])
    tiles = pixels["num_patches"].tolist()
    assert sum(tiles) == len(pixels["pixel_values"]) and max(tiles) > 1
    for i, (text, n) in enumerate(zip(texts, tiles, strict=True)):
        context = "<img>" + "<IMG_CONTEXT>" * (4 * n) + "</img>"
        expected = tok(text.replace("<IMG_CONTEXT>", context))["input_ids"]
        assert got["input_ids"][i][got["attention_mask"][i].bool()].tolist() == expected


def test_a_saved_processor_keeps_the_video_processor_configuration(checkpoints, tmp_path):
    """So a checkpoint saved where torchvision is missing still loads, video processor included, where it
    is installed."""
    source = json.loads((checkpoints["qwen2"] / "processor_config.json").read_text())
    load_processor(str(checkpoints["qwen2"])).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["processor_class"] == "Qwen2VLProcessor"
    assert saved["video_processor"] == source["video_processor"]
    assert saved["image_processor"] == source["image_processor"]


def test_with_torchvision_it_is_autoprocessor(checkpoints, monkeypatch):
    """Where torchvision is reported installed, AutoProcessor loads the video processor too (which here,
    without torchvision, fails: the fallback is not taken)."""
    monkeypatch.setattr(processor_loading, "torchvision_available", lambda: True)
    with pytest.raises(ImportError, match="(?i)torchvision"):
        load_processor(str(checkpoints["qwen2"]))


def test_processors_without_a_video_processor_load_as_before(tmp_path):
    from evalkit.toy.model import build_toy_processor

    build_toy_processor().save_pretrained(tmp_path)
    assert type(load_processor(str(tmp_path))).__name__ == "LlavaProcessor"


@pytest.mark.parametrize("loader", ["backend", "trainer"])
def test_a_processor_that_cannot_load_is_one_line_user_error(checkpoints, tmp_path, loader):
    from evalkit.models.base import BackendOptions
    from evalkit.models.hf import HFBackend
    from evalkit.training.model_setup import load_model
    from evalkit.types import UserError

    folder = tmp_path / "broken"
    shutil.copytree(checkpoints["qwen2"], folder)
    (folder / "processor_config.json").write_text('{"processor_class": "Qwen2VLProcessor", ')
    with pytest.raises(UserError) as info:
        if loader == "backend":
            HFBackend(str(folder), BackendOptions(device="cpu", dtype="float32"))
        else:
            load_model(str(folder))
    assert "\n" not in str(info.value) and str(folder) in str(info.value)


def test_the_hub_layout_with_a_torchvision_image_processor_named(checkpoints, tmp_path):
    """Qwen2-VL-2B-Instruct's hub layout: one preprocessor_config.json naming the processor class and the
    torchvision ("Fast") image processor, which the video processor also reads; without torchvision the
    image processor is the PIL one, and a saved copy carries that configuration for the video processor."""
    folder = tmp_path / "hub"
    shutil.copytree(checkpoints["qwen2"], folder)
    nested = json.loads((folder / "processor_config.json").read_text())
    (folder / "processor_config.json").unlink()
    legacy = dict(nested["image_processor"], image_processor_type="Qwen2VLImageProcessorFast")
    legacy["processor_class"] = "Qwen2VLProcessor"
    (folder / "preprocessor_config.json").write_text(json.dumps(legacy))
    processor = load_processor(str(folder))
    assert type(processor).__name__ == "Qwen2VLProcessor"
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    assert processor.image_processor.size.shortest_edge == nested["image_processor"]["size"]["shortest_edge"]
    processor.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "processor_config.json").read_text())["video_processor"] == legacy


def test_a_processor_whose_init_requires_the_video_processor(tmp_path, monkeypatch):
    """SmolVLM's processor takes video_processor without a default: it loads with None in its place."""
    import importlib.util

    from transformers import SmolVLMConfig, SmolVLMProcessor
    from transformers.models.smolvlm import processing_smolvlm
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    from evalkit.models.processor_loading import AbsentVideoProcessor, without_video
    from evalkit.toy.model import build_toy_tokenizer

    if importlib.util.find_spec("num2words") is None:  # only its video prompts use it; __init__ checks it
        monkeypatch.setattr(processing_smolvlm, "num2words", str)
    tok = build_toy_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<fake_token_around_image>", "<global-img>"]})
    image_processor = SmolVLMImageProcessorPil(do_image_splitting=False, max_image_size={"longest_edge": 32})
    without_video(SmolVLMProcessor)(
        image_processor=image_processor, tokenizer=tok, video_processor=None, image_seq_len=4
    ).save_pretrained(tmp_path)
    SmolVLMConfig().save_pretrained(tmp_path)  # a checkpoint folder, as the hub's
    processor = load_processor(str(tmp_path))
    assert type(processor).__name__ == "SmolVLMProcessor"
    stand_in = processor.video_processor  # SmolVLM's apply_chat_template reads its sampling settings
    assert isinstance(stand_in, AbsentVideoProcessor) and (stand_in.num_frames, stand_in.fps) == (None, None)
    with pytest.raises(ValueError, match="torchvision"):
        stand_in([])
    out = processor(images=[[IMAGES[0]]], text=["<image>what is it?"], return_tensors="pt")
    assert int((out["input_ids"] == tok.convert_tokens_to_ids("<image>")).sum()) == 4


def test_videos_are_refused_not_dropped(checkpoints):
    processor = load_processor(str(checkpoints["qwen2"]))
    video = [np.zeros((4, 56, 56, 3), dtype=np.uint8)]
    with pytest.raises(ValueError, match="torchvision"):
        processor(videos=video, text=["<|vision_start|><|video_pad|><|vision_end|>hi"], return_tensors="pt")
    with pytest.raises(ValueError, match="torchvision"):
        processor(None, ["<|vision_start|><|video_pad|><|vision_end|>hi"], video)  # positionally too
