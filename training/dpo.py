"""DPO / IPO / SLiC losses, answer-token log-probabilities and the reference model's log-probabilities.

Log-probs (`sequence_logps`): one forward pass over a `PairBatch` (chosen rows then rejected rows); token t
is scored from the logits at t - 1, and only tokens in `answer_mask` count, so image and prompt tokens are
never scored and nothing depends on how many image tokens a model inserts (no 575-style offset). The
logits must line up with `input_ids` one for one, which is checked. Sums per row, plus token counts.
Position ids: mask-derived (`cumsum - 1`, what `generate` uses at evaluation) except for models with
multimodal RoPE (`get_rope_index`: Qwen2-VL and kin), which compute their own from the image grid and the
attention mask, as they do in their own generate.

Losses (`dpo_loss`), with h = (logπ(y+) − logπ_ref(y+)) − (logπ(y−) − logπ_ref(y−)) per pair:
- "sigmoid" (DPO): −log σ(β·h).
- "ipo": (h − 1/(2β))², the IPO paper's form (Azar et al. 2023) on the log-probs given, i.e. sequence
  sums like DPO. TRL's "ipo" divides every log-prob by its answer length first; to get that form pass the
  four log-probs divided by their token counts (`sequence_logps` returns them).
- "slic": max(0, δ − β·h), the hinge on the log-ratio margin (δ = `delta`, default 1.0). With δ = 1 this
  is TRL's "hinge" loss, relu(1 − β·h); the alignment study (seed (b)) tunes a β_SLiC but does not print
  its formula, and a β only enters through this form. The SLiC-HF paper's calibration loss
  max(0, δ − logπ(y+) + logπ(y−)) (δ = 1) is the same hinge with β = 1 and no reference terms; the
  reference is kept so every loss here shares one margin h. At step 0 (h = 0) the SLiC loss is δ.
- `sft_weight` λ > 0 adds λ·mean(chosen_nll); chosen_nll defaults to −logπ(y+) (the sequence sum: seed
  (a)'s `−SFT_weight·mean(logp_chosen)`); pass −logπ(y+)/n_tokens for LLaMA-Factory's per-token pref_ftx.
Rewards β·(logπ − logπ_ref) are detached. At step 0 (policy == reference) h = 0: the DPO loss is ln 2,
the rewards and margins 0, the accuracy (strictly larger chosen reward) 0.

References, one interface `logps(batch) -> (ref_chosen [B], ref_rejected [B])`, no gradient:
- `FrozenReference(model)`: a deep copy in eval mode with requires_grad off (costs one model of memory).
- `AdapterOffReference(peft_model)`: the policy itself with its LoRA adapter disabled (peft's
  `disable_adapter()`), in eval mode for the pass; the base weights are frozen by peft so this stays the
  starting model while the adapter trains.
- `CachedReference`: computed over the whole dataset before the first update (`CachedReference.compute`),
  keyed by example id, saved as JSON next to the checkpoint (exact: floats are written with repr; never a
  pickle, which could run code when read back).
  Each entry keeps the answer token counts, and a batch whose counts differ (another max_length, template
  or tokenizer) is refused rather than paired with the wrong numbers.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from evalkit.training.batching import Batch, Encoder, PairBatch

LOSS_TYPES = ("sigmoid", "ipo", "slic")
CACHE_FORMAT = "evalkit-dpo-reference-logps/1"


class SequenceLogps(NamedTuple):
    logps: Any  # [N] summed log-probs of the answer tokens
    n_tokens: Any  # [N] number of answer tokens scored


def answer_logps(logits, input_ids, answer_mask) -> SequenceLogps:
    """Sum of log p(token t | tokens < t) over answer tokens, from `logits` [N, K, V] for the last K
    positions of `input_ids` [N, T] (K == T: all of them). Computed in float32 at least."""
    import torch

    n_kept, seq_len = logits.shape[1], input_ids.shape[1]
    first = seq_len - n_kept + 1  # the first token whose predicting logits were kept
    if first < 1 or bool(answer_mask[:, :first].any()):
        raise ValueError(f"{n_kept} logits for {seq_len} tokens do not cover every answer token")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    logits = logits[:, :-1]
    targets = input_ids[:, first:]
    mask = answer_mask[:, first:]
    token_logps = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    token_logps = torch.where(mask, token_logps, torch.zeros_like(token_logps))
    return SequenceLogps(token_logps.sum(-1), mask.sum(-1))


def sequence_logps(model, batch: Batch) -> SequenceLogps:
    """One forward pass of `model` over `batch`; answer-token log-prob sums and counts per row.

    Only the logits from the first answer column on are computed (`logits_to_keep`)."""
    columns = batch.answer_mask.any(0).nonzero()
    if len(columns) == 0:
        raise ValueError("the batch has no answer tokens")
    keep = batch.input_ids.shape[1] - int(columns[0]) + 1
    inputs = batch.model_inputs()
    if _computes_own_positions(model):  # multimodal RoPE (Qwen2-VL...): positions from the image grid
        inputs.pop("position_ids")
    dtype = getattr(model, "dtype", None)
    if dtype is not None:  # pixel values in the model's dtype, as the evaluation backend sends them
        inputs = {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs.items()}
    logits = model(**inputs, logits_to_keep=keep, use_cache=False).logits
    if logits.shape[1] != keep:
        raise RuntimeError(
            f"the model returned {logits.shape[1]} logit positions, expected {keep}: its sequence does not "
            "line up with input_ids (image tokens must be expanded by the processor, not inside the model)"
        )
    return answer_logps(logits, batch.input_ids, batch.answer_mask)


def _computes_own_positions(model) -> bool:
    """True for models that derive position ids from the images and the attention mask themselves
    (`get_rope_index`, as in their own generate); others get the mask-derived ids, as generate gives."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return any(hasattr(m, "get_rope_index") for m in (base, getattr(base, "model", None)))


@dataclass
class DpoOutput:
    loss: Any  # scalar: mean over pairs (+ λ·mean chosen NLL)
    chosen_rewards: Any  # [B] β(logπ(y+) − logπ_ref(y+)), detached
    rejected_rewards: Any  # [B]
    margins: Any  # [B] chosen_rewards − rejected_rewards
    accuracy: Any  # scalar: fraction of pairs with chosen reward > rejected reward
    losses: Any = None  # [B] per-pair preference loss (without the SFT term)

    def metrics(self) -> dict[str, float]:
        return {
            "loss": float(self.loss.detach()),
            "rewards/chosen": float(self.chosen_rewards.mean()),
            "rewards/rejected": float(self.rejected_rewards.mean()),
            "rewards/margins": float(self.margins.mean()),
            "rewards/accuracies": float(self.accuracy),
        }


def dpo_loss(
    policy_chosen,
    policy_rejected,
    ref_chosen,
    ref_rejected,
    beta: float,
    loss_type: str = "sigmoid",
    sft_weight: float = 0.0,
    chosen_nll=None,
    delta: float = 1.0,
) -> DpoOutput:
    """The preference loss from [B] log-probs (see the module docstring for the exact forms)."""
    import torch.nn.functional as F

    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type {loss_type!r} is not one of {', '.join(LOSS_TYPES)}")
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    chosen_ratio = policy_chosen - ref_chosen
    rejected_ratio = policy_rejected - ref_rejected
    h = chosen_ratio - rejected_ratio
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * h)
    elif loss_type == "ipo":
        losses = (h - 1.0 / (2.0 * beta)) ** 2
    else:
        if not math.isfinite(delta) or delta <= 0:
            raise ValueError(f"delta must be a finite number > 0, got {delta}")
        losses = F.relu(delta - beta * h)
    loss = losses.mean()
    if sft_weight:
        nll = -policy_chosen if chosen_nll is None else chosen_nll
        loss = loss + sft_weight * nll.mean()
    chosen_rewards = (beta * chosen_ratio).detach()
    rejected_rewards = (beta * rejected_ratio).detach()
    margins = chosen_rewards - rejected_rewards
    accuracy = (chosen_rewards > rejected_rewards).to(chosen_rewards.dtype).mean()
    return DpoOutput(loss, chosen_rewards, rejected_rewards, margins, accuracy, losses)


def dpo_forward(
    policy,
    reference: Reference,
    batch: PairBatch,
    *,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    sft_weight: float = 0.0,
    sft_per_token: bool = False,
    delta: float = 1.0,
) -> DpoOutput:
    """One training-step loss: the policy scores chosen and rejected in one pass, the reference its own."""
    ref_chosen, ref_rejected = reference.logps(batch)
    logps, counts = sequence_logps(policy, batch)
    chosen, rejected = logps.chunk(2)
    nll = None
    if sft_weight and sft_per_token:
        nll = -chosen / counts[: batch.n_pairs].clamp(min=1)
    return dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta, loss_type, sft_weight, nll, delta)


# ---- references -------------------------------------------------------------------------------------


class Reference(Protocol):
    def logps(self, batch: PairBatch) -> tuple[Any, Any]:
        """(ref_chosen [B], ref_rejected [B]) summed answer log-probs, without gradient."""
        ...


def _eval_logps(model, batch: Batch):
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return sequence_logps(model, batch).logps
    finally:
        model.train(was_training)


class FrozenReference:
    """A frozen deep copy of `model` (taken when constructed: construct it before training)."""

    def __init__(self, model) -> None:
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)

    def logps(self, batch: PairBatch) -> tuple[Any, Any]:
        return _eval_logps(self.model, batch).chunk(2)


class AdapterOffReference:
    """The peft-wrapped policy with its adapter disabled; no second copy of the weights."""

    def __init__(self, peft_model) -> None:
        from peft import PeftModel

        if not isinstance(peft_model, PeftModel):
            raise TypeError(f"AdapterOffReference needs a peft.PeftModel, got {type(peft_model).__name__}")
        self.model = peft_model

    def logps(self, batch: PairBatch) -> tuple[Any, Any]:
        with self.model.disable_adapter():
            return _eval_logps(self.model, batch).chunk(2)


class _ModelReference:
    """`model` itself as it is now (used to fill a cache before training starts)."""

    def __init__(self, model) -> None:
        self.model = model

    def logps(self, batch: PairBatch) -> tuple[Any, Any]:
        return _eval_logps(self.model, batch).chunk(2)


class CachedReference:
    """Reference log-probs by pair id: {id: (chosen, rejected, chosen_tokens, rejected_tokens)}."""

    def __init__(self, table: dict[str, tuple[float, float, int, int]], meta: dict[str, Any] | None = None):
        self.table = dict(table)
        self.meta = dict(meta or {})

    def __len__(self) -> int:
        return len(self.table)

    @classmethod
    def compute(
        cls,
        source: Any,
        encoder: Encoder,
        pairs: Sequence[Any],
        *,
        batch_size: int = 8,
        device: Any = None,
        meta: dict[str, Any] | None = None,
    ) -> CachedReference:
        """Score every pair once with `source` (a model, or a reference such as `AdapterOffReference`);
        run it before the first optimizer step. Pair ids must be present and unique."""
        ids = [getattr(p, "id", None) for p in pairs]
        dtype = "float32"
        if any(i is None for i in ids) or len(set(ids)) != len(ids):
            raise ValueError("a reference cache needs a unique, non-empty id on every pair")
        reference = source if hasattr(source, "logps") else _ModelReference(source)
        table: dict[str, tuple[float, float, int, int]] = {}
        for start in range(0, len(pairs), batch_size):
            batch = encoder.encode_pairs(pairs[start : start + batch_size])
            if device is not None:
                batch = batch.to(device)
            chosen, rejected = reference.logps(batch)
            dtype = str(chosen.dtype).removeprefix("torch.")
            counts = batch.answer_lengths.tolist()
            b = batch.n_pairs
            for k, pid in enumerate(batch.pair_ids):
                table[str(pid)] = (float(chosen[k]), float(rejected[k]), int(counts[k]), int(counts[b + k]))
        info = {"max_length": encoder.max_length, "dtype": dtype, **(meta or {})}
        return cls(table, info)

    def logps(self, batch: PairBatch) -> tuple[Any, Any]:
        import torch

        rows = []
        counts = batch.answer_lengths.tolist()
        for k, pid in enumerate(batch.pair_ids):
            if str(pid) not in self.table:
                raise KeyError(f"pair {pid!r} is not in the reference cache ({len(self)} entries)")
            entry = self.table[str(pid)]
            if (entry[2], entry[3]) != (counts[k], counts[batch.n_pairs + k]):
                raise ValueError(
                    f"pair {pid!r}: the cache scored {entry[2]}/{entry[3]} answer tokens, this batch has "
                    f"{counts[k]}/{counts[batch.n_pairs + k]} (different max_length, template or tokenizer?)"
                )
            rows.append(entry[:2])
        dtype = getattr(torch, str(self.meta.get("dtype", "float32")))  # as computed: exact round trip
        values = torch.tensor(rows, dtype=torch.float64, device=batch.input_ids.device).to(dtype)
        return values[:, 0], values[:, 1]

    def save(self, path: str | Path) -> Path:
        """JSON (exact float round trip); any suffix but `.pt`, which is refused (no pickles)."""
        path = _json_path(path)
        data = {
            "format": CACHE_FORMAT,
            "meta": self.meta,
            "pairs": {k: list(v) for k, v in self.table.items()},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1, sort_keys=True))
        return path

    @classmethod
    def load(cls, path: str | Path) -> CachedReference:
        path = _json_path(path)
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
            raise ValueError(f"{path} is not a reference cache ({CACHE_FORMAT})")
        table = {k: (float(c), float(r), int(nc), int(nr)) for k, (c, r, nc, nr) in data["pairs"].items()}
        bad = [k for k, v in table.items() if not all(math.isfinite(x) for x in v[:2])]
        if bad:
            raise ValueError(f"{path}: non-finite reference log-probs for {bad[:3]}")
        return cls(table, data.get("meta"))


def _json_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix in (".pt", ".pth", ".bin", ".pkl"):
        raise ValueError(f"{path}: reference caches are JSON files; evalkit reads no pickles")
    return path
