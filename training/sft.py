"""SFT loss: the mean negative log-likelihood over answer tokens (the answer and its EOS, exactly what
generation has to produce at evaluation; prompt and image tokens are never scored).

The mean is per token over the whole micro-batch (sum of answer-token NLLs / number of answer tokens), so
a long answer weighs by its length, as in transformers' own causal-LM loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evalkit.training.batching import Batch
from evalkit.training.dpo import sequence_logps


@dataclass
class SftOutput:
    loss: Any  # scalar: mean NLL per answer token
    n_tokens: int

    def metrics(self) -> dict[str, float]:
        return {"loss": float(self.loss.detach()), "answer_tokens": float(self.n_tokens)}


def sft_forward(model, batch: Batch) -> SftOutput:
    logps, counts = sequence_logps(model, batch)
    n = int(counts.sum())
    return SftOutput(-logps.sum() / max(n, 1), n)
