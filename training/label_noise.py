"""Label noise: chosen and rejected swapped in a seeded fraction of the preference pairs (the seed
study's Table 5 ablation, 25 / 50 / 75% flipped pairs).

Exactly `round(fraction * n)` pairs are flipped (Python's `round`: halves go to the even count), the
positions drawn by `random.Random(f"flip:{seed}").sample(range(n), k)` over the pairs in the order they
were loaded, so one seed flips the same pairs on every run and machine. A flipped pair keeps its id and
source; its `scores` gain `"flipped": True` so the swap is visible wherever the pair is shown.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace

from evalkit.training.data_records import Loaded, PreferencePair


def flipped_positions(n: int, fraction: float, seed: int) -> list[int]:
    """The sorted positions (0-based, load order) of the pairs `flip_pairs` swaps."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    k = round(fraction * n)
    return sorted(random.Random(f"flip:{seed}").sample(range(n), k))


def flip_pairs(data: Loaded[PreferencePair], fraction: float, seed: int) -> Loaded[PreferencePair]:
    """`data` with chosen and rejected swapped at `flipped_positions`; the count, the fraction and a
    digest of the flipped ids go into `info` (and so into train_config.json). Fraction 0: `data` itself."""
    if not fraction:
        return data
    where = flipped_positions(len(data.items), fraction, seed)
    items = list(data.items)
    for i in where:
        pair = items[i]
        scores = {**(pair.scores or {}), "flipped": True}
        items[i] = replace(pair, chosen=pair.rejected, rejected=pair.chosen, scores=scores)
    ids = "\n".join(items[i].id for i in where)
    info = {
        **data.info,
        "label_noise": {
            "flip_fraction": fraction,
            "flipped_pairs": len(where),
            "of_pairs": len(items),
            "flip_seed": seed,
            "flipped_ids_sha256": hashlib.sha256(ids.encode()).hexdigest(),
        },
    }
    return replace(data, items=items, info=info)
