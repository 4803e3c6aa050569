"""Each prompt of a batch gets its own images: a batch mixing a one-image prompt, a prompt without an image
and a two-image prompt answers every request as it is answered alone (text, prompt tokens, log-probs),
for the families whose processors read a flat image list differently (Gemma 3, Mllama) and for LLaVA.
PaliGemma's processor refuses a prompt without an image: that request is an `input_error`, alone or in a
batch, and the rest of its batch is answered as alone."""

from __future__ import annotations

import pytest
from PIL import Image
from support.families import FAMILIES

from evalkit.models.base import BackendOptions
from evalkit.models.hf import HFBackend
from evalkit.types import GenerationConfig, Message, Request

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("batch-images")
    out = []
    for i, size in enumerate([(40, 30), (64, 64), (30, 52)]):
        image = Image.new("RGB", size, ("red", "blue", "green")[i])
        image.paste((200, 30 * i, 90), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
        image.save(d / f"{i}.png")
        out.append(str(d / f"{i}.png"))
    return out


def _backend(name: str, folder) -> HFBackend:
    FAMILIES[name].build(folder)
    return HFBackend(str(folder), BackendOptions(device="cpu", dtype="float32"))


def _requests(images: list[str]) -> list[Request]:
    gen = GenerationConfig(max_new_tokens=5, top_logprobs=1)
    return [
        Request("one", (Message("user", "is there a red circle?", (images[0],)),), gen),
        Request("none", (Message("user", "name a colour.", ()),), gen),
        Request("two", (Message("user", "which one is larger?", (images[1], images[2])),), gen),
    ]


def _same(batched, single) -> None:
    assert (batched.text, batched.prompt_tokens, batched.completion_tokens) == (
        single.text,
        single.prompt_tokens,
        single.completion_tokens,
    )
    assert [t["logprob"] for t in batched.logprobs] == pytest.approx(
        [t["logprob"] for t in single.logprobs], abs=1e-4
    )


@pytest.mark.parametrize(
    "name", ["LLaVA-1.5", "LLaVA-NeXT", "Gemma 3", "Mllama", "Molmo2", "Phi-4-multimodal"]
)
def test_mixed_batch_equals_one_at_a_time(name, images, tmp_path):
    backend = _backend(name, tmp_path)
    requests = _requests(images)
    single = [backend.generate([r])[0] for r in requests]
    assert [r.error for r in single] == [None] * 3
    batched = backend.generate(requests)
    assert [r.error for r in batched] == [None] * 3
    for b, s in zip(batched, single, strict=True):
        _same(b, s)


def test_paligemma_prompt_without_image_is_an_input_error(images, tmp_path):
    backend = _backend("PaliGemma", tmp_path)
    requests = _requests(images)
    single = [backend.generate([r])[0] for r in requests]
    batched = backend.generate(requests)
    for responses in (single, batched):
        assert [r.error.type if r.error else None for r in responses] == [None, "input_error", None]
        assert "without one" in responses[1].error.message
    _same(batched[0], single[0])
    _same(batched[2], single[2])
