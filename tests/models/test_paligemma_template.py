"""PaliGemma's hub checkpoints ship no chat template and evalkit never invents one: evaluating or training
such a checkpoint stops with one line that names the fix (a chat_template.jinja; README)."""

from __future__ import annotations

import json

import pytest
from support.families import FAMILIES

from evalkit.models.base import BackendOptions
from evalkit.models.hf import HFBackend
from evalkit.types import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def hub_shaped(tmp_path_factory):
    """The tiny PaliGemma as the hub holds it: no chat template anywhere."""
    path = tmp_path_factory.mktemp("paligemma-hub")
    FAMILIES["PaliGemma"].build(path)
    (path / "chat_template.jinja").unlink()
    for name in ("processor_config.json", "tokenizer_config.json"):
        config = json.loads((path / name).read_text())
        assert "chat_template" not in config
    return path


def _one_line(info) -> str:
    message = str(info.value)
    assert "\n" not in message
    assert "no chat template" in message and "PaliGemma" in message and "chat_template.jinja" in message
    return message


def test_evaluate_names_the_fix(hub_shaped):
    with pytest.raises(UserError) as info:
        HFBackend(str(hub_shaped), BackendOptions(device="cpu", dtype="float32"))
    _one_line(info)


def test_train_names_the_fix(hub_shaped, tmp_path):
    from PIL import Image

    from evalkit.training.trainer import train

    Image.new("RGB", (32, 32), "red").save(tmp_path / "a.png")
    row = {"prompt": "what colour?", "image": str(tmp_path / "a.png"), "chosen": "red.", "rejected": "blue."}
    (tmp_path / "pairs.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(UserError) as info:
        train(
            method="dpo",
            model=str(hub_shaped),
            data=str(tmp_path / "pairs.jsonl"),
            output=str(tmp_path / "out"),
            max_steps=1,
            batch_size=1,
            save_every=0,
        )
    _one_line(info)
