"""Online and mixed DPO: preference pairs made from the current policy during training.

Online DPO (seed (b), after Guo et al. 2024; TRL's OnlineDPOTrainer does the same per step): for each
prompt of a micro-batch the policy, as it is at that step, samples two answers; the scorer (a reward
function or a judge, `training.rewards`) rates both and the better one becomes `chosen`. An answer that
did not finish (no EOS within `max_new_tokens`) ranks below any finished one (TRL's missing-EOS penalty, as
an order rather than a number). Equal ratings, identical answers or an unrated answer give no preference:
the prompt is left out of the step and counted (`online/ties`, `online/unscored`).

Mixed DPO (seed (b)): each example of a micro-batch is trained on its offline pair with probability
`offline_prob` (p = 0.5), else on an online pair for its prompt. The draw and the samples are seeded by
(seed, step, micro-batch, position), so a resumed run makes the same pairs as an uninterrupted one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalkit.training.data_records import PreferencePair

if TYPE_CHECKING:
    from evalkit.training.config import TrainConfig


@dataclass
class OnlinePairs:
    scorer: Any  # training.rewards scorer
    encoder: Any
    temperature: float
    max_new_tokens: int
    seed: int
    offline_prob: float | None = None  # mixed DPO: the probability of the offline pair

    def offline_draws(self, n: int, step: int, micro: int) -> list[bool]:
        """Mixed DPO: which of the n examples of this micro-batch keep their offline pair."""
        if self.offline_prob is None:
            return [False] * n
        return [
            random.Random(f"mixed:{self.seed}:{step}:{micro}:{k}").random() < self.offline_prob
            for k in range(n)
        ]

    def placeholder(self, example: Any) -> list[PreferencePair]:
        """A stand-in pair trained with weight 0, for a process whose micro-batch had no preference while
        the others train (every process must run the same passes)."""
        text = getattr(example, "chosen", None) or getattr(example, "response", None) or "."
        return [PreferencePair(example.prompt, text, text, example.image, example.source, "placeholder")]

    def make(
        self, model, examples: Sequence[Any], step: int, micro: int
    ) -> tuple[list[PreferencePair], dict[str, float]]:
        """The pairs to train on for this micro-batch, and counts for the training log."""
        from evalkit.training.sampling import SampleRequest, sample

        offline = self.offline_draws(len(examples), step, micro)
        pairs: list[PreferencePair] = [ex for ex, keep in zip(examples, offline, strict=True) if keep]
        online = [ex for ex, keep in zip(examples, offline, strict=True) if not keep]
        stats = {"online/pairs": 0.0, "online/ties": 0.0, "online/unscored": 0.0}
        if self.offline_prob is not None:
            stats["mixed/offline"] = float(len(pairs))
        if not online:
            return pairs, stats
        requests = [SampleRequest(ex.prompt, ex.image) for ex in online for _ in range(2)]
        samples = sample(
            model,
            self.encoder,
            requests,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            seed=self.seed * 1_000_003 + step * 1_009 + micro,
        )
        texts = [s.text for s in samples]
        rewards = self.scorer.score([ex for ex in online for _ in range(2)], texts)
        chosen_r, rejected_r = [], []
        for k, ex in enumerate(online):
            a, b = samples[2 * k], samples[2 * k + 1]
            ra, rb = rewards[2 * k], rewards[2 * k + 1]
            if ra is None or rb is None:
                stats["online/unscored"] += 1
                continue
            key_a, key_b = (a.finished, ra), (b.finished, rb)
            if key_a == key_b or a.text.strip() == b.text.strip():
                stats["online/ties"] += 1
                continue
            (win, rw), (lose, rl) = ((a, ra), (b, rb)) if key_a > key_b else ((b, rb), (a, ra))
            chosen_r.append(rw)
            rejected_r.append(rl)
            pairs.append(
                PreferencePair(
                    prompt=ex.prompt,
                    chosen=win.text,
                    rejected=lose.text,
                    image=ex.image,
                    source=ex.source,
                    id=f"{ex.id}@{step}.{micro}",
                    scores={"online": {"chosen": rw, "rejected": rl}},
                )
            )
        stats["online/pairs"] = float(len(chosen_r))
        if chosen_r:
            stats["online/reward_chosen"] = sum(chosen_r) / len(chosen_r)
            stats["online/reward_rejected"] = sum(rejected_r) / len(rejected_r)
        return pairs, stats


def online_pairs(cfg: TrainConfig, encoder):
    """online-dpo / mixed-dpo (and online-bdhs, `training.online_bdhs`): the maker of each micro-batch's
    pairs; None for the other methods."""
    if cfg.method == "online-bdhs" or cfg.second_rejected == "online-bdhs":
        from evalkit.training.online_bdhs import online_bdhs

        return online_bdhs(cfg, encoder)
    if cfg.method not in ("online-dpo", "mixed-dpo"):
        return None
    from evalkit.training.rewards import scorer_for

    scorer = scorer_for(cfg)
    offline_prob = cfg.offline_prob if cfg.method == "mixed-dpo" else None
    return OnlinePairs(scorer, encoder, cfg.sample_temperature, cfg.max_new_tokens, cfg.seed, offline_prob)


def add_counts(counts: dict[str, float], made: dict[str, float]) -> None:
    """Pair counts add up over a step's micro-batches; mean rewards are weighted by their pairs."""
    n_old, n_new = counts.get("online/pairs", 0.0), made.get("online/pairs", 0.0)
    for k, v in made.items():
        if k.startswith("online/reward_"):
            total = n_old + n_new
            counts[k] = (counts.get(k, 0.0) * n_old + v * n_new) / total if total else 0.0
    for k, v in made.items():
        if not k.startswith("online/reward_"):
            counts[k] = counts.get(k, 0.0) + v
