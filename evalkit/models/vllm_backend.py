"""The `vllm` backend: a checkpoint on vLLM's in-process offline engine (`vllm.LLM`), for models and
benchmarks where the hf backend's one padded `generate` per batch is too slow (continuous batching,
prefix caching, tensor parallel across the GPUs of one machine).

`--model vllm:PATH_OR_HUB_ID` asks the model as the hf backend does (the same renderer, tokenization,
image preparation, sampling semantics, answer cutting and errors: `evalkit.models.vllm_requests`); each
call hands its whole batch to `LLM.generate`, which schedules it itself, so a large `--batch-size` (the
default is 256) keeps the engine busy. The checkpoint's `generation_config.json` sampling defaults are not
applied (`generation_config="vllm"`), as in the hf backend. `--tensor-parallel-size`,
`--gpu-memory-utilization` and `--max-model-len` are passed to the engine; `--dtype` too (`auto`: the
checkpoint's). The device is the engine's (CUDA_VISIBLE_DEVICES chooses it); `--device` is refused.

An exception from the engine for a batch (a prompt longer than `--max-model-len`, more images than the
engine allows, out of memory) is logged with its traceback and the batch's prompts are asked again one by
one, so a prompt the engine refuses is a `backend_error` for its own request only; the run goes on.
Greedy answers match the hf backend's up to the kernels' float rounding; sampled ones are drawn with
each request's seed by vLLM's sampler, so they differ from the hf backend's draws.

The fingerprint is the hf backend's for the same checkpoint and settings plus the engine and its version:
a vllm run is a different run from an hf run of the same model.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from evalkit.models.base import Backend, BackendOptions
from evalkit.models.vllm_requests import EngineRow, RequestConverter
from evalkit.types import ErrorInfo, Request, Response, UserError

log = logging.getLogger(__name__)

ENGINE = "vllm"


def engine_kwargs(source: str, options: BackendOptions, seed: int = 0) -> dict[str, Any]:
    """The keyword arguments of `vllm.LLM` for a checkpoint and the user's settings."""
    kwargs: dict[str, Any] = {
        "model": source,
        "tokenizer": source,
        "trust_remote_code": options.trust_remote_code,
        "dtype": options.dtype,
        "seed": seed,
        "generation_config": "vllm",  # the checkpoint's sampling defaults are never applied
    }
    return {**kwargs, **options.engine_settings()}


def import_vllm() -> Any:
    """The vllm module, or a one-line `MissingDependency` naming the extra that installs it."""
    try:
        import vllm
    except ModuleNotFoundError as exc:
        from evalkit.util.dependencies import missing_dependency

        missing = missing_dependency(exc)
        if missing is None:
            raise
        raise missing from None
    return vllm


class VLLMBackend(Backend):
    name = "vllm"
    default_batch_size = 256

    def __init__(self, model_path_or_hub_id: str, options: BackendOptions | None = None) -> None:
        self.options = options = options or BackendOptions()
        vllm = import_vllm()
        if options.device != "auto":
            raise UserError(
                "--device applies to the hf backend; vllm uses the visible GPUs (set CUDA_VISIBLE_DEVICES)"
            )
        self.version = str(getattr(vllm, "__version__", "unknown"))
        self.converter = RequestConverter(model_path_or_hub_id, options)
        self._sampling_params = vllm.SamplingParams
        self.llm = vllm.LLM(**engine_kwargs(self.converter.source, options))

    def generate(self, requests: list[Request]) -> list[Response]:
        start = time.perf_counter()
        responses, rows = self.converter.prepare(requests)
        if not rows:
            return [r for r in responses if r is not None]
        try:
            outputs: list[Any] = self._engine(rows)
        except Exception as exc:
            log.warning("vllm backend: a batch of %d failed", len(rows), exc_info=True)
            if len(rows) == 1:
                outputs = [ErrorInfo("backend_error", f"{type(exc).__name__}: {exc}")]
            else:  # one prompt the engine refuses (too long, too many images) must not fail the others
                outputs = [self._alone(row) for row in rows]
        latency = (time.perf_counter() - start) / len(rows)
        for row, out in zip(rows, outputs, strict=True):
            rid = requests[row.index].id
            if isinstance(out, ErrorInfo):
                responses[row.index] = Response(rid, latency_s=latency, error=out)
                continue
            completion = out.outputs[0]
            responses[row.index] = self.converter.response(
                requests[row.index],
                list(completion.token_ids),
                len(out.prompt_token_ids or []),
                None if completion.logprobs is None else list(completion.logprobs),
                latency,
            )
        return [r for r in responses if r is not None]

    def _engine(self, rows: list[EngineRow]) -> list[Any]:
        """One `LLM.generate` over the rows: vLLM's `RequestOutput`s, in order."""
        params = [self._sampling_params(**row.sampling) for row in rows]
        outputs = self.llm.generate([row.prompt for row in rows], params, use_tqdm=False)
        if len(outputs) != len(rows):
            raise RuntimeError(f"the engine answered {len(outputs)} of {len(rows)} prompts")
        return outputs

    def _alone(self, row: EngineRow) -> Any:
        """The row's output from an engine call of its own, or its `backend_error`."""
        try:
            return self._engine([row])[0]
        except Exception as exc:
            log.warning("vllm backend: a prompt failed alone", exc_info=True)
            return ErrorInfo("backend_error", f"{type(exc).__name__}: {exc}")

    def fingerprint(self) -> dict[str, Any]:
        return self.converter.fingerprint(ENGINE, self.version)

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            **self.converter.info(),
            "engine": {"name": ENGINE, "version": self.version},
            "dtype": self.options.dtype,
            **self.options.engine_settings(),
            "latency": "batch wall time / generated requests",
        }

    def close(self) -> None:
        self.llm = None
