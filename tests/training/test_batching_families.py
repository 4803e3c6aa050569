"""Training batches score an answer exactly as the family's own code does: the answer log-probabilities of
evalkit's `Encoder` + `sequence_logps` (two examples with images of different sizes, chosen and rejected
answers of different lengths, so left and right padding are both exercised) equal those the model gives
while its own `generate`, from the processor's own chat-template encoding, is made to produce that answer
(raw logits per step). PaliGemma's also equal a forward pass over the processor's `suffix=` encoding (its
fine-tuning format). Each test also shows that the per-token inputs carried over the answer matter for
that family, so it fails when the collator continues them wrongly. The training sampler (online DPO,
rejection sampling, BDHS) decodes greedily what `generate` decodes."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from support.families import FAMILIES

from evalkit.training.batching import Encoder
from evalkit.training.dpo import sequence_logps

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = ["Gemma 3", "Mllama", "PaliGemma", "LLaVA-NeXT", "Molmo2", "Phi-4-multimodal"]
PROMPTS = ["is there a red circle?", "what colour is the big square on the left?"]
ANSWERS = [("a red circle.", "no"), ("blue.", "a green square and a red one.")]
TOL = 1e-5


class _Pair:
    def __init__(self, prompt, image, chosen, rejected):
        self.prompt, self.image, self.chosen, self.rejected = prompt, image, chosen, rejected


@pytest.fixture(scope="module")
def images():
    out = []
    for i, size in enumerate([(40, 30), (30, 52)]):
        image = Image.new("RGB", size, ("red", "blue")[i])
        image.paste((20, 200 - 90 * i, 90), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
        out.append(image)
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """family name -> (model, processor) of its tiny checkpoint, loaded as transformers loads it."""
    from evalkit.models.model_kind import classify
    from evalkit.models.processor_loading import load_processor  # AutoProcessor, torchvision or not

    loaded = {}

    def get(name):
        if name not in loaded:
            path = tmp_path_factory.mktemp(name.replace(" ", "-"))
            FAMILIES[name].build(path)
            model_class = classify(str(path), False).auto_class()  # Phi-4-multimodal: a causal LM class
            model = model_class.from_pretrained(path, dtype=torch.float32).eval()
            loaded[name] = (model, load_processor(str(path)))
        return loaded[name]

    return get


class _Force:
    """A logits processor making `generate` produce the given tokens (the raw logits stay untouched)."""

    def __init__(self, tokens):
        self.tokens, self.step = tokens, 0

    def __call__(self, input_ids, scores):
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.tokens[self.step]] = 0.0
        self.step += 1
        return forced


def _generated_logps(model, processor, prompt, image, answer_ids) -> float:
    """Sum of log p(answer) from the model's own `generate` over the processor's own encoding."""
    content = [{"type": "image", "image": image}, {"type": "text", "text": prompt}]
    conv = [{"role": "user", "content": content}]
    template = processor.chat_template or processor.tokenizer.chat_template  # Phi-4-mm: the tokenizer's
    inputs = processor.apply_chat_template(
        conv, chat_template=template, add_generation_prompt=True, tokenize=True, return_dict=True,
        return_tensors="pt",
    )  # fmt: skip
    with torch.no_grad():
        out = model.generate(
            **inputs,
            max_new_tokens=len(answer_ids),
            do_sample=False,
            logits_processor=[_Force(answer_ids)],
            output_logits=True,
            return_dict_in_generate=True,
        )
    assert out.sequences[0, inputs["input_ids"].shape[1] :].tolist() == answer_ids
    logits = torch.stack(out.logits, dim=1)[0].float()
    return float(torch.log_softmax(logits, -1)[torch.arange(len(answer_ids)), answer_ids].sum())


def _batch(processor, images):
    encoder = Encoder(processor)
    pairs = [_Pair(p, im, c, r) for p, im, (c, r) in zip(PROMPTS, images, ANSWERS, strict=True)]
    batch = encoder.encode_pairs(pairs)
    # the batch's rows: chosen answers of both pairs, then their rejected answers
    examples = list(zip(PROMPTS, images, ANSWERS, strict=True))
    rows = [(p, im, answers[k]) for k in (0, 1) for p, im, answers in examples]
    return encoder, batch, [(p, im, encoder.answer_ids(answer)) for p, im, answer in rows]


@pytest.mark.parametrize("name", NAMES)
def test_answer_logps_equal_generate(name, checkpoint, images):
    model, processor = checkpoint(name)
    _, batch, rows = _batch(processor, images)
    assert "labels" not in batch.extras
    with torch.no_grad():
        ours = sequence_logps(model, batch)
    theirs = [_generated_logps(model, processor, p, im, ids) for p, im, ids in rows]
    assert ours.n_tokens.tolist() == [len(ids) for _, _, ids in rows]
    assert ours.logps.tolist() == pytest.approx(theirs, abs=TOL)

    # the answer columns of the per-token inputs decide the result for these families: continuing them
    # with zeros (Mllama: answer tokens blind to the image; PaliGemma: answer tokens in the bidirectional
    # prefix) gives other log-probs, so the equality above is not vacuous
    per_token = {k: v for k, v in batch.extras.items() if k in ("cross_attention_mask", "token_type_ids")}
    if name in ("Mllama", "PaliGemma"):
        for key, value in per_token.items():
            value = value.clone()
            value[batch.answer_mask] = 0
            batch.extras[key] = value
        with torch.no_grad():
            wrong = sequence_logps(model, batch).logps.tolist()
        assert max(abs(a - b) for a, b in zip(wrong, theirs, strict=True)) > 100 * TOL
    if name == "Molmo2":  # its image tokens attend to each other (mm_token_type_ids 1): without, other logps
        del batch.extras["mm_token_type_ids"]
        with torch.no_grad():
            wrong = sequence_logps(model, batch).logps.tolist()
        assert max(abs(a - b) for a, b in zip(wrong, theirs, strict=True)) > 100 * TOL


def test_paligemma_answer_logps_equal_its_suffix_encoding(checkpoint, images):
    """PaliGemma's fine-tuning format: the processor's `suffix=` marks the answer (token_type_ids 1) and the
    model's own positions (1-based) are used; evalkit's batch scores the same tokens the same way."""
    model, processor = checkpoint("PaliGemma")
    _, batch, rows = _batch(processor, images)
    with torch.no_grad():
        ours = sequence_logps(model, batch).logps.tolist()
    theirs = []
    for prompt, image, ids in rows:
        answer = processor.tokenizer.decode(ids[:-1])  # the answer text as the tokenizer reads it back
        enc = processor(text=f"<image>{prompt}", images=image, suffix=answer, return_tensors="pt")
        suffix = enc["token_type_ids"][0].bool()
        assert enc["input_ids"][0][suffix].tolist() == ids
        enc.pop("labels")
        with torch.no_grad():
            logits = model(**enc).logits[0, :-1].float()
        targets = enc["input_ids"][0, 1:]
        token_logps = torch.log_softmax(logits, -1).gather(-1, targets[:, None])[:, 0]
        theirs.append(float(token_logps[suffix[1:]].sum()))
    assert ours == pytest.approx(theirs, abs=TOL)


@pytest.mark.parametrize("name", ["Gemma 3", "Mllama", "PaliGemma"])
def test_greedy_samples_equal_generate(name, checkpoint, images):
    """The training sampler (online DPO, rejection sampling, BDHS) decodes a padded batch as each row's own
    `generate` does: per-token inputs aligned with the left padding, Mllama's cross-attention mask on every
    decoding step."""
    from evalkit.training.sampling import SampleRequest, sample

    model, processor = checkpoint(name)
    encoder = Encoder(processor)
    requests = [SampleRequest(p, im) for p, im in zip(PROMPTS, images, strict=True)]
    got = sample(model, encoder, requests, max_new_tokens=6, temperature=0)
    for request, s in zip(requests, got, strict=True):
        content = [{"type": "image", "image": request.image}, {"type": "text", "text": request.prompt}]
        inputs = processor.apply_chat_template(
            [{"role": "user", "content": content}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        )
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
        want = out[0, inputs["input_ids"].shape[1] :].tolist()
        gen_eos = model.generation_config.eos_token_id
        eos = {*(gen_eos if isinstance(gen_eos, list) else [gen_eos]), encoder.eos_token_id}
        cut = next((k for k, t in enumerate(want) if t in eos), len(want))
        assert s.token_ids == want[:cut]


def test_text_only_examples_beside_image_examples(checkpoint, images):
    """Gemma 3 scores a text-only example in a batch with images as alone; Mllama refuses such a batch
    (its cross-attention layers run for the whole batch, so the text-only row would attend to padding
    images) in training and in the sampler; a PaliGemma example needs an image."""
    from evalkit.training.sampling import SampleRequest, sample

    text_only = _Pair("name a colour.", None, "red.", "a blue square.")
    with_image = _Pair(PROMPTS[0], images[0], *ANSWERS[0])
    model, processor = checkpoint("Gemma 3")
    encoder = Encoder(processor)
    with torch.no_grad():
        mixed = sequence_logps(model, encoder.encode_pairs([with_image, text_only])).logps.tolist()
        alone = sequence_logps(model, encoder.encode_pairs([text_only])).logps.tolist()
    assert [mixed[1], mixed[3]] == pytest.approx(alone, abs=TOL)

    model, processor = checkpoint("Mllama")
    encoder = Encoder(processor)
    with pytest.raises(ValueError, match="Mllama cannot put examples with and without images"):
        encoder.encode_pairs([with_image, text_only])
    requests = [SampleRequest(with_image.prompt, with_image.image), SampleRequest(text_only.prompt)]
    with pytest.raises(ValueError, match="Mllama cannot put examples with and without images"):
        sample(model, encoder, requests, max_new_tokens=2, temperature=0)
    encoder.encode_pairs([text_only])  # alone it is fine

    _, processor = checkpoint("PaliGemma")
    with pytest.raises(ValueError, match="refuses a prompt without one"):
        Encoder(processor).encode_pairs([text_only])
