"""The generation protocol: how a conversation becomes a prompt (`prompt_style`) and how an image is
prepared before the processor (`image_pad`).

The default (`chat-template`, `none`) is the checkpoint's own chat template and the processor's own image
handling. The official LLaVA evaluation (haotian-liu/LLaVA `llava/eval/model_vqa*.py`) used neither: it
rendered prompts with LLaVA's conversation templates (`llava_v1.5`: `vicuna_v1`, the one the LLaVA-1.5
benchmarks name; `llava_v1`: the one MMHal's generator names) and padded each image to a square of the
image processor's mean colour (`square`: LLaVA's `expand2square`) before resizing, where llava-hf's
processors centre-crop. Both are offered as a named protocol; evaluation (`--prompt-style`, `--image-pad`)
and training (the same `evalkit train` flags) apply it through the same functions.

A checkpoint trained under a non-default protocol records it in `generation_protocol.json`; an evaluation
that names no protocol uses the recorded one (the model is asked as it was trained, as a checkpoint's saved
chat template is), and the run records the protocol in its model fingerprint, so it is part of the run's
identity and shown in run.json. A default protocol adds nothing to the fingerprint: runs made before the
protocol existed keep their config hash.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.types import UserError

PROMPT_STYLES = ("chat-template", "llava_v1.5", "llava_v1")
IMAGE_PADS = ("none", "square")
PROTOCOL_FILE = "generation_protocol.json"
PROTOCOL_FORMAT = "evalkit-protocol/1"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Protocol:
    prompt_style: str = "chat-template"
    image_pad: str = "none"

    def __post_init__(self) -> None:
        check_choice("--prompt-style", self.prompt_style, PROMPT_STYLES)
        check_choice("--image-pad", self.image_pad, IMAGE_PADS)

    @property
    def is_default(self) -> bool:
        return self == Protocol()

    def record(self) -> dict[str, str]:
        return {"prompt_style": self.prompt_style, "image_pad": self.image_pad}


def check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"{flag} {value!r} is not one of {', '.join(choices)}")


def write_protocol_file(folder: Path, protocol: Protocol) -> Path | None:
    """CKPT/generation_protocol.json for a non-default protocol (nothing for the default)."""
    if protocol.is_default:
        return None
    path = Path(folder) / PROTOCOL_FILE
    path.write_text(json.dumps({"format": PROTOCOL_FORMAT, **protocol.record()}, indent=2) + "\n")
    return path


def read_protocol_file(folder: Path | None) -> Protocol | None:
    """The protocol a checkpoint (or adapter folder) was trained with; None when it records none."""
    if folder is None or not (Path(folder) / PROTOCOL_FILE).is_file():
        return None
    path = Path(folder) / PROTOCOL_FILE
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != PROTOCOL_FORMAT:
        raise UserError(f"{path} was not written by this version of evalkit (format {PROTOCOL_FORMAT})")
    try:
        return Protocol(str(data.get("prompt_style")), str(data.get("image_pad")))
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


def resolve_protocol(
    prompt_style: str | None, image_pad: str | None, folder: Path | None
) -> tuple[Protocol, str]:
    """(protocol, where it came from): each setting given explicitly wins, else the checkpoint's recorded
    one, else the default. The source is `options`, `checkpoint`, `checkpoint+options` or `default`."""
    saved = read_protocol_file(folder)
    base = saved or Protocol()
    protocol = Protocol(prompt_style or base.prompt_style, image_pad or base.image_pad)
    given = prompt_style is not None or image_pad is not None
    if saved is None:
        return protocol, "options" if given else "default"
    log.warning("%s records generation protocol %s; asked with %s", folder, saved.record(), protocol.record())
    return protocol, "checkpoint+options" if given else "checkpoint"


def check_protocol(protocol: Protocol, processor: Any, tokenizer: Any, model: str) -> None:
    """Refuse, in one line, a protocol the checkpoint cannot be asked with."""
    if protocol.image_pad == "square":
        if processor is None:
            raise UserError(f"--image-pad square applies to image models; {model!r} is a text-only model")
        if getattr(getattr(processor, "image_processor", None), "image_mean", None) is None:
            raise UserError(
                f"--image-pad square pads with the image processor's image_mean; {model!r}'s image "
                "processor has none (use --image-pad none)"
            )
    if protocol.prompt_style != "chat-template" and processor is not None:
        llava_like = getattr(processor, "image_token", None) == "<image>"
        if not llava_like or image_token_id(processor, tokenizer) is None:
            raise UserError(
                f"--prompt-style {protocol.prompt_style} writes LLaVA's '<image>' placeholder, which "
                f"{model!r}'s processor does not expand (use --prompt-style chat-template)"
            )


def image_token_id(processor: Any, tokenizer: Any) -> int | None:
    """The id of the token the processor expands once per image (`<image>` for LLaVA processors)."""
    token_id = getattr(processor, "image_token_id", None)
    if token_id is None and getattr(processor, "image_token", None):
        token_id = tokenizer.convert_tokens_to_ids(processor.image_token)
    return None if token_id is None or token_id == tokenizer.unk_token_id else int(token_id)


def prepare_image(image: Any, protocol: Protocol, processor: Any) -> Any:
    """`image` as the protocol hands it to the processor: unchanged, or (`square`) pasted centred on a
    square of the image processor's mean colour, `tuple(int(x * 255) for x in image_mean)` as LLaVA's
    `expand2square` does, so the processor's resize and centre crop keep the whole image."""
    if protocol.image_pad == "none":
        return image
    from PIL import Image

    width, height = image.size
    if width == height:
        return image
    mean = processor.image_processor.image_mean
    background = tuple(int(x * 255) for x in (mean if isinstance(mean, list | tuple) else [mean] * 3))
    side = max(width, height)
    square = Image.new(image.mode, (side, side), background)
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    return square


def request_images(request: Any, protocol: Protocol, processor: Any, source: str) -> list[Any] | Any:
    """The request's images, loaded and prepared under `protocol`, or the `ErrorInfo` that answers the
    request without asking the model: an unreadable image (`image_error`), images sent to a text-only model,
    a PaliGemma prompt without an image (`input_error`). The hf and vllm backends share it."""
    from evalkit.models import paligemma
    from evalkit.types import ErrorInfo
    from evalkit.util.images import ImageLoadError, load_image

    try:
        images = [
            prepare_image(load_image(p), protocol, processor) for m in request.messages for p in m.images
        ]
    except ImageLoadError as exc:
        return ErrorInfo("image_error", str(exc))
    if images and processor is None:
        return ErrorInfo("input_error", f"{source} is a text-only model but the request has images")
    if not images and paligemma.is_paligemma(processor):
        return ErrorInfo("input_error", paligemma.NEEDS_IMAGE)
    return images
