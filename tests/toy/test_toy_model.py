"""The built-in toy LLaVA: offline build, deterministic weights, atomic save, loads like any checkpoint."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from support.weights import weights_hash
from transformers import AutoModelForImageTextToText, AutoProcessor

from evalkit.toy import model as toy
from evalkit.toy.model import (
    CHAT_TEMPLATE,
    NUM_IMAGE_TOKENS,
    TOY_MODEL_NAME,
    build_toy_model,
    build_toy_tokenizer,
    ensure_toy_model,
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The toy checkpoint saved in the session cache (shared with other test modules) and loaded back."""
    path = ensure_toy_model(tmp_path_factory.getbasetemp() / "evalkit-cache")
    return path, AutoProcessor.from_pretrained(path), AutoModelForImageTextToText.from_pretrained(path)


def _image(color: str = "red") -> Image.Image:
    return Image.new("RGB", (48, 48), color)


def test_build_is_deterministic_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, _ = build_toy_model(seed=0)
    b, _ = build_toy_model(seed=0)
    c, _ = build_toy_model(seed=1)
    assert torch.equal(state, torch.get_rng_state())
    assert weights_hash(a) == weights_hash(b)
    assert weights_hash(a) != weights_hash(c)


def test_saved_once_and_reloads_with_auto_classes(saved, tmp_path_factory):
    path, processor, model = saved
    assert path.name == TOY_MODEL_NAME and (path / "model.safetensors").is_file()
    mtime = (path / "model.safetensors").stat().st_mtime_ns
    assert ensure_toy_model(path.parent.parent) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == mtime  # not rewritten
    assert not list(path.parent.glob(f".{TOY_MODEL_NAME}.tmp-*"))
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert type(processor.image_processor).__name__ == "CLIPImageProcessorPil"  # no torchvision needed
    assert processor.chat_template == CHAT_TEMPLATE
    fresh, _ = build_toy_model(seed=0)
    assert weights_hash(model) != weights_hash(fresh)  # the saved checkpoint is the warmed-up model


def test_failed_save_leaves_no_folder(tmp_path, monkeypatch):
    class Broken:
        def save_pretrained(self, path):
            (path / "half-written").write_text("x")
            raise OSError("disk full")

    model, _ = build_toy_model()
    monkeypatch.setattr(toy, "build_toy_model", lambda seed=0: (model, Broken()))
    monkeypatch.setattr(toy, "warm_up", lambda *args, **kwargs: {})
    with pytest.raises(OSError, match="disk full"):
        ensure_toy_model(tmp_path)
    models = tmp_path / "models"
    assert list(models.iterdir()) == []  # neither the final folder nor the temp folder


def test_existing_folder_is_reused_without_building(tmp_path, monkeypatch):
    final = tmp_path / "models" / TOY_MODEL_NAME
    final.mkdir(parents=True)

    def boom(seed=0):
        raise AssertionError("must not rebuild")

    monkeypatch.setattr(toy, "build_toy_model", boom)
    assert ensure_toy_model(tmp_path) == final


def test_image_tokens_match_image_features(saved):
    _, processor, model = saved
    conv = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "is there a dog?"}]}]
    text = processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[_image()], return_tensors="pt", add_special_tokens=False)
    n_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    with torch.no_grad():
        features = model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
        model(**inputs)  # LLaVA itself raises when the counts differ
    assert n_tokens == NUM_IMAGE_TOKENS == 9
    assert features[0].shape[0] == n_tokens


def test_chat_template_renders_images_and_generation_prompt(saved):
    _, processor, _ = saved
    conv = [
        {"role": "system", "content": "answer briefly."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is it?"}]},
        {"role": "assistant", "content": "red."},
        {"role": "user", "content": "and the shape?"},
    ]
    text = processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<s><system> answer briefly.")
    assert text.count("<image>") == 1 and "<user> <image> What colour is it?" in text
    assert "<assistant> red.</s>" in text and text.endswith("<user> and the shape?\n<assistant>")
    tokens = processor.tokenizer.tokenize(text)
    assert "<unk>" not in tokens and tokens.count("<image>") == 1 and tokens[-1] == "<assistant>"


def test_assistant_mask_marks_the_answer_and_eos():
    tok = build_toy_tokenizer()
    conv = [{"role": "user", "content": "is there a cat?"}, {"role": "assistant", "content": "yes."}]
    out = tok.apply_chat_template(conv, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    marked = [t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tok.convert_ids_to_tokens(marked) == ["yes", ".", "</s>"]


def test_tokenizer_round_trip_and_special_tokens():
    tok = build_toy_tokenizer()
    ids = tok("There are 3 Red circles, and it's a dog!", add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == "there are 3 red circles, and it's a dog!"
    assert tok.convert_ids_to_tokens(tok("zyxxy", add_special_tokens=False)["input_ids"]) == ["<unk>"]
    assert (tok.pad_token, tok.eos_token, tok.bos_token, tok.unk_token) == ("<pad>", "</s>", "<s>", "<unk>")
    assert tok.padding_side == "left"
    assert tok.decode(tok("<s><user> yes</s>")["input_ids"], skip_special_tokens=True) == "yes"


def test_vocab_covers_the_toy_world():
    world = pytest.importorskip("evalkit.toy.world")
    vocab = build_toy_tokenizer().get_vocab()
    for name in world.OBJECTS:
        assert name in vocab
    for word in ["yes", "no", "what", "how", "many", "red", "blue", "circle", "square", "triangle"]:
        assert word in vocab
