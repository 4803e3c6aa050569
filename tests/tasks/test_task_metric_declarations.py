"""Each task's declared group and per-metric direction, unit and kind equal what the core used to
derive from its own tables: the GROUPS / UNITS / COUNTS tables of the tax module and the name regexes of
`evalkit.analysis.runs` (frozen below as they were, with the `directions` and `units` the tasks declared
then), for every metric the tasks' toy and official-file runs report. A metric added later that the old
rules would read differently, or a changed declaration, fails here."""

import re

import pytest

from evalkit.analysis.runs import metric_direction
from evalkit.analysis.tax import metric_unit, tax_group
from evalkit.registry import TASKS, get_task
from evalkit.task import MetricInfo, Task

# ---- the old rules, frozen -------------------------------------------------------------------------------
OLD_GROUPS = {
    "language instruction-following": ("mt_bench", "alpaca_eval", "alpaca_eval_v1"),
    "visual instruction-following": ("mmvet", "llava_bench", "llava_bench_coco"),
    "hallucination": ("pope", "amber", "mmhal", "objhal"),
    "visual knowledge": ("mmbench",),
}
OLD_TAX_GROUP_ATTR = {"toy_language": "language instruction-following"}
OLD_COUNTS = frozenset(
    "dropped unparsed reasks neither judge_fallbacks judge_reasks matcher_unparsed responses_with_objects "
    "mentions hallucinated_mentions correct_classes gt_classes n_invalid n_unparsable_outputs "
    "n_preference_mismatch n_wins n_draws n_total".split()
)
OLD_UNITS = {
    "mt_bench": {"*": "score 1–10"},
    "mmhal": {"score": "score 0–6", "hallucination_rate": "fraction", "type/*": "score 0–6"},
    "objhal": {"avg_word_len": "words"},
    "alpaca_eval": {"avg_length": "characters"},
    "alpaca_eval_v1": {"avg_length": "characters"},
    "llava_bench": {"model_score": "score ×10", "reference_score": "score ×10"},
    "llava_bench_coco": {"model_score": "score ×10", "reference_score": "score ×10"},
}
#: the `units` each task declared
OLD_DECLARED_UNITS = {
    "toy_language": {
        **{"objects": "objects", "precision": "%", "answered": "%", "well_formed": "%"},
        **{"name/precision": "%", "describe/precision": "%"},
    }
}
OLD_KNOWN = frozenset(t for tasks in OLD_GROUPS.values() for t in tasks)
OLD_LOWER = re.compile(r"hallucinat|chair|unparsed|unparsable|fallback|reask|invalid|dropped|error")
OLD_NEUTRAL = re.compile(r"(^|/)n_|(^|_)std$|standard_error|length$|reference_score")
ALPACA = {
    "length_controlled_win_rate": 1,
    "discrete_win_rate": 1,
    "standard_error": 0,
    "lc_standard_error": 0,
    "n_invalid": -1,
    "n_unparsable_outputs": -1,
    "n_preference_mismatch": 0,
}
#: the `directions` each task declared
OLD_DIRECTIONS = {
    "pope": {"random/yes_ratio": 0, "popular/yes_ratio": 0, "adversarial/yes_ratio": 0},
    "mmvet": {"std": 0, "judge_fallbacks": -1, "judge_reasks": -1},
    "llava_bench": {"reference_score": 0, "judge_fallbacks": -1},
    "llava_bench_coco": {"reference_score": 0, "judge_fallbacks": -1},
    "alpaca_eval": ALPACA,
    "alpaca_eval_v1": ALPACA,
    "mt_bench": {"dropped": -1},
    "mmhal": {"hallucination_rate": -1, "unparsed": -1},
    "amber": {"chair": -1, "hal": -1, "cog": -1, "neither": -1, "unparsed": -1},
    "objhal": {
        **{m: -1 for m in ("CHAIRs_refine", "CHAIRs", "CHAIRi", "unparsed")},
        **{m: 0 for m in ("responses_with_objects", "mentions", "hallucinated_mentions", "correct_classes")},
        **{m: 0 for m in ("gt_classes", "avg_word_len", "reasks")},
    },
    "mmbench": {
        **{"passes/rule": 0, "passes/llm": 0, "passes/random": 0, "passes/unscored": 0},
        "matcher_unparsed": -1,
    },
    "toy_language": {"objects": 0},
}


def old_group(name: str) -> str:
    for group, members in OLD_GROUPS.items():
        if name in members:
            return group
    return OLD_TAX_GROUP_ATTR.get(name, "other")


def old_direction(name: str, metric: str) -> int:
    declared = OLD_DIRECTIONS[name]
    if metric in declared:
        return declared[metric]
    if OLD_LOWER.search(metric.lower()):
        return -1
    return 0 if OLD_NEUTRAL.search(metric.lower()) else 1


def old_unit(name: str, metric: str) -> str:
    if metric in OLD_DECLARED_UNITS.get(name, {}):
        return OLD_DECLARED_UNITS[name][metric]
    if metric in OLD_COUNTS or metric.startswith(("passes/", "n_")):
        return "count"
    table = OLD_UNITS.get(name, {})
    unit = table.get(metric) or table.get(metric.split("/", 1)[0] + "/*") or table.get("*")
    return unit or ("%" if name in OLD_KNOWN else "")


# ---- every metric the tasks' toy and official-file runs report -------------------------------------------
METRICS: dict[str, tuple[str, ...]] = {
    "pope": (
        "adversarial/acc",
        "adversarial/f1",
        "adversarial/precision",
        "adversarial/recall",
        "adversarial/yes_ratio",
        "f1_mean",
        "popular/acc",
        "popular/f1",
        "popular/precision",
        "popular/recall",
        "popular/yes_ratio",
        "random/acc",
        "random/f1",
        "random/precision",
        "random/recall",
        "random/yes_ratio",
    ),
    "mmvet": (
        "cap/gen",
        "cap/know",
        "cap/math",
        "cap/ocr",
        "cap/rec",
        "cap/spat",
        "capint/gen_math",
        "capint/know",
        "capint/math",
        "capint/ocr",
        "capint/rec_know",
        "capint/spat",
        "judge_fallbacks",
        "judge_reasks",
        "run1/total",
        "run2/total",
        "run3/total",
        "std",
        "total",
    ),
    "llava_bench": (
        "cat/complex",
        "cat/conv",
        "cat/detail",
        "judge_fallbacks",
        "model_score",
        "reference_score",
        "relative",
        "run1/relative",
        "run2/relative",
        "run3/relative",
    ),
    "llava_bench_coco": (
        "cat/complex",
        "cat/conv",
        "cat/detail",
        "judge_fallbacks",
        "model_score",
        "reference_score",
        "relative",
        "run1/relative",
        "run2/relative",
        "run3/relative",
    ),
    "alpaca_eval": (
        "avg_length",
        "discrete_win_rate",
        "lc_standard_error",
        "length_controlled_win_rate",
        "n_draws",
        "n_from_official_preference",
        "n_invalid",
        "n_preference_mismatch",
        "n_total",
        "n_unparsable_outputs",
        "n_wins",
        "n_wins_base",
        "standard_error",
        "win_rate",
    ),
    "alpaca_eval_v1": (
        "avg_length",
        "discrete_win_rate",
        "lc_standard_error",
        "length_controlled_win_rate",
        "n_draws",
        "n_from_official_preference",
        "n_invalid",
        "n_preference_mismatch",
        "n_total",
        "n_unparsable_outputs",
        "n_wins",
        "n_wins_base",
        "standard_error",
        "win_rate",
    ),
    "mt_bench": (
        "category/coding",
        "category/extraction",
        "category/humanities",
        "category/math",
        "category/reasoning",
        "category/roleplay",
        "category/stem",
        "category/writing",
        "dropped",
        "score",
        "turn1",
        "turn2",
    ),
    "mmhal": (
        "hallucination_rate",
        "informativeness",
        "score",
        "type/adversarial",
        "type/attribute",
        "type/comparison",
        "type/counting",
        "type/environment",
        "type/holistic",
        "type/other",
        "type/relation",
        "unparsed",
    ),
    "amber": (
        "acc",
        "amber_score",
        "attribute/acc",
        "attribute/f1",
        "attribute/number/acc",
        "attribute/number/f1",
        "attribute/number/precision",
        "attribute/number/recall",
        "attribute/precision",
        "attribute/recall",
        "attribute/state/acc",
        "attribute/state/f1",
        "attribute/state/precision",
        "attribute/state/recall",
        "chair",
        "cog",
        "cover",
        "existence/acc",
        "existence/f1",
        "existence/precision",
        "existence/recall",
        "f1",
        "hal",
        "neither",
        "precision",
        "recall",
        "relation/acc",
        "relation/f1",
        "relation/precision",
        "relation/recall",
        "unparsed",
    ),
    "objhal": (
        "CHAIRi",
        "CHAIRs",
        "CHAIRs_refine",
        "avg_word_len",
        "correct_classes",
        "gt_classes",
        "hallucinated_mentions",
        "mentions",
        "obj_recall",
        "reasks",
        "responses_with_objects",
        "unparsed",
    ),
    "mmbench": (
        "category/attribute_recognition",
        "category/image_topic",
        "category/object_localization",
        "category/spatial_relationship",
        "l2/coarse_perception",
        "l2/finegrained_perception (cross-instance)",
        "l2/finegrained_perception (instance-level)",
        "matcher_unparsed",
        "overall",
        "passes/llm",
        "passes/random",
        "passes/rule",
        "passes/unscored",
        "split/dev",
        "vanilla",
    ),
    "toy_language": (
        "answered",
        "describe/precision",
        "name/precision",
        "objects",
        "precision",
        "well_formed",
    ),
}


CASES = [(name, metric) for name, metrics in METRICS.items() for metric in metrics]


def test_every_task_of_the_old_rules_is_still_registered():
    """The frozen tables cover the tasks that existed under the old rules; a task added since declares its
    metrics itself and is read by the same declarations (`evalkit tasks` shows them)."""
    assert set(METRICS) <= set(TASKS)


@pytest.mark.parametrize(("name", "metric"), CASES)
def test_declared_metric_info_equals_the_old_rules(name, metric):
    task = get_task(name)
    info = task.metric(metric)
    assert (info.direction, info.unit) == (old_direction(name, metric), old_unit(name, metric))
    assert info.kind == ("count" if info.unit == "count" else "rate")
    # what compare, leaderboard and the tax table read
    assert metric_direction(task, metric) == info.direction
    assert metric_unit(name, task, metric) == info.unit


@pytest.mark.parametrize("name", list(METRICS))
def test_declared_group_equals_the_old_table(name):
    assert get_task(name).group == tax_group(name) == tax_group(name, get_task(name)) == old_group(name)


def test_a_task_that_declares_nothing_gets_the_documented_default():
    class Bare(Task):
        name = "bare"
        load = score = aggregate = None  # type: ignore[assignment]

    Bare.__abstractmethods__ = frozenset()
    bare = Bare()
    assert bare.group == "other" and tax_group("bare", bare) == "other"
    assert bare.metric("anything") == MetricInfo(direction=1, unit="", kind="rate")
    assert bare.metric("n_wrong") == MetricInfo(1, "", "rate")  # no guessing from the name


def test_exact_names_win_over_patterns_and_patterns_apply_in_order():
    class Declared(Task):
        name = "declared"
        metric_info = {
            "type/*": MetricInfo(1, "score 0–6"),
            "*": MetricInfo(-1, "%"),
            "type/errors": MetricInfo(0, "count", "count"),
        }
        load = score = aggregate = None  # type: ignore[assignment]

    Declared.__abstractmethods__ = frozenset()
    t = Declared()
    assert t.metric("type/errors") == MetricInfo(0, "count", "count")
    assert t.metric("type/holistic") == MetricInfo(1, "score 0–6", "rate")
    assert t.metric("other") == MetricInfo(-1, "%", "rate")


def test_a_bad_declaration_is_refused():
    with pytest.raises(ValueError, match="direction"):
        MetricInfo(2, "%")
    with pytest.raises(ValueError, match="kind"):
        MetricInfo(1, "%", "ratio")


def test_the_old_attributes_are_refused_with_what_to_declare_instead():
    """A task written for the old tables would otherwise lose its directions and units silently."""
    with pytest.raises(TypeError, match="declare `group` and `metric_info`"):

        class Old(Task):  # noqa: F841
            directions = {"errors": -1}
