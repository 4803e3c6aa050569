"""The backend interface and the factory that turns a `--model` string into a backend."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evalkit.types import Request, Response, UserError


def public_url(url: str) -> str:
    """`url` without user info, query or fragment (which may hold credentials): the one form in which
    evalkit writes or prints an endpoint (run.json, train_config.json, fingerprints, error messages).
    The requests themselves still use the full URL."""
    from yarl import URL

    try:
        return str(URL(url).with_user(None).with_query(None).with_fragment(None))
    except (ValueError, TypeError):  # not a parsable absolute URL: strip what may be secret by hand
        return re.sub(r"//[^/@]*@", "//", re.split(r"[?#]", str(url), maxsplit=1)[0])


def public_url_or_none(url: str | None) -> str | None:
    return None if url is None else public_url(url)


@dataclass
class BackendOptions:
    """Settings the user passes on the command line; each backend reads the ones it understands."""

    dtype: str = "auto"
    device: str = "auto"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 16
    timeout_s: float = 120.0
    max_retries: int = 6
    trust_remote_code: bool = False
    #: SteerLM checkpoints: target attributes for this run ("verbosity=1,..."); see evalkit.models.steerlm
    steer: str | None = None
    #: hf: the generation protocol (see evalkit.models.protocol); None: the checkpoint's recorded one, else
    #: the default (`chat-template`, `none`)
    prompt_style: str | None = None
    image_pad: str | None = None
    #: hf: `evalkit` (temperature and top-p only) or `fastchat` (see evalkit.models.sampling)
    sampling: str = "evalkit"
    #: vllm only (None: vLLM's own default): GPUs per model replica, the fraction of each GPU's memory
    #: the engine may take, and the longest prompt + answer in tokens
    tensor_parallel_size: int | None = None
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None

    def engine_settings(self) -> dict[str, int | float]:
        """The vllm-only settings that were given, by their flag-less names."""
        names = ("tensor_parallel_size", "gpu_memory_utilization", "max_model_len")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


class Backend(ABC):
    """Answers batches of requests. A backend never rewrites a task's prompt.

    `generate` must return one `Response` per request, in order; a failure of one request is returned
    as a `Response` with an `ErrorInfo`, not raised, so that one bad sample never loses a batch.
    """

    name: str = "backend"
    #: batch size used when the user gives none: local models batch on the device, remote ones
    #: send this many requests concurrently.
    default_batch_size: int = 8
    #: True when requests go to a server that schedules them itself (any batch size is fine)
    remote: bool = False

    @abstractmethod
    def generate(self, requests: list[Request]) -> list[Response]: ...

    def generate_each(
        self,
        requests: list[Request],
        on_response: Callable[[int, Response], None],
        on_sent: Callable[[], None] | None = None,
    ) -> list[Response]:
        """`generate`, calling `on_response(index, response)` as each answer arrives (a remote backend
        calls it per request, so the caller can store each paid answer at once) and `on_sent()` once per
        call made (a remote backend: per HTTP request, retries included, when it is sent). An exception
        from a callback stops the batch and propagates."""
        if on_sent is not None:
            for _ in requests:
                on_sent()
        responses = self.generate(requests)
        for i, response in enumerate(responses):
            on_response(i, response)
        return responses

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """What identifies the model's weights: path, config hash, weights hash or hub revision."""

    def info(self) -> dict[str, Any]:
        """Settings worth recording in run.json (dtype, device, padding side, ...)."""
        return {}

    def close(self) -> None:
        return None


def check_options(options: BackendOptions) -> None:
    """The protocol and sampling choices are known names (one-line errors before anything loads)."""
    from evalkit.models.protocol import IMAGE_PADS, PROMPT_STYLES, check_choice
    from evalkit.models.sampling import SAMPLING_STYLES

    if options.prompt_style is not None:
        check_choice("--prompt-style", options.prompt_style, PROMPT_STYLES)
    if options.image_pad is not None:
        check_choice("--image-pad", options.image_pad, IMAGE_PADS)
    check_choice("--sampling", options.sampling, SAMPLING_STYLES)
    if options.tensor_parallel_size is not None and options.tensor_parallel_size < 1:
        raise UserError("--tensor-parallel-size must be at least 1")
    if options.gpu_memory_utilization is not None and not 0 < options.gpu_memory_utilization <= 1:
        raise UserError("--gpu-memory-utilization must be a fraction in (0, 1], e.g. 0.9")
    if options.max_model_len is not None and options.max_model_len < 1:
        raise UserError("--max-model-len must be at least 1")


def load_backend(model: str, options: BackendOptions | None = None) -> Backend:
    """`toy` → the built-in tiny LLaVA; `toy-judge` → the toy world's judge (`evalkit.toy.judge`);
    `openai:NAME` → an OpenAI-compatible endpoint; `vllm:PATH` → a checkpoint on vLLM's in-process engine;
    anything else (optionally prefixed `hf:`) → a transformers checkpoint, local path or hub id."""
    options = options or BackendOptions()
    check_options(options)
    engine = model.startswith("vllm:")
    if not engine and options.engine_settings():
        flags = ", ".join("--" + n.replace("_", "-") for n in options.engine_settings())
        raise UserError(f"{flags} apply to vllm: models only (--model vllm:PATH_OR_HUB_ID)")
    if engine:
        from evalkit.models.vllm_backend import import_vllm

        model = model.split(":", 1)[1]
        if not model:
            raise UserError("--model vllm:PATH_OR_HUB_ID needs a checkpoint after 'vllm:'")
        import_vllm()  # where vLLM is missing, say so before anything is built or loaded
    if model.partition(":")[0] == "toy-judge":  # the toy world's judge (evalkit.toy.judge)
        from evalkit.toy.judge import ToyJudge

        return ToyJudge.from_spec(model)
    if model == "toy":
        from evalkit.toy.model import ensure_toy_model

        model = str(ensure_toy_model())
    if engine:
        from evalkit.models.vllm_backend import VLLMBackend

        return VLLMBackend(model, options)
    if model.startswith("openai:"):
        from evalkit.models.openai_backend import OpenAIBackend

        name = model.split(":", 1)[1]
        if options.steer is not None:
            raise UserError("--steer applies to SteerLM checkpoints (hf), not to openai: models")
        if options.prompt_style is not None or options.image_pad is not None or options.sampling != "evalkit":
            raise UserError(
                "--prompt-style, --image-pad and --sampling apply to local checkpoints (hf); an openai: "
                "model renders and samples on its server"
            )
        if not name:
            raise UserError("--model openai:NAME needs a model name after 'openai:'")
        return OpenAIBackend(name, options)
    if model.startswith("hf:"):
        model = model.split(":", 1)[1]
    from evalkit.models.hf import HFBackend

    return HFBackend(model, options)
