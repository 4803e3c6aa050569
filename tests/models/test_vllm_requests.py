"""The vllm backend's request conversion, without vLLM: prompts, images, sampling parameters and outputs,
checked against the hf backend on the real toy LLaVA (and a tiny text-only LLaMA), entirely offline.

The engine is stood in for by the toy model itself: the engine prompt's one placeholder token per image is
expanded to the image processor's run of image tokens (what vLLM does) and the model generates from it; the
converter's answer must then be the hf backend's answer to the same request."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from evalkit.models.base import BackendOptions, load_backend
from evalkit.models.hf import HFBackend
from evalkit.models.prompt import llava_encoding
from evalkit.models.vllm_backend import engine_kwargs
from evalkit.models.vllm_requests import RequestConverter, openai_logprobs, sampling_kwargs
from evalkit.toy.model import build_toy_model, build_toy_tokenizer
from evalkit.types import GenerationConfig, Message, Request, UserError


@pytest.fixture(scope="module")
def toy_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vllm-toy")
    model, processor = build_toy_model(seed=0)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def hf(toy_path) -> HFBackend:
    return HFBackend(str(toy_path), BackendOptions())


@pytest.fixture(scope="module")
def converter(toy_path) -> RequestConverter:
    return RequestConverter(str(toy_path), BackendOptions())


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("vllm-images")
    paths = {}
    for name, size, color in [
        ("red", (48, 48), "red"),
        ("blue", (48, 48), "blue"),
        ("wide", (80, 60), "yellow"),
    ]:
        Image.new("RGB", size, color).save(d / f"{name}.png")
        paths[name] = str(d / f"{name}.png")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    paths["corrupt"] = str(d / "corrupt.png")
    paths["missing"] = str(d / "missing.png")
    return paths


def _requests(images, gen: GenerationConfig | None = None) -> list[Request]:
    gen = gen or GenerationConfig(max_new_tokens=6)
    return [
        Request("one", (Message("user", "is there a red circle?", (images["red"],)),), gen),
        Request("two", (Message("user", "how many objects?", (images["blue"], images["wide"])),), gen),
        Request("none", (Message("user", "describe the image."),), gen),
    ]


def _collapsed(ids: list[int], token: int, run: int) -> list[int]:
    """`ids` with each image's run of `run` image tokens shortened to one token (the prompt before vLLM
    expands it); adjacent images' runs touch, so a run of k * `run` tokens becomes k tokens."""
    out: list[int] = []
    k = 0
    while k < len(ids):
        if ids[k] != token:
            out.append(ids[k])
            k += 1
            continue
        end = k
        while end < len(ids) and ids[end] == token:
            end += 1
        assert (end - k) % run == 0
        out += [token] * ((end - k) // run)
        k = end
    return out


def _image_run(hf: HFBackend, image) -> int:
    """How many image tokens the processor expands one image to."""
    enc = hf.processor(text=["<image>"], images=[[image]], return_tensors="pt")
    return enc["input_ids"][0].tolist().count(hf.processor.image_token_id)


def _processor_ids(hf: HFBackend, request: Request, images: list) -> list[int]:
    text = hf.prompting.render(request.messages)
    enc = hf.processor(text=[text], images=[images] if images else None, return_tensors="pt")
    return enc["input_ids"][0].tolist()


def test_prompt_token_ids_are_the_processors_before_expansion(hf, converter, images):
    token = hf.processor.image_token_id
    responses, rows = converter.prepare(_requests(images))
    assert responses == [None, None, None] and [r.index for r in rows] == [0, 1, 2]
    for row, request in zip(rows, _requests(images), strict=True):
        loaded = row.prompt.get("multi_modal_data", {}).get("image", [])
        assert len(loaded) == sum(len(m.images) for m in request.messages)
        run = _image_run(hf, Image.new("RGB", (48, 48)))
        expected = _collapsed(_processor_ids(hf, request, loaded), token, run)
        assert row.prompt["prompt_token_ids"] == expected
        assert row.prompt["prompt_token_ids"][0] == hf.tokenizer.bos_token_id  # LLaVA's template writes none
        assert row.prompt["prompt_token_ids"].count(token) == len(loaded)
    assert "multi_modal_data" not in rows[2].prompt


def test_llava_prompt_style_tokenizes_as_llava(toy_path, images):
    options = BackendOptions(prompt_style="llava_v1.5", image_pad="square")
    hf, converter = HFBackend(str(toy_path), options), RequestConverter(str(toy_path), options)
    request = _requests(images)[0]
    _, rows = converter.prepare([request])
    text = hf.prompting.render(request.messages)
    assert text.startswith("A chat between") and text.endswith("ASSISTANT:")
    # LLaVA's tokenizer_image_token: each piece around '<image>' tokenized alone, BOS once
    before, after = text.split("<image>")
    tok = hf.tokenizer
    first, rest = tok(before)["input_ids"], tok(after)["input_ids"]
    if tok.bos_token_id is not None and first[:1] == [tok.bos_token_id] and rest[:1] == first[:1]:
        rest = rest[1:]
    token = hf.processor.image_token_id
    assert rows[0].prompt["prompt_token_ids"] == first + [token] + rest
    # and the hf backend's own encoding of it, with the image's run of tokens shortened to one
    image = rows[0].prompt["multi_modal_data"]["image"][0]
    enc = llava_encoding(hf.processor(text=[text], images=[[image]], return_tensors="pt"), [text], tok, token)
    run = _image_run(hf, image)
    assert rows[0].prompt["prompt_token_ids"] == _collapsed(enc["input_ids"][0].tolist(), token, run)
    padded = rows[0].prompt["multi_modal_data"]["image"][0]
    assert padded.size == (48, 48)  # already square: unchanged
    _, wide = converter.prepare([_requests(images)[1]])
    assert [im.size for im in wide[0].prompt["multi_modal_data"]["image"]] == [(48, 48), (80, 80)]


def _simulated_engine(hf: HFBackend, row, max_new_tokens: int) -> tuple[list[int], int]:
    """(generated ids, prompt tokens) of the toy model for an engine row, as vLLM would run it."""
    ids, images = row.prompt["prompt_token_ids"], row.prompt.get("multi_modal_data", {}).get("image", [])
    token = hf.processor.image_token_id
    extra = {}
    if images:
        run = _image_run(hf, images[0])
        ids = [t for i in ids for t in ([token] * run if i == token else [i])]
        extra["pixel_values"] = hf.processor.image_processor(images, return_tensors="pt")["pixel_values"]
    input_ids = torch.tensor([ids])
    with torch.inference_mode():
        out = hf.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            **extra,
        )
    return out[0, len(ids) :].tolist(), len(ids)


@pytest.mark.parametrize("stop", [(), ("the",)])
def test_answers_are_the_hf_backends(hf, converter, images, stop):
    gen = GenerationConfig(max_new_tokens=6, stop=stop)
    requests = _requests(images, gen)
    expected = hf.generate(requests)
    _, rows = converter.prepare(requests)
    for row, want in zip(rows, expected, strict=True):
        assert row.sampling["stop"] == list(stop)
        tokens, n_prompt = _simulated_engine(hf, row, gen.max_new_tokens)
        got = converter.response(requests[row.index], tokens, n_prompt, None, 0.5)
        assert (got.id, got.text, got.prompt_tokens, got.completion_tokens, got.error) == (
            want.id,
            want.text,
            want.prompt_tokens,
            want.completion_tokens,
            None,
        )
        assert got.latency_s == 0.5


def test_eos_ids_and_fingerprint_are_the_hf_backends(hf, converter):
    assert converter.eos_ids == hf.eos_ids == [hf.tokenizer.eos_token_id]
    assert converter.fingerprint("vllm", "9.9") == {
        **hf.fingerprint(),
        "engine": {"name": "vllm", "version": "9.9"},
    }
    info = converter.info()
    assert (
        info["chat_template_sha256"] == hf.info()["chat_template_sha256"]
        and info["kind"] == hf.info()["kind"]
    )


def test_request_errors_as_the_hf_backend(hf, converter, images, tmp_path):
    gen = GenerationConfig(max_new_tokens=2)
    requests = [
        Request("corrupt", (Message("user", "what?", (images["corrupt"],)),), gen),
        Request("missing", (Message("user", "what?", (images["missing"],)),), gen),
        Request("ok", (Message("user", "what?", (images["red"],)),), gen),
    ]
    responses, rows = converter.prepare(requests)
    assert [r.index for r in rows] == [2]
    want = hf.generate(requests)
    for got, expected in zip(responses[:2], want[:2], strict=True):
        assert got.error.type == expected.error.type == "image_error"
        assert got.error.message == expected.error.message


def test_text_only_checkpoint_refuses_images(tmp_path, images):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_toy_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    converter, hf = (
        RequestConverter(str(tmp_path), BackendOptions()),
        HFBackend(str(tmp_path), BackendOptions()),
    )
    requests = [
        Request("img", (Message("user", "what?", (images["red"],)),)),
        Request("txt", (Message("user", "is there a cat?"),)),
    ]
    responses, rows = converter.prepare(requests)
    assert responses[0].error.type == "input_error" and "text-only" in responses[0].error.message
    text = hf.prompting.render(requests[1].messages)
    assert rows[0].prompt == {"prompt_token_ids": tok(text, add_special_tokens=False)["input_ids"]}
    assert converter.eos_ids == hf.eos_ids


def test_sampling_kwargs():
    eos = [2, 7]
    greedy = sampling_kwargs(GenerationConfig(max_new_tokens=9, stop=("\n", "")), seed=5, eos_ids=eos)
    assert greedy == {
        "n": 1,
        "max_tokens": 9,
        "stop": ["\n"],
        "stop_token_ids": [2, 7],
        "skip_special_tokens": True,
        "logprobs": None,
        "temperature": 0.0,
    }
    sampled = sampling_kwargs(
        GenerationConfig(temperature=0.7, top_p=0.9, top_logprobs=5), seed=5, eos_ids=eos
    )
    assert sampled == {
        "n": 1,
        "max_tokens": 128,
        "stop": [],
        "stop_token_ids": [2, 7],
        "skip_special_tokens": True,
        "logprobs": 5,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 5,
    }
    fastchat = sampling_kwargs(GenerationConfig(temperature=0.7), 3, eos, {"top_k": 50, "top_p": 0.8})
    assert (fastchat["top_k"], fastchat["top_p"], fastchat["seed"]) == (50, 0.8, 3)
    with pytest.raises(ValueError, match="top_p=0.8"):
        sampling_kwargs(GenerationConfig(temperature=0.7, top_p=0.5), 3, eos, {"top_k": 50, "top_p": 0.8})


def test_logprobs_in_openais_shape():
    tok = build_toy_tokenizer()
    yes, no, red = tok.convert_tokens_to_ids(["yes", "no", "red"])
    lp = lambda v, rank: SimpleNamespace(logprob=v, rank=rank, decoded_token="ignored")  # noqa: E731
    # vLLM: the top k by rank plus the drawn token when it is not among them
    steps = [{no: lp(-0.2, 1), yes: lp(-1.8, 2)}, {red: lp(-0.1, 1), no: lp(-3.0, 2), yes: lp(-4.5, 7)}]
    assert openai_logprobs([no, yes], steps, 2, tok) == [
        {
            "token": "no",
            "logprob": -0.2,
            "top_logprobs": [{"token": "no", "logprob": -0.2}, {"token": "yes", "logprob": -1.8}],
        },
        {
            "token": "yes",
            "logprob": -4.5,
            "top_logprobs": [{"token": "red", "logprob": -0.1}, {"token": "no", "logprob": -3.0}],
        },
    ]


def test_response_cuts_logprobs_to_the_counted_tokens(converter):
    tok = converter.tokenizer
    yes, no = tok.convert_tokens_to_ids(["yes", "no"])
    eos = tok.eos_token_id
    lp = lambda v: SimpleNamespace(logprob=v, rank=1)  # noqa: E731
    request = Request("r", (Message("user", "x"),), GenerationConfig(max_new_tokens=8, top_logprobs=1))
    steps = [{yes: lp(-0.1)}, {eos: lp(-0.2)}, {no: lp(-0.3)}]
    got = converter.response(request, [yes, eos, no], 11, steps, 0.1)
    assert (got.text, got.prompt_tokens, got.completion_tokens) == ("yes", 11, 2)
    assert [c["logprob"] for c in got.logprobs] == [-0.1, -0.2]
    missing = converter.response(request, [yes], 11, None, 0.1)
    assert missing.error.type == "backend_error"


def test_engine_kwargs():
    options = BackendOptions(
        dtype="bfloat16", tensor_parallel_size=2, max_model_len=4096, trust_remote_code=True
    )
    assert engine_kwargs("/ckpt", options) == {
        "model": "/ckpt",
        "tokenizer": "/ckpt",
        "trust_remote_code": True,
        "dtype": "bfloat16",
        "seed": 0,
        "generation_config": "vllm",
        "tensor_parallel_size": 2,
        "max_model_len": 4096,
    }


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (BackendOptions(tensor_parallel_size=2), "--tensor-parallel-size apply to vllm: models only"),
        (
            BackendOptions(gpu_memory_utilization=0.5, max_model_len=9),
            "--gpu-memory-utilization, --max-model-len",
        ),
        (BackendOptions(tensor_parallel_size=0), "--tensor-parallel-size must be at least 1"),
        (BackendOptions(gpu_memory_utilization=1.5), "--gpu-memory-utilization must be a fraction"),
    ],
)
def test_engine_settings_are_refused_for_other_backends(toy_path, options, fragment):
    with pytest.raises(UserError, match=fragment.replace("-", r"\-")):
        load_backend(str(toy_path), options)


def test_lora_adapter_is_refused(tmp_path):
    (tmp_path / "adapter_config.json").write_text('{"base_model_name_or_path": "org/base"}')
    with pytest.raises(UserError, match="LoRA adapter"):
        RequestConverter(str(tmp_path), BackendOptions())


class _ToyEngine:
    """Stands in for `vllm.LLM` on CPU: answers each engine prompt with the toy model as vLLM would run it
    (`_simulated_engine`), in the shape of vLLM's `RequestOutput`; it refuses a whole call, as vLLM does,
    when one of its prompts holds more than `max_images` images."""

    def __init__(self, hf: HFBackend, max_images: int = 9) -> None:
        self.hf, self.max_images, self.calls = hf, max_images, 0

    def generate(self, prompts, params, use_tqdm=True):
        self.calls += 1
        if any(len(p.get("multi_modal_data", {}).get("image", [])) > self.max_images for p in prompts):
            raise ValueError(f"at most {self.max_images} image(s) may be provided in one prompt")
        outputs = []
        for prompt, p in zip(prompts, params, strict=True):
            tokens, n_prompt = _simulated_engine(self.hf, SimpleNamespace(prompt=prompt), p["max_tokens"])
            completion = SimpleNamespace(token_ids=tuple(tokens), logprobs=None)
            outputs.append(SimpleNamespace(outputs=[completion], prompt_token_ids=[0] * n_prompt))
        return outputs


def _engine_backend(converter: RequestConverter, engine: _ToyEngine):
    from evalkit.models.vllm_backend import VLLMBackend

    backend = VLLMBackend.__new__(VLLMBackend)  # everything but vllm.LLM itself, which needs vLLM and a GPU
    backend.options, backend.converter, backend.version = BackendOptions(), converter, "stand-in"
    backend.llm, backend._sampling_params = engine, dict
    return backend


def test_backend_generate_answers_as_hf_and_keeps_errors_per_request(hf, converter, images):
    requests = [*_requests(images), Request("bad", (Message("user", "what?", (images["corrupt"],)),))]
    engine = _ToyEngine(hf)
    got = _engine_backend(converter, engine).generate(requests)
    want = hf.generate(requests)
    assert engine.calls == 1  # the whole batch in one engine call
    assert [(r.id, r.text, r.prompt_tokens, r.completion_tokens) for r in got] == [
        (r.id, r.text, r.prompt_tokens, r.completion_tokens) for r in want
    ]
    assert got[3].error.type == "image_error" and all(r.ok for r in got[:3])


def test_a_prompt_the_engine_refuses_fails_alone(hf, converter, images):
    requests = [*_requests(images), Request("bad", (Message("user", "what?", (images["corrupt"],)),))]
    engine = _ToyEngine(hf, max_images=1)
    got = _engine_backend(converter, engine).generate(requests)
    want = hf.generate(requests)
    assert engine.calls == 1 + 3  # the batch, then each of its three prompts alone
    assert [r.id for r in got] == ["one", "two", "none", "bad"]
    assert got[1].error.type == "backend_error"
    assert got[1].error.message == "ValueError: at most 1 image(s) may be provided in one prompt"
    for i in (0, 2):
        assert (got[i].text, got[i].completion_tokens, got[i].error) == (
            want[i].text,
            want[i].completion_tokens,
            None,
        )
    assert got[3].error.type == "image_error"
    single = _engine_backend(converter, _ToyEngine(hf, max_images=0)).generate(requests[:1])
    assert single[0].error.message == "ValueError: at most 0 image(s) may be provided in one prompt"
