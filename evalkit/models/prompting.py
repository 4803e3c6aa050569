"""What turns a checkpoint's conversations into prompt text, loaded the same way for the hf and vllm
backends: the model kind, its processor (image models) or tokenizer, SteerLM targets, the generation protocol
(`evalkit.models.protocol`) and the chat template, with the checks every backend makes before its first
request (a protocol the processor cannot serve, a missing chat template)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evalkit.models import paligemma
from evalkit.models.base import BackendOptions
from evalkit.models.hf_loading import steer_targets
from evalkit.models.model_kind import IMAGE, ModelKind, classify, load_processor_or_tokenizer
from evalkit.models.prompt import chat_template_of, render_prompt
from evalkit.models.protocol import Protocol, check_protocol, resolve_protocol
from evalkit.types import Message, UserError


@dataclass
class Prompting:
    kind_info: ModelKind
    processor: Any  # None for a text-only causal LM
    tokenizer: Any
    steer: dict[str, Any] | None  # a SteerLM checkpoint's targets
    protocol: Protocol
    protocol_source: str  # where the protocol came from (default, options, checkpoint, ...)
    chat_template: str | None

    def render(self, messages: tuple[Message, ...]) -> str:
        """The prompt text for `messages`; a SteerLM checkpoint is asked with its attribute suffix."""
        if self.steer is not None:
            from evalkit.models.steerlm import steer_prompt

            messages = tuple(
                replace(m, text=steer_prompt(m.text, self.steer)) if m.role == "user" else m for m in messages
            )
        style = self.protocol.prompt_style
        return render_prompt(messages, self.processor, self.tokenizer, self.chat_template, style)


class Prompted:
    """A backend that renders its prompts itself (hf, vllm): its prompting attributes read from its
    `prompting`, and what its settings add to the fingerprint and the run's model info. It sets
    `prompting`, `sampling` (evalkit or fastchat), `fastchat` (FastChat's settings or None) and `eos_ids`."""

    prompting: Prompting
    sampling: str
    fastchat: dict[str, Any] | None
    eos_ids: list[int]

    @property
    def kind_info(self) -> ModelKind:
        return self.prompting.kind_info

    @property
    def kind(self) -> str:
        return self.prompting.kind_info.kind

    @property
    def processor(self) -> Any:
        return self.prompting.processor

    @property
    def tokenizer(self) -> Any:
        return self.prompting.tokenizer

    @property
    def steer(self) -> dict[str, Any] | None:
        return self.prompting.steer

    @property
    def protocol(self) -> Protocol:
        return self.prompting.protocol

    @property
    def protocol_source(self) -> str:
        return self.prompting.protocol_source

    @property
    def chat_template(self) -> str | None:
        return self.prompting.chat_template

    def settings_fingerprint(self) -> dict[str, Any]:
        """The fingerprint's entries for settings that are not the defaults, each only when set, so a run
        with the defaults keeps its run folder: SteerLM targets, a generation protocol, FastChat sampling."""
        out: dict[str, Any] = {}
        if self.steer is not None:
            out["steer"] = dict(self.steer)
        if not self.protocol.is_default:
            out["protocol"] = self.protocol.record()
        if self.fastchat is not None:
            out["sampling"] = {"style": "fastchat", **self.fastchat}
        return out

    def prompting_info(self) -> dict[str, Any]:
        """The run's model info on how prompts are rendered and answers sampled and stopped."""
        template = self.chat_template
        return {
            "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest() if template else None,
            "protocol": {**self.protocol.record(), "source": self.protocol_source},
            "sampling": {"style": self.sampling, **(self.fastchat or {})},
            "eos_token_ids": self.eos_ids,
            **({"steerlm_targets": dict(self.steer)} if self.steer is not None else {}),
        }


def load_prompting(
    model: str, source: str, local_dir: Path | None, options: BackendOptions, adapter_dir: Path | None = None
) -> Prompting:
    """The prompting side of checkpoint `source` (`model` as the user named it). A LoRA adapter folder
    (`adapter_dir`) supplies the processor / tokenizer when saved with it, and its own settings files."""
    remote_code = options.trust_remote_code
    kind_info = classify(source, remote_code)
    saved = ("processor_config.json", "preprocessor_config.json") if kind_info.kind == IMAGE else ()
    saved += ("tokenizer_config.json",) if kind_info.kind != IMAGE else ()
    text_source = str(adapter_dir) if _has_any(adapter_dir, *saved) else source
    loaded = load_processor_or_tokenizer(text_source, kind_info, remote_code)
    processor, tokenizer = (loaded, loaded.tokenizer) if kind_info.kind == IMAGE else (None, loaded)
    settings_dir = adapter_dir or local_dir
    steer = steer_targets(model, settings_dir, options.steer)
    protocol, protocol_source = resolve_protocol(options.prompt_style, options.image_pad, settings_dir)
    check_protocol(protocol, processor, tokenizer, model)
    chat_template = chat_template_of(processor, tokenizer)
    if not chat_template and protocol.prompt_style == "chat-template":
        raise UserError(
            f"model {model!r} has no chat template; evalkit renders prompts only with the "
            "checkpoint's own template (add chat_template.jinja to the checkpoint)"
            + (f"; {paligemma.NO_TEMPLATE}" if paligemma.is_paligemma(processor) else "")
        )
    return Prompting(kind_info, processor, tokenizer, steer, protocol, protocol_source, chat_template)


def eos_ids_of(generation_config: Any, tokenizer: Any) -> list[int]:
    """The EOS ids generation stops at: the tokenizer's EOS and the generation config's."""
    ids = generation_config.eos_token_id
    return sorted({tokenizer.eos_token_id, *(ids if isinstance(ids, list | tuple) else [ids])} - {None})


def _has_any(folder: Path | None, *names: str) -> bool:
    return folder is not None and any((folder / n).is_file() for n in names)
