"""MM-Vet's official protocol: the grading request, score parse and failure rule, and the official tables
with numpy rounding. No I/O but reading the grader prompt (`assets/mmvet_grader_prompt.txt`).

Everything here follows yuweihao/MM-Vet `mm-vet_evaluator.py`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evalkit.stats import Estimate, mean_estimate
from evalkit.types import GenerationConfig, Message, UserError

JUDGE_MODEL = "gpt-4-0613"
GENERATION = GenerationConfig(max_new_tokens=1024, temperature=0.0)
#: The official grading call; later tries change the temperature (`TRY_TEMPERATURES`).
JUDGE_GENERATION = GenerationConfig(max_new_tokens=3, temperature=0.0)
ASSETS = Path(__file__).with_name("assets")
#: The official few-shot grader prompt (module-level `prompt` of `mm-vet_evaluator.py`), byte for byte.
GRADER_PROMPT = (ASSETS / "mmvet_grader_prompt.txt").read_text(encoding="utf-8")
#: Appended to the grading message from the second try on.
RETRY_SUFFIX = "\nPredict the correctness of the answer (digit): "
#: Temperature of try 1..5. The official loop raises the temperature by 0.5 *after* each re-ask, so the
#: first re-ask is still at 0.0. It then makes a 6th call whose output it never parses (the item already
#: scores 0.0), so that call is left out here: it cannot change a score.
TRY_TEMPERATURES = (0.0, 0.0, 0.5, 1.0, 1.5)
MAX_TRIES = len(TRY_TEMPERATURES)
#: The six core capabilities, in the column order of the official tables for MM-Vet v1.
CAPABILITIES = ("rec", "ocr", "know", "gen", "spat", "math")
DECIMALS = 1


# ---------------------------------------------------------------------------------------------- judging


def grader_message(question: str, answer: str, prediction: str, *, retry: bool = False) -> str:
    """The official grading message for one item; `retry` adds the suffix used from the second try on."""
    truth = answer.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")
    text = GRADER_PROMPT + "\n" + " | ".join([question, truth, prediction, ""])
    return text + RETRY_SUFFIX if retry else text


def grader_request(
    question: str, answer: str, prediction: str, attempt: int
) -> tuple[tuple[Message, ...], GenerationConfig]:
    """Messages and decoding settings of try `attempt` (0-based, < `MAX_TRIES`)."""
    if not 0 <= attempt < MAX_TRIES:
        raise ValueError(f"attempt must be in 0..{MAX_TRIES - 1}, got {attempt}")
    text = grader_message(question, answer, prediction, retry=attempt > 0)
    config = GenerationConfig(max_new_tokens=3, temperature=TRY_TEMPERATURES[attempt])
    return (Message("user", text),), config


def parse_score(content: str | None) -> float | None:
    """The official parse: first token of `content.split(" ")`, stripped, as a float in [0, 1]; else None.

    Python's `float` grammar is kept ("1", "1.", ".5", "1e-1" parse). One deliberate difference: "nan"
    would pass the official range check and make every total NaN; here it is a failed parse."""
    if content is None:
        return None
    token = content.split(" ")[0].strip()
    try:
        score = float(token)
    except ValueError:
        return None
    if math.isnan(score) or not 0.0 <= score <= 1.0:
        return None
    return score


@dataclass(frozen=True)
class Grade:
    """The outcome of grading one item in one run."""

    score: float
    #: judge outputs consumed (1 = the first answer parsed)
    tries: int
    #: True when no output parsed within `MAX_TRIES` and the official fallback score 0.0 applies
    fell_back: bool


def resolve_grade(outputs: Sequence[str | None]) -> Grade | None:
    """Apply the official failure rule to the judge outputs of tries 1, 2, ... (None = empty reply).

    Returns None while fewer than `MAX_TRIES` outputs have been seen and none parsed: ask again with
    `grader_request(..., attempt=len(outputs))`. Outputs after the first parseable one are ignored."""
    for i, content in enumerate(outputs[:MAX_TRIES]):
        score = parse_score(content)
        if score is not None:
            return Grade(score, i + 1, False)
    if len(outputs) >= MAX_TRIES:
        return Grade(0.0, MAX_TRIES, True)
    return None


# ------------------------------------------------------------------------------------------ aggregation


def official_round(x: float, decimals: int = DECIMALS) -> float:
    """Round as the official tables do: `round()` on a numpy float is `np.round` (half to even on x·10^d),
    which differs from Python's `round` on a float at some ties (0.15 → 0.2, not 0.1)."""
    return float(np.round(np.float64(x), decimals))


def integration_name(capabilities: Collection[str]) -> str:
    """Column name of a capability set, in a fixed order (the official name follows set iteration order,
    which changes between Python processes: 'spat_ocr' and 'ocr_spat' are the same column)."""
    order = {c: i for i, c in enumerate(CAPABILITIES)}
    return "_".join(sorted(set(capabilities), key=lambda c: (order.get(c, len(order)), c)))


def integration_key(name: str) -> frozenset[str]:
    """The capability set of an integration column name, whatever its order."""
    return frozenset(name.split("_"))


@dataclass(frozen=True)
class Summary:
    """The official MM-Vet tables for one model: every number is what the official CSV prints."""

    total: float
    std: float
    #: rounded total of each judge run (the CSV `runs` column)
    runs: tuple[float, ...]
    #: cap-score table: capability → score, in official column order; empty without capability metadata
    capabilities: dict[str, float]
    #: cap-int-score table: `integration_name` → score, most frequent set first; empty without metadata
    integrations: dict[str, float]
    #: items behind each column of the two tables
    capability_counts: dict[str, int]
    integration_counts: dict[str, int]
    #: unrounded total of each run
    run_totals: tuple[float, ...]
    n_items: int


def _runs_matrix(scores: Mapping[str, Sequence[float]], num_runs: int | None) -> tuple[list[str], int]:
    ids = list(scores)
    if not ids:
        raise UserError("MM-Vet: no graded items")
    lengths = {len(scores[k]) for k in ids}
    if num_runs is None:
        if len(lengths) != 1:
            raise UserError(
                f"MM-Vet grades have different numbers of runs per item ({sorted(lengths)}); "
                "pass num_runs to use the first runs of each"
            )
        num_runs = lengths.pop()
    short = [k for k in ids if len(scores[k]) < num_runs]
    if num_runs < 1 or short:
        raise UserError(f"MM-Vet: {len(short)} items have fewer than {num_runs} runs (first: {short[:3]})")
    return ids, num_runs


def _check_coverage(ids: Sequence[str], capabilities: Mapping[str, Collection[str]]) -> None:
    graded = set(ids)
    missing = [k for k in capabilities if k not in graded]
    unknown = [k for k in ids if k not in capabilities]
    if missing or unknown:
        raise UserError(
            f"MM-Vet grades and metadata disagree: {len(missing)} metadata items have no grade "
            f"(first: {missing[:3]}), {len(unknown)} graded items are not in the metadata "
            f"(first: {unknown[:3]}); grade every item of mm-vet.json"
        )


def _column_scores(
    ids: Sequence[str], scores: Mapping[str, Sequence[float]], num_runs: int, members: Iterable[int]
) -> np.ndarray:
    """Per-run 100 × mean over the given item indices; sums are accumulated item by item in file order,
    as the official script does (numpy's pairwise sum may differ in the last bit)."""
    idx = list(members)
    sums = [0.0] * num_runs
    for i in idx:
        row = scores[ids[i]]
        for r in range(num_runs):
            sums[r] += row[r]
    return np.array(sums) / len(idx) * 100


def summarize(
    scores: Mapping[str, Sequence[float]],
    capabilities: Mapping[str, Collection[str]] | None = None,
    *,
    num_runs: int | None = None,
    decimals: int = DECIMALS,
) -> Summary:
    """The official tables from per-item run scores (item id → score of run 1, 2, ...).

    With `capabilities` (item id → its capabilities, from mm-vet.json) the grades must cover exactly its
    items; without it only the total, std and runs columns are computed."""
    ids, num_runs = _runs_matrix(scores, num_runs)
    totals = _column_scores(ids, scores, num_runs, range(len(ids)))
    caps: dict[str, float] = {}
    ints: dict[str, float] = {}
    cap_counts: dict[str, int] = {}
    int_counts: dict[str, int] = {}
    if capabilities is not None:
        _check_coverage(ids, capabilities)
        by_cap: dict[str, list[int]] = {}
        by_set: dict[frozenset[str], list[int]] = {}
        order = {c: i for i, c in enumerate(CAPABILITIES)}
        for i, k in enumerate(ids):
            item_caps = set(capabilities[k])
            for c in sorted(item_caps, key=lambda c: (order.get(c, len(order)), c)):
                by_cap.setdefault(c, []).append(i)
            by_set.setdefault(frozenset(item_caps), []).append(i)
        # most frequent first; ties keep first appearance (the official tie order depends on set hashing)
        for c, members in sorted(by_cap.items(), key=lambda kv: -len(kv[1])):
            caps[c] = official_round(_column_scores(ids, scores, num_runs, members).mean(), decimals)
            cap_counts[c] = len(members)
        for s, members in sorted(by_set.items(), key=lambda kv: -len(kv[1])):
            name = integration_name(s)
            ints[name] = official_round(_column_scores(ids, scores, num_runs, members).mean(), decimals)
            int_counts[name] = len(members)
    return Summary(
        total=official_round(totals.mean(), decimals),
        std=official_round(totals.std(), decimals),
        runs=tuple(official_round(t, decimals) for t in totals),
        capabilities=caps,
        integrations=ints,
        capability_counts=cap_counts,
        integration_counts=int_counts,
        run_totals=tuple(float(t) for t in totals),
        n_items=len(ids),
    )


def total_estimate(
    scores: Mapping[str, Sequence[float]],
    *,
    num_runs: int | None = None,
    clusters: Sequence[Hashable | None] | None = None,
) -> Estimate:
    """Unrounded total (100 × mean over items of the item's mean over runs) with a bootstrap interval;
    pass the image of each item as `clusters` to resample whole images."""
    ids, num_runs = _runs_matrix(scores, num_runs)
    per_item = [float(np.mean(scores[k][:num_runs])) for k in ids]
    return mean_estimate(per_item, clusters, scale=100.0)
