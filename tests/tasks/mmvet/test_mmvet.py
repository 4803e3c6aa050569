"""MM-Vet grader prompt, score parse, failure rule and official tables, checked against the official files."""

import json

import pytest

from evalkit.tasks.mmvet.data import (
    capabilities_from_grades,
    grade_scores,
    read_answers,
    read_grades,
    read_score_csv,
)
from evalkit.tasks.mmvet.protocol import (
    GRADER_PROMPT,
    MAX_TRIES,
    RETRY_SUFFIX,
    Grade,
    grader_message,
    grader_request,
    integration_key,
    integration_name,
    official_round,
    parse_score,
    resolve_grade,
    summarize,
    total_estimate,
)
from evalkit.types import UserError

RESULTS = "mm_vet/llava_eval_zip/results"


def test_grader_prompt_is_the_official_text():
    assert len(GRADER_PROMPT) == 2290  # aligned with the official file's offsets
    assert GRADER_PROMPT.startswith("Compare the ground truth and prediction from AI models, to give a")
    lines = GRADER_PROMPT.split("\n")
    assert lines[2:4] == ["Question | Ground truth | Prediction | Correctness", "--- | --- | --- | ---"]
    examples = lines[4:-1]
    assert len(examples) == 7 and [e.rsplit(" | ", 1)[1] for e in examples] == [
        "0.0", "0.5", "0.5", "0.5", "1.0", "0.4", "1.0"
    ]  # fmt: skip
    assert GRADER_PROMPT.endswith("physical characteristics. | 1.0\n")


def test_grader_message_spaces_out_and_or_and_leaves_the_last_cell_open():
    msg = grader_message("What is x?", "-1<AND>-5<OR>3", "x = 3")
    assert msg == GRADER_PROMPT + "\nWhat is x? | -1 <AND> -5 <OR> 3 | x = 3 | "
    assert grader_message("q", "a", "p", retry=True) == GRADER_PROMPT + "\nq | a | p | " + RETRY_SUFFIX


def test_grader_requests_raise_the_temperature_after_the_first_re_ask():
    temps = [grader_request("q", "a", "p", i)[1].temperature for i in range(MAX_TRIES)]
    assert temps == [0.0, 0.0, 0.5, 1.0, 1.5]
    (first,), config = grader_request("q", "a", "p", 0)
    assert first.role == "user" and not first.text.endswith(RETRY_SUFFIX) and config.max_new_tokens == 3
    assert grader_request("q", "a", "p", 1)[0][0].text.endswith(RETRY_SUFFIX)
    with pytest.raises(ValueError):
        grader_request("q", "a", "p", MAX_TRIES)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("0.5", 0.5),
        ("1.0", 1.0),
        ("0", 0.0),
        ("1", 1.0),
        (".5", 0.5),
        ("0.5\n", 0.5),  # strip after the split
        ("0.7 because", 0.7),  # only the first space-separated token counts
        (" 0.5", None),  # a leading space makes the first token empty
        ("0.5\nok", None),  # newlines are not separators
        ("0.5,", None),
        ("1.5", None),
        ("-0.1", None),
        ("Correct", None),
        ("", None),
        (None, None),
        ("nan", None),  # deliberate: the official range check lets NaN through
    ],
)
def test_parse_score(content, expected):
    assert parse_score(content) == expected


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        (["0.7"], Grade(0.7, 1, False)),
        (["Sure", "0.3"], Grade(0.3, 2, False)),
        ([None, "x", "1.0", "0.2"], Grade(1.0, 3, False)),
        (["x"] * 5, Grade(0.0, 5, True)),
        (["x"] * 5 + ["0.9"], Grade(0.0, 5, True)),  # a sixth output is never parsed
    ],
)
def test_failure_rule(outputs, expected):
    assert resolve_grade(outputs) == expected


@pytest.mark.parametrize("n", [0, 1, 4])
def test_failure_rule_asks_again_before_five_failures(n):
    assert resolve_grade(["no"] * n) is None


def test_official_round_is_numpy_rounding():
    assert official_round(0.15) == 0.2 and round(0.15, 1) == 0.1
    assert official_round(0.35) == 0.4 and round(0.35, 1) == 0.3
    assert official_round(0.25) == 0.2  # half to even
    assert official_round(36.14678899082568) == 36.1


def _toy():
    scores = {"a": [1.0, 0.5], "b": [0.0, 1.0], "c": [0.5, 0.5], "d": [1.0, 1.0]}
    caps = {"a": ["rec"], "b": ["ocr", "rec"], "c": ["spat", "ocr"], "d": ["rec"]}
    return scores, caps


def test_tables_by_hand():
    scores, caps = _toy()
    s = summarize(scores, caps)
    # run totals 62.5 and 75.0; mean 68.75 → 68.8 and std 6.25 → 6.2 (numpy rounds halves to even)
    assert (s.total, s.std, s.runs, s.n_items) == (68.8, 6.2, (62.5, 75.0), 4)
    # rec: a, b, d → (2/3, 2.5/3) → 75.0; ocr: b, c → (25, 75) → 50.0; spat: c → 50.0; most frequent first
    assert list(s.capabilities.items()) == [("rec", 75.0), ("ocr", 50.0), ("spat", 50.0)]
    # integration sets: {rec}: a, d → (100, 75); {rec, ocr}: b → (0, 100); {ocr, spat}: c → 50
    assert list(s.integrations.items()) == [("rec", 87.5), ("rec_ocr", 50.0), ("ocr_spat", 50.0)]
    assert s.capability_counts == {"rec": 3, "ocr": 2, "spat": 1}
    assert s.integration_counts == {"rec": 2, "rec_ocr": 1, "ocr_spat": 1}
    first = summarize(scores, caps, num_runs=1)
    assert (first.total, first.std, first.runs, first.capabilities["rec"]) == (62.5, 0.0, (62.5,), 66.7)


def test_tables_without_metadata_give_the_total_only():
    scores, _ = _toy()
    s = summarize(scores)
    assert (s.total, s.runs, s.capabilities, s.integrations) == (68.8, (62.5, 75.0), {}, {})


def test_tables_reject_grades_that_do_not_cover_the_metadata():
    scores, caps = _toy()
    with pytest.raises(UserError, match="1 metadata items have no grade"):
        summarize({k: v for k, v in scores.items() if k != "d"}, caps)
    with pytest.raises(UserError, match="different numbers of runs"):
        summarize({**scores, "d": [1.0]}, caps)
    assert summarize({**scores, "d": [1.0]}, caps, num_runs=1).runs == (62.5,)


def test_integration_names_ignore_order():
    assert integration_name({"spat", "ocr", "rec"}) == "rec_ocr_spat"
    assert integration_key("spat_rec_ocr_gen") == integration_key("rec_ocr_gen_spat")


def test_grade_file_errors_name_the_file_and_item(tmp_path):
    path = tmp_path / "g.json"
    with pytest.raises(UserError, match="file not found"):
        read_grades(path)
    for body, msg in [
        ("[1]", "expected a JSON object"),
        ('{"v1_0": {"score": [1.5]}}', "'v1_0'.*numbers in \\[0, 1\\]"),
        ('{"v1_0": {"score": [1.0], "content": ["1.0", "1.0"]}}', "'v1_0'.*differ in length"),
        ('{"v1_0": {"content": ["1.0"]}}', "'v1_0'.*'score' list"),
        ("{", "malformed JSON"),
    ]:
        path.write_text(body)
        with pytest.raises(UserError, match=msg) as err:
            read_grades(path)
        assert str(path) in str(err.value)


def test_grade_file_may_carry_capabilities(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"v1_0": {"score": [1.0], "capability": ["rec"]}, "v1_1": {"score": [0.0]}}))
    assert capabilities_from_grades(read_grades(path)) is None
    path.write_text(json.dumps({"v1_0": {"score": [1.0], "capability": ["rec", "ocr"]}}))
    assert capabilities_from_grades(read_grades(path)) == {"v1_0": ("rec", "ocr")}


# ------------------------------------------------------------------------------------ official files


def _csv_cells(shared, name):
    return read_score_csv(shared / RESULTS / name)["llava-v1.5-13b"]


@pytest.mark.parametrize("runs", [1, 3])
def test_official_13b_tables_reproduce_every_cell_computable_without_metadata(shared, runs):
    grades = read_grades(shared / RESULTS / f"llava-v1.5-13b_gpt-4-grade-{runs}runs.json")
    assert len(grades) == 218 and capabilities_from_grades(grades) is None  # the file has no capabilities
    s = summarize(grade_scores(grades))
    for table in ("cap-score", "cap-int-score"):
        cells = _csv_cells(shared, f"llava-v1.5-13b_gpt-4-{table}-{runs}runs.csv")
        assert (s.total, s.std, s.runs) == (cells["total"], cells["std"], cells["runs"])
    assert (s.total, s.std, s.runs) == (
        (36.1, 0.0, (36.1,)) if runs == 1 else (36.3, 0.2, (36.1, 36.5, 36.3))
    )


def test_published_13b_number_is_the_first_run(shared):
    """MODEL_ZOO prints 36.1: the 1-run file, also run 1 of the 3-run file (whose mean is 36.3)."""
    grades = grade_scores(read_grades(shared / RESULTS / "llava-v1.5-13b_gpt-4-grade-3runs.json"))
    assert summarize(grades, num_runs=1).total == 36.1
    single = grade_scores(read_grades(shared / RESULTS / "llava-v1.5-13b_gpt-4-grade-1runs.json"))
    assert summarize(single).total == 36.1
    est = total_estimate(grades)
    assert (
        est.value == pytest.approx(sum(summarize(grades).run_totals) / 3) and est.ci_low < 36.3 < est.ci_high
    )


def test_official_grades_parse_on_the_first_try(shared):
    for runs in (1, 3):
        for item in read_grades(shared / RESULTS / f"llava-v1.5-13b_gpt-4-grade-{runs}runs.json").values():
            for content, score in zip(item.contents, item.scores, strict=True):
                assert resolve_grade([content]) == Grade(score, 1, False)


def test_official_7b_total(shared):
    path = shared / RESULTS / "llava-v1.5-7b_gpt-4-grade-3runs.json"
    if not path.is_file():
        pytest.skip(f"{path.name} is not in shared/benchmarks (LLaVA fork 32cebc3 has it)")
    s = summarize(grade_scores(read_grades(path)))
    assert (s.total, s.std, s.runs) == (31.1, 0.2, (31.2, 30.8, 31.2))


def test_official_tables_with_metadata(shared):
    """Every cell of the official CSVs, when mm-vet.json (release zip, not in git) has been supplied."""
    from evalkit.tasks.mmvet.data import capabilities_of, read_metadata

    meta = next(
        (p for p in (shared / "mm_vet/mm-vet.json", shared / "mm_vet/mm-vet/mm-vet.json") if p.is_file()),
        None,
    )
    if meta is None:
        pytest.skip("mm-vet.json (MM-Vet release zip) is not in shared/benchmarks/mm_vet")
    caps = capabilities_of(read_metadata(meta))
    for runs in (1, 3):
        s = summarize(
            grade_scores(read_grades(shared / RESULTS / f"llava-v1.5-13b_gpt-4-grade-{runs}runs.json")), caps
        )
        cap_cells = _csv_cells(shared, f"llava-v1.5-13b_gpt-4-cap-score-{runs}runs.csv")
        assert s.capabilities == {k: v for k, v in cap_cells.items() if k not in ("total", "std", "runs")}
        int_cells = _csv_cells(shared, f"llava-v1.5-13b_gpt-4-cap-int-score-{runs}runs.csv")
        ours = {integration_key(k): v for k, v in s.integrations.items()}
        assert ours == {
            integration_key(k): v for k, v in int_cells.items() if k not in ("total", "std", "runs")
        }


def test_answer_formats_agree(shared):
    jsonl = read_answers(shared / "mm_vet/llava_eval_zip/answers/llava-v1.5-13b.jsonl")
    submission = read_answers(shared / RESULTS / "llava-v1.5-13b.json")
    assert len(jsonl) == 218 and jsonl == submission
    assert set(jsonl) == set(read_grades(shared / RESULTS / "llava-v1.5-13b_gpt-4-grade-1runs.json"))


def test_answer_file_errors(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"question_id": 0, "text": "x"}\n{"question_id": 0, "text": "y"}\n')
    with pytest.raises(UserError, match="a.jsonl:2: duplicate question_id 0"):
        read_answers(path)
    path = tmp_path / "a.json"
    path.write_text('{"v1_0": 3}')
    with pytest.raises(UserError, match="a.json: expected a JSON object"):
        read_answers(path)


def test_metadata_file(tmp_path):
    from evalkit.tasks.mmvet.data import capabilities_of, read_metadata

    path = tmp_path / "mm-vet.json"
    item = {"imagename": "v1_0.png", "question": "q", "answer": "a<OR>b", "capability": ["ocr", "math"]}
    path.write_text(json.dumps({"v1_0": item}))
    assert capabilities_of(read_metadata(path)) == {"v1_0": ("ocr", "math")}
    path.write_text(json.dumps({"v1_0": {**item, "capability": []}}))
    with pytest.raises(UserError, match="mm-vet.json: item 'v1_0': 'capability' must be a non-empty list"):
        read_metadata(path)
