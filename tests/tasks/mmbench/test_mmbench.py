"""MMBench without a model: VLMEvalKit's matching rules on hand-picked answers, circular groups and
per-category numbers computed by hand, the TSV loader on files written here (missing options, base64 PNGs,
VLMEvalKit's by-index images, legacy circular rows), and the errors for missing or malformed data.

Every expected value is worked out by hand from the official rules quoted in the comments."""

import random

import pytest
from PIL import Image
from support.mmbench import VLMEVAL_COLUMNS, png_b64, write_tsv

from evalkit.task import DataSpec
from evalkit.tasks.mmbench import MMBench
from evalkit.tasks.mmbench.protocol import can_infer, can_infer_option, can_infer_text, matcher_prompt
from evalkit.types import UserError

CHOICES = {"A": "cat", "B": "dog", "C": "teddy bear", "D": "rabbit"}
LEGACY_COLUMNS = [
    "index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source", "l2-category",
    "comment", "split",
]  # fmt: skip


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("A", "A"),
        ("(B)", "B"),
        ("B. dog", "B"),
        ("The answer is C.", "C"),  # one letter, among the last four words
        ("I choose D", "D"),
        ("A and B", None),  # two letters, no "answer is"
        # one letter, but the first word of 13: not among the last four (index 0 > 13 - 5 fails)
        ("C is correct because the cat is on the mat near the dog", None),
        ("The correct answer is **B**, not A or C at all", "B"),  # three letters: the "answer is" regex
        ("the answer is a dog", None),  # the regex wants a capital letter standing alone
        ("Z", "Z"),  # no option letter, a lone Z
        ("Cannot determine the answer from the image", "Z"),  # a listed refusal
        ("Failed to obtain answer via API. A", None),
        ("E", None),  # not an option
    ],
)
def test_can_infer_option_reads_the_letter_as_vlmevalkit_does(answer, expected):
    assert can_infer_option(answer, CHOICES) == expected


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("a cute teddy bear", "C"),
        ("TEDDY BEAR", "C"),  # lower-cased on both sides
        ("a cat or a dog", None),  # two options' texts
        ("spider", None),
        # only "teddy bear" occurs, but 51 characters > 2 × (3 + 3 + 10 + 6) = 44
        ("it is definitely the teddy bear sitting on the sofa", None),
    ],
)
def test_can_infer_text_matches_one_option_text(answer, expected):
    assert can_infer_text(answer, CHOICES) == expected


def test_can_infer_tries_the_letter_first():
    assert can_infer("B, the teddy bear", CHOICES) == "B"  # letter B wins over the text of C
    assert can_infer("the teddy bear", CHOICES) == "C"


def test_matcher_prompt_is_the_official_build_prompt():
    expected = (
        "You are an AI assistant who will help me to match an answer with several options of a single-choice "
        "question. You are provided with a question, several options, and an answer, and you need to find "
        "which option is most similar to the answer. If the meaning of all options are significantly "
        "different from the answer, output Z. Your should output a single uppercase character in A, B, C, D "
        "(if they are valid options), and Z. \n"
        "Example 1: \n"
        "Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
        "Answer: a cute teddy bear\nYour output: A\n"
        "Example 2: \n"
        "Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
        "Answer: Spider\nYour output: Z\n"
        "Example 3: \n"
        "Question: Which animal is it??\n"
        "Options: There are several options: \nA. cat\nB. dog\nC. teddy bear\nD. rabbit\n\n"
        "Answer: a fluffy toy\nYour output: "
    )
    assert matcher_prompt("Which animal is it?", CHOICES, "a fluffy toy") == expected


# ---------------------------------------------------------------------------------- scoring rows


def row(index, options, answer, response, outputs=(), category="cat_x", l2="L1", runs=None):
    """A stored row as a run writes it (generation fields, meta, judge record)."""
    g, k = index % 1_000_000, index // 1_000_000
    meta = {
        "index": index,
        "g_index": g,
        "pass": k,
        "question": f"question {g}",
        "hint": None,
        "options": options,
        "category": category,
        "l2_category": l2,
        "split": "dev",
        "built": k > 0,
    }
    judge = {"outputs": runs if runs is not None else [list(outputs)]}
    r = {"id": str(index), "response": response, "target": answer, "cluster": str(g), "meta": meta}
    return {**r, "judge": judge}


def scored(task, rows):
    return [{**r, **task.score_row(r)} for r in rows]


def hand_rows():
    q1 = [  # answer "dog"; the last rotation is read by the matcher as B, which is wrong
        row(1, {"A": "cat", "B": "dog", "C": "bird", "D": "fish"}, "B", "B"),
        row(1_000_001, {"A": "dog", "B": "bird", "C": "fish", "D": "cat"}, "A", "The answer is A."),
        row(2_000_001, {"A": "bird", "B": "fish", "C": "cat", "D": "dog"}, "D", "dog"),  # by its text
        row(3_000_001, {"A": "fish", "B": "cat", "C": "dog", "D": "bird"}, "C", "I am not sure", ["B"]),
    ]
    q2 = [  # two options; the matcher's first output is unreadable, the second says B
        row(2, {"A": "yes", "B": "no"}, "A", "A"),
        row(1_000_002, {"A": "no", "B": "yes"}, "B", "hmm", ["unclear", "B"]),
    ]
    q3 = [  # three unreadable matcher outputs on the last pass: the seeded draw decides
        row(3, {"A": "red", "B": "green", "C": "blue"}, "B", "B", category="cat_y", l2="L2"),
        row(1_000_003, {"A": "green", "B": "blue", "C": "red"}, "A", "(A) green", category="cat_y", l2="L2"),
        row(
            2_000_003,
            {"A": "blue", "B": "red", "C": "green"},
            "C",
            "unsure",
            ["?", "??", "???"],
            category="cat_y",
            l2="L2",
        ),
    ]
    return q1 + q2 + q3


def test_circular_groups_and_categories_by_hand():
    task = MMBench()
    rows = scored(task, hand_rows())
    by_id = {r["id"]: r for r in rows}
    assert [by_id[i]["methods"] for i in ("1", "1000001", "2000001", "3000001")] == [
        ["rule"],
        ["rule"],
        ["rule"],
        ["llm"],
    ]
    assert by_id["3000001"]["preds"] == ["B"] and by_id["3000001"]["correct"] == [False]
    assert by_id["1000002"]["matcher_tries"] == [2] and by_id["1000002"]["matcher_parsed"] == [[None, "B"]]
    # the official fallback draws among the options and Z; here from Random("mmbench:2680:<index>:<run>")
    draw = random.Random("mmbench:2680:2000003:0").choice(["A", "B", "C", "Z"])
    assert draw == "C"
    assert by_id["2000003"]["methods"] == ["random"] and by_id["2000003"]["preds"] == [draw]
    assert by_id["2000003"]["matcher_parsed"] == [[None, None, None]]
    assert by_id["2000003"]["fallback_seeds"] == ["mmbench:2680:2000003:0"]
    assert by_id["1"]["fallback_seeds"] == [None]

    metrics = task.aggregate(rows)
    values = {k: m["value"] for k, m in metrics.items()}
    assert values == pytest.approx(
        {
            "overall": 200 / 3,  # question 1 misses (one wrong rotation), 2 and 3 hit
            "vanilla": 100.0,  # every first pass is right
            "category/cat_x": 50.0,
            "category/cat_y": 100.0,
            "l2/L1": 50.0,
            "l2/L2": 100.0,
            "split/dev": 200 / 3,
            "passes/rule": 6.0,
            "passes/llm": 2.0,
            "passes/random": 1.0,
            "matcher_unparsed": 4.0,  # "unclear", "?", "??", "???"
        }
    )
    assert metrics["overall"]["n"] == 3 and metrics["category/cat_x"]["n"] == 2
    assert metrics["passes/rule"]["n"] == 9 and metrics["matcher_unparsed"]["n"] == 6
    low, high = metrics["overall"]["ci_low"], metrics["overall"]["ci_high"]
    assert 0.0 <= low <= 200 / 3 <= high <= 100.0


def test_judge_runs_are_scored_apart_and_averaged():
    task = MMBench()
    rows = [  # run 0 reads every pass right; run 1's matcher reads the second pass as A (wrong)
        row(5, {"A": "up", "B": "down"}, "A", "A", runs=[[], []]),
        row(1_000_005, {"A": "down", "B": "up"}, "B", "no idea", runs=[["B"], ["A"]]),
    ]
    rows = scored(task, rows)
    assert rows[1]["preds"] == ["B", "A"] and rows[1]["correct"] == [True, False]
    assert task.aggregate(rows)["overall"]["value"] == pytest.approx(50.0)


def test_the_fallback_is_uniform_over_the_options_and_z():
    from evalkit.tasks.mmbench.protocol import fallback_choice

    draws = [fallback_choice({"A": "x", "B": "y"}, str(i), 0) for i in range(3000)]
    counts = {c: draws.count(c) for c in "ABZ"}
    assert set(draws) == {"A", "B", "Z"} and all(900 < n < 1100 for n in counts.values())
    assert fallback_choice({"A": "x", "B": "y"}, "7", 1) == fallback_choice({"A": "x", "B": "y"}, "7", 1)


# ------------------------------------------------------------------------------------------ TSV


def vlmeval_rows():
    base = {"category": "c1", "l2-category": "L", "split": "dev", "source": "s", "comment": ""}
    return [
        {**base, "index": 1, "question": "What animal is shown?", "hint": "A farm scene.", "A": "cow",
         "B": "horse", "C": "", "D": "nan", "answer": "B", "image": png_b64((255, 0, 0))},
        # "None" is NaN to pandas >= 2; the image is a reference to index 1 (VLMEvalKit's TSVs)
        {**base, "index": 2, "question": "Which colour?", "hint": "NA", "A": "red", "B": "green",
         "C": "blue", "D": "None", "answer": "C", "image": "1", "category": "c2"},
        {**base, "index": 3, "question": 'A "quoted" one?', "hint": "", "A": "w", "B": "x", "C": "y",
         "D": "z", "answer": "D", "image": png_b64((0, 0, 255))},
    ]  # fmt: skip


def load(tmp_path, **options):
    spec = DataSpec(
        data_dir=tmp_path / "data",
        image_dir=tmp_path / "images",
        options={f"mmbench.{k}": v for k, v in options.items()},
    )
    return MMBench().load(spec)


def test_tsv_loads_missing_options_images_and_builds_the_rotations(tmp_path):
    write_tsv(tmp_path / "data" / "MMBench_DEV_EN.tsv", vlmeval_rows())
    data = load(tmp_path)
    ids = [s.id for s in data.samples]
    assert ids == ["1", "1000001", "2", "1000002", "2000002", "3", "1000003", "2000003", "3000003"]
    by_id = {s.id: s for s in data.samples}
    assert by_id["1"].meta["options"] == {"A": "cow", "B": "horse"}
    assert by_id["1"].messages[0].text == (
        "A farm scene.\nWhat animal is shown?\nA. cow\nB. horse\n"
        "Answer with the option's letter from the given choices directly."
    )
    assert by_id["1000001"].meta["options"] == {"A": "horse", "B": "cow"} and by_id["1000001"].target == "A"
    assert by_id["2"].meta["hint"] is None and by_id["2"].meta["options"] == {
        "A": "red",
        "B": "green",
        "C": "blue",
    }
    # blue (C) moves to B, then to A
    assert by_id["1000002"].meta["options"] == {"A": "green", "B": "blue", "C": "red"}
    assert [by_id[i].target for i in ("2", "1000002", "2000002")] == ["C", "B", "A"]
    assert [by_id[i].target for i in ("3", "1000003", "2000003", "3000003")] == ["D", "C", "B", "A"]
    assert by_id["3"].meta["question"] == 'A "quoted" one?'
    assert by_id["2"].meta["category"] == "c2" and by_id["1000002"].cluster == "2"
    image_1, image_2, image_3 = (by_id[i].messages[0].images[0] for i in ("1", "2", "3"))
    assert image_1 == image_2 and image_1 != image_3  # one file per distinct image
    assert image_1.startswith(str(tmp_path / "images"))
    with Image.open(image_1) as im:
        assert im.convert("RGB").getpixel((1, 1)) == (255, 0, 0)
    assert data.info["questions"] == 3 and data.info["passes"] == 9
    assert data.info["circular"].startswith("built")

    vlm = {s.id: s for s in load(tmp_path, prompt="vlmevalkit").samples}
    assert vlm["1"].messages[0].text == (
        "Hint: A farm scene.\nQuestion: What animal is shown?\nOptions:\nA. cow\nB. horse\n"
        "Please select the correct answer from the options above. \n"
    )
    assert [s.id for s in load(tmp_path, circular="off").samples] == ["1", "2", "3"]
    assert [s.id for s in MMBench().load(DataSpec(data_dir=tmp_path / "data", limit=4)).samples] == [
        "1",
        "1000001",
        "2",
        "1000002",
    ]


def test_legacy_tsv_keeps_its_own_circular_rows(tmp_path):
    base = {"category": "c", "l2-category": "L", "split": "dev", "source": "s", "comment": "", "hint": "nan"}
    image = png_b64((0, 255, 0))
    rows = [  # the file's order: base rows first, then each rotation
        {**base, "index": 7, "question": "Q?", "A": "p", "B": "q", "answer": "A", "image": image},
        {**base, "index": 8, "question": "R?", "A": "s", "B": "t", "C": "u", "answer": "C", "image": image},
        {**base, "index": 1_000_007, "question": "Q?", "A": "q", "B": "p", "answer": "B", "image": image},
        {**base, "index": 1_000_008, "question": "R?", "A": "t", "B": "u", "C": "s", "answer": "B",
         "image": image},
    ]  # fmt: skip
    write_tsv(tmp_path / "data" / "mmbench_dev_20230712.tsv", rows, LEGACY_COLUMNS)
    data = load(tmp_path)
    assert [s.id for s in data.samples] == ["7", "1000007", "8", "1000008"]  # nothing built
    assert data.info["circular"] == "from the file"
    assert {s.id: s.target for s in data.samples} == {"7": "A", "1000007": "B", "8": "C", "1000008": "B"}
    assert all(s.meta["built"] is False for s in data.samples)


def test_test_split_has_no_answers_and_no_matcher(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "answer"} for r in vlmeval_rows()]
    columns = [c for c in VLMEVAL_COLUMNS if c != "answer"]
    write_tsv(tmp_path / "data" / "MMBench_TEST_EN.tsv", rows, columns)
    task = MMBench()
    data = load(tmp_path, split="test")
    assert data.info["answers"] == "hidden" and all(s.target is None for s in data.samples)
    sample = data.samples[0]
    stored = {"id": sample.id, "response": "no letter here", "target": None, "meta": sample.meta}
    assert task.judge_calls(stored, [], 1) == []
    assert task.score_row({**stored, "judge": {"outputs": [[]]}})["correct"] is None
    metrics = task.aggregate([{**stored, "correct": None}])
    assert "overall" not in metrics and metrics["passes/unscored"]["value"] == 1.0


def test_missing_and_malformed_data_name_the_file(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(UserError, match=r"MMBench_DEV_EN\.tsv \(VLMEvalKit: opencompass\.openxlab\.space.*"):
        load(tmp_path)
    with pytest.raises(UserError, match=r"mmbench_dev_20230712\.tsv"):
        load(tmp_path)
    with pytest.raises(UserError, match=r"MMBench_TEST_EN\.tsv"):
        load(tmp_path, split="test")
    with pytest.raises(UserError, match=r"not found: .*nope\.tsv"):
        load(tmp_path, file="nope.tsv")
    with pytest.raises(UserError, match=r"--data toy, or --data-dir"):
        MMBench().load(DataSpec())
    with pytest.raises(UserError, match=r"mmbench\.split=val: expected one of dev, test"):
        load(tmp_path, split="val")
    with pytest.raises(UserError, match=r"mmbench\.colour"):
        load(tmp_path, colour="red")
    write_tsv(tmp_path / "data" / "MMBench_DEV_EN.tsv", [{"index": 1}], ["index", "question", "A"])
    with pytest.raises(UserError, match=r"MMBench_DEV_EN\.tsv: not an MMBench TSV \(no column 'B'"):
        load(tmp_path)
    bad = vlmeval_rows()
    bad[1]["image"] = "9"  # refers to an index that does not exist
    write_tsv(tmp_path / "data" / "MMBench_DEV_EN.tsv", bad)
    with pytest.raises(UserError, match=r"index 2: image refers to index 9"):
        load(tmp_path)


def test_toy_data_is_official_schema_and_true_to_the_scenes():
    from evalkit.toy.world import STYLE

    data = MMBench().load(DataSpec(toy=True))
    first = [s for s in data.samples if s.meta["pass"] == 0]
    kinds = {s.meta["category"] for s in first}
    assert kinds == {"image_topic", "attribute_recognition", "object_localization", "spatial_relationship"}
    # 48 scenes, 8 with a second question; 12 or 16 questions of each kind × their 3, 4, 4, 2 options
    assert len(first) == 56 and len(data.samples) == 12 * 3 + 16 * 4 + 12 * 4 + 16 * 2
    assert data.info["circular"].startswith("built")
    names = {(230, 25, 25): "red", (40, 80, 230): "blue", (245, 245, 245): "white", (140, 80, 30): "brown"}
    names |= {(240, 220, 30): "yellow", (40, 180, 40): "green", (220, 40, 200): "magenta"}
    names |= {(30, 210, 220): "cyan", (250, 140, 20): "orange", (120, 50, 180): "purple"}
    names |= {(128, 128, 128): "grey", (250, 160, 190): "pink"}
    checked = 0
    for s in first:
        if s.meta["category"] != "attribute_recognition":
            continue
        obj = s.meta["question"].removeprefix("What colour is the ").removesuffix("?")
        right = s.meta["options"][s.target]
        assert right == names[STYLE[obj][1]]
        with Image.open(s.messages[0].images[0]) as im:  # the scene really shows that colour
            assert STYLE[obj][1] in {c for _, c in im.convert("RGB").getcolors(4096)}
        checked += 1
    assert checked == 16


def test_toy_runs_without_a_matcher_and_real_data_with_one():
    """The toy world has no LLM offline: an unread pass goes straight to the seeded random fallback."""
    task = MMBench()
    data = task.load(DataSpec(toy=True))
    assert data.info["matcher"] == "none"
    sample = data.samples[0]
    row = {"id": sample.id, "response": "no idea", "target": sample.target, "meta": sample.meta}
    assert task.judge_calls(row, [], 1) == []
    scored = task.score_row({**row, "judge": task.judge_record(row, [], 1)})
    assert scored["methods"] == ["random"]
    llm = {**row, "meta": {**sample.meta, "matcher": "llm"}}
    assert len(task.judge_calls(llm, [], 1)) == 1
