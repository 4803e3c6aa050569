"""POVID-style image distortion (`--second-rejected distortion`): the baseline BDHS_noise is compared with
in the alignment study (seed (b), Table 6, "+ POVID-style distortion"), described there as "teacher-forced
token-by-token generation on a noised image (N = 500)".

What POVID's public code (`tool/dpo_trainer_inherent.py`) does, and what this module does: the chosen
answer y+ is fed teacher-forced with the image diffusion-noised (`training.image_noise`, N steps); at every
answer position t the model's most likely token on the noised image given the TRUE prefix y+_{<t} is the
distorted token ỹ−_t = argmax_v π(v | x̃, y+_{<t}). The rejected log-probability is then
Σ_t log π(ỹ−_t | x, y+_{<t}) — those tokens scored under the CLEAN image, each with the true prefix (not
ỹ−'s own prefix). So ỹ− is the per-position prediction, not y+ scored under the noised image, and it is
never a text. The policy and the reference each pick their own ỹ− (each runs the noised pass itself), as
POVID's trainer does. The loss is the two-rejected loss (`training.avg_dpo`) with this as the second
rejected term: γ·L(y+, y−) + (1 − γ)·L(y+, ỹ−) (POVID: γ = 0.5).

ε is drawn per micro-batch from (seed, step, micro-batch), so a resumed run sees the same noise. Every pair
needs an image (`methods.load_data` checks it).
"""

from __future__ import annotations

import contextlib
from typing import Any

from evalkit.training.dpo import AdapterOffReference, FrozenReference, _computes_own_positions
from evalkit.types import UserError


def _answer_logits(model, batch, pixel_values=None):
    """Logits predicting each token from the first answer column on (as `dpo.sequence_logps`), with the
    pixel values replaced when given; and the index of the first token they predict."""
    columns = batch.answer_mask.any(0).nonzero()
    keep = batch.input_ids.shape[1] - int(columns[0]) + 1
    inputs = batch.model_inputs()
    if pixel_values is not None:
        inputs["pixel_values"] = pixel_values
    if _computes_own_positions(model):
        inputs.pop("position_ids")
    dtype = getattr(model, "dtype", None)
    if dtype is not None:
        inputs = {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs.items()}
    logits = model(**inputs, logits_to_keep=keep, use_cache=False).logits
    if logits.shape[1] != keep:
        raise RuntimeError(f"the model returned {logits.shape[1]} logit positions, expected {keep}")
    return logits.float(), batch.input_ids.shape[1] - keep + 1


def _distorted(clean, noisy, mask):
    """Σ over `mask` of log softmax(clean)[argmax noisy]; logits aligned with the tokens they predict."""
    import torch

    target = noisy.argmax(-1)
    token = clean.gather(-1, target.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(clean, dim=-1)
    return torch.where(mask, token, torch.zeros_like(token)).sum(-1)


def distorted_logps(model, batch, noised_pixels):
    """[N] Σ_t log π(ỹ−_t | x, y+_{<t}) with ỹ−_t = argmax π(· | x̃, y+_{<t}) over the answer tokens of
    `batch` (rows: prompt + y+). Gradient flows through the clean pass only (the argmax has none)."""
    import torch

    clean, first = _answer_logits(model, batch)
    with torch.no_grad():
        noisy, _ = _answer_logits(model, batch, noised_pixels)
    return _distorted(clean[:, :-1], noisy[:, :-1], batch.answer_mask[:, first:])


def _scores(model, batch, noised_pixels):
    """One pass over a pair batch (plus a gradient-free pass on the noised images): the [2B] answer
    log-prob sums and the [B] distorted log-probs of the chosen rows. The whole batch's pixel values are
    noised (elementwise, so whatever the family's layout); only the chosen rows' predictions are used."""
    import torch

    from evalkit.training.dpo import answer_logps

    b = batch.n_pairs
    clean, first = _answer_logits(model, batch)
    with torch.no_grad():
        noisy, _ = _answer_logits(model, batch, noised_pixels)
    sums = answer_logps(clean, batch.input_ids, batch.answer_mask).logps
    second = _distorted(clean[:b, :-1], noisy[:b, :-1], batch.answer_mask[:b, first:])
    return sums, second


@contextlib.contextmanager
def _reference_model(reference):
    """The reference as a model: the frozen copy, or the policy with its adapter off (eval mode)."""
    if isinstance(reference, FrozenReference):
        yield reference.model
    elif isinstance(reference, AdapterOffReference):
        model, was_training = reference.model, reference.model.training
        model.eval()
        try:
            with model.disable_adapter():
                yield model
        finally:
            model.train(was_training)
    else:
        raise UserError("--second-rejected distortion needs --reference adapter-off or frozen")


def noised_batch_pixels(batch, steps: int, seed: int):
    from evalkit.training.image_noise import noise_pixels

    pixels = batch.extras.get("pixel_values")
    if pixels is None:
        raise UserError("--second-rejected distortion noises the images: every pair needs an image")
    return noise_pixels(pixels, steps, seed)


def distortion_forward(cfg, policy, reference, encoder, pairs: list[Any], device, step: int, micro: int):
    """(loss output, pair batch): the two-rejected loss with POVID's distorted answer as ỹ−. The policy
    scores everything in one pass with gradient; the reference (frozen copy or adapter off) likewise."""
    import torch

    from evalkit.training.avg_dpo import avg_dpo_loss
    from evalkit.training.batching import encode_or_explain
    from evalkit.training.sampling import derive_seed

    batch = encode_or_explain(encoder.encode_pairs, pairs).to(device)
    noised = noised_batch_pixels(batch, cfg.noise_steps, derive_seed("distortion", cfg.seed, step, micro))
    with torch.no_grad(), _reference_model(reference) as ref_model:
        ref_sums, ref_second = _scores(ref_model, batch, noised)
    sums, second = _scores(policy, batch, noised)
    chosen, rejected = sums.chunk(2)
    ref_chosen, ref_rejected = ref_sums.chunk(2)
    result = avg_dpo_loss(
        chosen, rejected, second, ref_chosen, ref_rejected, ref_second, cfg.beta, cfg.loss, cfg.gamma,
        cfg.sft_weight, delta=cfg.slic_delta,
    )  # fmt: skip
    return result, batch
