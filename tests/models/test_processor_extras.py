"""A package a checkpoint's processor imports and evalkit installs only through an extra (SmolVLM2's
SmolVLMProcessor: num2words, the `smolvlm` extra) is, where absent, one line naming the pip command, not
transformers' ImportError. Absence is made the way transformers sees it: its module-level `num2words` set
to None, as `is_num2words_available()` leaves it where the package is missing; the extra expected is read
from pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from support.families.idefics import IMAGE_TOKENS, build_smolvlm2

from evalkit.models.base import BackendOptions
from evalkit.models.hf_loading import user_errors
from evalkit.types import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

PROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]


def _extra_of(package: str) -> str:
    extras = PROJECT["optional-dependencies"].items()
    found = [e for e, lines in extras if any(re.match(rf"{package}\b", x) for x in lines)]
    assert len(found) == 1, f"{package} should be in exactly one extra of pyproject.toml: {found}"
    return found[0]


@pytest.fixture
def without_num2words(monkeypatch):
    from transformers.models.smolvlm import processing_smolvlm

    monkeypatch.setattr(processing_smolvlm, "num2words", None)


def _assert_names_the_extra(message: str) -> None:
    assert "\n" not in message
    assert "num2words is not installed" in message
    assert message.endswith(f"pip install 'evalkit[{_extra_of('num2words')}]'"), message


def test_smolvlm_processor_without_num2words_is_one_line_naming_the_extra(without_num2words):
    from support.families.common import tokenizer
    from transformers import SmolVLMProcessor
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    def build():
        return SmolVLMProcessor(SmolVLMImageProcessorPil(), tokenizer(IMAGE_TOKENS), video_processor=None)

    with pytest.raises(ImportError, match="num2words"):  # what transformers raises
        build()
    with pytest.raises(UserError) as info:
        user_errors("HuggingFaceTB/SmolVLM2-256M-Video-Instruct", build)
    _assert_names_the_extra(str(info.value))


def test_other_import_errors_keep_their_own_line():
    def load():
        raise ImportError("SomeVideoProcessor requires the Torchvision library but it was not found\nmore")

    with pytest.raises(UserError) as info:
        user_errors("some/model", load)
    assert "\n" not in str(info.value) and "requires the Torchvision library" in str(info.value)
    assert "pip install" not in str(info.value)


@pytest.mark.parametrize("entry", ["evaluate", "train"])
def test_loading_a_smolvlm2_checkpoint_without_num2words(entry, without_num2words, tmp_path):
    from evalkit.models.hf import HFBackend
    from evalkit.training.model_setup import load_model

    build_smolvlm2(tmp_path)
    with pytest.raises(UserError) as info:
        if entry == "evaluate":
            HFBackend(str(tmp_path), BackendOptions(device="cpu", dtype="float32"))
        else:
            load_model(str(tmp_path))
    _assert_names_the_extra(str(info.value))
