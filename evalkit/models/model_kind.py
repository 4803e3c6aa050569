"""What kind of model a checkpoint is, and the classes that load it: one classification for evaluation
(`evalkit.models.hf.HFBackend`) and training (`training.model_setup.load_model`).

A checkpoint whose processor has an image processor is an image model (kind `image-text-to-text`), else a
text-only causal LM (`causal-lm`). Transformers' auto mappings alone are not enough: Phi-4-multimodal is
mapped as a causal LM, and remote-code models (Phi-3/3.5-vision, Molmo) are not mapped at all. The model
class is the one that fits: `AutoModelForImageTextToText` where transformers maps the model type to it (or
the checkpoint's `auto_map` names it), else the auto class the mapping or `auto_map` gives
(`AutoModelForCausalLM` for Phi-4-multimodal and the remote-code VLMs).

Code shipped with a checkpoint (config.json's `auto_map`, or its processor's) runs only with
`--trust-remote-code`; without it, loading stops with one line naming the flag, before anything is imported.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.types import UserError

IMAGE, TEXT = "image-text-to-text", "causal-lm"
#: auto classes an image model may be loaded with, in order of preference
_IMAGE_CLASSES = ("AutoModelForImageTextToText", "AutoModelForVision2Seq", "AutoModelForCausalLM")
#: files that hold a processor's (or image processor's) settings
_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


@dataclass(frozen=True)
class ModelKind:
    kind: str  # IMAGE or TEXT
    model_class: str  # the transformers auto class that loads the weights
    #: the model or its processor needs code shipped with the checkpoint (transformers lacks the class;
    #: where it has it, --trust-remote-code still runs the shipped copy, as transformers does)
    remote_code: bool

    def auto_class(self):
        import transformers

        # transformers 5 folds AutoModelForVision2Seq into AutoModelForImageTextToText
        folded = {"AutoModelForVision2Seq": "AutoModelForImageTextToText"}
        return getattr(transformers, folded.get(self.model_class, self.model_class))


def classify(source: str, trust_remote_code: bool) -> ModelKind:
    """The kind of the checkpoint at `source` (a local folder or a hub id), read from its config files
    without running any of its code; a UserError when it cannot be used as asked."""
    from transformers.models.auto import modeling_auto

    config = _json(source, "config.json", required=True)
    if config is None:
        msg = f"cannot load model {source!r}: no config.json (expected a checkpoint folder or a hub id)"
        raise UserError(msg)
    model_type = config.get("model_type")
    auto_map = _auto_map(config)
    processor_settings = [c for c in (_json(source, n) for n in _PROCESSOR_FILES) if c]
    # a processor's settings may nest its image processor's (transformers 5 saves them so)
    processor_settings += [c["image_processor"] for c in processor_settings if _nested(c)]
    processor_maps = [_auto_map(c) for c in processor_settings]
    image = (
        model_type in modeling_auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
        or any(name in auto_map for name in _IMAGE_CLASSES[:2])
        or has_image_processor(source)
    )
    native = {
        "AutoModelForImageTextToText": modeling_auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
        "AutoModelForCausalLM": modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    }
    candidates = _IMAGE_CLASSES if image else ("AutoModelForCausalLM",)
    model_class = next((c for c in candidates if model_type in native.get(c, {})), None)
    remote = model_class is None
    if model_class is None:
        model_class = next((c for c in candidates if c in auto_map), None)
    if model_class is None:
        what = "an image-text-to-text model" if image else "a causal LM"
        raise UserError(
            f"model {source!r} has model_type {model_type!r}, which transformers cannot load as {what} "
            "(neither its auto mappings nor the checkpoint's auto_map name a class for it)"
        )
    remote = remote or _remote_processor(processor_settings)
    if remote and not trust_remote_code:
        code = sorted({v.split(".")[0] for m in [auto_map, *processor_maps] for v in _flat(m.values())})
        raise UserError(
            f"model {source!r} runs its own Python code ({', '.join(c + '.py' for c in code)}, named by its "
            "auto_map); pass --trust-remote-code to allow it, only for a checkpoint you trust: the code runs "
            "with your permissions"
        )
    if _json(source, "vision-lora/adapter_config.json") is not None:  # Phi-4-multimodal's layout
        raise UserError(
            f"model {source!r} keeps its vision LoRA adapter apart (vision-lora/), which evalkit does not "
            "apply; merge it into the weights (peft: PeftModel.from_pretrained(model, 'vision-lora')"
            ".merge_and_unload(), then save_pretrained) and pass the merged folder"
        )
    return ModelKind(IMAGE if image else TEXT, model_class, remote)


def has_image_processor(source: str) -> bool:
    """Whether the checkpoint's processor has an image processor, from its saved settings: an image
    processor type (or class) named in preprocessor_config.json, or an `image_processor` entry of
    processor_config.json."""
    for name in _PROCESSOR_FILES:
        settings = _json(source, name) or {}
        if _nested(settings) or "image_processor_type" in settings:
            return True
        if "AutoImageProcessor" in _auto_map(settings):
            return True
    return False


def load_processor_or_tokenizer(source: str, kind: ModelKind, trust_remote_code: bool):
    """The processor of an image model, the tokenizer of a text-only one: the one place evalkit loads
    either (evaluation and training both come here)."""
    import transformers

    from evalkit.models.hf_loading import user_errors
    from evalkit.models.processor_loading import load_processor

    remote = {"trust_remote_code": trust_remote_code}
    if kind.kind == IMAGE:

        def load():
            try:
                return load_processor(source, **remote)
            except (ImportError, ValueError) as exc:  # an image processor with only a torchvision backend
                if "torchvision" in str(exc) and importlib.util.find_spec("torchvision") is None:
                    raise UserError(
                        f"model {source!r}: its image processor needs torchvision, which is not installed: "
                        "install the torchvision build that matches your torch (pip install torchvision)"
                    ) from None
                raise

        processor = user_errors(source, load)
        if getattr(processor, "image_processor", None) is None or not hasattr(processor, "tokenizer"):
            raise UserError(
                f"model {source!r}: its processor ({type(processor).__name__}) has no image processor and "
                "tokenizer, which evalkit needs to send it images"
            )
        check_conventions(source, processor)
        return processor
    return user_errors(source, lambda: transformers.AutoTokenizer.from_pretrained(source, **remote))


def check_conventions(source: str, processor) -> None:
    """Evaluation and training drive an image model's processor by one of two conventions: transformers'
    own (the chat template renders `{"type": "image"}` content parts; the processor is called with
    `text=[prompts], images=..., **settings`), or numbered image placeholders (Phi-3/3.5-vision's remote
    code: one prompt with `<|image_N|>` placeholders and its images; `evalkit.models.numbered_images`).
    Processors that fit neither (Molmo's remote code is driven through its own `process()` and
    `generate_from_batch`) are refused here with one line, not failed request by request."""
    import inspect

    from evalkit.models.numbered_images import check_numbered, takes_numbered_placeholders
    from evalkit.models.prompt import chat_template_of, render_prompt
    from evalkit.types import Message

    name = type(processor).__name__
    params = inspect.signature(type(processor).__call__).parameters
    why = None
    from transformers import ProcessorMixin

    own_call = any("__call__" in vars(c) for c in type(processor).__mro__ if c is not ProcessorMixin)
    template = chat_template_of(processor, processor.tokenizer)
    if callable(getattr(processor, "process", None)) and not own_call:
        why = f"{name} is driven through its own process() (and the model through its own generation call)"
    elif takes_numbered_placeholders(processor):

        def probe(n: int) -> str:
            message = Message("user", "what is this?", ("probe.png",) * n)
            return render_prompt((message,), processor, processor.tokenizer, template)

        why = check_numbered(processor, probe) if template else None
        template = None  # checked
    elif not ({"text", "images"} <= set(params) and any(p.kind is p.VAR_KEYWORD for p in params.values())):
        why = (
            f"{name}.__call__ takes ({', '.join(list(params)[1:])}), neither text=[...], images=..., "
            "**settings nor one prompt with numbered image placeholders and its images"
        )
    if why is None and template:
        probe = (Message("user", "what is this?", ("probe.png",)),)
        try:
            render_prompt(probe, processor, processor.tokenizer, template)
        except Exception as exc:  # the template's own error: string concatenation of a list, ...
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            why = f"its chat template cannot render an image content part ({first})"
    if why is not None:
        raise UserError(
            f"model {source!r} does not follow the transformers processor conventions evalkit drives: "
            f"{why}; it needs its own generation code, which evalkit does not run"
        )


def _remote_processor(settings: list[dict[str, Any]]) -> bool:
    """Whether loading the processor runs shipped code: an auto_map naming a class transformers lacks
    (where transformers has the class, it uses its own without --trust-remote-code, as for the model)."""
    import transformers

    for entry in settings:
        if not _auto_map(entry):
            continue
        named = [entry.get(k) for k in ("processor_class", "image_processor_type") if entry.get(k)]
        if not named or any(not hasattr(transformers, n) for n in named):
            return True
    return False


def _nested(settings: dict[str, Any]) -> bool:
    return isinstance(settings.get("image_processor"), dict)


def _auto_map(settings: dict[str, Any]) -> dict[str, Any]:
    found = settings.get("auto_map")
    return found if isinstance(found, dict) else {}


def _flat(values) -> list[str]:
    out: list[str] = []
    for v in values:  # a tokenizer's entry is a [slow, fast] pair
        out.extend(x for x in (v if isinstance(v, list | tuple) else [v]) if isinstance(x, str))
    return [v.split("--")[-1] for v in out]  # "repo--module.Class" names code in another repo


def _json(source: str, name: str, required: bool = False) -> dict[str, Any] | None:
    """A settings file of the checkpoint (local folder, or hub id through the hub cache), None when absent
    (a UserError with the hub's reason when `required`)."""
    path = Path(source) / name
    if not path.is_file():
        if Path(source).is_dir():
            return None
        try:
            from transformers.utils import cached_file

            found = cached_file(source, name, _raise_exceptions_for_missing_entries=required)
        except (OSError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(
                f"cannot load model {source!r}: {first} (expected a local checkpoint folder, or a hub id "
                "that is cached or reachable)"
            ) from None
        if found is None:
            return None
        path = Path(found)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"model {source!r}: unreadable {name} ({exc})") from None
    return data if isinstance(data, dict) else None
