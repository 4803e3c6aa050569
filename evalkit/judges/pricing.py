"""USD per million tokens (prompt, completion) for judge models, to report and cap a run's cost.

Prices change: a model missing here costs `None` (reported as unknown, never as 0), and the user can
pass their own table. Numbers are the providers' list prices for the pinned snapshots.
"""

from __future__ import annotations

import math

PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4": (30.0, 60.0),
    "gpt-4-0314": (30.0, 60.0),
    "gpt-4-0613": (30.0, 60.0),
    "gpt-4-1106-preview": (10.0, 30.0),
    "gpt-4-turbo": (10.0, 30.0),
    "gpt-4-turbo-2024-04-09": (10.0, 30.0),
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-2024-05-13": (5.0, 15.0),
    "gpt-4o-2024-08-06": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-3.5-turbo": (0.5, 1.5),
    "gpt-3.5-turbo-0613": (1.5, 2.0),
    "gpt-3.5-turbo-0125": (0.5, 1.5),
}


def cost_usd(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    prices: dict[str, tuple[float, float]] | None = None,
) -> float | None:
    """Cost of the tokens at `model`'s price, or None when the price is unknown (local models cost 0)."""
    table = PRICES_PER_MTOK if prices is None else prices
    if model not in table:
        return None
    p, c = table[model]
    return (prompt_tokens * p + completion_tokens * c) / 1e6


def image_prompt_tokens(width: int, height: int, detail: str | None) -> int:
    """The prompt tokens OpenAI's GPT-4o bills for one image: 85 at `low`; otherwise (`high`, and `auto` or
    none as an upper bound, the API choosing) 85 + 170 per 512-pixel tile of the image scaled to fit
    2048×2048 and then to a shortest side of at most 768 (OpenAI's published vision-cost rule)."""
    if detail == "low":
        return 85
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)
