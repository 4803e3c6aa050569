"""AlpacaEval 1.0 / 2.0: how often a GPT-4 judge prefers the model's answer to a reference model's.

Protocol (tatsu-lab/alpaca_eval @ cd543a1: `annotators/`, `processors.py`, `completion_parsers.py`,
`metrics/`), kept exactly:

- 805 instructions, each answered alone (one user turn). The reference ("baseline") answers are
  text_davinci_003's for 1.0 and gpt4_1106_preview's for 2.0; answers are paired on the instruction text.
- The judge sees output_1 = reference and output_2 = model, except that the two are swapped for a fixed
  half of the instructions: `random.Random("is_switched_outputs" + instruction + "0").choices([False,
  True])[0]` (the official seeded choice with the annotator's default seed 0; Python seeds a `str` through
  SHA-512, so the order is the same on every platform and version). A preference p read from a swapped
  prompt becomes 3 - p. Identical outputs are never sent to the judge: their preference is 1.5.
- 1.0 judge `alpaca_eval_gpt4` (gpt-4, temperature 0, max 100 tokens) answers a Python list of
  {'model', 'rank'} dicts; the preference is the rank of 'model_1' when it is 1 or 2, else unparsable.
- 2.0 judge `weighted_alpaca_eval_gpt4_turbo` (gpt-4-1106-preview, 1 token, temperature 1, top-5
  logprobs) names the better output "m" or "M"; the preference is 2 - P(m) / (P(m) + P(M)) over the top 5
  (a token not there has probability 0), continuous in [1, 2]; unparsable when neither is there.
- Preference 1 means the reference wins, 2 the model wins; 1.5 (or the legacy 0) is a draw.
  win rate = 100 * mean(p - 1) and standard error = 100 * sem(p - 1) (ddof 1) over the valid
  preferences (1 <= p <= 2). The official code drops unparsable judgements silently; here they are
  dropped the same way, so the numbers match, but counted in `n_invalid`.

This module holds the protocol without file access; the official files (judge prompts in `assets/`,
model_outputs.json, annotations.json) are read by `data.py`, the length-controlled win rate is in
`length_controlled.py` and the tasks `alpaca_eval` (2.0) and `alpaca_eval_v1` (1.0) are in `__init__.py`.
"""

from __future__ import annotations

import ast
import math
import random
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.stats import Statistic, cluster_index, per_cluster
from evalkit.types import Message, UserError

DRAW = 1.5
SWITCH_SEED = 0  # the annotator's default seed; part of the switch rule above
CHATML_START, CHATML_END = "<|im_start|>", "<|im_end|>"


@dataclass(frozen=True)
class Version:
    """One AlpacaEval version: its reference outputs and its official judge (evaluators_configs/)."""

    name: str
    annotator: str  # the evaluator config name, also the `annotator` field of annotations.json
    reference: str  # generator of the reference outputs
    hub_file: str  # the same reference outputs in the Hugging Face dataset tatsu-lab/alpaca_eval
    prompt_file: str  # in assets/
    judge_model: str
    max_tokens: int
    temperature: float
    top_logprobs: int | None  # 2.0 reads the first token's top logprobs; 1.0 reads the text


VERSIONS = {
    "1.0": Version(
        name="1.0",
        annotator="alpaca_eval_gpt4",
        reference="text_davinci_003",
        hub_file="alpaca_eval.json",
        prompt_file="alpaca_eval.txt",
        judge_model="gpt-4",
        max_tokens=100,
        temperature=0.0,
        top_logprobs=None,
    ),
    "2.0": Version(
        name="2.0",
        annotator="weighted_alpaca_eval_gpt4_turbo",
        reference="gpt4_1106_preview",
        hub_file="alpaca_eval_gpt4_baseline.json",
        prompt_file="alpaca_eval_clf.txt",
        judge_model="gpt-4-1106-preview",
        max_tokens=1,
        temperature=1.0,
        top_logprobs=5,
    ),
}
BY_ANNOTATOR = {v.annotator: v for v in VERSIONS.values()}


def get_version(name: str) -> Version:
    if name not in VERSIONS:
        raise UserError(f"unknown AlpacaEval version {name!r}; expected one of {sorted(VERSIONS)}")
    return VERSIONS[name]


def pair_outputs(
    reference: Sequence[Mapping[str, Any]],
    model: Sequence[Mapping[str, Any]],
    model_path: Path | str = "model",
) -> list[tuple[str, str, str]]:
    """(instruction, reference output, model output) in reference order, matched on the instruction text.

    The official code takes an inner join and only warns; a missing or extra answer is an error here."""
    by_instruction = {r["instruction"]: r["output"] for r in model}
    missing = [r["instruction"] for r in reference if r["instruction"] not in by_instruction]
    extra = len(by_instruction) - (len(reference) - len(missing))
    if missing or extra:
        first = f"; first missing: {missing[0][:80]!r}" if missing else ""
        raise UserError(
            f"{model_path}: {len(missing)} of the {len(reference)} AlpacaEval instructions have no output "
            f"and {extra} outputs answer an instruction not in the eval set{first} (texts must match exactly)"
        )
    return [(r["instruction"], r["output"], by_instruction[r["instruction"]]) for r in reference]


def finite_or_none(x: float) -> float | None:
    """NaN (no preference) as None, for the JSON of a row or run."""
    return None if math.isnan(x) else x


def avg_length(outputs: Sequence[str]) -> int:
    """Mean output length in characters, truncated to an int (`main.evaluate`'s `avg_length`)."""
    return int(sum(len(o) for o in outputs) / len(outputs)) if outputs else 0


# --------------------------------------------------------------------------------------------------- prompts


def fill_template(template: str, values: Mapping[str, Any]) -> str:
    """`utils.make_prompts` with batch size 1: each `{key}` (no whitespace inside the braces), in order of
    first appearance, has its first occurrence replaced by `str(value)`, one key after the other, so a
    placeholder that an earlier value happens to contain is filled too, as in the official prompts."""
    prompt = template
    for key in dict.fromkeys(re.findall(r"{([^ \s]+?)}", template)):
        prompt = prompt.replace("{" + key + "}", str(values[key]), 1)
    return prompt


def chatml_to_messages(prompt: str) -> tuple[Message, ...]:
    """The official `prompt_to_chatml`: split on <|im_start|>, the role is the first line, the content is
    the rest up to <|im_end|>, both stripped. Outputs that contain these markers split the same way."""
    prompt = prompt.strip()
    if not (prompt.startswith(CHATML_START) and prompt.endswith(CHATML_END)):
        raise ValueError("a chatml prompt must start with <|im_start|> and end with <|im_end|>")
    messages = []
    for part in prompt.split(CHATML_START)[1:]:
        role, _, rest = part.partition("\n")
        messages.append(Message(role.strip(), rest.split(CHATML_END, 1)[0].strip()))  # type: ignore[arg-type]
    return tuple(messages)


def is_switched(instruction: str, seed: int = SWITCH_SEED) -> bool:
    """Whether the judge sees the model's output first for this instruction (see the module docstring)."""
    return random.Random("is_switched_outputs" + instruction + str(seed)).choices([False, True], k=1)[0]


def judge_messages(
    template: str, instruction: str, reference_output: str, model_output: str
) -> tuple[tuple[Message, ...], bool]:
    """The official judge conversation for one pair, from the version's judge prompt (`data.load_template`),
    and whether the outputs were swapped in it.

    Identical outputs need no judge (their preference is 1.5); the caller checks `reference == model`."""
    switched = is_switched(instruction)
    first, second = (model_output, reference_output) if switched else (reference_output, model_output)
    values = {"instruction": instruction, "output_1": first, "output_2": second}
    prompt = fill_template(template, values)
    return chatml_to_messages(prompt), switched


# --------------------------------------------------------------------------------------------------- parsers


def parse_ranking(text: str) -> float:
    """1.0 judge (`ranking_parser`): `ast.literal_eval` of the whole answer, then the rank of the first
    entry whose 'model' is 'model_1'; 1.0 or 2.0, NaN for anything else (prose, rank 3, no model_1).
    A tie ranking both outputs 1 therefore counts for model_1, as in the official code."""
    try:
        ranking = ast.literal_eval(text)
        rank = [c for c in ranking if c["model"] == "model_1"][0]["rank"]
        if rank in (1, 2):
            return float(rank)
    except Exception:  # the official parser turns every failure into NaN
        pass
    return math.nan


def parse_logprobs(top_logprobs: Sequence[Mapping[str, Any]]) -> float:
    """2.0 judge (`logprob_parser`, numerator "m", denominator ["m", "M"], not binarised): 2 - P(m) /
    (P(m) + P(M)) from the first token's top logprobs [{"token", "logprob"}, ...]; NaN if neither is there."""
    try:
        lp = {t["token"]: float(t["logprob"]) for t in top_logprobs if t["token"] in ("m", "M")}
    except (KeyError, TypeError, ValueError):  # malformed: unparsable, like any official parser failure
        return math.nan
    if not lp:
        return math.nan
    a, b = lp.get("m", -math.inf), lp.get("M", -math.inf)
    top = max(a, b)
    logsum = top + math.log(math.exp(a - top) + math.exp(b - top))
    return 2.0 - math.exp(a - logsum)


def parse_raw_completion(raw: Any) -> float:
    """2.0 preference from a stored OpenAI choice (`raw_completion` in annotations.json): its logprobs must
    hold exactly one token (the official batch size 1), else NaN."""
    try:
        content = raw["logprobs"]["content"]
        if len(content) != 1:
            return math.nan
        return parse_logprobs(content[0]["top_logprobs"])
    except (KeyError, TypeError):
        return math.nan


def preference(version: str, judge_output: Any, switched: bool) -> float:
    """Final preference (1 reference wins .. 2 model wins) from the judge's answer to `judge_messages`:
    text for 1.0, the first token's top logprobs (or a whole stored choice) for 2.0; NaN when unparsable."""
    if get_version(version).top_logprobs is None:
        p = parse_ranking(judge_output) if isinstance(judge_output, str) else math.nan
    elif isinstance(judge_output, Mapping):
        p = parse_raw_completion(judge_output)
    else:
        p = parse_logprobs(judge_output)
    return 3.0 - p if switched else p


# -------------------------------------------------------------------------------------------------- win rate


@dataclass(frozen=True)
class WinRate:
    """`metrics.get_winrate`'s numbers (percent for rates), plus the count of judgements it drops."""

    win_rate: float
    standard_error: float
    n_wins: int
    n_wins_base: int
    n_draws: int
    n_total: int
    discrete_win_rate: float
    n_invalid: int  # not in [1, 2] (NaN: unparsable or missing); the official code drops these silently

    def to_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def _head2head(p: np.ndarray) -> tuple[float, float, int, int, int, int]:
    """`BaseScoringRule.describe_head2head` on preprocessed preferences: draws are exactly 1.5 (or 0)."""
    p = np.where(p == 0, DRAW, p)
    n_draws = int(np.sum(p == DRAW))
    x = p[(p >= 1) & (p <= 2)] - 1  # NaN compares false: dropped
    n = x.size
    mean = float(x.mean()) * 100 if n else math.nan
    sem = float(x.std(ddof=1) / np.sqrt(n)) * 100 if n > 1 else math.nan
    return mean, sem, int(np.sum(x > 0.5)), int(np.sum(x < 0.5)), n_draws, n


def win_rate(preferences: Sequence[float]) -> WinRate:
    """Win rate with the absolute rule (continuous preferences count fractionally) and the discrete win
    rate with the zero-one rule (preferences rounded half-to-even, 1.5 kept a draw)."""
    p = np.asarray(preferences, dtype=float)
    mean, sem, wins, base, draws, n = _head2head(p)
    discrete = np.round(np.where(p == DRAW, 0.0, p))
    return WinRate(mean, sem, wins, base, draws, n, _head2head(discrete)[0], int(p.size - n))


def win_rate_statistic(preferences: Sequence[float], keys: Sequence[Hashable]) -> Statistic:
    """`win_rate` (percent) as a function of weights over the validly judged instructions, instruction i
    being the unit `keys[i]`; invalid preferences (NaN, out of range) are left out as `win_rate` does."""
    p = np.asarray(preferences, dtype=float)
    p = np.where(p == 0, DRAW, p)
    ok = (p >= 1) & (p <= 2)  # NaN compares false: dropped
    units_of = [k for k, valid in zip(keys, ok, strict=True) if valid]
    idx, n_units = cluster_index(units_of)
    units: list[Hashable] = [None] * n_units
    for key, i in zip(units_of, idx, strict=True):
        units[i] = key
    x = p[ok] - 1
    sums, counts = per_cluster(x, idx, n_units), per_cluster(np.ones_like(x), idx, n_units)

    def stat(w: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return 100.0 * (w @ sums) / (w @ counts)

    return Statistic(stat, tuple(units), int(x.size))
