"""Online-BDHS (seed (b), training.md §1b): the rejected answer of each pair written by the CURRENT policy
during training, with the offline BDHS machinery (`training.bdhs`: image masking or noise, reference
guidance, similarity check, N tries), per micro-batch, as online DPO samples its pairs (`training.online`).

- `--method online-bdhs`: SFT examples; each micro-batch's answers are y+ and the policy, as it is at that
  step, writes y−.
- `--second-rejected online-bdhs` (with `--method dpo`): the data's pairs keep their y−, and the policy
  writes the second rejected answer ỹ− for the two-rejected loss (`training.avg_dpo`).

The reference model of the loss is the starting model, as for every DPO method. Each example's draws
(flips, split points, masks, noise, sampling) are seeded by (seed, step, micro-batch, position, example id):
the example is given the BDHS id `ID@STEP.MICRO.POSITION`, from which `training.bdhs` seeds it, so a
resumed run makes the same pairs as an uninterrupted one, and at step 0 (policy == starting model) the
answers equal offline BDHS's for the same ids and seed. An example whose BDHS answer is empty or equals y+
is left out of the step and counted (`bdhs/skipped`), like an online-DPO tie. Logged per step:
`bdhs/pairs`, `bdhs/skipped`, `bdhs/resampled` (tries after a too-similar answer) and `bdhs/fallbacks`
(examples that reached the final unguided try).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from evalkit.training.data_records import PreferencePair, SFTExample


@dataclass
class OnlineBdhs:
    encoder: Any
    embed: Any  # sentence embedder (`training.embedding.load_embedder`)
    settings: Any  # training.bdhs.BdhsConfig
    second: bool  # True: the pairs' second rejected answer; False: SFT examples' rejected answer
    scorer: Any = None  # no judge (the trainer reads a scorer's usage)

    @staticmethod
    def bdhs_id(example: Any, step: int, micro: int, position: int) -> str:
        return f"{example.id}@{step}.{micro}.{position}"

    def placeholder(self, example: Any) -> list[PreferencePair]:
        """A stand-in pair trained with weight 0 (see `training.online.OnlinePairs.placeholder`)."""
        text = getattr(example, "chosen", None) or getattr(example, "response", None) or "."
        pair = PreferencePair(example.prompt, text, text, example.image, example.source, "placeholder")
        return [replace(pair, second_rejected=text) if self.second else pair]

    def make(
        self, model, examples: Sequence[Any], step: int, micro: int
    ) -> tuple[list[PreferencePair], dict[str, float]]:
        """The pairs to train on for this micro-batch, and counts for the training log."""
        from evalkit.training.bdhs import bdhs_pairs

        sft = [
            SFTExample(
                ex.prompt,
                ex.chosen if self.second else ex.response,
                ex.image,
                ex.source,
                self.bdhs_id(ex, step, micro, k),
            )
            for k, ex in enumerate(examples)
        ]
        made, stats = bdhs_pairs(model, self.encoder, sft, self.embed, self.settings)
        by_id = {p.id: p for p in made}
        pairs = []
        for ex, item in zip(examples, sft, strict=True):
            pair = by_id.get(item.id)
            if pair is None:
                continue
            if self.second:
                pairs.append(replace(ex, second_rejected=pair.rejected))
            else:
                pairs.append(replace(pair, id=ex.id))
        counts = {
            "bdhs/pairs": float(len(pairs)),
            "bdhs/skipped": float(len(examples) - len(pairs)),
            "bdhs/resampled": float(sum((int(t) - 1) * n for t, n in stats["tries"].items())),
            "bdhs/fallbacks": float(stats["fallbacks"]),
        }
        return pairs, counts


def bdhs_settings(cfg) -> Any:
    """The BDHS settings of a run (`training.bdhs.BdhsConfig`) from its `TrainConfig`."""
    from evalkit.training.bdhs import BdhsConfig

    return BdhsConfig(
        keep=cfg.bdhs_keep,
        similarity_threshold=cfg.bdhs_threshold,
        max_tries=cfg.bdhs_tries,
        temperature=cfg.sample_temperature if cfg.sample_temperature is not None else 1.0,
        seed=cfg.seed,
        image=cfg.bdhs_image,
        noise_steps=cfg.noise_steps,
    )


def online_bdhs(cfg, encoder) -> OnlineBdhs | None:
    """The per-micro-batch maker for `--method online-bdhs` / `--second-rejected online-bdhs`, else None."""
    second = cfg.second_rejected == "online-bdhs"
    if cfg.method != "online-bdhs" and not second:
        return None
    from evalkit.training.embedding import load_embedder

    return OnlineBdhs(encoder, load_embedder(cfg.embedder), bdhs_settings(cfg), second)
