"""AlpacaEval: parsers, prompts and win rates checked by hand and against the official per-item files."""

import csv
import json
import math

import numpy as np
import pytest

from evalkit.tasks.alpaca_eval import data as files
from evalkit.tasks.alpaca_eval import length_controlled as lc
from evalkit.tasks.alpaca_eval import protocol as ae
from evalkit.types import Message, UserError

AE = "alpaca_eval"
CONFIGS = "src/alpaca_eval/evaluators_configs"
WEIGHTS = "src/alpaca_eval/metrics/weights/weighted_alpaca_eval_gpt4_turbo/length_controlled_v1/"
LEADERBOARDS = {
    "1.0": "src/alpaca_eval/leaderboards/data_AlpacaEval/alpaca_eval_gpt4_leaderboard.csv",
    "2.0": "src/alpaca_eval/leaderboards/data_AlpacaEval_2/weighted_alpaca_eval_gpt4_turbo_leaderboard.csv",
}
RANKING = "[{{'model': 'model_1', 'rank': {}}}, {{'model': 'model_2', 'rank': {}}}]"


def published(shared, version, model):
    with open(shared / AE / LEADERBOARDS[version], newline="") as f:
        return next(row for row in csv.DictReader(f) if row[""] == model)


def top(**logprobs):
    return [{"token": t, "logprob": lp} for t, lp in logprobs.items()]


# ------------------------------------------------------------------------------------------------ parsers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (RANKING.format(1, 2), 1.0),
        (RANKING.format(2, 1), 2.0),
        ("[{'model': 'model_2', 'rank': 1}, {'model': 'model_1', 'rank': 2}]", 2.0),  # order does not matter
        (
            '[{"model": "model_1", "rank": 2}, {"model": "model_2", "rank": 1}]',
            2.0,
        ),  # JSON quotes are Python too
        (RANKING.format(1, 2) + "\n", 1.0),
        (RANKING.format(1, 1), 1.0),  # a tie counts for model_1, as in the official parser
        ("[{'model': 'model_1', 'rank': 1.0}]", 1.0),
        (RANKING.format(3, 1), math.nan),  # rank must be 1 or 2
        ("[{'model': 'model_1', 'rank': '1'}]", math.nan),
        ("[{'model': 'model_2', 'rank': 1}]", math.nan),  # no model_1
        ("Here is the ranking: " + RANKING.format(1, 2), math.nan),  # prose around the list
        ("```python\n" + RANKING.format(1, 2) + "\n```", math.nan),
        ("{'model': 'model_1', 'rank': 1}", math.nan),  # a dict, not a list
        ("Model 1 is better.", math.nan),
        ("", math.nan),
    ],
)
def test_ranking_parser_follows_the_official_rule(text, expected):
    got = ae.parse_ranking(text)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


def test_logprob_parser_by_hand():
    # P(m) = e^-0.1 / (e^-0.1 + e^-2.3) = sigmoid(2.2)
    p_m = 1 / (1 + math.exp(-2.2))
    assert ae.parse_logprobs(top(m=-0.1, M=-2.3, The=-3.0)) == pytest.approx(2 - p_m, rel=1e-15)
    assert ae.parse_logprobs(top(M=-1e-6, The=-15.0)) == 2.0  # an absent token has probability 0
    assert ae.parse_logprobs(top(m=-5.0, Based=-6.0)) == 1.0
    assert ae.parse_logprobs(top(m=-0.69, M=-0.69)) == 1.5  # exactly a draw
    assert math.isnan(ae.parse_logprobs(top(The=-0.1, Model=-2.0)))  # neither: unparsable
    assert math.isnan(ae.parse_logprobs([]))
    assert math.isnan(ae.parse_logprobs([{"token": "m"}]))  # malformed entries are unparsable, not a crash
    assert math.isnan(ae.parse_logprobs(None))


def test_raw_completion_needs_exactly_one_token():
    one = {"logprobs": {"content": [{"token": "M", "top_logprobs": top(M=-0.1, m=-2.3)}]}}
    assert ae.parse_raw_completion(one) == pytest.approx(1 + 1 / (1 + math.exp(-2.2)), rel=1e-15)
    two = {"logprobs": {"content": one["logprobs"]["content"] * 2}}
    for bad in (two, {"logprobs": {"content": []}}, {"logprobs": None}, {}, None, "M"):
        assert math.isnan(ae.parse_raw_completion(bad))


def test_preference_undoes_the_switch():
    assert ae.preference("1.0", RANKING.format(1, 2), switched=False) == 1.0
    assert ae.preference("1.0", RANKING.format(1, 2), switched=True) == 2.0
    assert math.isnan(ae.preference("1.0", "no idea", switched=True))
    assert ae.preference("2.0", top(m=-0.1, M=-2.3), switched=True) == pytest.approx(
        1 + 1 / (1 + math.exp(-2.2))
    )
    raw = {"logprobs": {"content": [{"token": "m", "top_logprobs": top(m=-0.1)}]}}
    assert ae.preference("2.0", raw, switched=True) == 2.0
    with pytest.raises(UserError, match="unknown AlpacaEval version"):
        ae.preference("3.0", "", switched=False)


# ---------------------------------------------------------------------------------------------- win rate


def test_win_rate_by_hand_with_draws_and_invalid_judgements():
    prefs = [2, 1, 1.5, 0, 1.75, math.nan, 2.5, 1.25]
    w = ae.win_rate(prefs)
    # valid p - 1: [1, 0, .5, .5, .75, .25] (0 is the legacy draw; NaN and 2.5 are dropped but counted)
    assert (w.n_wins, w.n_wins_base, w.n_draws, w.n_total, w.n_invalid) == (2, 2, 2, 6, 2)
    assert w.win_rate == pytest.approx(50.0)
    assert w.standard_error == pytest.approx(100 * math.sqrt(0.625 / 5 / 6))
    # zero-one rule: round half to even (2.5 -> 2 is then valid), 1.5 stays a draw: [1, 0, .5, .5, 1, 1, 0]
    assert w.discrete_win_rate == pytest.approx(100 * 4 / 7)


def test_win_rate_edge_cases():
    assert ae.win_rate([1.5, 1.5]).to_dict() == {
        "win_rate": 50.0,
        "standard_error": 0.0,
        "n_wins": 0,
        "n_wins_base": 0,
        "n_draws": 2,
        "n_total": 2,
        "discrete_win_rate": 50.0,
        "n_invalid": 0,
    }
    one = ae.win_rate([2.0])
    assert one.win_rate == 100.0 and math.isnan(one.standard_error)
    empty = ae.win_rate([math.nan])
    assert math.isnan(empty.win_rate) and (empty.n_total, empty.n_invalid) == (0, 1)


def test_avg_length_counts_characters_and_truncates():
    assert ae.avg_length(["ab", "cdé", "😀"]) == 2  # 6 characters / 3
    assert ae.avg_length(["a", "bb"]) == 1  # 1.5 truncated
    assert ae.avg_length([]) == 0


# ---------------------------------------------------------------------------------------------- prompts


def test_prompt_templates_are_verbatim_copies(shared):
    for version, official in (
        ("1.0", "alpaca_eval_gpt4/alpaca_eval.txt"),
        ("2.0", "alpaca_eval_clf_gpt4_turbo/alpaca_eval_clf.txt"),
    ):
        ours = files.PROMPT_DIR / ae.VERSIONS[version].prompt_file
        assert ours.read_bytes() == (shared / AE / CONFIGS / official).read_bytes()


def test_judge_settings_match_the_official_configs(shared):
    yaml = pytest.importorskip("yaml")
    for version, name in (("1.0", "alpaca_eval_gpt4"), ("2.0", "weighted_alpaca_eval_gpt4_turbo")):
        cfg = yaml.safe_load((shared / AE / CONFIGS / name / "configs.yaml").read_text())[name]
        v = ae.VERSIONS[version]
        kw = cfg["completions_kwargs"]
        assert v.annotator == name and cfg["prompt_template"].endswith("/" + v.prompt_file)
        assert (kw["model_name"], kw["max_tokens"], kw["temperature"]) == (
            v.judge_model,
            v.max_tokens,
            v.temperature,
        )
        assert kw.get("top_logprobs") == v.top_logprobs
    parser = yaml.safe_load(
        (shared / AE / CONFIGS / "weighted_alpaca_eval_gpt4_turbo/configs.yaml").read_text()
    )
    kwargs = parser["weighted_alpaca_eval_gpt4_turbo"]["completion_parser_kwargs"]
    assert kwargs == {"numerator_token": "m", "denominator_tokens": ["m", "M"], "is_binarize": False}


def test_judge_messages_v1():
    instruction = "What is 2+2?"
    (system, user), switched = ae.judge_messages(files.load_template("1.0"), instruction, "REF", "MODEL")
    assert switched is ae.is_switched(instruction)
    assert system == Message(
        "system", "You are a helpful assistant, that ranks models by the quality of their answers."
    )
    assert user.role == "user" and user.text.startswith("I want you to create a leaderboard")
    assert user.text.endswith("Please provide the ranking that the majority of humans would give.")
    first, second = ("MODEL", "REF") if switched else ("REF", "MODEL")
    assert '"instruction": """What is 2+2?""",\n}' in user.text
    assert f'"model": "model_1",\n        "answer": """{first}"""' in user.text
    assert f'"model": "model_2",\n        "answer": """{second}"""' in user.text


def test_judge_messages_v2_in_both_orders():
    by_order = {ae.is_switched(i): i for i in (f"instruction {k}" for k in range(20))}
    assert set(by_order) == {False, True}
    for switched, instruction in by_order.items():
        (system, user), got = ae.judge_messages(files.load_template("2.0"), instruction, "REF", "MODEL")
        assert got is switched
        assert system.text.startswith("You are a highly efficient assistant, who evaluates and selects")
        assert user.text.endswith("## Best Model Identifier")
        m, big_m = ("MODEL", "REF") if switched else ("REF", "MODEL")
        assert f'"model_identifier": "m",\n        "output": """{m}"""' in user.text
        assert f'"model_identifier": "M",\n        "output": """{big_m}"""' in user.text


def test_fill_template_replaces_in_sequence_like_the_official_code():
    template = "{instruction} | {output_1} | {output_2}"
    values = {"instruction": "say {output_1}", "output_1": "A", "output_2": "B"}
    # the placeholder inside the instruction is met first and filled; the real slot keeps its braces
    assert ae.fill_template(template, values) == "say A | {output_1} | B"
    assert ae.fill_template("{ a } {x}", {"x": 1}) == "{ a } 1"  # braces with spaces are not placeholders


def test_chatml_to_messages():
    prompt = "\n<|im_start|>system\n Be brief. \n<|im_end|>\n<|im_start|>user\nHi\nthere\n<|im_end|>\n"
    assert ae.chatml_to_messages(prompt) == (Message("system", "Be brief."), Message("user", "Hi\nthere"))
    with pytest.raises(ValueError):
        ae.chatml_to_messages("no markers")


def test_switch_rule_reproduces_the_official_order(shared):
    """Every stored 2.0 judgement equals the one re-parsed from its raw logprobs, un-swapped by our rule."""
    ann = files.read_annotations(
        shared / AE / "results/alpaca-7b/weighted_alpaca_eval_gpt4_turbo/annotations.json"
    )
    judged = [a for a in ann.items if a.raw_completion is not None]
    assert len(judged) == 802
    for a in judged:
        assert ae.preference("2.0", a.raw_completion, ae.is_switched(a.instruction)) == pytest.approx(
            a.preference, abs=1e-9
        )
    assert sum(ae.is_switched(a.instruction) for a in ann.items) == 406  # of 805: about half
    assert all(a.preference == 1.5 for a in ann.items if a.raw_completion is None)
    assert all(a.output_1 == a.output_2 for a in ann.items if a.raw_completion is None)


# --------------------------------------------------------------------------------------- published numbers


@pytest.mark.parametrize(
    ("version", "model", "annotator", "shown"),
    [
        ("2.0", "alpaca-7b", "weighted_alpaca_eval_gpt4_turbo", (2.5915, 0.4871)),
        ("2.0", "gpt4_1106_preview", "weighted_alpaca_eval_gpt4_turbo", (50.0, 0.0)),
        ("1.0", "alpaca-7b", "alpaca_eval_gpt4", (26.4596, 1.5357)),
        ("1.0", "gpt4", "alpaca_eval_gpt4", (95.2795, 0.7163)),
    ],
)
def test_official_annotations_reproduce_the_leaderboard(shared, version, model, annotator, shown):
    ann = files.read_annotations(shared / AE / "results" / model / annotator / "annotations.json")
    assert (ann.version, ann.model, ann.reference) == (version, model, ae.VERSIONS[version].reference)
    w = ae.win_rate(ann.preferences)
    row = published(shared, version, model)
    assert (round(w.win_rate, 4), round(w.standard_error, 4)) == shown
    assert w.win_rate == pytest.approx(float(row["win_rate"]), rel=1e-14, abs=1e-14)
    assert w.standard_error == pytest.approx(float(row["standard_error"]), rel=1e-12, abs=1e-14)
    assert w.discrete_win_rate == pytest.approx(float(row["discrete_win_rate"]), rel=1e-14)
    counts = (w.n_wins, w.n_wins_base, w.n_draws, w.n_total)
    assert counts == tuple(int(row[k]) for k in ("n_wins", "n_wins_base", "n_draws", "n_total"))
    assert w.n_invalid == 0
    outputs = files.read_outputs(shared / AE / "results" / model / "model_outputs.json")
    assert ae.avg_length([o["output"] for o in outputs]) == int(row["avg_length"])


def test_alpaca7b_v2_from_raw_judge_outputs(shared):
    """The whole 2.0 pipeline: pair the outputs, re-parse each raw judge answer, un-swap, aggregate."""
    results = shared / AE / "results"
    pairs = ae.pair_outputs(
        files.read_outputs(results / "gpt4_1106_preview/model_outputs.json"),
        files.read_outputs(results / "alpaca-7b/model_outputs.json"),
    )
    ann = files.read_annotations(results / "alpaca-7b/weighted_alpaca_eval_gpt4_turbo/annotations.json")
    raw = {a.instruction: a.raw_completion for a in ann.items}
    prefs = []
    for instruction, reference, model in pairs:
        if reference == model:
            prefs.append(ae.DRAW)
            continue
        _, switched = ae.judge_messages(files.load_template("2.0"), instruction, reference, model)
        prefs.append(ae.preference("2.0", raw[instruction], switched))
    w = ae.win_rate(prefs)
    assert (round(w.win_rate, 4), round(w.standard_error, 4)) == (2.5915, 0.4871)
    # the leaderboard was computed from the stored preferences, which are rounded to 10 decimals
    assert w.win_rate == pytest.approx(2.591450540223603, abs=1e-9)
    assert (w.n_wins, w.n_wins_base, w.n_draws, w.n_total) == (17, 785, 3, 805)


# ---------------------------------------------------------------------------------------- length control


def test_lc_of_the_baseline_against_itself_is_50(shared):
    weights = shared / AE / WEIGHTS / lc.WEIGHTS_FILE
    assert lc.length_controlled_win_rate("gpt4_1106_preview", weights) == (50.0, 0.0)
    assert float(published(shared, "2.0", "gpt4_1106_preview")["length_controlled_winrate"]) == 50.0


def test_lc_needs_the_hub_difficulties_for_other_models(shared, tmp_path):
    weights = shared / AE / WEIGHTS / lc.WEIGHTS_FILE
    w = files.read_glm_weights(weights)
    assert len(w) == 200
    assert w["alpaca-7b"] == files.GlmWeights(-2.2067864500930003, 0.9859274836495522, -3.690741791907489)
    with pytest.raises(UserError, match="instruction_difficulty.csv"):
        lc.length_controlled_win_rate("alpaca-7b", weights)
    with pytest.raises(UserError, match="no GLM weights for 'my-model'"):
        lc.length_controlled_win_rate("my-model", weights)
    short = tmp_path / "instruction_difficulty.csv"
    short.write_text("index,instruction_difficulty\n0,0.5\n1,1.5\n")
    with pytest.raises(UserError, match="expected one per instruction"):
        lc.length_controlled_win_rate("alpaca-7b", weights, short)


def test_lc_closed_form_by_hand(tmp_path):
    path = tmp_path / "instruction_difficulty.csv"
    path.write_text("index,instruction_difficulty\n0,0.0\n1,1.0\n2,2.0\n")
    difficulty = files.read_instruction_difficulty(path, expected_rows=None)
    model, base = files.GlmWeights(-1.0, 1.5, -1.0), files.GlmWeights(0.0, 0.5, 0.0)
    # delta: difficulty 1.0, not_gamed -1.0 -> sigmoid(-1), sigmoid(0), sigmoid(1); the length term drops out
    s = 1 / (1 + math.exp(-1))
    values = np.array([1 - s, 0.5, s])
    value, se = lc.lc_from_weights(model, base, difficulty)
    assert value == pytest.approx(50.0)
    assert se == pytest.approx(100 * values.std(ddof=1) / math.sqrt(3))
    assert lc.lc_from_weights(files.GlmWeights(0, 0.5, 2.0), base, None) == (
        pytest.approx(100 / (1 + math.exp(-2))),
        0.0,
    )


def test_lc_without_df_gamed_says_what_it_needs():
    note = " ".join(lc.REFIT_NOTE.split())
    assert "df_gamed.csv" in note and "tatsu-lab/alpaca_eval" in note
    assert "--task-option alpaca_eval.df_gamed=PATH" in note and "evalkit[lc]" in note


def test_bad_files_are_user_errors(tmp_path):
    p = tmp_path / "w.csv"
    p.write_text("model,a,b\nx,1,2\n")
    with pytest.raises(UserError, match="not an AlpacaEval GLM weights file"):
        files.read_glm_weights(p)
    p.write_text(",np.tanh(std_delta_len),instruction_difficulty,not_gamed_baseline.astype(float)\nm,1,x,2\n")
    with pytest.raises(UserError, match=r"w.csv:2: 'x' is not a number"):
        files.read_glm_weights(p)


# ------------------------------------------------------------------------------------------------ loading


def write(tmp_path, data, name="f.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


ROW = {"instruction": "i", "output": "o", "generator": "g"}
ANN = {
    "instruction": "i",
    "output_1": "a",
    "output_2": "b",
    "generator_1": "gpt4_1106_preview",
    "generator_2": "m",
    "annotator": "weighted_alpaca_eval_gpt4_turbo",
    "preference": 1.25,
}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("[{", "malformed JSON at line 1"),
        ({"instruction": "i"}, "expected a JSON list of records, got dict"),
        (["x"], "record 0 is str, expected an object"),
        ([{"instruction": "i"}], "record 0 has no field 'output'"),
        (
            [ROW, {**ROW, "instruction": "j", "output": None}],
            "record 1 field 'output' is NoneType, expected a string",
        ),
        ([ROW, ROW], "record 1 repeats an instruction"),
    ],
)
def test_read_outputs_errors(tmp_path, data, message):
    with pytest.raises(UserError, match=message):
        files.read_outputs(write(tmp_path, data))


def test_read_outputs_missing_file(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        files.read_outputs(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "no annotations"),
        ([{**ANN, "annotator": "claude"}], "unknown annotator 'claude'"),
        ([ANN, {**ANN, "instruction": "j", "generator_2": "n"}], r"generator_2 takes \['m', 'n'\]"),
        ([{**ANN, "preference": "1"}], "record 0 preference is '1', expected a number or null"),
        ([{k: v for k, v in ANN.items() if k != "preference"}], "record 0 has no field 'preference'"),
        ([{k: v for k, v in ANN.items() if k != "output_2"}], "record 0 has no field 'output_2'"),
    ],
)
def test_read_annotations_errors(tmp_path, data, message):
    with pytest.raises(UserError, match=message):
        files.read_annotations(write(tmp_path, data))


def test_missing_judgements_are_counted_not_hidden(tmp_path):
    rows = [
        ANN,
        {**ANN, "instruction": "j", "preference": None},
        {**ANN, "instruction": "k", "preference": 0},
    ]
    ann = files.read_annotations(write(tmp_path, rows))
    assert ann.version == "2.0" and ann.model == "m"
    w = ae.win_rate(ann.preferences)
    assert (w.n_total, w.n_invalid, w.n_draws, w.win_rate) == (2, 1, 1, pytest.approx(37.5))


def test_pair_outputs_requires_every_instruction():
    ref = [{"instruction": i, "output": "r" + i} for i in "abc"]
    model = [{"instruction": i, "output": "m" + i} for i in "cba"]
    assert ae.pair_outputs(ref, model) == [("a", "ra", "ma"), ("b", "rb", "mb"), ("c", "rc", "mc")]
    with pytest.raises(
        UserError, match="out.json: 1 of the 3 AlpacaEval instructions have no output and 1 outputs"
    ):
        ae.pair_outputs(ref, model[:2] + [{"instruction": "z", "output": ""}], "out.json")
