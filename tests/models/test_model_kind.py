"""What kind of model a checkpoint is (evalkit.models.model_kind), for evaluation and training alike: an image
processor makes an image model whatever transformers' mappings say (Phi-4-multimodal is mapped as a causal
LM; remote-code VLMs are not mapped at all), remote code runs only with --trust-remote-code (one-line error
naming the flag otherwise, from `evalkit run` and `evalkit train`), and what evalkit cannot drive is refused
at load with one line. Checkpoints are the matrix's tiny families (tests/support/families)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from support.cli import run_cli
from support.families.llava import build_llava_15
from support.families.phi import build_molmo, build_phi3v, build_phi4_multimodal
from support.families.text import build_phi3, build_qwen2

from evalkit.models.base import BackendOptions
from evalkit.models.hf import HFBackend
from evalkit.models.model_kind import IMAGE, TEXT, ModelKind, classify
from evalkit.training.config import TrainConfig
from evalkit.types import Message, UserError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    built = {}

    def get(name, build):
        if name not in built:
            built[name] = tmp_path_factory.mktemp(name)
            build(built[name])
        return built[name]

    return get


def test_classification_of_native_families(ckpt):
    assert classify(str(ckpt("llava", build_llava_15)), False) == ModelKind(
        IMAGE, "AutoModelForImageTextToText", False
    )
    assert classify(str(ckpt("qwen2", build_qwen2)), False) == ModelKind(TEXT, "AutoModelForCausalLM", False)
    # Phi-3-mini's config.json names its own code too, but transformers has the class: no flag needed
    phi3 = ckpt("phi3", build_phi3)
    assert "auto_map" in json.loads((phi3 / "config.json").read_text())
    assert classify(str(phi3), False) == ModelKind(TEXT, "AutoModelForCausalLM", False)
    # transformers maps phi4_multimodal only as a causal LM; its processor's image processor decides
    phi4 = ckpt("phi4", build_phi4_multimodal)
    assert classify(str(phi4), False) == ModelKind(IMAGE, "AutoModelForCausalLM", False)
    model = classify(str(phi4), False).auto_class().from_pretrained(phi4)
    assert type(model).__name__ == "Phi4MultimodalForCausalLM"


def test_a_separate_vision_lora_is_refused(ckpt, tmp_path):
    """Phi-4-multimodal's hub repo keeps its vision LoRA in vision-lora/, applied by the caller for image
    inputs: evaluating without it would not be the released model, so loading asks for a merged folder."""
    import shutil

    folder = tmp_path / "phi4"
    shutil.copytree(ckpt("phi4", build_phi4_multimodal), folder)
    (folder / "vision-lora").mkdir()
    (folder / "vision-lora" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2}))
    with pytest.raises(UserError, match=r"vision LoRA adapter apart \(vision-lora/\).*merged folder") as e:
        classify(str(folder), False)
    assert "\n" not in str(e.value)


def test_phi4_multimodal_renders_its_image_token(ckpt):
    """Its chat template turns an image part into the image token the processor expands."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ckpt("phi4", build_phi4_multimodal))
    conv = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what is it?"}]}]
    text = tok.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
    assert text == "<|user|><|endoftext10|>what is it?<|end|><|assistant|>"
    assert tok.image_token == "<|endoftext10|>" and tok.audio_token == "<|endoftext11|>"


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed")
def test_an_image_processor_only_for_torchvision_is_one_line(ckpt, tmp_path):
    """Phi-4-multimodal's and Molmo2's load without torchvision (evalkit.models.torch_images); an image
    processor transformers has only for torchvision and evalkit has no stand-in for (Llama 4's) says so."""
    import shutil

    phi4 = str(tmp_path / "phi4-llama4-images")
    shutil.copytree(ckpt("phi4", build_phi4_multimodal), phi4)
    settings = json.loads((Path(phi4) / "processor_config.json").read_text())
    settings["image_processor"]["image_processor_type"] = "Llama4ImageProcessor"
    (Path(phi4) / "processor_config.json").write_text(json.dumps(settings))
    for load in (
        lambda: HFBackend(phi4, BackendOptions(device="cpu")),
        lambda: _train(phi4, tmp_path, trust_remote_code=False),
    ):
        with pytest.raises(UserError, match=NO_TORCHVISION) as e:
            load()
        assert "\n" not in str(e.value)


NO_TORCHVISION = r"image processor needs torchvision.*pip install torchvision"


def _train(model: str, tmp_path, **extra):
    from evalkit.training.trainer import train

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "hi", "chosen": "a red circle.", "rejected": "a dog."}) + "\n")
    out = str(tmp_path / "out")
    return train(method="dpo", model=model, data=str(pairs), output=out, max_steps=1, batch_size=1, **extra)


def test_remote_code_without_the_flag_is_one_line(ckpt, tmp_path):
    folder = str(ckpt("phi3v", build_phi3v))
    fragment = r"runs its own Python code \(configuration_phi3_v\.py, image_processing_phi3_v\.py, "
    fragment += r"modeling_phi3_v\.py, processing_phi3_v\.py.*pass --trust-remote-code"
    for load in (
        lambda: classify(folder, False),
        lambda: HFBackend(folder, BackendOptions(device="cpu")),
        lambda: _train(folder, tmp_path),
    ):
        with pytest.raises(UserError, match=fragment) as e:
            load()
        assert "\n" not in str(e.value)
    assert classify(folder, True) == ModelKind(IMAGE, "AutoModelForCausalLM", True)


def test_remote_code_runs_with_its_own_api_and_through_evalkit(ckpt):
    """With trust, the shipped classes load and work through their own API (one prompt, `<|image_1|>`
    written by the user; the image reaches the logits); evalkit drives the same processor by the
    numbered-image-placeholder convention: it sends the prompt the model card writes."""
    from transformers import AutoModelForCausalLM, AutoProcessor

    folder = ckpt("phi3v", build_phi3v)
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    assert (type(model).__name__, type(processor).__name__) == ("Phi3VForCausalLM", "Phi3VProcessor")
    prompt = "<|user|>\n<|image_1|>\nwhat is it?<|end|>\n<|assistant|>\n"
    logits = []
    for colour in ("red", "blue"):
        inputs = processor(prompt, [Image.new("RGB", (40, 30), colour)])
        assert (inputs["input_ids"] == -1).sum() == 12  # the image's placeholder tokens: 3 crops x 4
        with torch.no_grad():
            logits.append(model(**inputs).logits[0, -1])
    assert not torch.allclose(logits[0], logits[1])
    backend = HFBackend(str(folder), BackendOptions(device="cpu", trust_remote_code=True))
    assert backend.info()["kind"] == IMAGE
    assert backend.prompting.render((Message("user", "what is it?", ("x.png",)),)) == prompt


def test_molmo_runs_with_its_own_api_but_evalkit_refuses_it(ckpt):
    """Molmo's shipped code is driven through `process()` (unbatched) and `generate_from_batch`; the image
    reaches the answer. evalkit cannot drive it and says so at load, for evaluation and training alike."""
    from transformers import AutoModelForCausalLM, AutoProcessor, GenerationConfig

    from evalkit.training.model_setup import load_model

    folder = ckpt("molmo", build_molmo)
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    outputs = []
    for colour in ("red", "blue"):
        inputs = processor.process(images=[Image.new("RGB", (40, 30), colour)], text="what is it?")
        batch = {k: v.unsqueeze(0) for k, v in inputs.items()}
        gen = GenerationConfig(max_new_tokens=3, do_sample=False, pad_token_id=0)
        out = model.generate_from_batch(batch, gen, output_logits=True, return_dict_in_generate=True)
        assert out.sequences.shape == (1, batch["input_ids"].shape[1] + 3)
        outputs.append(out.logits[0][0])
    assert not torch.allclose(outputs[0], outputs[1])
    for load in (
        lambda: HFBackend(str(folder), BackendOptions(device="cpu", trust_remote_code=True)),
        lambda: load_model(str(folder), trust_remote_code=True),
    ):
        with pytest.raises(UserError, match=r"MolmoProcessor is driven through its own process\(\)") as e:
            load()
        assert "\n" not in str(e.value)


def test_train_trust_remote_code_flag(ckpt, tmp_path):
    """`evalkit train --trust-remote-code` reaches model loading (the error moves past the flag's), is
    recorded in train_config.json, and is not part of the resume identity."""
    folder = str(ckpt("phi3v", build_phi3v))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "hi", "chosen": "a red circle.", "rejected": "a dog."}) + "\n")
    args = ["train", "--method", "dpo", "--model", folder, "--data", str(pairs), "--max-steps", "1"]
    without = run_cli(*args, "--output", str(tmp_path / "a"))
    assert without.returncode == 2 and "pass --trust-remote-code" in without.stderr
    with_flag = run_cli(*args, "--output", str(tmp_path / "b"), "--trust-remote-code")
    assert with_flag.returncode == 0 and "saved" in with_flag.stdout, with_flag.stderr

    result = _train(str(ckpt("qwen2", build_qwen2)), tmp_path, trust_remote_code=True)
    saved = json.loads((result.output / "train_config.json").read_text())
    assert saved["config"]["trust_remote_code"] is True
    base = TrainConfig(method="dpo", model="m", data="d", output="o")
    assert base.resume_key() == TrainConfig(**{**base.__dict__, "trust_remote_code": True}).resume_key()


def test_remote_code_trained_and_reloaded(ckpt, tmp_path):
    """With --trust-remote-code the checkpoint's own code is what runs, in evaluation and in training,
    and the trained checkpoint carries that code (save_pretrained copies it), so it reloads the same way."""
    import shutil

    from support.families import phi3_code

    from evalkit.types import GenerationConfig, Message, Request

    folder = tmp_path / "phi3-remote"
    shutil.copytree(ckpt("phi3", build_phi3), folder)
    code = Path(phi3_code.__file__).parent
    for name in ("configuration_phi3.py", "modeling_phi3.py"):
        shutil.copy(code / name, folder / name)
    assert classify(str(folder), True) == ModelKind(TEXT, "AutoModelForCausalLM", False)

    def answer(path, trust: bool):
        backend = HFBackend(str(path), BackendOptions(device="cpu", trust_remote_code=trust))
        gen = GenerationConfig(max_new_tokens=3)
        request = Request("q", (Message("user", "is there a red circle?"),), gen)
        response = backend.generate([request])[0]
        assert response.error is None and response.completion_tokens >= 1
        return type(backend.model).__module__

    assert answer(folder, trust=True).startswith("transformers_modules.")  # the shipped code ran
    assert answer(folder, trust=False).startswith("transformers.models.phi3")  # transformers' own
    result = _train(str(folder), tmp_path, trust_remote_code=True, lora_rank=0)
    assert {"configuration_phi3.py", "modeling_phi3.py"} <= {p.name for p in result.output.iterdir()}
    assert answer(result.output, trust=True).startswith("transformers_modules.")
