"""Loading a checkpoint's processor, also where torchvision is missing.

transformers' video processors need torchvision, and the processors of LLaVA-OneVision, Qwen2-VL, Qwen2.5-VL,
Qwen3-VL, InternVL and SmolVLM declare a `video_processor` sub-processor, so `AutoProcessor.from_pretrained`
fails for them without torchvision even though images need no video processor. Where torchvision is missing
and the checkpoint's processor class declares one, the processor is loaded as a subclass of that class whose
`get_attributes()` leaves `video_processor` out: `from_pretrained` then neither loads nor checks it, and
AutoImageProcessor picks the image processor's PIL backend. It processes images and text exactly as the full
processor does, and refuses videos (ValueError) rather than dropping them. Where torchvision is present, this
is plain AutoProcessor.

An image processor transformers ships only as a torchvision backend (Molmo2's, Phi-4-multimodal's) is
loaded, where torchvision is missing, as evalkit's torch-only stand-in (`evalkit.models.torch_images`) and
handed to the processor.
"""

from __future__ import annotations

import functools
import inspect
import json
from functools import cache
from typing import Any

from evalkit.models.torch_images import torch_stand_in
from evalkit.types import UserError

#: files that may name the processor class, in the order AutoProcessor reads them
_CLASS_FILES = (
    "processor_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "tokenizer_config.json",
)
#: cached_file: a file the checkpoint lacks (or cannot fetch) is None, not an error
_QUIET = {
    "_raise_exceptions_for_gated_repo": False,
    "_raise_exceptions_for_missing_entries": False,
    "_raise_exceptions_for_connection_errors": False,
}
_HUB_KWARGS = ("cache_dir", "force_download", "token", "revision", "local_files_only", "subfolder")


def torchvision_available() -> bool:
    from transformers.utils import is_torchvision_available

    return is_torchvision_available()


def load_processor(source: str, **from_pretrained_kwargs: Any):
    """`AutoProcessor.from_pretrained(source, **kwargs)`, or, where torchvision is missing, the same processor
    without its video processor (where its class declares one) and with evalkit's torch image processor
    (where transformers has the checkpoint's only for torchvision)."""
    import transformers

    if not torchvision_available():
        cls = processor_class(source, **from_pretrained_kwargs)
        stand_in = torch_stand_in(image_processor_type(source, from_pretrained_kwargs)) if cls else None
        if stand_in is not None:  # an image processor transformers has for torchvision only
            hub = {k: from_pretrained_kwargs[k] for k in _HUB_KWARGS if k in from_pretrained_kwargs}
            from_pretrained_kwargs = {
                **from_pretrained_kwargs,
                "image_processor": stand_in.from_pretrained(source, **hub),
            }
        if cls is not None and ("video_processor" in cls.get_attributes() or stand_in is not None):
            cls = without_video(cls) if "video_processor" in cls.get_attributes() else cls
            try:
                return cls.from_pretrained(source, **from_pretrained_kwargs)
            except (AttributeError, TypeError) as exc:  # its __init__ needs the video processor itself
                raise UserError(
                    f"cannot load the {cls.__name__} of {source!r} without its video processor ({exc}); "
                    "it needs torchvision: install it (pip install torchvision)"
                ) from exc
    return transformers.AutoProcessor.from_pretrained(source, **from_pretrained_kwargs)


def processor_class(source: str, **kwargs: Any):
    """The transformers processor class AutoProcessor would instantiate for `source`, or None where the
    checkpoint names none or its processor is remote code (AutoProcessor then decides)."""
    import transformers
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING, processor_class_from_name
    from transformers.utils import cached_file

    hub = {k: kwargs[k] for k in _HUB_KWARGS if k in kwargs}
    for name in _CLASS_FILES:
        path = cached_file(source, name, **hub, **_QUIET)
        if path is None:
            continue
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if "AutoProcessor" in (data.get("auto_map") or {}):
            return None
        if data.get("processor_class"):
            return processor_class_from_name(data["processor_class"])
    remote = {"trust_remote_code": kwargs.get("trust_remote_code", False)}
    try:
        config = transformers.AutoConfig.from_pretrained(source, **hub, **remote)
    except (OSError, ValueError):  # AutoProcessor then tries its other loaders, and says what failed
        return None
    if "AutoProcessor" in (getattr(config, "auto_map", None) or {}):
        return None
    if getattr(config, "processor_class", None):
        return processor_class_from_name(config.processor_class)
    return PROCESSOR_MAPPING[type(config)] if type(config) in PROCESSOR_MAPPING else None


def image_processor_type(source: str, kwargs: dict[str, Any]) -> str | None:
    """The image processor class the checkpoint names: nested in processor_config.json (transformers 5),
    else in preprocessor_config.json."""
    from transformers.utils import cached_file

    hub = {k: kwargs[k] for k in _HUB_KWARGS if k in kwargs}
    for name in ("processor_config.json", "preprocessor_config.json"):
        path = cached_file(source, name, **hub, **_QUIET)
        if path is None:
            continue
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        nested = data.get("image_processor") if isinstance(data.get("image_processor"), dict) else data
        if nested.get("image_processor_type"):
            return nested["image_processor_type"]
    return None


@cache
def without_video(cls):
    """`cls` with `video_processor` left out of its sub-processors. It keeps the checkpoint's video processor
    configuration and writes it back when saved, so a checkpoint saved from it loads with torchvision too;
    its name stays the real class's, which a saved checkpoint names."""
    from transformers import ProcessorMixin

    attributes = [a for a in cls.get_attributes() if a != "video_processor"]
    call_signature = inspect.signature(cls.__call__)
    # a class whose __init__ requires the video processor (SmolVLM) also reads its sampling settings when
    # rendering image prompts: it gets a stand-in that carries them
    video_param = inspect.signature(cls.__init__).parameters.get("video_processor")
    needs_video_settings = video_param is not None and video_param.default is inspect.Parameter.empty

    full_attributes = cls.get_attributes()

    class PositionalVideo(ProcessorMixin):
        """Sits between the class and ProcessorMixin: a class whose __init__ hands its sub-processors on
        positionally, video processor included (Molmo2's), has them named by the real class's attributes
        here, the video processor dropped."""

        def __init__(self, *args, **kwargs):
            named = dict(zip(full_attributes, args, strict=False))
            named.pop("video_processor", None)
            kwargs.pop("video_processor", None)
            super().__init__(*args[len(full_attributes) :], **named, **kwargs)

    class WithoutVideo(cls, PositionalVideo):
        @classmethod
        def get_attributes(cls_) -> list[str]:
            return list(attributes)

        # the class's __init__ still takes a video_processor (SmolVLM's without a default): None, never the
        # raw configuration dict processor_config.json nests (transformers' from_pretrained ends in
        # from_args_and_dict in 5.13 to 5.19 at least, in from_dict in 5.25)
        @classmethod
        def from_dict(cls_, processor_dict: dict[str, Any], **kwargs):
            return super().from_dict({**processor_dict, "video_processor": None}, **kwargs)

        @classmethod
        def from_args_and_dict(cls_, args, processor_dict: dict[str, Any], **kwargs):
            return super().from_args_and_dict(args, {**processor_dict, "video_processor": None}, **kwargs)

        @classmethod
        def from_pretrained(cls_, source, *args, **kwargs):
            processor = super().from_pretrained(source, *args, **kwargs)
            processor.saved_video_config = _video_config(str(source), kwargs)
            if needs_video_settings:
                processor.video_processor = AbsentVideoProcessor(processor.saved_video_config)
            return processor

        @functools.wraps(cls.__call__)  # keeps the class's call signature, which callers inspect
        def __call__(self, *args, **kwargs):
            named = call_signature.bind_partial(self, *args, **kwargs).arguments
            if named.get("videos") is not None:
                raise ValueError(
                    f"{cls.__name__} was loaded without its video processor (torchvision is not installed): "
                    "videos need torchvision"
                )
            return super().__call__(*args, **kwargs)

        def to_dict(self) -> dict[str, Any]:
            out = super().to_dict()
            out.pop("video_processor", None)  # the stand-in is no configuration
            if getattr(self, "saved_video_config", None) is not None:
                out["video_processor"] = self.saved_video_config
            return out

    WithoutVideo.__name__, WithoutVideo.__qualname__ = cls.__name__, cls.__qualname__
    WithoutVideo.__module__ = cls.__module__
    WithoutVideo.__doc__ = f"{cls.__name__} without its video processor (torchvision is not installed)."
    return WithoutVideo


class AbsentVideoProcessor:
    """Stands in for a video processor left out: it carries the frame sampling settings of the saved
    configuration (SmolVLM's apply_chat_template reads `num_frames` and `fps` even for image prompts, as its
    video processor sets them from `video_sampling`) and refuses videos."""

    def __init__(self, settings: dict[str, Any] | None) -> None:
        sampling = (settings or {}).get("video_sampling") or {}
        self.num_frames = sampling.get("max_frames", (settings or {}).get("num_frames"))
        self.fps = sampling.get("fps", (settings or {}).get("fps"))

    def __call__(self, *args, **kwargs):
        raise ValueError("loaded without its video processor (torchvision is not installed): no videos")


def _video_config(source: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The video processor's configuration as transformers reads it: nested in processor_config.json, else
    video_preprocessor_config.json, else the image processor's preprocessor_config.json."""
    from transformers.utils import cached_file

    hub = {k: kwargs[k] for k in _HUB_KWARGS if k in kwargs}
    for name in ("processor_config.json", "video_preprocessor_config.json", "preprocessor_config.json"):
        path = cached_file(source, name, **hub, **_QUIET)
        if path is None:
            continue
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if name != "processor_config.json":
            return data
        if isinstance(data.get("video_processor"), dict):
            return data["video_processor"]
    return None
