"""The alignment-tax table (`evalkit.analysis.tax`, `evalkit.analysis.tax_render`) on constructed run
folders: numbers recomputed from the stored rows by hand, groups and verdicts, every output format read
back, refusals."""

from __future__ import annotations

import csv
import json
import random
import re

import numpy as np
import pytest
from support.runs import JUDGE, SPLITS, pope_items, pope_rows, write_run

from evalkit.analysis.tax import (
    GROUPS,
    Incomparable,
    TaxRow,
    TaxTable,
    interval_verdict,
    tax_group,
    tax_table,
)
from evalkit.analysis.tax_render import print_table, read_table, to_markdown, write_report
from evalkit.registry import get_task
from evalkit.store import RunStore
from evalkit.task import DataSpec
from evalkit.types import UserError

B, SEED = 1000, 1234
WORDS = ("dog", "apple", "cup", "tree", "car", "bus", "clock", "kite", "ball", "egg", "cake", "umbrella")


# ------------------------------------------------------------------------------------------------ runs


def objhal_rows(describe) -> list[dict]:
    """Object HalBench toy rows (built-in word extraction, no judge call) answering `describe(sample)`."""
    task = get_task("objhal")
    data = task.load(DataSpec(toy=True, options={"objhal.nlp": "builtin"}))
    rows = []
    for s in data.samples:
        row = {"id": s.id, "prompt": s.messages[0].text, "response": describe(s)}
        row |= {"target": s.target, "cluster": s.cluster, "meta": s.meta, "error": None}
        row["judge"] = {"fingerprint": {}, "calls": [], **task.judge_record(row, [], 1)}
        rows.append(row | task.score_row(row))
    return rows


def random_description(seed: int):
    rng = random.Random(seed)
    return lambda s: "I see " + " and ".join(f"a {w}" for w in rng.sample(WORDS, rng.randint(1, 4))) + "."


def faithful_description(seed: int):
    """Names only objects in the image, except for every fifth sample (a random description)."""
    rng, fallback = random.Random(seed), random_description(seed + 100)
    return lambda s: (
        fallback(s)
        if int(s.id) % 5 == 0
        else "I see " + " and ".join(f"a {w}" for w in s.target[: rng.randint(1, 3)]) + "."
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A base run and two aligned checkpoints on POPE (1,200 questions, 240 images) and Object HalBench:
    `dpo` answers 90 more POPE questions right and describes faithfully; `bdhs` answers 90 fewer right and
    describes at random like the base."""
    tmp = tmp_path_factory.mktemp("tax")
    items = pope_items(1200, accuracy=0.85)
    rng = random.Random(7)
    fixed = frozenset(rng.sample([sid for sid, *_, c in items if not c], 90))
    broken = frozenset(rng.sample([sid for sid, *_, c in items if c], 90))
    answers = {
        "base": (frozenset(), random_description(0)),
        "dpo": (fixed, faithful_description(1)),
        "bdhs": (broken, random_description(2)),
    }
    paths = {}
    for name, (flip, describe) in answers.items():
        path = write_run(tmp / name, "pope", pope_rows(items, flip))
        objhal = write_run(tmp / f"{name}-objhal", "objhal", objhal_rows(describe), judge=JUDGE)
        _merge(path, objhal, "objhal")
        paths[name] = path
    return tmp, paths


def _merge(path, other, task):
    """Add `other`'s task to the run folder `path` (header, rows, metrics)."""
    store, extra = RunStore(path), RunStore(other)
    header, more = store.read_header(), extra.read_header()
    header["tasks"][task] = more["tasks"][task]
    header["judges"] = {**(header.get("judges") or {}), **more["judges"]}
    store.samples_path(task).write_text(extra.samples_path(task).read_text())
    store.write_metrics({**store.read_metrics(), task: extra.read_metrics()[task]})
    store.write_header(header)


@pytest.fixture(scope="module")
def table(runs):
    _, paths = runs
    return tax_table(paths["base"], {"dpo": paths["dpo"], "bdhs": paths["bdhs"]}, n_resamples=B, seed=SEED)


# ------------------------------------------------------------------------------- independent recomputation


def pope_units(rows) -> dict:
    """Per image: (tp, fp, fn) of each split, "yes" positive, from the stored responses and targets."""
    out: dict = {}
    for r in rows:
        said_yes = r["response"].lower().startswith("yes")
        truth_yes = r["target"] == "yes"
        v = out.setdefault(("cluster", r["cluster"]), np.zeros(9))
        s = SPLITS.index(r["meta"]["split"])
        v[3 * s : 3 * s + 3] += [
            said_yes and truth_yes,
            said_yes and not truth_yes,
            truth_yes and not said_yes,
        ]
    return out


def pope_f1_mean(t: np.ndarray) -> np.ndarray:
    t = t.reshape(-1, 3, 3)
    return 100 * np.mean(2 * t[..., 0] / (2 * t[..., 0] + t[..., 1] + t[..., 2]), axis=1)


def objhal_units(rows) -> dict:
    """Per image: responses, responses naming an absent object, mentions, absent-object mentions — read
    from the response words against the image's objects."""
    out: dict = {}
    for r in rows:
        named = [w for w in re.findall(r"[a-z]+", r["response"].lower()) if w in WORDS]
        absent = [w for w in named if w not in r["target"]]
        v = out.setdefault(("cluster", r["cluster"]), np.zeros(4))
        v += [1, bool(absent), len(named), len(absent)]
    return out


HAND = {
    ("pope", "f1_mean"): (pope_units, pope_f1_mean),
    ("objhal", "CHAIRs"): (objhal_units, lambda t: 100 * t[:, 1] / t[:, 0]),
    ("objhal", "CHAIRi"): (objhal_units, lambda t: 100 * t[:, 3] / t[:, 2]),
}


def paired_by_hand(units_a: dict, units_b: dict, metric, n_resamples: int, seed: int):
    """Point values and the percentile interval of b − a, resampling the common units with replacement:
    the draws of `numpy.random.default_rng(seed).integers` over the unit keys sorted by `repr`."""
    keys = sorted(set(units_a) & set(units_b), key=repr)
    a, b = np.array([units_a[k] for k in keys]), np.array([units_b[k] for k in keys])
    draws = np.random.default_rng(seed).integers(0, len(keys), size=(n_resamples, len(keys)))
    d = metric(b[draws].sum(axis=1)) - metric(a[draws].sum(axis=1))
    d = d[~np.isnan(d)]
    low, high = np.quantile(d, [0.025, 0.975])
    return metric(a.sum(0)[None])[0], metric(b.sum(0)[None])[0], low, high


def test_numbers_recomputed_from_the_stored_rows(runs, table):
    _, paths = runs
    for (task, metric), (units, fn) in HAND.items():
        base_rows = RunStore(paths["base"]).read_samples(task)
        for ck in ("dpo", "bdhs"):
            rows = RunStore(paths[ck]).read_samples(task)
            base, new, low, high = paired_by_hand(units(base_rows), units(rows), fn, B, SEED)
            r = table.get(ck, task, metric)
            assert (r.base, r.aligned, r.diff) == pytest.approx((base, new, new - base), abs=1e-9)
            assert (r.ci_low, r.ci_high) == pytest.approx((low, high), abs=1e-9)
            assert r.n_samples == len(rows) and r.n_units == len(units(rows))
            # a from-scratch bootstrap with other draws agrees up to resampling noise
            _, _, low2, high2 = paired_by_hand(units(base_rows), units(rows), fn, 2000, 99)
            width = high - low
            assert abs(low2 - low) < 0.15 * width and abs(high2 - high) < 0.15 * width


def test_groups_verdicts_units_and_default_metrics(table):
    assert table.groups() == ["hallucination"]
    assert {r.group for r in table.rows} == {"hallucination"}
    pope = [r.metric for r in table.rows if r.checkpoint == "dpo" and r.task == "pope"]
    objhal = [r.metric for r in table.rows if r.checkpoint == "dpo" and r.task == "objhal"]
    assert pope == ["f1_mean", "adversarial/f1"]
    assert objhal == ["CHAIRs_refine", "CHAIRs", "CHAIRi", "obj_recall"]
    assert table.keys("hallucination")[0] == ("pope", "f1_mean")
    assert table.get("dpo", "pope", "f1_mean").verdict == "gain"
    assert table.get("bdhs", "pope", "f1_mean").verdict == "loss"
    chair = table.get("dpo", "objhal", "CHAIRs")
    assert chair.direction == -1 and chair.diff < 0 and chair.verdict == "gain"  # fewer hallucinations
    for r in table.rows:  # every verdict follows from the interval and the better direction
        significant = r.ci_low > 0 or r.ci_high < 0
        want = ("gain" if (r.ci_low > 0) == (r.direction > 0) else "loss") if significant else None
        assert r.verdict == (want or "no significant change"), r
        assert r.unit == "%"
    # word-matching rows carry the judge's fingerprint but no judge call: no judge is shown
    assert table.tasks["objhal"]["judge"] is None
    assert table.tasks["pope"] == {"group": "hallucination", "version": "1", "judge": None}


def test_group_of_each_benchmark_and_of_other_tasks():
    assert tax_group("mt_bench") == tax_group("alpaca_eval_v1") == "language instruction-following"
    assert tax_group("llava_bench_coco") == "visual instruction-following"
    assert [tax_group(t) for t in ("pope", "amber", "mmhal", "objhal")] == ["hallucination"] * 4
    assert tax_group("mmbench") == "visual knowledge"

    class TextTask:
        group = "language instruction-following"

    assert tax_group("toy_text", TextTask()) == "language instruction-following"
    assert tax_group("toy_count", object()) == "other"
    rows = [
        TaxRow("a", g, t, "m", 1, "", 1.0, 2.0, 1.0, 0.5, 1.5, 0.01, "gain", 10, 10)
        for g, t in [
            ("other", "x"),
            ("visual knowledge", "mmbench"),
            ("toy skills", "y"),
            ("hallucination", "pope"),
        ]
    ]
    t = TaxTable("base", "b", {"a": "a"}, rows, {})
    assert t.groups() == ["hallucination", "visual knowledge", "toy skills", "other"]
    assert list(GROUPS) == [
        "language instruction-following",
        "visual instruction-following",
        "hallucination",
        "visual knowledge",
    ]
    assert interval_verdict(0.1, 2.0, -1) == "loss" and interval_verdict(-2.0, -0.1, -1) == "gain"
    assert interval_verdict(-1.0, 1.0, 1) == "no significant change"
    assert interval_verdict(0.5, 1.0, 0) == "changed" and interval_verdict(float("nan"), 1.0, 1) == "n/a"


def test_every_format_written_and_read_back(table, tmp_path, capsys):
    paths = dict(zip(("md", "csv", "html", "json"), write_report(table, tmp_path / "report"), strict=True))
    assert [p.name for p in paths.values()] == ["tax.md", "tax.csv", "tax.html", "tax.json"]
    with paths["csv"].open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(table.rows) == 12
    for got, r in zip(rows, table.rows, strict=True):
        assert (got["checkpoint"], got["group"], got["task"], got["metric"]) == (
            r.checkpoint,
            r.group,
            r.task,
            r.metric,
        )
        for k in ("base", "aligned", "diff", "ci_low", "ci_high", "p_value"):
            assert float(got[k]) == getattr(r, k)
        assert int(got["n_samples"]) == r.n_samples and got["verdict"] == r.verdict and got["unit"] == "%"
        assert got["checkpoint_run"] == table.checkpoints[r.checkpoint]
    data = json.loads(paths["json"].read_text())
    assert data["groups"] == ["hallucination"] and data["resamples"] == B and data["seed"] == SEED
    assert read_table(paths["json"]).to_dict() == table.to_dict()
    page = paths["html"].read_text()
    md = paths["md"].read_text()
    assert page.count("<svg") == 1 and "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", page)
    assert "## hallucination" in md and "<h2>hallucination</h2>" in page
    for r in table.rows:
        for text in (f"{r.base:.2f}", f"{r.aligned:.2f}", f"{r.diff:+.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]"):
            assert text in page and text in md, text
    assert page.count("<circle") == len(table.rows)  # one point per checkpoint and metric
    assert "**gain**" in md and "**loss**" in md
    from rich.console import Console

    console = Console(record=True, width=240)
    print_table(table, console=console)
    text = console.export_text()
    assert "hallucination" in text and "f1_mean ↑" in text and "CHAIRs ↓" in text
    r = table.get("dpo", "pope", "f1_mean")
    assert f"{r.diff:+.2f}" in text and to_markdown(table) == md
    capsys.readouterr()
    print_table(table, as_json=True)
    assert json.loads(capsys.readouterr().out) == data


def test_metric_selection_and_task_restriction(runs):
    _, paths = runs
    aligned = {"dpo": paths["dpo"]}
    t = tax_table(paths["base"], aligned, metrics=["pope.random/acc", "CHAIRi"], n_resamples=200)
    assert [(r.task, r.metric) for r in t.rows] == [("pope", "random/acc"), ("objhal", "CHAIRi")]
    t = tax_table(paths["base"], aligned, tasks=["objhal"], n_resamples=200)
    assert {r.task for r in t.rows} == {"objhal"} and list(t.tasks) == ["objhal"]
    with pytest.raises(UserError, match="no compared task has this metric"):
        tax_table(paths["base"], aligned, metrics=["f1_max"], n_resamples=200)
    with pytest.raises(UserError, match="no aligned checkpoint"):
        tax_table(paths["base"], {})


def test_different_judges_or_task_versions_are_refused(runs):
    tmp, paths = runs
    other = {**JUDGE, "model": "gpt-4o-mini"}
    rows = RunStore(paths["bdhs"]).read_samples("objhal")
    rejudged = write_run(tmp / "rejudged", "objhal", rows, judge=other)
    with pytest.raises(Incomparable, match="checkpoint late .*different judges.*gpt-4o-mini"):
        tax_table(paths["base"], {"dpo": paths["dpo"], "late": rejudged}, tasks=["objhal"], n_resamples=200)
    items = pope_items(1200, accuracy=0.85)
    v2 = write_run(tmp / "v2", "pope", pope_rows(items), version="2")
    with pytest.raises(Incomparable, match="task versions differ"):
        tax_table(paths["base"], {"v2": v2}, tasks=["pope"], n_resamples=200)
    # by default a task missing from a checkpoint is left out, named in the warnings
    t = tax_table(paths["base"], {"v1": write_run(tmp / "v1", "pope", pope_rows(items))}, n_resamples=200)
    assert {r.task for r in t.rows} == {"pope"} and "left out: objhal" in t.warnings[0]


def test_different_data_unfinished_runs_too_few_units_and_nan_cells_are_refused(runs):
    """The rules of `evalkit compare` hold in the table: no cell over different data, an unfinished run,
    a handful of images, or without a number."""
    tmp, paths = runs
    items = pope_items(1200, accuracy=0.85)

    def pope_run(name, rows, **header):
        path = write_run(tmp / name, "pope", rows)
        data = json.loads((path / "run.json").read_text())
        for key, value in header.items():
            if key == "data":
                data["tasks"]["pope"]["data"] = value
            else:
                data[key] = value
        (path / "run.json").write_text(json.dumps(data))
        return path

    official = pope_run("official", pope_rows(items), data={"version": "official"})
    with pytest.raises(Incomparable, match="checkpoint official .*data versions differ"):
        tax_table(paths["base"], {"official": official}, tasks=["pope"], n_resamples=200)
    running = pope_run("running", pope_rows(items), status="running")
    with pytest.raises(Incomparable, match="not finished \\(status running\\)"):
        tax_table(paths["base"], {"running": running}, tasks=["pope"], n_resamples=200)
    few = pope_run("few", pope_rows([i for i in items if i[2] in {f"img{k}" for k in range(6)}]))
    with pytest.raises(Incomparable, match="only 6 bootstrap units .* over 30 common samples"):
        tax_table(paths["base"], {"few": few}, tasks=["pope"], n_resamples=200)
    nope = [(sid, split, image, "n", True) for sid, split, image, _, _ in items]  # F1 0/0 in every split
    nan_base, nan_new = pope_run("nan-base", pope_rows(nope)), pope_run("nan-new", pope_rows(nope))
    with pytest.raises(Incomparable, match="pope.f1_mean: base and new is NaN"):
        tax_table(nan_base, {"nan": nan_new}, tasks=["pope"], n_resamples=200)


def test_tax_modules_stay_free_of_torch(runs):
    import subprocess
    import sys

    _, paths = runs
    code = (
        "import sys; from evalkit.analysis.tax import tax_table;"
        "from evalkit.analysis.tax_render import to_html, rich_table;"
        f"t = tax_table({str(paths['base'])!r}, {{'dpo': {str(paths['dpo'])!r}}}, n_resamples=100);"
        "to_html(t); rich_table(t);"
        "bad = [m for m in ('torch', 'transformers', 'spacy', 'nltk') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
