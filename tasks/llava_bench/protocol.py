"""The LLaVA-Bench protocol: the GPT-4 review request, the official parse of a review, the relative score
and the records of the official files that `data` reads (haotian-liu/LLaVA
`llava/eval/eval_gpt_review_bench.py` (in-the-wild), `eval_gpt_review_visual.py` (COCO),
`summarize_gpt_review.py`, `llava/eval/table/rule.json`). No I/O.

GPT-4 (`gpt-4-0314`, temperature 0.2, max 1,024 tokens) reviews the GPT-4 reference answer (always
"Assistant 1") and the model's answer ("Assistant 2") given a text description of the image: the captions
(COCO: the five captions, a blank line, then one "category: [x1, y1, x2, y2]" line per box), the question
and the rule prompt of `rule.json` for the category (`llava_bench_<category>` in the wild, `<category>` for
COCO). The first line of the review, commas turned into spaces, must split on " " into exactly two numbers;
anything else is the pair (-1, -1), which is *kept* in the means. Per category and for 'all': the mean of
each column rounded to 3 decimals, and the relative score round(mean_2 / mean_1 × 100, 1) — a ratio of
means, not a mean of per-question ratios. LLaVA reports the mean over 3 judge runs (13B: 72.5).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalkit.stats import Estimate, Statistic, bootstrap, cluster_index, per_cluster, unit_index
from evalkit.types import GenerationConfig, Message, UserError

CATEGORIES = ("conv", "detail", "complex")
GENERATION = GenerationConfig(max_new_tokens=1024, temperature=0.0)
JUDGE_MODEL = "gpt-4-0314"
JUDGE_GENERATION = GenerationConfig(max_new_tokens=1024, temperature=0.2)
SYSTEM_PROMPT = "You are a helpful and precise assistant for checking the quality of the answer."
#: The official score pair of an unparseable review (it enters the means).
FAILED = (-1.0, -1.0)


@dataclass(frozen=True)
class Rule:
    """One entry of `rule.json`: the role name used in the Assistant blocks and the instructions."""

    role: str
    prompt: str


def rule_key(category: str, *, in_the_wild: bool) -> str:
    return f"llava_bench_{category}" if in_the_wild else category


# ---------------------------------------------------------------------------------------------- prompt


def context_text(captions: str | Sequence[str], instances: Sequence[Mapping[str, Any]] | None = None) -> str:
    """The judge's view of the image: captions one per line; with COCO boxes, a blank line and then
    "category: [x1, y1, x2, y2]" per box (the box printed as a Python list of the numbers read from JSON).

    A single caption string is used as is (the official code joins the field with "\\n", which is the
    same for a one-element list)."""
    text = captions if isinstance(captions, str) else "\n".join(captions)
    if instances is None:
        return text
    boxes = "\n".join(f"{inst['category']}: {list(inst['bbox'])}" for inst in instances)
    return f"{text}\n\n{boxes}"


def review_content(question: str, reference: str, answer: str, rule: Rule, context: str) -> str:
    """The official user message; the GPT-4 reference answer is always Assistant 1."""
    role = rule.role
    return (
        f"[Context]\n{context}\n\n"
        f"[Question]\n{question}\n\n"
        f"[{role} 1]\n{reference}\n\n[End of {role} 1]\n\n"
        f"[{role} 2]\n{answer}\n\n[End of {role} 2]\n\n"
        f"[System]\n{rule.prompt}\n\n"
    )


def review_messages(
    question: str, reference: str, answer: str, rule: Rule, context: str
) -> tuple[Message, ...]:
    return (
        Message("system", SYSTEM_PROMPT),
        Message("user", review_content(question, reference, answer, rule, context)),
    )


def parse_review(review: str) -> tuple[float, float]:
    """The official parse: the first line, commas → spaces, split on single spaces; exactly two tokens
    that both parse as floats give the pair, anything else `FAILED` ("8  9" has three tokens and fails)."""
    tokens = review.split("\n")[0].replace(",", " ").split(" ")
    if len(tokens) != 2:
        return FAILED
    try:
        return float(tokens[0]), float(tokens[1])
    except ValueError:
        return FAILED


# ------------------------------------------------------------------------------------------ aggregation


@dataclass(frozen=True)
class CategoryScore:
    """What `summarize_gpt_review.py` computes for one category (or 'all') of one review run."""

    #: mean score of the GPT-4 reference (Assistant 1) and of the model (Assistant 2), rounded to 3 dp
    reference: float
    model: float
    #: round(model / reference × 100, 1): the printed relative score
    relative: float
    #: model / reference × 100 before the final rounding
    relative_exact: float
    n: int
    #: reviews scored `FAILED` (included in the means, as official)
    n_failed: int


def category_score(pairs: Sequence[Sequence[float]]) -> CategoryScore:
    """Ratio of the mean scores (each mean rounded to 3 decimals first, as official)."""
    if not pairs:
        raise ValueError("no reviews to summarize")
    ref, model = (round(x, 3) for x in np.asarray(pairs, dtype=float).mean(0).tolist())
    exact = model / ref * 100
    failed = sum(1 for p in pairs if tuple(map(float, p)) == FAILED)
    return CategoryScore(ref, model, round(exact, 1), exact, len(pairs), failed)


def summarize(
    pairs: Sequence[Sequence[float]],
    categories: Sequence[str | None],
    *,
    question_ids: Sequence[int] | None = None,
    ignore: Collection[int] = (),
) -> dict[str, CategoryScore]:
    """Per category and 'all', keys sorted as the official summary prints them; a None category counts
    only for 'all'. `ignore` drops those question ids (the official `--ignore`; needs `question_ids`)."""
    if len(pairs) != len(categories) or (question_ids is not None and len(question_ids) != len(pairs)):
        raise ValueError("pairs, categories and question_ids must have the same length")
    if ignore and question_ids is None:
        raise ValueError("ignore needs question_ids")
    groups: dict[str, list[Sequence[float]]] = {}
    for i, (pair, cat) in enumerate(zip(pairs, categories, strict=True)):
        if question_ids is not None and question_ids[i] in ignore:
            continue
        if cat is not None:
            groups.setdefault(cat, []).append(pair)
        groups.setdefault("all", []).append(pair)
    return {k: category_score(v) for k, v in sorted(groups.items())}


def mean_over_runs(runs: Sequence[Mapping[str, CategoryScore]], *, printed: bool = False) -> dict[str, float]:
    """Relative score per category averaged over judge runs, rounded to 1 decimal (how LLaVA reports
    LLaVA-Bench). By default the unrounded run scores are averaged; `printed=True` averages the printed
    1-decimal values instead (both give 72.5 for LLaVA-1.5-13B)."""
    if not runs:
        raise ValueError("no runs")
    keys = [k for k in runs[0] if all(k in r for r in runs)]
    pick = (lambda s: s.relative) if printed else (lambda s: s.relative_exact)
    return {k: round(sum(pick(r[k]) for r in runs) / len(runs), 1) for k in keys}


def relative_estimate(
    pairs: Sequence[Sequence[float]], clusters: Sequence[Hashable | None] | None = None
) -> Estimate:
    """Unrounded relative score (ratio of means × 100) with a bootstrap interval; pass each question's
    image as `clusters` to resample whole images. Pool several runs by passing all their pairs."""
    x = np.asarray(pairs, dtype=float).reshape(-1, 2)
    idx, k = cluster_index(clusters if clusters is not None else [None] * len(x))
    sums = per_cluster(x, idx, k)

    def stat(w: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return 100 * (w @ sums[:, 1]) / (w @ sums[:, 0])

    est = bootstrap(stat, k)
    return Estimate(est.value, est.ci_low, est.ci_high, len(x))


def _runs_relative_stat(runs: Sequence[Sequence[Sequence[float]]], idx: np.ndarray, k: int):
    """`stat(w)` of the mean over runs of each run's relative score, over units `idx` (one per question)."""
    x = np.asarray(runs, dtype=float).reshape(len(runs), -1, 2)
    sums = per_cluster(x.transpose(1, 0, 2), idx, k)  # (units, runs, 2)

    def stat(w: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return 100 * ((w @ sums[:, :, 1]) / (w @ sums[:, :, 0])).mean(1)

    return stat


def runs_relative_estimate(
    runs: Sequence[Sequence[Sequence[float]]], clusters: Sequence[Hashable | None] | None = None
) -> Estimate:
    """Mean over judge runs of each run's unrounded relative score (how LLaVA reports the benchmark), with
    a bootstrap interval that resamples questions (or whole images via `clusters`) with all their runs.
    `runs[r][i]` is the score pair of question i in run r; one run gives `relative_estimate`."""
    n = np.asarray(runs, dtype=float).reshape(len(runs), -1, 2).shape[1]
    idx, k = cluster_index(clusters if clusters is not None else [None] * n)
    est = bootstrap(_runs_relative_stat(runs, idx, k), k)
    return Estimate(est.value, est.ci_low, est.ci_high, n)


def runs_relative_statistic(runs: Sequence[Sequence[Sequence[float]]], rows: Sequence[dict]) -> Statistic:
    """`runs_relative_estimate` as a `Statistic` over the rows' units (`unit_index`: images, or question
    ids), `runs[r][i]` being the score pair of `rows[i]` in run r."""
    idx, units = unit_index(rows)
    return Statistic(_runs_relative_stat(runs, idx, len(units)), units, len(rows))


# -------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Review:
    """One line of an official review JSONL."""

    question_id: int
    category: str | None
    content: str
    scores: tuple[float, float]
    answer1_id: Any = None
    answer2_id: Any = None
    #: the judge model, when the file records one (the official script does not)
    model: str | None = None


@dataclass(frozen=True)
class ReviewRequest:
    """What to send the judge for one question, with the ids the official review file records."""

    question_id: int
    category: str
    content: str
    answer1_id: Any
    answer2_id: Any


def summarize_reviews(reviews: Sequence[Review], *, ignore: Collection[int] = ()) -> dict[str, CategoryScore]:
    """`summarize` over one review file."""
    return summarize(
        [r.scores for r in reviews],
        [r.category for r in reviews],
        question_ids=[r.question_id for r in reviews],
        ignore=ignore,
    )


def review_requests(
    questions: Sequence[Mapping[str, Any]],
    references: Sequence[Mapping[str, Any]],
    answers: Sequence[Mapping[str, Any]],
    contexts: Mapping[str, str],
    rules: Mapping[str, Rule],
    *,
    in_the_wild: bool,
) -> list[ReviewRequest]:
    """One judge request per question, pairing the three files line by line as the official script does
    (and checking that the question ids agree, which it does not)."""
    if not len(questions) == len(references) == len(answers):
        raise UserError(
            f"LLaVA-Bench: {len(questions)} questions, {len(references)} reference answers and "
            f"{len(answers)} model answers; the files are paired line by line and must have the same length"
        )
    out = []
    for q, ref, ans in zip(questions, references, answers, strict=True):
        qid = q["question_id"]
        if ref["question_id"] != qid or ans["question_id"] != qid:
            raise UserError(
                f"LLaVA-Bench: line order differs between files: question {qid} is paired with reference "
                f"{ref['question_id']} and answer {ans['question_id']}; keep all files in question order"
            )
        key = rule_key(q["category"], in_the_wild=in_the_wild)
        if key not in rules:
            raise UserError(f"LLaVA-Bench: no rule {key!r} in the rule file (question {qid})")
        if q["image"] not in contexts:
            raise UserError(f"LLaVA-Bench: no context for image {q['image']!r} (question {qid})")
        content = review_content(q["text"], ref["text"], ans["text"], rules[key], contexts[q["image"]])
        out.append(
            ReviewRequest(qid, key, content, ref.get("answer_id", ref["question_id"]), ans.get("answer_id"))
        )
    return out


def metric(value: float, n: int, est: Estimate | None = None) -> dict[str, Any]:
    """`Estimate.to_dict()` shape with the official printed value; no interval (None) where there is none
    (per-run values, counts, a group too small to resample)."""
    if est is None or math.isnan(est.ci_low) or math.isnan(est.ci_high):
        return {"value": value, "ci_low": None, "ci_high": None, "n": n}
    return {**est.to_dict(), "value": value}
