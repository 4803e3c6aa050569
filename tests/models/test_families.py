"""The model-family matrix: every family in tests/support/families, a tiny random checkpoint built
offline, through evalkit's own code paths — evaluate (batch 1), batch 4 == batch 1 (answers identical,
log-probs equal to float tolerance, images of different sizes), one DPO step under the default LoRA and
under full fine-tuning (step-0 loss ln 2; frozen parts unchanged; something trained), and the trained
checkpoints reloaded and evaluated. Cells a family cannot do expect evalkit's one-line error; pending
cells are strict xfails."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from support.families import CELLS, FAMILIES, Family, readme_table

from evalkit.models.base import BackendOptions
from evalkit.models.hf import HFBackend
from evalkit.types import GenerationConfig, Message, Request, UserError

pytestmark = pytest.mark.usefixtures("one_thread")

README = Path(__file__).resolve().parents[2] / "README.md"
#: (width, height) of the test images: different sizes and aspect ratios on purpose
SIZES = [(40, 30), (64, 64), (30, 52), (48, 36)]
QUESTIONS = ["is there a red circle?", "what colour is the square?", "how many objects?", "describe it."]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """family name -> its checkpoint folder, built once per module."""
    folders: dict[str, Path] = {}

    def get(family: Family) -> Path:
        if family.name not in folders:
            path = tmp_path_factory.mktemp(family.name.replace(" ", "-").replace("/", "-"))
            family.build(path)
            folders[family.name] = path
        return folders[family.name]

    return get


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("family-images")
    paths = []
    for i, (size, colour) in enumerate(zip(SIZES, ["red", "blue", "green", "yellow"], strict=True)):
        image = Image.new("RGB", size, colour)
        image.paste((255 - 60 * i, 40 * i, 90), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
        image.save(d / f"{i}.png")
        paths.append(str(d / f"{i}.png"))
    return paths


def _enter(family: Family, cell: str) -> None:
    """Skip where the family's packages are missing; a pending cell is a strict xfail."""
    for module in family.requires:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{family.name} needs {module}")


def _params(family: Family, cell: str):
    marks = [pytest.mark.xfail(strict=True, reason=family.pending[cell])] if cell in family.pending else []
    return pytest.param(family, id=family.name, marks=marks)


def _families(cell: str):
    return [_params(f, cell) for f in FAMILIES.values()]


def _options(family: Family) -> BackendOptions:
    return BackendOptions(device="cpu", dtype="float32", trust_remote_code=family.trust_remote_code)


def _requests(family: Family, images: list[str]) -> list[Request]:
    gen = GenerationConfig(max_new_tokens=5, top_logprobs=2)
    out = []
    for i, question in enumerate(QUESTIONS):
        attached = (images[i],) if family.images else ()
        out.append(Request(f"q{i}", (Message("user", question * (1 + i % 2), attached),), gen))
    return out


def _load(family: Family, path: Path) -> HFBackend:
    return HFBackend(str(path), _options(family))


def _expect_unsupported(family: Family, cell: str, action) -> None:
    with pytest.raises(UserError) as info:
        action()
    message = str(info.value)
    assert "\n" not in message and family.unsupported[cell] in message


@pytest.mark.parametrize("family", _families("evaluate"))
def test_evaluate(family, built, images):
    _enter(family, "evaluate")
    if "evaluate" in family.unsupported:
        return _expect_unsupported(family, "evaluate", lambda: _load(family, built(family)))
    backend = _load(family, built(family))
    responses = [backend.generate([r])[0] for r in _requests(family, images)]
    assert [r.error for r in responses] == [None] * len(responses)
    assert all(r.completion_tokens >= 1 and len(r.logprobs) == r.completion_tokens for r in responses)
    assert backend.info()["kind"] == ("image-text-to-text" if family.images else "causal-lm")


@pytest.mark.parametrize("family", _families("batch"))
def test_batch_of_four_equals_one_at_a_time(family, built, images):
    _enter(family, "batch")
    if "batch" in family.unsupported:
        return _expect_unsupported(family, "batch", lambda: _load(family, built(family)))
    backend = _load(family, built(family))
    requests = _requests(family, images)
    single = [backend.generate([r])[0] for r in requests]
    batched = backend.generate(requests)
    assert [r.error for r in batched] == [None] * len(requests)
    assert [(r.text, r.prompt_tokens, r.completion_tokens) for r in batched] == [
        (r.text, r.prompt_tokens, r.completion_tokens) for r in single
    ]
    for b, s in zip(batched, single, strict=True):
        assert [t["token"] for t in b.logprobs] == [t["token"] for t in s.logprobs]
        assert [t["logprob"] for t in b.logprobs] == pytest.approx(
            [t["logprob"] for t in s.logprobs], abs=1e-4
        )


def _pairs(family: Family, folder: Path, images: list[str]) -> Path:
    rows = []
    for i, image in enumerate(images[:2]):
        row = {"id": f"p{i}", "prompt": QUESTIONS[i], "chosen": "a red circle.", "rejected": "a blue dog."}
        if family.images:
            row["image"] = image
        rows.append(row)
    path = folder / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _train(family: Family, base: Path, out: Path, images: list[str], lora_rank: int):
    from evalkit.training.trainer import train

    extra = {"trust_remote_code": True} if family.trust_remote_code else {}
    return train(
        method="dpo",
        model=str(base),
        data=str(_pairs(family, out.parent, images)),
        output=str(out),
        max_steps=1,
        batch_size=2,
        lr=1e-2,
        lora_rank=lora_rank,
        save_every=0,
        **extra,
    )


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out |= load_file(f)
    return out


def _check_dpo(family: Family, cell: str, built, images, tmp_path, lora_rank: int):
    _enter(family, cell)
    base = built(family)
    out = tmp_path / cell
    if cell in family.unsupported:
        return _expect_unsupported(family, cell, lambda: _train(family, base, out, images, lora_rank))
    result = _train(family, base, out, images, lora_rank)
    assert result.log[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)  # policy == reference at step 0
    before, after = _weights(base), _weights(out)
    assert set(after) == set(before)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "one DPO step changed no weight"
    frozen = {k for k in before if k.startswith(family.frozen_prefixes)} if family.frozen_prefixes else set()
    unmatched = [p for p in family.frozen_prefixes if not any(k.startswith(p) for k in before)]
    assert not unmatched, f"frozen_prefixes name no saved weight: {unmatched}"  # else the check is vacuous
    assert not (changed & frozen), f"frozen parts trained: {sorted(changed & frozen)[:3]}"
    if lora_rank:  # merged LoRA: only attention projections of the language model move
        assert all(k.endswith(family.lora_weights) for k in changed), sorted(changed)[:5]
    return out


@pytest.fixture(scope="module")
def trained() -> dict[str, Path]:
    """family name -> a checkpoint `evalkit train` wrote (full fine-tuning's, else LoRA's), for reloading."""
    return {}


@pytest.mark.parametrize("family", _families("dpo-lora"))
def test_dpo_lora_step(family, built, images, tmp_path_factory, trained):
    out = _check_dpo(family, "dpo-lora", built, images, tmp_path_factory.mktemp("lora"), lora_rank=8)
    if out is not None:
        trained.setdefault(family.name, out)


@pytest.mark.parametrize("family", _families("dpo-full"))
def test_dpo_full_step(family, built, images, tmp_path_factory, trained):
    out = _check_dpo(family, "dpo-full", built, images, tmp_path_factory.mktemp("full"), lora_rank=0)
    if out is not None:
        trained[family.name] = out


@pytest.mark.parametrize("family", _families("reload"))
def test_reload_trained_checkpoint(family, images, trained):
    """Runs after the DPO tests (module order): the trained checkpoint loads in the backend and answers."""
    _enter(family, "reload")
    if family.name not in trained:
        pytest.skip(f"{family.name}: no trained checkpoint to reload (DPO cells unsupported or pending)")
    if "reload" in family.unsupported:
        return _expect_unsupported(family, "reload", lambda: _reload(family, trained[family.name], images))
    _reload(family, trained[family.name], images)


def _reload(family: Family, folder: Path, images: list[str]) -> None:
    backend = _load(family, folder)
    responses = backend.generate(_requests(family, images)[:2])
    assert [r.error for r in responses] == [None, None]


def test_readme_table_matches_the_matrix():
    """The README's "Supported models" table is the one the declarations above (which this module checks)
    render: regenerate it with `python tests/support/families/__init__.py` after changing a family."""
    assert readme_table() in README.read_text(), "README's Supported models table is out of date"
    assert set(CELLS) == {"evaluate", "batch", "dpo-lora", "dpo-full", "reload"}
