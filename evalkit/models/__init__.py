"""Model backends: one interface (`base.Backend.generate`), several ways to answer.

`base` holds the interface and `load_backend` (the factory that reads `--model`: a path or hub id, `toy`,
`openai:NAME`, `vllm:PATH`); `hf_loading` loads checkpoints and adapters (refusing pickled weights) and `hf`
generates with transformers; `prompt` renders chat templates, the one renderer evaluation and training share,
`protocol` the named generation protocols (LLaVA's official prompt rendering and square padding),
`sampling` the per-row sampler (with FastChat's top-k), and `steerlm` the SteerLM attribute suffix both
write; `openai_http` (URLs, proxies, Retry-After), `openai_client` (the request queue with its retries and
timeouts, shared with the judges) and `openai_backend` answer through any OpenAI-compatible endpoint;
`vllm_backend` answers on vLLM's in-process engine (`vllm:PATH`), asking the model as `hf` does through
`vllm_requests` (its requests and outputs as plain data, importable without vLLM) and `answer` (the answer
cut both share).
"""
