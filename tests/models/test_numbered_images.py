"""The numbered-image-placeholder convention (Phi-3/3.5-vision's remote code,
`evalkit.models.numbered_images`) on the tiny Phi-3.5-vision-shaped checkpoint: the rendering the model
card writes, the per-row encoding collated into one batch, training's answer log-probabilities equal to the
model's own `generate` from the model card's encoding, and processors that fit neither convention refused
at load in one line."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from support.families import FAMILIES

from evalkit.models.base import BackendOptions
from evalkit.models.hf import HFBackend
from evalkit.models.numbered_images import encode_each, takes_numbered_placeholders
from evalkit.models.prompt import render_prompt
from evalkit.training.batching import Encoder
from evalkit.training.dpo import sequence_logps
from evalkit.types import Message, UserError
from evalkit.util.tensors import cat_padded

pytestmark = pytest.mark.usefixtures("one_thread")

PHI3V = FAMILIES["Phi-3.5-vision (remote code)"]
PROMPTS = ["is there a red circle?", "what colour is the big square on the left?"]
ANSWERS = [("a red circle.", "no"), ("blue.", "a green square and a red one.")]


class _Pair:
    def __init__(self, prompt, image, chosen, rejected):
        self.prompt, self.image, self.chosen, self.rejected = prompt, image, chosen, rejected


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("phi3v")
    PHI3V.build(path)
    return path


@pytest.fixture(scope="module")
def loaded(folder):
    from transformers import AutoModelForCausalLM, AutoProcessor

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, trust_remote_code=True)
    return model.eval(), AutoProcessor.from_pretrained(folder, trust_remote_code=True)


@pytest.fixture(scope="module")
def images():
    out = []
    for i, size in enumerate([(40, 30), (64, 64)]):  # a 1 x 2 and a 2 x 2 crop grid: 12 and 20 image tokens
        image = Image.new("RGB", size, ("red", "blue")[i])
        image.paste((20, 200 - 90 * i, 90), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
        out.append(image)
    return out


def test_the_convention_is_read_from_the_processor(loaded, tmp_path):
    _, processor = loaded
    assert takes_numbered_placeholders(processor)
    FAMILIES["LLaVA-1.5"].build(tmp_path)
    from transformers import AutoProcessor

    assert not takes_numbered_placeholders(AutoProcessor.from_pretrained(tmp_path))
    assert not takes_numbered_placeholders(None)


def test_images_are_numbered_across_the_conversation(loaded):
    _, processor = loaded
    messages = (
        Message("system", "be brief."),
        Message("user", "compare them", ("a.png", "b.png")),
        Message("assistant", "the first is red."),
        Message("user", "and this one?", ("c.png",)),
    )
    prompt = render_prompt(messages, processor, processor.tokenizer, processor.tokenizer.chat_template)
    assert prompt == (
        "<|system|>\nbe brief.<|end|>\n"
        "<|user|>\n<|image_1|>\n<|image_2|>\ncompare them<|end|>\n"
        "<|assistant|>\nthe first is red.<|end|>\n"
        "<|user|>\n<|image_3|>\nand this one?<|end|>\n<|assistant|>\n"
    )


def test_rows_are_encoded_one_by_one_and_collated(loaded, images):
    _, processor = loaded
    texts = [f"<|user|>\n<|image_1|>\n{p}<|end|>\n<|assistant|>\n" for p in PROMPTS]
    pad = processor.tokenizer.pad_token_id
    batch = encode_each(processor, texts, [[im] for im in images], pad)
    singles = [processor(t, [im], return_tensors="pt") for t, im in zip(texts, images, strict=True)]
    width = max(s["input_ids"].shape[1] for s in singles)
    assert batch["input_ids"].shape == (2, width)
    for r, single in enumerate(singles):
        n = single["input_ids"].shape[1]
        assert batch["input_ids"][r, width - n :].tolist() == single["input_ids"][0].tolist()
        assert batch["input_ids"][r, : width - n].tolist() == [pad] * (width - n)
        assert batch["attention_mask"][r].tolist() == [0] * (width - n) + [1] * n
    assert torch.equal(batch["pixel_values"], torch.cat([s["pixel_values"] for s in singles]))
    assert batch["image_sizes"].tolist() == [[32, 64], [64, 64]]
    assert (batch["input_ids"] < 0).sum(1).tolist() == [12, 20]  # (grid crops + global crop) x 4 features


def test_crop_counts_are_zero_padded():
    a, b = torch.ones(1, 3, 2), torch.full((2, 5, 2), 2.0)
    out = cat_padded([a, b])
    assert out.shape == (3, 5, 2)
    assert out[0, :3].eq(1).all() and out[0, 3:].eq(0).all() and out[1:].eq(2).all()


def _generated_logps(model, processor, prompt, image, answer_ids) -> float:
    """Sum of log p(answer) from the model's own `generate` over the model card's encoding
    (`processor(prompt, [image])` with the prompt written by hand), the answer forced token by token."""
    text = f"<|user|>\n<|image_1|>\n{prompt}<|end|>\n<|assistant|>\n"
    inputs = processor(text, [image], return_tensors="pt")
    scores = []

    def force(input_ids, logits):
        scores.append(torch.log_softmax(logits[0].float(), -1)[answer_ids[len(scores)]])
        forced = torch.full_like(logits, float("-inf"))
        forced[:, answer_ids[len(scores) - 1]] = 0.0
        return forced

    with torch.no_grad():
        out = model.generate(
            **inputs, max_new_tokens=len(answer_ids), do_sample=False, logits_processor=[force]
        )
    assert out[0, inputs["input_ids"].shape[1] :].tolist() == answer_ids
    return float(sum(scores))


def test_answer_logps_equal_generate(loaded, images):
    model, processor = loaded
    encoder = Encoder(processor)
    pairs = [_Pair(p, im, c, r) for p, im, (c, r) in zip(PROMPTS, images, ANSWERS, strict=True)]
    batch = encoder.encode_pairs(pairs)
    assert batch.extras["pixel_values"].shape[0] == 4  # each pair's image, for its chosen and rejected row
    with torch.no_grad():
        ours = sequence_logps(model, batch)
    examples = list(zip(PROMPTS, images, ANSWERS, strict=True))
    rows = [(p, im, encoder.answer_ids(a[k])) for k in (0, 1) for p, im, a in examples]
    theirs = [_generated_logps(model, processor, p, im, ids) for p, im, ids in rows]
    assert ours.n_tokens.tolist() == [len(ids) for _, _, ids in rows]
    assert ours.logps.tolist() == pytest.approx(theirs, abs=1e-5)


def test_a_template_that_drops_the_placeholders_is_refused(folder, tmp_path):
    import shutil

    copy = tmp_path / "phi3v"
    shutil.copytree(folder, copy)
    # renders list content only: string content (the placeholders with it) comes out empty
    template = "{% for m in messages %}{% for c in m['content'] %}{{ c['text'] }}{% endfor %}{% endfor %}"
    (copy / "chat_template.jinja").write_text(template)
    options = BackendOptions(device="cpu", dtype="float32", trust_remote_code=True)
    with pytest.raises(UserError) as info:
        HFBackend(str(copy), options)
    message = str(info.value)
    assert "\n" not in message and "drops the image placeholder '<|image_1|>'" in message


def test_the_training_sampler_decodes_as_generate_and_masks_the_image(loaded, images):
    """Online DPO / RS / BDHS sample through `training.sampling`: greedy samples are the tokens the model's
    own `generate` gives from the model card's encoding, and BDHS's image mask finds the image positions
    (the negative placeholder ids), so `image_keep=0` hides every one of them."""
    from evalkit.training.sampling import SampleRequest, sample

    model, processor = loaded
    encoder = Encoder(processor)
    requests = [SampleRequest(p, im) for p, im in zip(PROMPTS, images, strict=True)]
    got = sample(model, encoder, requests, max_new_tokens=4, temperature=0, batch_size=2)
    for request, s in zip(requests, got, strict=True):
        text = f"<|user|>\n<|image_1|>\n{request.prompt}<|end|>\n<|assistant|>\n"
        inputs = processor(text, [request.image], return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
        expected = out[0, inputs["input_ids"].shape[1] :].tolist()
        eos = processor.tokenizer.eos_token_id
        assert s.token_ids == (expected[: expected.index(eos)] if eos in expected else expected)
        assert s.image_positions == s.image_kept == int((inputs["input_ids"] < 0).sum())
    masked = sample(model, encoder, [SampleRequest(PROMPTS[0], images[0], image_keep=0.0)], max_new_tokens=1)
    assert (masked[0].image_positions, masked[0].image_kept) == (12, 0)
