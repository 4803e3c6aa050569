"""Per-row seeded sampling for the hf backend, and the `--sampling` styles.

`evalkit` (the default) samples with the request's temperature and top-p only: the checkpoint's
`generation_config.json` sampling values are deliberately not applied. `fastchat` samples as FastChat's
MT-Bench generation did (`fastchat/llm_judge/gen_model_answer.py` calls `model.generate(do_sample=True,
temperature=T, max_new_tokens=N)` and nothing else), so transformers' generation defaults apply on top of
the request's temperature: the checkpoint's `top_k` (50 when it sets none) and `top_p` (1.0 when none), in
transformers' order (temperature, top-k, top-p); a request's own top-p below 1 is applied after them.
Greedy rows (temperature 0) are greedy under both, as FastChat's `do_sample=False` is.

Each sampled row draws with its own generator seeded from `Request.seed`, so a row's tokens do not
depend on the batch it is in (up to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evalkit.types import UserError

SAMPLING_STYLES = ("evalkit", "fastchat")

#: generation-config fields that would change FastChat's sampling and that `fastchat` does not apply
_UNAPPLIED = {
    "repetition_penalty": 1.0,
    "min_p": None,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "top_h": None,
    "no_repeat_ngram_size": 0,
}


@dataclass(frozen=True)
class RowSampling:
    """How one row is drawn: the request's temperature / top-p / seed, plus `fastchat`'s top-k and the
    checkpoint's top-p (0 and 1.0: not applied)."""

    temperature: float
    top_p: float
    seed: int
    top_k: int = 0
    checkpoint_top_p: float = 1.0


def fastchat_settings(generation_config: Any, model: str) -> dict[str, Any]:
    """{"top_k", "top_p"} that `generate(do_sample=True)` takes from the checkpoint's generation config;
    a one-line error when the config sets a sampling value `fastchat` does not reproduce."""
    for name, neutral in _UNAPPLIED.items():
        value = getattr(generation_config, name, None)
        if value is not None and value != neutral:
            raise UserError(
                f"--sampling fastchat: {model!r}'s generation_config.json sets {name}={value}, which evalkit "
                "does not apply; use --sampling evalkit"
            )
    top_k = generation_config.top_k
    top_p = generation_config.top_p
    return {"top_k": 50 if top_k is None else int(top_k), "top_p": 1.0 if top_p is None else float(top_p)}


class RowSampler:
    """A logits processor drawing each sampled row's token with the row's own generator and returning it
    as a one-hot score row; `generate` runs greedy, so the argmax of each sampled row is the token drawn
    here. Greedy rows (`None`) are left untouched."""

    def __init__(self, rows: list[RowSampling | None]) -> None:
        import torch

        self.rows = rows
        self.generators = [torch.Generator().manual_seed(int(r.seed)) if r else None for r in rows]

    def __call__(self, input_ids, scores):
        import torch

        for i, spec in enumerate(self.rows):
            if spec is None:
                continue
            logits = scores[i].float().cpu() / spec.temperature
            if spec.top_k > 0:  # transformers' TopKLogitsWarper: ties with the k-th are kept
                kth = logits.topk(min(spec.top_k, logits.shape[-1])).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = torch.softmax(logits, dim=-1)
            sorted_p, order = probs.sort(descending=True)
            if spec.checkpoint_top_p < 1.0:
                sorted_p = _nucleus(sorted_p, spec.checkpoint_top_p)
                sorted_p = sorted_p / sorted_p.sum()
            sorted_p = sorted_p * ((sorted_p.cumsum(0) - sorted_p) < spec.top_p)  # top-p, keeps at least one
            token = order[torch.multinomial(sorted_p, 1, generator=self.generators[i])]
            scores[i] = float("-inf")
            scores[i, token.to(scores.device)] = 0.0
        return scores


def _nucleus(sorted_p, top_p: float):
    """The smallest prefix of the descending probabilities whose mass reaches `top_p` (at least one)."""
    return sorted_p * ((sorted_p.cumsum(0) - sorted_p) < top_p)
