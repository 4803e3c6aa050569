"""`evalkit run --model ADAPTER_DIR`: a peft LoRA adapter (as `evalkit train --no-merge` saves it) is loaded
on its base, merged, and fingerprinted by both the base's and the adapter's weights."""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import pytest
import torch

from evalkit.models.hf import HFBackend
from evalkit.toy.model import build_toy_model
from evalkit.training.lora_targets import lora_targets
from evalkit.types import GenerationConfig, Message, Request, UserError

pytest.importorskip("peft")


def _adapter(base_dir: Path, processor, out: Path, seed: int, merged_dir: Path | None = None) -> None:
    """A LoRA adapter with random (non-zero) weights on the checkpoint in `base_dir`, saved with the
    processor as the trainer does with `merge=False`; optionally also merged into a full checkpoint."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlavaForConditionalGeneration

    base = LlavaForConditionalGeneration.from_pretrained(base_dir, dtype=torch.float32)  # records the path
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=lora_targets(base), init_lora_weights=False)
    torch.manual_seed(seed)
    with warnings.catch_warnings():  # peft calls transformers' deprecated is_gradient_checkpointing
        warnings.simplefilter("ignore", FutureWarning)
        model = get_peft_model(base, lora)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    if merged_dir is not None:
        model.merge_and_unload().save_pretrained(merged_dir)
        processor.save_pretrained(merged_dir)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    d = {name: root / name for name in ("base", "adapter", "adapter2", "merged")}
    model, processor = build_toy_model(seed=0)
    model.save_pretrained(d["base"])
    processor.save_pretrained(d["base"])
    _adapter(d["base"], processor, d["adapter"], seed=1, merged_dir=d["merged"])
    _adapter(d["base"], processor, d["adapter2"], seed=2)
    return d


def _greedy(backend: HFBackend) -> list[tuple[str, int]]:
    gen = GenerationConfig(max_new_tokens=8)
    reqs = [
        Request("a", (Message("user", "is there a red circle?"),), gen),
        Request("b", (Message("user", "describe the scene in a few words."),), gen),
    ]
    return [(r.text, r.completion_tokens) for r in backend.generate(reqs)]


def test_adapter_records_base_and_has_no_merged_weights(dirs):
    config = json.loads((dirs["adapter"] / "adapter_config.json").read_text())
    assert Path(config["base_model_name_or_path"]).resolve() == dirs["base"].resolve()
    assert not (dirs["adapter"] / "config.json").exists()


def test_adapter_equals_merged_checkpoint(dirs):
    adapter, merged = HFBackend(str(dirs["adapter"])), HFBackend(str(dirs["merged"]))
    assert not any("lora" in n for n, _ in adapter.model.named_parameters())  # merged on load
    out = _greedy(adapter)
    assert out == _greedy(merged)
    assert all(n == 8 for _, n in out)
    base = HFBackend(str(dirs["base"]))
    assert _greedy(base) != out  # the adapter really changes the model

    fp_adapter, fp_base = adapter.fingerprint(), base.fingerprint()
    fp_adapter2 = HFBackend(str(dirs["adapter2"])).fingerprint()
    assert fp_adapter != fp_base and "adapter" not in fp_base
    assert {k: v for k, v in fp_adapter.items() if k != "adapter"} == fp_base  # covers the base's weights
    assert fp_adapter["adapter"]["weights_sha256"] and fp_adapter["adapter"]["config_sha256"]
    assert fp_adapter2["adapter"]["weights_sha256"] != fp_adapter["adapter"]["weights_sha256"]
    assert fp_adapter2 != fp_adapter


def test_processor_falls_back_to_the_base(dirs, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(dirs["adapter"] / name, bare / name)
    backend = HFBackend(str(bare))
    assert backend.chat_template and _greedy(backend) == _greedy(HFBackend(str(dirs["merged"])))


def test_missing_base_is_a_user_error(dirs, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(dirs["adapter"], broken)
    config = json.loads((broken / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "no-such-base")
    (broken / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="no-such-base") as err:
        HFBackend(str(broken))
    assert "\n" not in str(err.value)


def test_adapter_without_peft_is_a_user_error(dirs, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft → ImportError
    with pytest.raises(UserError, match=r"pip install 'evalkit\[train\]'"):
        HFBackend(str(dirs["adapter"]))
