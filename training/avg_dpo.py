"""Two rejected answers per chosen one (Avg-DPO; seed (b)'s "Online-BDHS ∪ POVID" rows, training.md §1b).

    L = γ·L(y+, y−) + (1 − γ)·L(y+, ỹ−),   γ = 0.5 by default,

for the configured preference loss L (sigmoid DPO, IPO or SLiC, `training.dpo.dpo_loss`), in the
averaged-losses form of POVID's code (per pair, then the mean over pairs), not the paper's weighted-log-prob
form. y− is the pair's own rejected answer; ỹ− its `second_rejected`, from one source (`--second-rejected`):

- `data`: a `second_rejected` field in each preference record (the generic JSONL format);
- `bdhs`: written once before training by the starting model with BDHS (`training.bdhs`);
- `online-bdhs`: written during training by the current policy with BDHS (`training.online_bdhs`);
- `distortion`: POVID's teacher-forced prediction on a noised image (`training.distortion`; not a text, so
  it is scored there rather than encoded as a pair here).

With γ = 1 the loss is exactly the one-rejected loss. The SFT term (`sft_weight`) is added once. The batch
holds the pairs twice, (y+, y−) then (y+, ỹ−), so one policy pass (and one reference pass) scores all of
them through the ordinary pair encoding and every reference kind; y+ is scored twice, which costs a quarter
of the pass but keeps every family's image layout untouched. The log has the first term's rewards under the
usual names and the second term's under `second/`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from evalkit.training.dpo import DpoOutput, dpo_loss, sequence_logps

SOURCES = ("data", "bdhs", "online-bdhs", "distortion")


@dataclass
class AvgDpoOutput:
    loss: Any
    first: DpoOutput  # L(y+, y−)
    second: DpoOutput  # L(y+, ỹ−)
    losses: Any  # [B] γ·l1 + (1 − γ)·l2

    def metrics(self) -> dict[str, float]:
        out = self.first.metrics()
        out["loss"] = float(self.loss.detach())
        out["first/loss"] = float(self.first.losses.mean().detach())
        out["second/loss"] = float(self.second.losses.mean().detach())
        out["second/rewards/rejected"] = float(self.second.rejected_rewards.mean())
        out["second/rewards/margins"] = float(self.second.margins.mean())
        out["second/rewards/accuracies"] = float(self.second.accuracy)
        return out


def avg_dpo_loss(
    policy_chosen,
    policy_rejected,
    policy_second,
    ref_chosen,
    ref_rejected,
    ref_second,
    beta: float,
    loss_type: str = "sigmoid",
    gamma: float = 0.5,
    sft_weight: float = 0.0,
    chosen_nll=None,
    delta: float = 1.0,
) -> AvgDpoOutput:
    """γ·L(y+, y−) + (1 − γ)·L(y+, ỹ−) per pair, averaged over pairs (+ λ·mean chosen NLL once)."""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    first = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta, loss_type, delta=delta)
    second = dpo_loss(policy_chosen, policy_second, ref_chosen, ref_second, beta, loss_type, delta=delta)
    losses = gamma * first.losses + (1.0 - gamma) * second.losses
    loss = losses.mean()
    if sft_weight:
        nll = -policy_chosen if chosen_nll is None else chosen_nll
        loss = loss + sft_weight * nll.mean()
    return AvgDpoOutput(loss, first, second, losses)


def doubled(pairs: list[Any]) -> list[Any]:
    """The pairs (y+, y−) followed by the pairs (y+, ỹ−), the latter with ids marked `#second`."""
    missing = [p.id for p in pairs if not getattr(p, "second_rejected", None)]
    if missing:
        raise ValueError(f"pair {missing[0]!r} has no second rejected answer")
    seconds = [replace(p, rejected=p.second_rejected, id=f"{p.id}#second") for p in pairs]
    return list(pairs) + seconds


def avg_dpo_forward(
    policy,
    reference,
    batch,
    *,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    gamma: float = 0.5,
    sft_weight: float = 0.0,
    sft_per_token: bool = False,
    delta: float = 1.0,
) -> AvgDpoOutput:
    """The loss of a batch encoded from `doubled(pairs)`: 2B pairs, the second B with ỹ− as rejected."""
    ref_chosen, ref_rejected = reference.logps(batch)
    logps, counts = sequence_logps(policy, batch)
    chosen, rejected = logps.chunk(2)
    b = batch.n_pairs // 2
    nll = None
    if sft_weight and sft_per_token:
        nll = -chosen[:b] / counts[:b].clamp(min=1)
    return avg_dpo_loss(
        chosen[:b],
        rejected[:b],
        rejected[b:],
        ref_chosen[:b],
        ref_rejected[:b],
        ref_rejected[b:],
        beta,
        loss_type,
        gamma,
        sft_weight,
        nll,
        delta,
    )


def preference_forward(
    cfg, model, reference, encoder, pairs: list[Any], device, step: int = 0, micro: int = 0
):
    """(loss output, batch) of one micro-batch of a DPO method: the two-rejected loss when
    `cfg.second_rejected` is set (`distortion`: `training.distortion`), else the one-rejected loss."""
    from evalkit.training.batching import encode_or_explain
    from evalkit.training.dpo import dpo_forward

    settings = {
        "beta": cfg.beta,
        "loss_type": cfg.loss,
        "sft_weight": cfg.sft_weight,
        "delta": cfg.slic_delta,
    }
    if not cfg.second_rejected:
        batch = encode_or_explain(encoder.encode_pairs, pairs).to(device)
        return dpo_forward(model, reference, batch, **settings), batch
    if cfg.second_rejected == "distortion":
        from evalkit.training.distortion import distortion_forward

        return distortion_forward(cfg, model, reference, encoder, pairs, device, step, micro)
    batch = encode_or_explain(encoder.encode_pairs, doubled(pairs)).to(device)
    return avg_dpo_forward(model, reference, batch, gamma=cfg.gamma, **settings), batch
