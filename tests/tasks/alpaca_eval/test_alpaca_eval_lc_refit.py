"""The length-controlled GLM refit (AlpacaEval 2.0) on a synthetic df_gamed.csv built from known
coefficients: the fit recovers them, its solution satisfies the optimality conditions of the official
objective computed here independently (so rows, soft labels and weights are assembled as the official fit
assembles them), and a judged run with df_gamed.csv in its data folder reports the refitted LC win rate."""

import math

import numpy as np
import pytest

pytest.importorskip("sklearn")

from evalkit.tasks.alpaca_eval import data as files  # noqa: E402
from evalkit.tasks.alpaca_eval import length_controlled as lc  # noqa: E402
from evalkit.types import UserError  # noqa: E402

THETA = (-0.9, 0.7, 0.4)  # length, difficulty, not_gamed


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def synthetic(n=300, seed=0, gamed_length=THETA[0], noise=0.0):
    """df_gamed rows (two gamed baselines) and one model's judgements as soft labels from THETA (the gamed
    rows with their own length coefficient; `noise` perturbs the model's preferences)."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(size=n)
    lines = ["model,index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline"]
    for name in ("verbose", "concise"):
        delta = rng.normal(scale=1.5, size=n)
        p = sigmoid(gamed_length * np.tanh(delta) + THETA[1] * difficulty)  # not_gamed 0
        lines += [
            f"{name},{i},{float(p[i])!r},{float(delta[i])!r},{float(difficulty[i])!r},False" for i in range(n)
        ]
    ref_len = rng.integers(200, 2000, size=n)
    model_len = rng.integers(200, 2000, size=n)
    d = (ref_len - model_len) / np.std(ref_len - model_len, ddof=1)
    pref = 1 + np.clip(
        sigmoid(THETA[0] * np.tanh(d) + THETA[1] * difficulty + THETA[2]) + noise * rng.normal(size=n), 0, 1
    )
    return "\n".join(lines) + "\n", difficulty, ref_len, model_len, pref


def test_refit_recovers_the_coefficients(tmp_path):
    text, difficulty, ref_len, model_len, pref = synthetic()
    pref[5] = math.nan  # an invalid judgement: left out of the fit, still predicted
    (tmp_path / "df_gamed.csv").write_text(text)
    fit = lc.fit_length_controlled(
        pref, range(len(pref)), ref_len, model_len, files.read_gamed(tmp_path / "df_gamed.csv")
    )
    w = fit.weights
    assert (w.length, w.difficulty, w.not_gamed) == pytest.approx(THETA, abs=0.05)
    predicted = sigmoid(w.difficulty * difficulty + w.not_gamed)  # no length difference, every instruction
    assert fit.value == pytest.approx(100 * predicted.mean(), rel=1e-12)
    assert fit.standard_error == pytest.approx(100 * predicted.std(ddof=1) / math.sqrt(len(pref)), rel=1e-12)
    assert fit.value == pytest.approx(sigmoid(THETA[1] * difficulty + THETA[2]).mean() * 100, abs=1.0)


def test_refit_solves_the_official_objective(tmp_path):
    """Gamed baselines that disagree with the model and noisy judgements make the weights matter: the
    solution must meet the optimality conditions of ||theta||_1 + C * sum_i w_i * logloss(p_i, x_i theta)
    with w = 1 for the model's rows and 0.2 / 2 for the gamed ones, assembled here from the spec."""
    text, difficulty, ref_len, model_len, pref = synthetic(n=16, gamed_length=-2.5, noise=0.2, seed=3)
    pref[[3, 7]] = math.nan
    (tmp_path / "df_gamed.csv").write_text(text)
    gamed = files.read_gamed(tmp_path / "df_gamed.csv")
    n = len(pref)
    fit = lc.fit_length_controlled(pref, range(n), ref_len, model_len, gamed)
    d = (ref_len - model_len) / np.std(ref_len - model_len, ddof=1)
    x = np.r_[
        np.c_[np.tanh(gamed.std_delta_len), gamed.difficulty, np.zeros(len(gamed.index))],
        np.c_[np.tanh(d), difficulty, np.ones(n)],
    ]
    p = np.r_[gamed.preference, pref - 1]
    weight = np.r_[np.full(len(gamed.index), 0.1), np.ones(n)]
    keep = ~np.isnan(p)
    x, p, weight = x[keep], p[keep], weight[keep]
    theta = np.array([fit.weights.length, fit.weights.difficulty, fit.weights.not_gamed])
    grad = (weight * (sigmoid(x @ theta) - p)) @ x
    scale = (weight[:, None] * np.abs(x)).sum(axis=0)
    nonzero = theta != 0
    assert np.all(np.abs(grad + np.sign(theta) / fit.C)[nonzero] <= 1e-3 * scale[nonzero])
    assert np.all(np.abs(grad[~nonzero]) <= 1 / fit.C + 1e-3 * scale[~nonzero])
    # the same conditions fail for another weighting of the gamed rows (so they test the assembly)
    other = np.where(weight == 1.0, 1.0, 0.2)
    grad_other = (other * (sigmoid(x @ theta) - p)) @ x
    assert np.any(np.abs(grad_other + np.sign(theta) / fit.C) > 1e-3 * scale)


def test_length_feature_by_hand():
    # deltas 100, -50, 250: mean 100, sample variance (0 + 150**2 + 150**2) / 2 = 150**2
    assert lc.std_delta_len([300, 100, 400], [200, 150, 150]) == pytest.approx(
        [100 / 150, -50 / 150, 250 / 150]
    )
    with pytest.raises(UserError, match="different lengths"):
        lc.std_delta_len([10, 20], [0, 10])


def test_gamed_file_errors(tmp_path):
    bad = tmp_path / "df_gamed.csv"
    bad.write_text("index,preference\n0,0.5\n")
    with pytest.raises(UserError, match="header must name"):
        files.read_gamed(bad)
    bad.write_text(
        "index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline\n0,1.7,0.1,0.2,False\n"
    )
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        files.read_gamed(bad)
    with pytest.raises(UserError, match="file not found"):
        files.read_gamed(tmp_path / "missing.csv")


def test_a_run_with_df_gamed_reports_the_refitted_lc(tmp_path):
    import support.alpaca_eval as ae  # the run harness of the judged-run tests
    from support.openai_server import FakeOpenAIServer

    from evalkit.scoring import rescore_run

    data_dir = ae.write_data(tmp_path / "data", tasks=["alpaca_eval"])
    text, *_ = synthetic(n=len(ae.INSTRUCTIONS), seed=1)
    (data_dir / "df_gamed.csv").write_text(text)
    with FakeOpenAIServer(responder=ae.play) as server:
        result = ae.run(server, tmp_path, data_dir, tasks=["alpaca_eval"])
    m = result.metrics["alpaca_eval"]["metrics"]
    rows = ae.rows_of(result, "alpaca_eval")
    fit = lc.fit_length_controlled(
        [math.nan if r["preference"] is None else r["preference"] for r in rows],
        [int(r["id"]) for r in rows],
        [len(ae.reference_output("alpaca_eval", i)) for i in ae.INSTRUCTIONS],
        [len(ae.answer(i)) for i in ae.INSTRUCTIONS],
        files.read_gamed(data_dir / "df_gamed.csv"),
    )
    assert m["length_controlled_win_rate"]["value"] == pytest.approx(fit.value)
    assert "refitted" in m["length_controlled_win_rate"]["note"]
    assert m["lc_standard_error"]["value"] == pytest.approx(fit.standard_error)
    assert rescore_run(result.run_dir)["alpaca_eval"]["metrics"] == m
