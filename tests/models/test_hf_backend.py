"""The transformers backend on the real toy LLaVA (and a tiny text-only LLaMA), entirely offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from evalkit.models.base import BackendOptions, load_backend
from evalkit.models.hf import HFBackend
from evalkit.toy.model import build_toy_model, build_toy_tokenizer, ensure_toy_model
from evalkit.types import GenerationConfig, Message, Request, UserError


@pytest.fixture(scope="module")
def toy_path(tmp_path_factory) -> Path:
    """The random-init toy LLaVA saved as a checkpoint: it never emits EOS early, so every answer runs to
    max_new_tokens, which makes batch-invariance checks cover whole generations."""
    path = tmp_path_factory.mktemp("random-toy")
    model, processor = build_toy_model(seed=0)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def backend(toy_path) -> HFBackend:
    return HFBackend(str(toy_path), BackendOptions())


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("images")
    paths = {}
    for color in ["red", "blue", "green"]:
        Image.new("RGB", (48, 48), color).save(d / f"{color}.png")
        paths[color] = str(d / f"{color}.png")
    Image.new("RGB", (80, 60), "yellow").save(d / "wide.jpg")  # resized and cropped by the processor
    paths["wide"] = str(d / "wide.jpg")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    paths["corrupt"] = str(d / "corrupt.png")
    paths["missing"] = str(d / "missing.png")
    return paths


def _mixed_requests(images: dict[str, str], max_new_tokens: int = 8) -> list[Request]:
    """Eight requests of different prompt lengths, with 0, 1 or 2 images."""
    gen = GenerationConfig(max_new_tokens=max_new_tokens)
    questions = [
        "is there a red circle?",
        "what colour is the square in the top left corner of the image?",
        "how many objects?",
        "describe the image.",
        "is there a dog in the picture? answer yes or no.",
        "what?",
        "name every object you can see in the image, from left to right and top to bottom.",
        "is there a cat?",
    ]
    image_sets = [("red",), (), ("blue", "green"), ("wide",), ("green",), (), ("red",), ("blue",)]
    return [
        Request(f"q{i}", (Message("user", q, tuple(images[c] for c in imgs)),), gen)
        for i, (q, imgs) in enumerate(zip(questions, image_sets, strict=True))
    ]


def _summary(responses):
    return [(r.id, r.text, r.prompt_tokens, r.completion_tokens, r.error) for r in responses]


def test_greedy_is_batch_invariant(backend, images):
    requests = _mixed_requests(images)
    batched = backend.generate(requests)
    single = [backend.generate([r])[0] for r in requests]
    assert all(r.ok and r.text and r.completion_tokens == 8 for r in batched)
    assert len({r.prompt_tokens for r in batched}) >= 6  # the prompts really differ in length
    assert _summary(batched) == _summary(single)
    assert _summary(backend.generate(requests[::-1])) == _summary(batched)[::-1]
    assert all(r.latency_s > 0 for r in batched)


def test_prompt_tokens_count_image_tokens(backend, images):
    text_only, with_image = backend.generate(
        [
            Request("a", (Message("user", "is there a dog?"),)),
            Request("b", (Message("user", "is there a dog?", (images["red"],)),)),
        ]
    )
    assert with_image.prompt_tokens == text_only.prompt_tokens + 9


def test_bad_images_fail_only_their_request(backend, images):
    good = _mixed_requests(images)[:3]
    bad = [
        Request("corrupt", (Message("user", "what is it?", (images["corrupt"],)),)),
        Request("missing", (Message("user", "what is it?", (images["red"], images["missing"])),)),
    ]
    out = backend.generate([good[0], bad[0], good[1], bad[1], good[2]])
    assert [r.id for r in out] == ["q0", "corrupt", "q1", "missing", "q2"]
    assert out[1].error.type == "image_error" and "corrupt.png" in out[1].error.message
    assert out[3].error.type == "image_error" and "not found" in out[3].error.message
    assert _summary([out[0], out[2], out[4]]) == _summary(backend.generate(good))


def test_sampling_is_seeded_per_request(backend, images):
    gen = GenerationConfig(max_new_tokens=8, temperature=1.0, top_p=0.95)
    reqs = [
        Request(f"s{s}", (Message("user", "describe the image.", (images["red"],)),), gen, seed=s)
        for s in range(4)
    ]
    first = backend.generate(reqs)
    assert _summary(first) == _summary(backend.generate(reqs))
    assert _summary(first[2:3]) == _summary(backend.generate([reqs[2]]))
    assert len({r.text for r in first}) > 1
    greedy = backend.generate([Request("g", reqs[0].messages, GenerationConfig(max_new_tokens=8))])[0]
    assert greedy.text not in {r.text for r in first}


def test_stop_strings_and_eos_counting(backend, images):
    req = _mixed_requests(images)[0]
    full = backend.generate([req])[0]
    words = full.text.split()
    stop = words[2]
    cut = backend.generate([Request("cut", req.messages, GenerationConfig(max_new_tokens=8, stop=(stop,)))])[
        0
    ]
    assert cut.text == full.text[: full.text.find(stop)].strip()
    assert 0 < cut.completion_tokens < full.completion_tokens
    # EOS ends the text and is counted; what follows is dropped.
    eos, word = backend.tokenizer.eos_token_id, backend.tokenizer.convert_tokens_to_ids("yes")
    assert backend._decode([word, word, eos, word], ()) == ("yes yes", 3)


def test_backend_exception_becomes_backend_error(backend, images, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("device lost")

    monkeypatch.setattr(backend.model, "generate", broken)
    out = backend.generate(
        _mixed_requests(images)[:2] + [Request("m", (Message("user", "x", (images["missing"],)),))]
    )
    assert [r.error.type for r in out] == ["backend_error", "backend_error", "image_error"]
    assert "device lost" in out[0].error.message


def test_info_and_fingerprint(backend, toy_path):
    info = backend.info()
    assert info["model_class"] == "LlavaForConditionalGeneration" and info["kind"] == "image-text-to-text"
    assert (info["dtype"], info["device"], info["padding_side"]) == ("float32", "cpu", "left")
    fp = backend.fingerprint()
    assert fp["path"] == str(toy_path.resolve()) and fp["revision"] is None
    assert len(fp["config_sha256"]) == 64 and len(fp["weights_sha256"]) == 64


def test_fingerprint_follows_the_weights(toy_path, tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file

    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "copy"
    shutil.copytree(toy_path, copy)
    before = HFBackend(str(copy), BackendOptions()).fingerprint()
    assert (tmp_path / "cache" / "weights-sha256.json").is_file()  # digests cached for big checkpoints
    assert HFBackend(str(copy), BackendOptions()).fingerprint() == before
    weights = load_file(copy / "model.safetensors")
    name = sorted(weights)[0]
    weights[name].view(-1)[0] += 1.0  # same size; only the content (and mtime) changes
    save_file(weights, copy / "model.safetensors", metadata={"format": "pt"})
    after = HFBackend(str(copy), BackendOptions()).fingerprint()
    assert after["weights_sha256"] != before["weights_sha256"]
    assert after["config_sha256"] == before["config_sha256"] and after["path"] == before["path"]


@pytest.mark.parametrize("given", ["/no/such/checkpoint", "./missing-model", "no-such-org/no-such-model-xyz"])
def test_bad_model_is_a_user_error(given):
    with pytest.raises(UserError) as err:
        HFBackend(given, BackendOptions())
    assert given in str(err.value) and "\n" not in str(err.value)


def test_folder_without_config_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        HFBackend(str(tmp_path), BackendOptions())


@pytest.mark.parametrize(("dtype", "device"), [("float8", "auto"), ("auto", "tpu")])
def test_bad_dtype_or_device_is_a_user_error(toy_path, dtype, device):
    with pytest.raises(UserError):
        HFBackend(str(toy_path), BackendOptions(dtype=dtype, device=device))


def test_load_backend_toy_uses_the_cache(tmp_path_factory):
    cached = ensure_toy_model(tmp_path_factory.getbasetemp() / "evalkit-cache")
    backend = load_backend("toy")  # EVALKIT_CACHE points at the session cache (conftest)
    assert isinstance(backend, HFBackend) and backend.fingerprint()["path"] == str(cached.resolve())


@pytest.fixture(scope="module")
def text_lm_path(tmp_path_factory) -> Path:
    """A tiny LlamaForCausalLM with the toy tokenizer (and its chat template), saved like a checkpoint."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_toy_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("text-lm")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_text_only_causal_lm(text_lm_path, images):
    lm = HFBackend(str(text_lm_path), BackendOptions())
    assert lm.info()["kind"] == "causal-lm" and lm.info()["model_class"] == "LlamaForCausalLM"
    requests = [
        Request(
            f"t{i}",
            (Message("system", "be brief."), Message("user", q)),
            GenerationConfig(max_new_tokens=6),
        )
        for i, q in enumerate(
            ["hi", "what colour is the sky on a clear day?", "how many legs does a dog have?"]
        )
    ]
    batched = lm.generate(requests)
    assert all(r.ok and r.text for r in batched)
    assert _summary(batched) == _summary([lm.generate([r])[0] for r in requests])
    with_image = lm.generate([Request("img", (Message("user", "what is it?", (images["red"],)),))])[0]
    assert with_image.error.type == "input_error"


def _forward_logprobs(model, input_ids, generated, **extra):
    """log_softmax of an independent forward pass over prompt + generated tokens: row t predicts token t."""
    ids = torch.tensor([input_ids + generated[:-1]])
    with torch.no_grad():
        logits = model(input_ids=ids, **extra).logits[0, len(input_ids) - 1 :]
    return torch.log_softmax(logits.float(), dim=-1)


def _check_logprobs(content, expected, id_of, k):
    """`content` (the backend's) against the forward pass: chosen token, its logprob, the top k."""
    generated = [id_of[c["token"]] for c in content]
    assert len(content) == expected.shape[0] == len(generated)
    for step, (c, lp) in enumerate(zip(content, expected, strict=True)):
        assert c["logprob"] == pytest.approx(float(lp[generated[step]]), abs=1e-4)
        values, ids = lp.topk(k)
        assert [id_of[t["token"]] for t in c["top_logprobs"]] == ids.tolist()
        assert [t["logprob"] for t in c["top_logprobs"]] == pytest.approx(values.tolist(), abs=1e-4)


def _token_ids(tokenizer):
    """decode([id]) → id for the toy word-level vocabulary (every token decodes to its own string)."""
    id_of = {tokenizer.decode([i]): i for i in range(len(tokenizer))}
    assert len(id_of) == len(tokenizer)
    return id_of


def test_top_logprobs_equal_an_independent_forward_pass(text_lm_path):
    lm = HFBackend(str(text_lm_path), BackendOptions())
    id_of = _token_ids(lm.tokenizer)
    questions = ["hi", "what colour is the sky on a clear day?", "how many legs does a dog have?"]
    gens = [
        GenerationConfig(max_new_tokens=5, top_logprobs=3),
        GenerationConfig(max_new_tokens=5, temperature=1.0, top_p=0.9, top_logprobs=4),  # sampled
        GenerationConfig(max_new_tokens=5),  # not asked: no logprobs
    ]
    requests = [
        Request(f"t{i}", (Message("user", q),), g, seed=3)
        for i, (q, g) in enumerate(zip(questions, gens, strict=True))
    ]
    out = lm.generate(requests)  # one left-padded batch
    assert out[2].ok and out[2].logprobs is None
    for req, resp in zip(requests[:2], out[:2], strict=True):
        assert resp.ok and len(resp.logprobs) == resp.completion_tokens > 0
        prompt = lm.tokenizer.apply_chat_template(
            [{"role": "user", "content": req.messages[0].text}], add_generation_prompt=True, tokenize=False
        )
        input_ids = lm.tokenizer(prompt, add_special_tokens=False).input_ids
        generated = [id_of[c["token"]] for c in resp.logprobs]
        expected = _forward_logprobs(lm.model, input_ids, generated)
        _check_logprobs(resp.logprobs, expected, id_of, req.generation.top_logprobs)
    # the sampled row's values are the model's, not the sampler's one-hot scores (log 1 = 0)
    assert all(c["logprob"] < -0.01 for c in out[1].logprobs)
    # asking for logprobs does not change what is generated
    plain = lm.generate([Request("t0", requests[0].messages, GenerationConfig(max_new_tokens=5))])[0]
    assert plain.text == out[0].text and greedy_tokens(out[0]) == [c["token"] for c in out[0].logprobs]


def greedy_tokens(resp):
    """Greedy decoding picks the top token at every step."""
    return [c["top_logprobs"][0]["token"] for c in resp.logprobs]


def test_top_logprobs_with_an_image(backend, images):
    id_of = _token_ids(backend.tokenizer)
    gen = GenerationConfig(max_new_tokens=4, top_logprobs=5)
    req = Request("img", (Message("user", "what is it?", (images["red"],)),), gen)
    (resp,) = backend.generate([req])
    assert resp.ok and len(resp.logprobs) == 4
    prompt = backend.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what is it?"}]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    enc = backend.processor(
        text=[prompt], images=[Image.open(images["red"]).convert("RGB")], return_tensors="pt"
    )
    generated = [id_of[c["token"]] for c in resp.logprobs]
    expected = _forward_logprobs(
        backend.model, enc["input_ids"][0].tolist(), generated, pixel_values=enc["pixel_values"]
    )
    _check_logprobs(resp.logprobs, expected, id_of, 5)
