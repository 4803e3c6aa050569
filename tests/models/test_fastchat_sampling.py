"""`--sampling fastchat`: top-k and the checkpoint's generation-config sampling values as FastChat's
MT-Bench generation got them from `generate(do_sample=True, temperature=T)`; the default (`evalkit`:
temperature and top-p only) unchanged; per-row seeded draws independent of the batch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from support.families.llava import build_llava_15

from evalkit.models.base import BackendOptions, load_backend
from evalkit.models.sampling import RowSampler, RowSampling, fastchat_settings
from evalkit.types import GenerationConfig, Message, Request, UserError

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB = 100


def _logits(steps: int, rows: int = 1, seed: int = 7) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn((steps, rows, VOCAB), generator=g) * 2.0


def _draws(specs: list[RowSampling | None], logits: torch.Tensor) -> list[list[int]]:
    """Each row's token per step (the argmax of the one-hot row the sampler returns)."""
    sampler = RowSampler(specs)
    out: list[list[int]] = [[] for _ in specs]
    for step in logits:
        scores = sampler(None, step.clone())
        for r in range(len(specs)):
            out[r].append(int(scores[r].argmax()))
    return out


def test_with_top_k_every_draw_is_among_the_k_most_likely():
    logits = _logits(400)
    k = 5
    [drawn] = _draws([RowSampling(temperature=3.0, top_p=1.0, seed=1, top_k=k)], logits)
    allowed = logits[:, 0].topk(k, dim=-1).indices
    assert all(t in allowed[s].tolist() for s, t in enumerate(drawn))
    # without top-k the same flat distribution draws outside the top k often
    [free] = _draws([RowSampling(temperature=3.0, top_p=1.0, seed=1)], logits)
    outside = sum(t not in allowed[s].tolist() for s, t in enumerate(free))
    assert outside > 100


def test_default_sampling_is_temperature_then_top_p_as_before():
    """The evalkit draw: softmax(logits / T), the smallest descending prefix reaching top-p, one
    multinomial draw from the row's generator seeded with the request's seed."""
    logits = _logits(60)
    temperature, top_p, seed = 0.8, 0.9, 3
    g = torch.Generator().manual_seed(seed)
    want = []
    for step in logits:
        p, order = torch.softmax(step[0] / temperature, dim=-1).sort(descending=True)
        p = p * ((p.cumsum(0) - p) < top_p)
        want.append(int(order[torch.multinomial(p, 1, generator=g)]))
    assert _draws([RowSampling(temperature, top_p, seed)], logits) == [want]


def test_a_row_draws_the_same_tokens_alone_or_in_a_batch():
    logits = _logits(80, rows=3)
    specs = [
        RowSampling(1.0, 1.0, 11, top_k=50, checkpoint_top_p=0.8),
        None,
        RowSampling(0.7, 0.95, 12, top_k=50),
    ]
    together = _draws(specs, logits)
    assert _draws([specs[0]], logits[:, :1]) == [together[0]]
    assert _draws([specs[2]], logits[:, 2:]) == [together[2]]
    assert together[1] == logits[:, 1].argmax(-1).tolist()  # a greedy row is left untouched


def test_fastchat_takes_the_checkpoint_values_or_transformers_defaults():
    from transformers import GenerationConfig as HFGenerationConfig

    assert fastchat_settings(HFGenerationConfig(), "m") == {"top_k": 50, "top_p": 1.0}
    assert fastchat_settings(HFGenerationConfig(top_k=7, top_p=0.6), "m") == {"top_k": 7, "top_p": 0.6}
    with pytest.raises(UserError, match="sets repetition_penalty=1.1, which evalkit does not apply"):
        fastchat_settings(HFGenerationConfig(repetition_penalty=1.1), "m")


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Path:
    """A tiny LLaVA-1.5 whose generation config sets no sampling values (transformers' top_k 50 applies)."""
    path = tmp_path_factory.mktemp("llava15-plain")
    build_llava_15(path)
    return path


@pytest.fixture(scope="module")
def top1(plain, tmp_path_factory) -> Path:
    """The same checkpoint with generation_config.json saying top_k=1: FastChat's sampling is then greedy."""
    path = tmp_path_factory.mktemp("llava15-top1")
    shutil.copytree(plain, path, dirs_exist_ok=True)
    gen = json.loads((path / "generation_config.json").read_text())
    (path / "generation_config.json").write_text(json.dumps({**gen, "top_k": 1, "do_sample": True}))
    return path


def _requests(temperature: float) -> list[Request]:
    questions = ["what is it", "is it red", "how many objects are there", "describe the picture"]
    gen = GenerationConfig(max_new_tokens=6, temperature=temperature)
    return [Request(f"q{i}", (Message("user", q),), gen, seed=i) for i, q in enumerate(questions)]


def _texts(path: Path, sampling: str, temperature: float) -> list[str]:
    backend = load_backend(str(path), BackendOptions(device="cpu", dtype="float32", sampling=sampling))
    responses = backend.generate(_requests(temperature))
    assert all(r.error is None for r in responses), responses
    return [r.text for r in responses]


def test_fastchat_applies_the_checkpoint_top_k(top1):
    greedy = _texts(top1, "evalkit", 0.0)
    assert _texts(top1, "fastchat", 2.0) == greedy  # top_k=1 leaves only the most likely token
    assert _texts(top1, "evalkit", 2.0) != greedy  # the default ignores the checkpoint's top_k


def test_fastchat_is_recorded_in_the_fingerprint_and_batch_invariant(plain, top1):
    default = load_backend(str(plain), BackendOptions(device="cpu", dtype="float32"))
    assert "sampling" not in default.fingerprint()
    assert default.info()["sampling"] == {"style": "evalkit"}
    one = load_backend(str(top1), BackendOptions(device="cpu", dtype="float32", sampling="fastchat"))
    assert one.fingerprint()["sampling"] == {"style": "fastchat", "top_k": 1, "top_p": 1.0}
    backend = load_backend(str(plain), BackendOptions(device="cpu", dtype="float32", sampling="fastchat"))
    assert backend.fingerprint()["sampling"] == {"style": "fastchat", "top_k": 50, "top_p": 1.0}
    requests = _requests(1.5)
    together = [r.text for r in backend.generate(requests)]
    assert together == [backend.generate([r])[0].text for r in requests]
