"""A transformers backend: any image-text-to-text checkpoint or causal LM, local folder or hub id.

Prompts are rendered with the checkpoint's own chat template (or a named protocol, below); the backend
never rewrites them. Decoding is what the request asks for and nothing else: the checkpoint's
`generation_config.json` sampling defaults are not applied, only its token ids (unless `--sampling fastchat`).

Batching: one left-padded `generate` per call, each prompt's images handed to the processor as its own
list (two calls when prompts with and without images mix: Mllama's text-only rows differ in a batch with
images; a numbered-placeholder processor, taking one prompt, encodes each row and the rows are collated:
`evalkit.models.numbered_images`). Greedy outputs do not depend on the batch (left padding, attention mask
and mask-derived position ids); sampled rows use their own generator seeded from `Request.seed`, so they do
not depend on the batch either (up to float rounding). PaliGemma's processor refuses a prompt without an
image: `input_error`.

Errors: an unreadable image → `image_error` for that request; a prompt the chat template rejects, or
images sent to a text-only model → `input_error`; any exception raised by preprocessing/`generate` →
`backend_error` for every request of the batch (logged with its traceback, never raised), so a bug shows
up as a failed run with a message rather than a lost batch. Loading problems raise `UserError`.

`latency_s` is the wall time of the whole call divided by the number of requests that were generated.

LoRA adapters (`evalkit train --no-merge`): a folder holding `adapter_config.json` is a peft adapter. Its
`base_model_name_or_path` is loaded like any model (local folder or hub id), the adapter is applied with
peft and merged (`merge_and_unload`) for inference. The processor / tokenizer / chat template come from the
adapter folder when saved there, else from the base. The fingerprint is the base's plus an `adapter` entry
hashing the adapter's config and weights.

Generation protocol (`evalkit.models.protocol`): `--prompt-style` / `--image-pad` (or the protocol a
trained checkpoint records) choose LLaVA's official prompt rendering and square padding; `--sampling
fastchat` samples as FastChat's MT-Bench generation did (`evalkit.models.sampling`). Each one that is not
the default enters the fingerprint, so it is part of the run's identity.

Log-probabilities (`GenerationConfig.top_logprobs = k > 0`): `Response.logprobs` in OpenAI's shape, one
entry per counted completion token, from log_softmax of the logits at each step before any logits
processor runs (the model's own distribution: temperature, top-p and the per-row sampler do not change it).

Loading (model argument, adapters, device, dtype, digests) lives in `evalkit.models.hf_loading`, what kind
of model a checkpoint is (image or text-only, its auto class, remote code) in `evalkit.models.model_kind`
(shared with training), the prompt renderer shared with training in `evalkit.models.prompt`; this module
holds the backend and its generation helpers (the per-row sampler and the log-probability recorder).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from evalkit.models.answer import cut_answer
from evalkit.models.base import Backend, BackendOptions
from evalkit.models.hf_loading import (
    checkpoint_fingerprint,
    merge_adapter,
    refuse_pickled_weights,
    resolve_adapter,
    resolve_device,
    resolve_dtype,
    resolve_source,
    sha256_file,
    user_errors,
    weights_sha256,
)
from evalkit.models.numbered_images import encode_each, takes_numbered_placeholders
from evalkit.models.phi4mm import make_vision_attention_bidirectional
from evalkit.models.prompt import llava_encoding, prompt_add_special_tokens
from evalkit.models.prompting import Prompted, eos_ids_of, load_prompting
from evalkit.models.protocol import image_token_id, request_images
from evalkit.models.sampling import RowSampler, RowSampling, fastchat_settings
from evalkit.types import ErrorInfo, Request, Response, UserError

log = logging.getLogger(__name__)


class HFBackend(Prompted, Backend):
    name = "hf"

    def __init__(self, model_path_or_hub_id: str, options: BackendOptions | None = None) -> None:
        import torch
        import transformers

        self.options = options = options or BackendOptions()
        self.adapter_dir, base = resolve_adapter(model_path_or_hub_id)
        if self.adapter_dir is None:
            self.source, self.local_dir = resolve_source(model_path_or_hub_id)
        else:
            try:
                self.source, self.local_dir = resolve_source(base)
            except UserError as exc:
                msg = f"LoRA adapter {model_path_or_hub_id!r}: cannot load its base: {exc}"
                raise UserError(msg) from None
            refuse_pickled_weights(self.adapter_dir)
        refuse_pickled_weights(self.local_dir)
        self.device = resolve_device(options.device, torch)
        dtype = resolve_dtype(options.dtype, self.device, torch)
        remote = {"trust_remote_code": options.trust_remote_code}
        # the processor / tokenizer (and its chat template): the adapter's when saved with it
        self.prompting = load_prompting(
            model_path_or_hub_id, self.source, self.local_dir, options, self.adapter_dir
        )
        model_cls = self.kind_info.auto_class()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            if self.tokenizer.eos_token is None:
                raise UserError(
                    f"model {model_path_or_hub_id!r}: tokenizer has neither a pad nor an eos token"
                )
            self.tokenizer.pad_token = self.tokenizer.eos_token

        # safetensors only: a hub checkpoint with nothing but pickled weights fails to load, never unpickled
        load_kwargs: dict[str, Any] = {"dtype": dtype, "use_safetensors": True, **remote}
        transformers.utils.logging.disable_progress_bar()  # evalkit draws its own progress
        self.model = user_errors(self.source, lambda: model_cls.from_pretrained(self.source, **load_kwargs))
        make_vision_attention_bidirectional(self.model)  # Phi-4-multimodal's tower (evalkit.models.phi4mm)
        if self.adapter_dir is not None:
            self.model = merge_adapter(self.model, self.adapter_dir)
        self.model.to(self.device).eval()

        # Keep only the token ids of the checkpoint's generation config (see the module docstring).
        ckpt_gen = self.model.generation_config
        self.sampling, self.fastchat, self._row_extra = options.sampling, None, {}
        if self.sampling == "fastchat":
            self.fastchat = fastchat_settings(ckpt_gen, model_path_or_hub_id)
            self._row_extra = {"top_k": self.fastchat["top_k"], "checkpoint_top_p": self.fastchat["top_p"]}
        self.eos_ids: list[int] = eos_ids_of(ckpt_gen, self.tokenizer)
        self.model.generation_config = transformers.GenerationConfig(
            bos_token_id=ckpt_gen.bos_token_id,
            eos_token_id=self.eos_ids,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        self._fingerprint: dict[str, Any] | None = None

    # ---- generation -------------------------------------------------------------------------------

    def generate(self, requests: list[Request]) -> list[Response]:
        start = time.perf_counter()
        responses: list[Response | None] = [None] * len(requests)
        rows: list[tuple[int, str, list[Any]]] = []  # (request index, rendered prompt, images)
        for i, req in enumerate(requests):
            images = request_images(req, self.protocol, self.processor, self.source)
            if isinstance(images, ErrorInfo):
                responses[i] = Response(req.id, error=images)
                continue
            try:
                rows.append((i, self.prompting.render(req.messages), images))
            except Exception as exc:  # the template's own raise_exception, bad roles, ...
                responses[i] = Response(req.id, error=ErrorInfo("input_error", f"chat template: {exc}"))

        outputs: list[_Generated | ErrorInfo] = []
        # prompts with and without images apart: Mllama's text-only rows change in a batch with images
        groups = [g for g in ([r for r in rows if r[2]], [r for r in rows if not r[2]]) if g]
        for group in groups:
            try:
                outputs += self._generate_rows(group, requests)
            except Exception as exc:
                log.warning("hf backend: batch of %d failed", len(group), exc_info=True)
                outputs += [ErrorInfo("backend_error", f"{type(exc).__name__}: {exc}")] * len(group)
        if rows:
            latency = (time.perf_counter() - start) / len(rows)
            for (i, _, _), out in zip([r for g in groups for r in g], outputs, strict=True):
                rid = requests[i].id
                if isinstance(out, ErrorInfo):
                    responses[i] = Response(rid, latency_s=latency, error=out)
                else:
                    text, n_prompt, n_completion, logprobs = out
                    responses[i] = Response(rid, text, n_prompt, n_completion, latency, logprobs=logprobs)
        return [r for r in responses if r is not None]

    def _generate_rows(
        self, rows: list[tuple[int, str, list[Any]]], requests: list[Request]
    ) -> list[_Generated]:
        """One left-padded `generate` for all rows → (text, prompt tokens, completion tokens, logprobs)."""
        import torch
        from transformers import LogitsProcessorList

        texts = [text for _, text, _ in rows]
        images = [list(imgs) for _, _, imgs in rows]  # per prompt: Gemma 3, Mllama read a flat list as one's
        style = self.protocol.prompt_style
        add_special = prompt_add_special_tokens(texts[0], self.processor, self.tokenizer, style)
        if takes_numbered_placeholders(self.processor):  # one prompt per call (Phi-3/3.5-vision)
            enc = encode_each(self.processor, texts, images, self.tokenizer.pad_token_id)
        elif self.processor is not None:
            enc = self.processor(
                text=texts,
                images=images if any(images) else None,
                padding=True,
                return_tensors="pt",
                add_special_tokens=add_special,
            )
        else:
            enc = self.tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=add_special)
        if style != "chat-template" and self.processor is not None:  # LLaVA's tokenizer_image_token
            enc = llava_encoding(enc, texts, self.tokenizer, image_token_id(self.processor, self.tokenizer))
        inputs = {
            k: v.to(self.device, dtype=self.model.dtype) if v.is_floating_point() else v.to(self.device)
            for k, v in enc.items()
            if isinstance(v, torch.Tensor)
        }
        gens = [requests[i].generation for i, _, _ in rows]
        sampling = [
            None if g.greedy else RowSampling(g.temperature, g.top_p, requests[i].seed, **self._row_extra)
            for (i, _, _), g in zip(rows, gens, strict=True)
        ]
        recorder = _LogprobRecorder([g.top_logprobs for g in gens])
        processors = LogitsProcessorList(
            ([recorder] if recorder.rows else []) + ([RowSampler(sampling)] if any(sampling) else [])
        )
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=max(g.max_new_tokens for g in gens),
                do_sample=False,  # sampled rows are drawn by RowSampler, then picked by argmax
                logits_processor=processors,
            )
        prompt_lens = inputs["attention_mask"].sum(dim=1).tolist()
        new_tokens = out[:, inputs["input_ids"].shape[1] :].tolist()
        logprobs = recorder.content(out, self.tokenizer) if recorder.rows else {}
        results = []
        for row, (g, toks, n_prompt) in enumerate(zip(gens, new_tokens, prompt_lens, strict=True)):
            text, n = self._decode(toks[: g.max_new_tokens], g.stop)
            lp = logprobs[row][:n] if row in logprobs else None
            results.append((text, int(n_prompt), n, lp))
        return results

    def _decode(self, tokens: list[int], stop: tuple[str, ...]) -> tuple[str, int]:
        return cut_answer(tokens, self.eos_ids, stop, self.tokenizer)

    # ---- identity ---------------------------------------------------------------------------------

    def fingerprint(self) -> dict[str, Any]:
        if self._fingerprint is None:
            self._fingerprint = checkpoint_fingerprint(self.source, self.local_dir)
            if self.adapter_dir is not None:  # only then, so plain checkpoints keep their run folders
                self._fingerprint["adapter"] = {
                    "path": str(self.adapter_dir),
                    "config_sha256": sha256_file(self.adapter_dir / "adapter_config.json"),
                    "weights_sha256": weights_sha256(self.adapter_dir),
                }
            self._fingerprint.update(self.settings_fingerprint())  # likewise: only settings not the defaults
        return dict(self._fingerprint)

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "kind": self.kind,
            "model_class": type(self.model).__name__,
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "device": str(self.device),
            "padding_side": self.tokenizer.padding_side,
            **self.prompting_info(),
            "latency": "batch wall time / generated requests",
        }


#: one generated row: (text, prompt tokens, completion tokens, `Response.logprobs` or None)
_Generated = tuple[str, int, int, list[dict[str, Any]] | None]


class _LogprobRecorder:
    """The first logits processor when a row asks for `top_logprobs = k`: log_softmax of the logits
    `generate` passes in at each step, before any processor (so the model's own distribution: neither
    temperature, top-p nor `_RowSampler`'s one-hot), keeping each asking row's top k and, once the next
    step shows which token was drawn, that token's log-probability. Memory: O(steps x k), not the vocab."""

    def __init__(self, ks: list[int]) -> None:
        self.rows = [i for i, k in enumerate(ks) if k > 0]
        self.ks = ks
        self.top: list[tuple[Any, Any]] = []  # per step: (values, ids), [asking rows, max k]
        self.drawn: list[Any] = []  # per step: log-probability of the drawn token, [asking rows]
        self._last: Any = None  # the previous step's log-probabilities, [asking rows, vocab]

    def _keep_drawn(self, tokens) -> None:
        self.drawn.append(self._last.gather(1, tokens[:, None])[:, 0].cpu())
        self._last = None

    def __call__(self, input_ids, scores):
        import torch

        if self._last is not None:
            self._keep_drawn(input_ids[self.rows, -1])
        lp = torch.log_softmax(scores[self.rows].float(), dim=-1)
        values, ids = lp.topk(min(max(self.ks), lp.shape[-1]), dim=-1)
        self.top.append((values.cpu(), ids.cpu()))
        self._last = lp
        return scores

    def content(self, sequences, tokenizer) -> dict[int, list[dict[str, Any]]]:
        """OpenAI's `logprobs.content` per asking row, one entry per generated step (token strings are
        `tokenizer.decode([id])`, special tokens kept); the caller cuts it to the counted tokens."""
        if self._last is not None:
            self._keep_drawn(sequences[self.rows, -1])
        start = sequences.shape[1] - len(self.top)
        out: dict[int, list[dict[str, Any]]] = {}
        for j, row in enumerate(self.rows):
            k, entries = self.ks[row], []
            for step, ((values, ids), drawn) in enumerate(zip(self.top, self.drawn, strict=True)):
                token = int(sequences[row, start + step])
                top = [
                    {"token": tokenizer.decode([int(t)]), "logprob": float(v)}
                    for v, t in zip(values[j, :k].tolist(), ids[j, :k].tolist(), strict=True)
                ]
                entries.append(
                    {"token": tokenizer.decode([token]), "logprob": float(drawn[j]), "top_logprobs": top}
                )
            out[row] = entries
        return out
