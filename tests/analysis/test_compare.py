"""`evalkit compare`: paired bootstrap, Holm, the regression gate, refusals, JUnit, exit codes."""

from __future__ import annotations

import json
import random
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from support.runs import JUDGE, SPLITS, pope_items, pope_rows, write_run
from support.scored import scored_rows
from typer.testing import CliRunner

from evalkit.analysis.compare import Incomparable, Rule, compare_runs
from evalkit.analysis.junit import junit_xml
from evalkit.cli import app
from evalkit.registry import get_task
from evalkit.stats import Statistic, holm, paired_bootstrap
from evalkit.types import UserError


def f1_mean(items, flip=frozenset()):
    """POPE's headline computed by hand: per split F1 with "yes" positive, mean, in percent."""
    f1s = []
    for split in SPLITS:
        tp = fp = fn = 0
        for sid, s, _, label, correct in items:
            if s != split:
                continue
            right = correct != (sid in flip)
            pred_yes = (label == "y") == right
            tp += pred_yes and label == "y"
            fp += pred_yes and label == "n"
            fn += (not pred_yes) and label == "y"
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return 100 * float(np.mean(f1s))


@pytest.fixture
def drop_runs(tmp_path):
    """2,000 questions; the new run gets 3.5% of the base run's right answers wrong."""
    items = pope_items(2000)
    rng = random.Random(1)
    flip = frozenset(rng.sample([sid for sid, *_, c in items if c], 70))
    base = write_run(tmp_path / "base", "pope", pope_rows(items))
    new = write_run(tmp_path / "new", "pope", pope_rows(items, flip))
    return base, new, f1_mean(items, flip) - f1_mean(items)


def test_planted_drop_on_2000_samples_fails(drop_runs):
    base, new, expected = drop_runs
    assert -4.5 < expected < -2.5  # the planted drop is about 3 points
    result = compare_runs(base, new, rules=[Rule.parse("pope.f1_mean < -1.0")])
    (m,) = result.metrics
    assert (m.task, m.metric) == ("pope", "f1_mean")
    assert m.diff == pytest.approx(expected, abs=1e-9)
    assert m.ci_low < m.diff < m.ci_high < 0
    assert m.p_value < 0.01 and m.p_holm == m.p_value  # a family of one
    assert m.verdict == "loss" and m.failed and result.exit_code == 1


def test_threshold_beyond_the_drop_passes(drop_runs):
    base, new, _ = drop_runs
    result = compare_runs(base, new, rules=[Rule.parse("pope.f1_mean < -5")])
    assert result.metrics[0].verdict == "loss" and not result.failures and result.exit_code == 0


def test_noise_of_the_same_size_on_50_samples_does_not_fail(tmp_path):
    items = pope_items(50, seed=3)
    right = [sid for sid, *_, c in items if c]
    wrong = [sid for sid, *_, c in items if not c]
    flip = frozenset(right[:3] + wrong[:1])  # net two more wrong answers of 50
    expected = f1_mean(items, flip) - f1_mean(items)
    assert expected < -2.5
    base = write_run(tmp_path / "base", "pope", pope_rows(items))
    new = write_run(tmp_path / "new", "pope", pope_rows(items, flip))
    result = compare_runs(base, new, rules=[Rule.parse("pope.f1_mean < -1.0")], min_common=10)
    (m,) = result.metrics
    assert m.diff == pytest.approx(expected, abs=1e-9)
    assert m.p_holm >= 0.05 and m.ci_low < 0 < m.ci_high
    assert m.verdict == "no significant change" and result.exit_code == 0


def test_holm_by_hand():
    # sorted 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04, kept monotone: 0.06)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_holm_runs_across_the_checked_metrics(drop_runs):
    base, new, _ = drop_runs
    rules = [
        Rule.parse(r) for r in ("pope.random/acc < -1", "pope.popular/f1 < -1", "pope.adversarial/f1 < -1")
    ]
    result = compare_runs(base, new, rules=rules, metrics=["pope.random/yes_ratio"])
    checked = result.checked
    assert [m.metric for m in checked] == ["random/acc", "popular/f1", "adversarial/f1"]
    p = sorted(m.p_value for m in checked)
    want = [min(1, 3 * p[0]), max(min(1, 3 * p[0]), min(1, 2 * p[1]))]
    want.append(max(want[1], min(1, p[2])))
    assert sorted(m.p_holm for m in checked) == pytest.approx(want)
    (info,) = [m for m in result.metrics if not m.checked]  # its own family of one
    assert info.metric == "random/yes_ratio" and info.p_holm == info.p_value and not info.failed


def mean_stat(values: dict) -> Statistic:
    keys = tuple(values)
    v = np.array([values[k] for k in keys], dtype=float)
    return Statistic(lambda w: (w @ v) / w.sum(axis=1), keys, len(keys))


def test_paired_bootstrap_uses_common_units_only():
    a = mean_stat({"x": 1.0, "y": 2.0, "z": 3.0, "only_a": 100.0})
    b = mean_stat({"z": 4.0, "y": 3.0, "x": 2.0, "only_b": -50.0})  # every common unit +1
    est = paired_bootstrap(a, b, n_resamples=200)
    assert (est.base, est.new, est.n_units) == (2.0, 3.0, 3)
    assert (est.diff, est.ci_low, est.ci_high) == pytest.approx((1.0, 1.0, 1.0))
    assert est.p_value == pytest.approx(2 / 201)
    same = paired_bootstrap(a, a, n_resamples=200)
    assert same.diff == 0 and same.p_value == 1.0


def test_without_rules_every_directed_metric_is_checked(drop_runs):
    base, new, _ = drop_runs
    result = compare_runs(base, new, metrics=["all"])
    by_name = {m.metric: m for m in result.metrics}
    # 3 splits x 5 metrics, f1_mean, 4 other means of the splits, 5 pooled metrics
    assert len(by_name) == 25
    neutral = ("random/yes_ratio", "yes_ratio_mean", "pooled/yes_ratio")
    assert not any(by_name[n].checked for n in neutral) and by_name["f1_mean"].checked
    assert by_name["f1_mean"].failed and result.exit_code == 1
    assert len(result.checked) == 25 - 5


def judged_rows():
    return scored_rows("objhal")


def test_mismatched_judges_are_refused(tmp_path):
    rows = judged_rows()
    other = {**JUDGE, "model": "gpt-4o-mini"}
    base = write_run(tmp_path / "base", "objhal", rows, judge=JUDGE)
    new = write_run(tmp_path / "new", "objhal", rows, judge=other)
    with pytest.raises(Incomparable, match="different judges.*gpt-3.5-turbo-0613.*gpt-4o-mini.*model"):
        compare_runs(base, new)
    endpoint = {**JUDGE, "backend": {"base_url": "http://127.0.0.1:9999/v1"}}
    new2 = write_run(tmp_path / "new2", "objhal", rows, judge=endpoint)
    with pytest.raises(Incomparable, match="differing fields: backend"):
        compare_runs(base, new2)
    same = write_run(tmp_path / "same", "objhal", rows, judge=JUDGE)
    result = compare_runs(base, same)
    (m,) = result.metrics
    assert m.metric == "CHAIRs_refine" and m.direction == -1 and m.diff == 0
    assert m.verdict == "no significant change" and result.exit_code == 0


def test_task_version_mismatch_and_too_few_common_samples_are_refused(tmp_path):
    items = pope_items(100)
    base = write_run(tmp_path / "base", "pope", pope_rows(items))
    v2 = write_run(tmp_path / "v2", "pope", pope_rows(items), version="2")
    with pytest.raises(Incomparable, match="task versions differ"):
        compare_runs(base, v2)
    few = write_run(tmp_path / "few", "pope", pope_rows(items[:15]))
    with pytest.raises(Incomparable, match="only 15 samples are scored in both runs"):
        compare_runs(base, few)
    partial = write_run(tmp_path / "partial", "pope", pope_rows(items[:60]))
    result = compare_runs(base, partial)
    assert result.metrics[0].n_units == 20 and "60 common samples, 60%" in result.warnings[0]


@pytest.mark.parametrize(
    "text", ["pope.f1_mean -1", "pope < -1", "f1_mean < -1", "pope.f1_mean < one", "pope.f1_mean == 1"]
)
def test_bad_rules_are_usage_errors(text):
    with pytest.raises(UserError, match="expected TASK.METRIC OP THRESHOLD"):
        Rule.parse(text)


def test_rule_parsing():
    r = Rule.parse(" amber.existence/f1>=+2.5e0 ")
    assert (r.task, r.metric, r.op, r.threshold) == ("amber", "existence/f1", ">=", 2.5)
    assert r.fails(2.5) and not r.fails(2.4)


def test_junit_counts(drop_runs):
    base, new, _ = drop_runs
    rules = [Rule.parse("pope.f1_mean < -1"), Rule.parse("pope.random/yes_ratio > 50")]
    result = compare_runs(base, new, rules=rules)
    root = ET.fromstring(junit_xml(result))
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert suite.get("tests") == "2" and suite.get("failures") == "1" and len(cases) == 2
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["f1_mean"]
    assert "pope.f1_mean < -1" in failed[0].find("failure").get("message")


def test_cli_exit_codes_json_and_junit(drop_runs, tmp_path):
    base, new, expected = drop_runs
    runner = CliRunner()
    junit = tmp_path / "out" / "compare.xml"
    args = ["compare", str(base), str(new), "--fail-on", "pope.f1_mean < -1.0", "--junit", str(junit)]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 1, res.output
    data = json.loads(res.stdout)
    assert data["failed"] == 1 and data["metrics"][0]["diff"] == pytest.approx(expected)
    assert ET.parse(junit).getroot().find("testsuite").get("failures") == "1"
    res = runner.invoke(app, ["compare", str(base), str(base), "--fail-on", "pope.f1_mean < -1.0"])
    assert res.exit_code == 0 and "no regression" in res.stdout
    res = runner.invoke(app, ["compare", str(base), str(new), "--fail-on", "pope.f1_mean drops"])
    assert res.exit_code == 2 and "expected TASK.METRIC OP THRESHOLD" in res.stderr
    res = runner.invoke(app, ["compare", str(base), str(new), "--fail-on", "pope.f1 < -1"])
    assert res.exit_code == 2 and "pope has no metric 'f1'" in res.stderr
    res = runner.invoke(app, ["compare", str(base), str(tmp_path)])
    assert res.exit_code == 2 and "not a run folder" in res.stderr
    v2 = write_run(tmp_path / "v2", "pope", pope_rows(pope_items(100)), version="2")
    res = runner.invoke(app, ["compare", str(base), str(v2)])
    assert res.exit_code == 3 and "not comparable" in res.stderr


def test_compare_and_leaderboard_stay_free_of_torch():
    import subprocess

    code = (
        "import sys; import evalkit.cli, evalkit.analysis.compare, evalkit.analysis.leaderboard;"
        "import evalkit.analysis.junit, evalkit.analysis.runs;"
        "from evalkit.registry import get_task, task_names; [get_task(n) for n in task_names()];"
        "bad = [m for m in ('torch', 'transformers', 'spacy', 'nltk') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_too_many_checks_for_the_resamples_are_warned_about(drop_runs):
    base, new, _ = drop_runs
    result = compare_runs(base, new, metrics=["all"], n_resamples=100)  # 13 checked x 2/101 >= 0.05
    assert any("no difference can be significant" in w for w in result.warnings)
    assert not result.failures and result.exit_code == 0


def test_a_rule_pointing_at_gains_is_warned_about(drop_runs):
    base, new, _ = drop_runs
    result = compare_runs(base, new, rules=[Rule.parse("pope.f1_mean > 1")])
    assert "higher-is-better, so this rule fails on gains" in result.warnings[0]
    assert result.metrics[0].verdict == "loss" and result.exit_code == 0  # the drop is not beyond +1


@pytest.mark.parametrize(
    ("task", "metric", "direction"),
    [
        ("objhal", "CHAIRs_refine", -1),  # declared by the task
        ("objhal", "obj_recall", 1),
        ("pope", "random/yes_ratio", 0),
        ("amber", "cover", 1),
        ("alpaca_eval", "length_controlled_win_rate", 1),  # read from the name
        ("alpaca_eval", "avg_length", 0),
        ("alpaca_eval", "lc_standard_error", 0),
        ("alpaca_eval", "n_wins", 0),
        ("mmhal", "hallucination_rate", -1),
        ("mmvet", "std", 0),
        ("mmvet", "judge_fallbacks", -1),
        ("llava_bench", "reference_score", 0),
        ("llava_bench", "relative", 1),
    ],
)
def test_metric_directions(task, metric, direction):
    from evalkit.analysis.runs import metric_direction

    t = get_task(task)
    declared = getattr(t, "directions", {})
    assert metric_direction(t, metric) == declared.get(metric, direction)


# ------------------------------------------------------------------------ the gate never passes on nothing


def edit_header(run, **changes):
    path = run / "run.json"
    header = json.loads(path.read_text())
    for key, value in changes.items():
        if key == "data":
            header["tasks"]["pope"]["data"] = value
        else:
            header[key] = value
    path.write_text(json.dumps(header))
    return run


def test_different_data_versions_or_files_are_refused(tmp_path):
    items = pope_items(100)
    base = write_run(tmp_path / "base", "pope", pope_rows(items))
    official = edit_header(write_run(tmp_path / "official", "pope", pope_rows(items)), data={"version": "v1"})
    with pytest.raises(Incomparable, match="data versions differ .*base base: test, new official: v1"):
        compare_runs(base, official)
    edit_header(base, data={"version": "test", "files": {"coco_pope_random.json": "aa"}})
    other = write_run(tmp_path / "other", "pope", pope_rows(items))
    edit_header(other, data={"version": "test", "files": {"coco_pope_random.json": "bb"}})
    with pytest.raises(Incomparable, match="data files differ .*coco_pope_random.json"):
        compare_runs(base, other)


def test_too_few_common_units_are_refused_even_with_enough_samples(tmp_path):
    """Toy POPE at --limit 30 and 40: 30 common questions, but on 2 images, the bootstrap's units."""
    items = [(f"random-{i}", "random", f"img{i // 15}", "yn"[i % 2], i % 7 != 0) for i in range(40)]
    base = write_run(tmp_path / "l30", "pope", pope_rows(items[:30]))
    new = write_run(tmp_path / "l40", "pope", pope_rows(items))
    with pytest.raises(Incomparable, match="only 2 bootstrap units .* over 30 common samples"):
        compare_runs(base, new)
    result = compare_runs(base, new, min_common=2)  # asked for explicitly
    assert result.metrics[0].n_units == 2 and result.metrics[0].n_samples == 30


def test_a_checked_metric_that_is_nan_is_refused(tmp_path):
    # every label "no", every answer right: no positive at all, so POPE's F1 is 0/0 in every split
    items = [(sid, split, image, "n", True) for sid, split, image, _, _ in pope_items(100)]
    base = write_run(tmp_path / "base", "pope", pope_rows(items))
    new = write_run(tmp_path / "new", "pope", pope_rows(items))
    with pytest.raises(Incomparable, match=r"pope.f1_mean: base and new and p_value is NaN"):
        compare_runs(base, new)
    with pytest.raises(Incomparable, match=r"pope.f1_mean: .*NaN"):
        compare_runs(base, new, rules=[Rule.parse("pope.f1_mean < -1")])


@pytest.mark.parametrize("status", ["running", "interrupted", None])
def test_unfinished_runs_are_refused_unless_allowed(tmp_path, status):
    items = pope_items(100)
    base = write_run(tmp_path / "base", "pope", pope_rows(items))
    new = edit_header(write_run(tmp_path / "new", "pope", pope_rows(items)), status=status)
    with pytest.raises(Incomparable, match=f"run new .* is not finished \\(status {status or 'unknown'}\\)"):
        compare_runs(base, new)
    result = compare_runs(base, new, allow_unfinished=True)
    assert result.metrics[0].n_samples == 100 and any("not finished" in w for w in result.warnings)
    cli = CliRunner().invoke(app, ["compare", str(base), str(new)])
    assert cli.exit_code == 3 and cli.stderr.count("\n") == 1 and "--allow-unfinished" in cli.stderr
    assert CliRunner().invoke(app, ["compare", str(base), str(new), "--allow-unfinished"]).exit_code == 0


def test_cli_refusal_is_one_line_exit_3_never_nan_ok(tmp_path):
    items = pope_items(100)
    base = write_run(tmp_path / "base", "pope", pope_rows(items))
    official = edit_header(write_run(tmp_path / "official", "pope", pope_rows(items)), data={"version": "v1"})
    cli = CliRunner().invoke(app, ["compare", str(base), str(official), "--fail-on", "pope.f1_mean < -1"])
    assert cli.exit_code == 3, cli.output
    assert cli.stderr.startswith("error: not comparable: pope: data versions differ")
    assert cli.stderr.count("\n") == 1 and "nan" not in cli.stdout and "ok" not in cli.stdout


def test_damaged_lines_are_reported_and_skipped_and_the_file_is_not_changed(tmp_path):
    items = pope_items(100)
    base = write_run(tmp_path / "base", "pope", pope_rows(items))
    new = write_run(tmp_path / "new", "pope", pope_rows(items))
    path = new / "samples" / "pope.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[3], lines[10] = b'["a list"]', b"\xff\xfe not utf-8"
    path.write_bytes(b"\n".join(lines))
    before = path.read_bytes()
    result = compare_runs(base, new)
    assert path.read_bytes() == before  # a reader never rewrites a samples file
    assert result.metrics[0].n_samples == 98  # every other row is kept
    assert f"{path}:4: a JSON list, not an object, skipped" in result.warnings
    assert any(w.startswith(f"{path}:11: not UTF-8") for w in result.warnings)


def test_a_failed_run_is_compared_with_a_warning(tmp_path):
    items = pope_items(100)
    base = write_run(tmp_path / "base", "pope", pope_rows(items))
    new = edit_header(write_run(tmp_path / "new", "pope", pope_rows(items)), status="failed")
    result = compare_runs(base, new)
    assert result.metrics[0].n_samples == 100
    assert any(w.startswith("run new: its failure rate was above") for w in result.warnings)
