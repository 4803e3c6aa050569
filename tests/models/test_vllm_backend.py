"""The vllm backend itself, on vLLM's engine and a GPU: the toy LLaVA asked through vLLM answers as the hf
backend does (greedy), per-request errors stay per request, and the fingerprint names the engine. Skipped
where vLLM or a CUDA device is missing (vLLM has no CPU wheel here); the conversion it relies on is tested
without vLLM in test_vllm_requests.py."""

from __future__ import annotations

import pytest

vllm = pytest.importorskip("vllm")
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("the vllm backend needs a CUDA device", allow_module_level=True)

from PIL import Image  # noqa: E402

from evalkit.models.base import BackendOptions, load_backend  # noqa: E402
from evalkit.models.hf import HFBackend  # noqa: E402
from evalkit.toy.model import build_toy_model  # noqa: E402
from evalkit.types import GenerationConfig, Message, Request  # noqa: E402


@pytest.fixture(scope="module")
def toy_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("vllm-engine-toy")
    model, processor = build_toy_model(seed=0)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def engine(toy_path):
    backend = load_backend(f"vllm:{toy_path}", BackendOptions(dtype="float32", gpu_memory_utilization=0.3))
    yield backend
    backend.close()


def test_greedy_answers_match_the_hf_backend(engine, toy_path, tmp_path):
    for name, color in [("red", "red"), ("blue", "blue")]:
        Image.new("RGB", (48, 48), color).save(tmp_path / f"{name}.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    gen = GenerationConfig(max_new_tokens=6)
    requests = [
        Request("a", (Message("user", "is there a red circle?", (str(tmp_path / "red.png"),)),), gen),
        Request("b", (Message("user", "how many objects?", (str(tmp_path / "blue.png"),)),), gen),
        Request("c", (Message("user", "what?", (str(tmp_path / "bad.png"),)),), gen),
    ]
    hf = HFBackend(str(toy_path), BackendOptions(dtype="float32", device="cuda"))
    want, got = hf.generate(requests), engine.generate(requests)
    assert [r.id for r in got] == ["a", "b", "c"]
    assert got[2].error.type == "image_error"
    for g, w in zip(got[:2], want[:2], strict=True):
        assert (g.text, g.prompt_tokens, g.completion_tokens) == (
            w.text,
            w.prompt_tokens,
            w.completion_tokens,
        )
    fingerprint = engine.fingerprint()
    assert fingerprint["engine"] == {"name": "vllm", "version": vllm.__version__}
    assert {k: v for k, v in fingerprint.items() if k != "engine"} == hf.fingerprint()


def test_top_logprobs_come_back_in_openais_shape(engine, tmp_path):
    request = Request(
        "lp", (Message("user", "is there a cat?"),), GenerationConfig(max_new_tokens=3, top_logprobs=2)
    )
    (response,) = engine.generate([request])
    assert response.ok and len(response.logprobs) == response.completion_tokens
    for entry in response.logprobs:
        assert len(entry["top_logprobs"]) == 2
        assert entry["top_logprobs"][0]["logprob"] >= entry["top_logprobs"][1]["logprob"]
