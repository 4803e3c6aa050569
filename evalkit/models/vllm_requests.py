"""Requests for vLLM's offline engine, and its outputs as evalkit responses, without importing vLLM.

The `vllm` backend (`evalkit.models.vllm_backend`) asks the model exactly as the `hf` backend does:

- the prompt is rendered by the same renderer (`evalkit.models.prompt.render_prompt`: the checkpoint's
  chat template from its processor or tokenizer, loaded as the hf backend loads them, or a named LLaVA
  prompt style) and tokenized here as the hf backend's processor tokenizes it (BOS added exactly when the
  processor would add it; a LLaVA style tokenized the LLaVA way), each image placeholder left as one token
  that vLLM expands for its image (`{"prompt_token_ids": ..., "multi_modal_data": {"image": [...]}}`). A
  numbered-placeholder processor (Phi-3/3.5-vision) gets the prompt text, which vLLM's processor reads.
- images are loaded and prepared (`--image-pad`) by the same functions;
- sampling: greedy at temperature 0, else the request's temperature, top-p and per-request seed; the
  checkpoint's `generation_config.json` sampling values are not applied (`--sampling fastchat` adds its
  top-k and top-p as the hf backend does); the stop tokens are the hf backend's EOS ids; one answer per
  request (`n = 1`);
- an answer is the generated token ids cut as the hf backend cuts them (`evalkit.models.answer`), and
  top log-probabilities come back in OpenAI's shape. vLLM reports them from the model's raw distribution
  (before temperature and top-p), as the hf backend does.

Errors per request as the hf backend: an unreadable image → `image_error`; images for a text-only model,
a PaliGemma prompt without an image or a prompt the template rejects → `input_error`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evalkit.models.answer import cut_answer
from evalkit.models.base import BackendOptions
from evalkit.models.hf_loading import (
    checkpoint_fingerprint,
    refuse_pickled_weights,
    resolve_adapter,
    resolve_source,
)
from evalkit.models.numbered_images import takes_numbered_placeholders
from evalkit.models.prompt import llava_input_ids, prompt_add_special_tokens
from evalkit.models.prompting import Prompted, eos_ids_of, load_prompting
from evalkit.models.protocol import image_token_id, request_images
from evalkit.models.sampling import fastchat_settings
from evalkit.types import ErrorInfo, GenerationConfig, Message, Request, Response, UserError


@dataclass(frozen=True)
class EngineRow:
    """One request ready for `LLM.generate`: its index in the batch, the engine's prompt (a dict) and the
    keyword arguments of its `SamplingParams`."""

    index: int
    prompt: dict[str, Any]
    sampling: dict[str, Any]


def sampling_kwargs(
    g: GenerationConfig, seed: int, eos_ids: list[int], fastchat: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`SamplingParams(**kwargs)` for a request: as the hf backend samples it (see the module docstring).
    A ValueError when `--sampling fastchat`'s checkpoint top-p and the request's own top-p, both below 1,
    would have to be applied one after the other (one top-p cut-off cannot express that)."""
    kwargs: dict[str, Any] = {
        "n": 1,
        "max_tokens": g.max_new_tokens,
        "stop": [s for s in g.stop if s],
        "stop_token_ids": list(eos_ids),
        "skip_special_tokens": True,
        "logprobs": g.top_logprobs or None,
    }
    if g.greedy:
        return {**kwargs, "temperature": 0.0}
    kwargs |= {"temperature": g.temperature, "top_p": g.top_p, "seed": seed}
    if fastchat is not None:
        if fastchat["top_p"] < 1.0 and g.top_p < 1.0:
            raise ValueError(
                f"--sampling fastchat: the checkpoint's top_p={fastchat['top_p']} and the request's "
                f"top_p={g.top_p} cannot be applied in one step by vLLM (use the hf backend)"
            )
        kwargs |= {"top_k": fastchat["top_k"], "top_p": min(fastchat["top_p"], g.top_p)}
    return kwargs


def openai_logprobs(
    token_ids: list[int], steps: list[dict[int, Any]], k: int, tokenizer: Any
) -> list[dict[str, Any]]:
    """vLLM's per-step log-probabilities (`{token id: Logprob(logprob, rank, ...)}`, the top k plus the
    drawn token) as OpenAI's `logprobs.content`: per generated token its string and log-probability and
    the k most likely tokens, most likely first. Token strings are `tokenizer.decode([id])`, as the hf
    backend writes them."""
    content = []
    for token, step in zip(token_ids, steps, strict=False):
        ranked = sorted(step.items(), key=lambda item: (-float(item[1].logprob), item[0]))[:k]
        content.append(
            {
                "token": tokenizer.decode([token]),
                "logprob": float(step[token].logprob),
                "top_logprobs": [
                    {"token": tokenizer.decode([t]), "logprob": float(lp.logprob)} for t, lp in ranked
                ],
            }
        )
    return content


def checkpoint_generation_config(source: str, trust_remote_code: bool) -> Any:
    """The generation config `from_pretrained` gives the model, without loading its weights: its
    generation_config.json, else the one derived from config.json."""
    import transformers

    try:
        return transformers.GenerationConfig.from_pretrained(source)
    except OSError:
        config = transformers.AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
        return transformers.GenerationConfig.from_model_config(config)


class RequestConverter(Prompted):
    """A checkpoint's processor or tokenizer, protocol and EOS ids, loaded as the hf backend loads them,
    turning requests into `EngineRow`s and the engine's token ids into `Response`s."""

    def __init__(self, model: str, options: BackendOptions) -> None:
        adapter_dir, _ = resolve_adapter(model)
        if adapter_dir is not None:
            raise UserError(
                f"{model!r} is a LoRA adapter; the vllm backend loads whole checkpoints (train without "
                "--no-merge, or evaluate the adapter with the hf backend)"
            )
        self.source, self.local_dir = resolve_source(model)
        refuse_pickled_weights(self.local_dir)
        remote_code = options.trust_remote_code
        self.prompting = load_prompting(model, self.source, self.local_dir, options)
        generation_config = checkpoint_generation_config(self.source, remote_code)
        self.eos_ids = eos_ids_of(generation_config, self.tokenizer)
        self.sampling, self.fastchat = options.sampling, None
        if self.sampling == "fastchat":
            self.fastchat = fastchat_settings(generation_config, model)

    # ---- requests -> engine rows ---------------------------------------------------------------------

    def render(self, messages: tuple[Message, ...]) -> str:
        return self.prompting.render(messages)

    def engine_prompt(self, text: str, images: list[Any]) -> dict[str, Any]:
        """The engine's prompt for the rendered `text`: token ids as the hf backend encodes them, one
        placeholder token per image (vLLM expands it), the images as `multi_modal_data`."""
        style = self.protocol.prompt_style
        if takes_numbered_placeholders(self.processor):
            prompt: dict[str, Any] = {"prompt": text}
        elif style != "chat-template" and self.processor is not None:
            token = image_token_id(self.processor, self.tokenizer)
            prompt = {"prompt_token_ids": llava_input_ids(text, self.tokenizer, token, [1] * len(images))}
        else:
            add_special = prompt_add_special_tokens(text, self.processor, self.tokenizer, style)
            ids = self.tokenizer(text, add_special_tokens=add_special)["input_ids"]
            prompt = {"prompt_token_ids": list(ids)}
        if images:
            prompt["multi_modal_data"] = {"image": list(images)}
        return prompt

    def prepare(self, requests: list[Request]) -> tuple[list[Response | None], list[EngineRow]]:
        """(a response for each request that failed before the engine, else None; the rows to generate)."""
        responses: list[Response | None] = [None] * len(requests)
        rows: list[EngineRow] = []
        for i, req in enumerate(requests):
            images = request_images(req, self.protocol, self.processor, self.source)
            if isinstance(images, ErrorInfo):
                responses[i] = Response(req.id, error=images)
                continue
            try:
                prompt = self.engine_prompt(self.render(req.messages), images)
            except Exception as exc:  # the template's own raise_exception, bad roles, ...
                responses[i] = Response(req.id, error=ErrorInfo("input_error", f"chat template: {exc}"))
                continue
            try:
                sampling = sampling_kwargs(req.generation, req.seed, self.eos_ids, self.fastchat)
            except ValueError as exc:
                responses[i] = Response(req.id, error=ErrorInfo("input_error", str(exc)))
                continue
            rows.append(EngineRow(i, prompt, sampling))
        return responses, rows

    # ---- engine output -> response -------------------------------------------------------------------

    def response(
        self,
        request: Request,
        token_ids: list[int],
        prompt_tokens: int,
        logprobs: list[dict[int, Any]] | None,
        latency_s: float,
    ) -> Response:
        """The answer for `request` from the engine's generated `token_ids` (and its per-step
        log-probabilities when asked), cut and counted as the hf backend cuts and counts it."""
        g = request.generation
        tokens = list(token_ids)[: g.max_new_tokens]
        text, n = cut_answer(tokens, self.eos_ids, g.stop, self.tokenizer)
        content = None
        if g.top_logprobs:
            if logprobs is None:
                msg = "the engine returned no log-probabilities"
                return Response(request.id, latency_s=latency_s, error=ErrorInfo("backend_error", msg))
            content = openai_logprobs(tokens[:n], logprobs[:n], g.top_logprobs, self.tokenizer)
        return Response(request.id, text, prompt_tokens, n, latency_s, logprobs=content)

    # ---- identity -------------------------------------------------------------------------------------

    def fingerprint(self, engine: str, version: str) -> dict[str, Any]:
        """The hf backend's fingerprint of the same checkpoint and settings, plus the engine and its
        version."""
        out = {**checkpoint_fingerprint(self.source, self.local_dir), **self.settings_fingerprint()}
        out["engine"] = {"name": engine, "version": version}
        return out

    def info(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.prompting_info()}
