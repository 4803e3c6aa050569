"""POPE parser, metrics and official files, checked against hand-computed values."""

import json
import math

import pytest

from evalkit.interop.importer import import_answers
from evalkit.registry import get_task
from evalkit.task import DataSpec
from evalkit.tasks.pope.data import read_label_files
from evalkit.tasks.pope.protocol import SPLITS, confusion, metrics_from_counts, parse_answer
from evalkit.types import UserError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes", "yes"),
        ("No", "no"),
        ("no", "no"),
        ("NO", "yes"),  # case-sensitive, as the official script
        ("No.", "no"),
        ("Yes. There is no dog.", "yes"),  # only the text before the first '.' counts
        ("There is not a dog", "no"),
        ("No, there is none", "no"),  # the comma is removed before splitting
        ("Nope", "yes"),
        ("", "yes"),  # empty and garbage count as yes
        ("nothing", "yes"),
        ("I do not know", "no"),
        ("no\nthe image", "yes"),  # split on ' ' only: 'no\nthe' is one word
    ],
)
def test_parser_follows_the_official_rule(text, expected):
    assert parse_answer(text) == expected


def test_metrics_from_a_hand_computed_confusion_matrix():
    preds = ["yes", "yes", "yes", "no", "no", "yes", "no", "no", "no", "yes"]
    labels = ["yes", "yes", "no", "yes", "no", "yes", "no", "no", "yes", "no"]
    c = confusion(preds, labels)
    assert c == {"tp": 3, "fp": 2, "tn": 3, "fn": 2}
    m = metrics_from_counts(**c)
    assert m["acc"] == pytest.approx(6 / 10)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(3 / 5)
    assert m["f1"] == pytest.approx(0.6)
    assert m["yes_ratio"] == pytest.approx(5 / 10)


def test_aggregate_matches_hand_computed_values_per_split():
    task = get_task("pope")
    # random: tp=2 fp=1 tn=1 fn=0 ; popular: tp=1 fp=0 tn=2 fn=1
    cases = {
        "random": [("yes", "yes"), ("yes", "yes"), ("yes", "no"), ("no", "no")],
        "popular": [("yes", "yes"), ("no", "no"), ("no", "no"), ("no", "yes")],
    }
    rows = []
    for split, pairs in cases.items():
        for i, (pred, label) in enumerate(pairs):
            rows.append({"parsed": pred, "target": label, "cluster": f"img{i}", "meta": {"split": split}})
    m = task.aggregate(rows)
    f1_random = 2 * (2 / 3) * 1.0 / (2 / 3 + 1.0)
    f1_popular = 2 * 1.0 * 0.5 / 1.5
    assert m["random/f1"]["value"] == pytest.approx(100 * f1_random)
    assert m["popular/f1"]["value"] == pytest.approx(100 * f1_popular)
    assert m["popular/acc"]["value"] == pytest.approx(75.0)
    assert m["random/yes_ratio"]["value"] == pytest.approx(75.0)
    assert m["f1_mean"]["value"] == pytest.approx(100 * (f1_random + f1_popular) / 2)
    assert m["f1_mean"]["n"] == 8 and m["random/acc"]["n"] == 4
    assert "adversarial/f1" not in m


def test_mean_of_splits_and_pooled_metrics_by_hand():
    """Splits of different sizes, so the mean over the splits and the pooled value differ."""
    task = get_task("pope")
    # random (2 rows): tp=1 tn=1 ; popular (6 rows): tp=1 fp=2 tn=1 fn=2
    cases = {
        "random": [("yes", "yes"), ("no", "no")],
        "popular": [("yes", "yes"), ("yes", "no"), ("yes", "no"), ("no", "no"), ("no", "yes"), ("no", "yes")],
    }
    rows = [
        {"parsed": pred, "target": label, "cluster": f"{split}{i}", "meta": {"split": split}}
        for split, pairs in cases.items()
        for i, (pred, label) in enumerate(pairs)
    ]
    m = {k: v["value"] for k, v in task.aggregate(rows).items()}
    # per split: random acc 1, precision 1, recall 1, yes-ratio 1/2; popular acc 2/6, precision 1/3,
    # recall 1/3, yes-ratio 3/6
    assert m["acc_mean"] == pytest.approx(100 * (1 + 2 / 6) / 2)
    assert m["precision_mean"] == pytest.approx(100 * (1 + 1 / 3) / 2)
    assert m["recall_mean"] == pytest.approx(100 * (1 + 1 / 3) / 2)
    assert m["yes_ratio_mean"] == pytest.approx(50.0)
    # pooled: tp=2 fp=2 tn=2 fn=2 over 8 rows
    assert m["pooled/acc"] == pytest.approx(50.0)
    assert m["pooled/precision"] == pytest.approx(50.0)
    assert m["pooled/recall"] == pytest.approx(50.0)
    assert m["pooled/f1"] == pytest.approx(50.0)
    assert m["pooled/yes_ratio"] == pytest.approx(50.0)
    assert m["acc_mean"] != pytest.approx(m["pooled/acc"])
    # the headline is still the mean of the splits' F1
    assert m["f1_mean"] == pytest.approx(100 * (1 + 1 / 3) / 2)
    # a yes-ratio is read as neither better nor worse, the rest as percentages where higher is better
    assert task.metric("yes_ratio_mean").direction == task.metric("pooled/yes_ratio").direction == 0
    assert (task.metric("pooled/f1").direction, task.metric("acc_mean").unit) == (1, "%")


@pytest.mark.parametrize(
    ("folder", "counts"), [("pope_repo_v2023-08-10", (2910, 3000, 3000)), ("output/coco", (3000, 3000, 3000))]
)
def test_official_files_load_with_their_counts(shared, folder, counts):
    splits, _ = read_label_files(shared / "pope" / folder)
    assert tuple(len(splits[s]) for s in SPLITS) == counts
    # positive questions are the same in every split, so recall agrees across splits (a sanity check)
    positives = {s: [(r["image"], r["text"]) for r in splits[s] if r["label"] == "yes"] for s in SPLITS}
    assert all(len(p) == 1500 for p in positives.values())
    assert positives["popular"] == positives["adversarial"]


def test_missing_images_give_one_clear_message(shared, tmp_path):
    task = get_task("pope")
    with pytest.raises(UserError, match="COCO val2014 images"):
        task.load(DataSpec(data_dir=shared / "pope" / "pope_repo_v2023-08-10", image_dir=tmp_path))
    with pytest.raises(UserError, match="coco_pope_random.json"):
        task.load(DataSpec(data_dir=tmp_path))


def test_malformed_question_line_names_file_and_line(tmp_path):
    for split in SPLITS:
        (tmp_path / f"coco_pope_{split}.json").write_text(
            '{"question_id": 1, "image": "a.jpg", "text": "Is there a cat in the image?", "label": "yes"}\n'
        )
    (tmp_path / "coco_pope_popular.json").write_text('{"question_id": 1, "image": "a.jpg"\n')
    with pytest.raises(UserError, match=r"coco_pope_popular.json:1: malformed JSON"):
        read_label_files(tmp_path)
    (tmp_path / "coco_pope_popular.json").write_text('{"question_id": 1, "image": "a.jpg", "text": "x"}\n')
    with pytest.raises(UserError, match=r"coco_pope_popular.json:1: missing field 'label'"):
        read_label_files(tmp_path)


def _write_answers(shared, path, flip_yes_every, flip_no_every):
    """LLaVA-format answers to the 8,910 official questions, each correct except planned flips.

    Returns the expected confusion counts per split, counted while building (not by the parser)."""
    questions = [json.loads(line) for line in open(shared / "pope/llava_eval_zip/llava_pope_test.jsonl")]
    labels = {
        s: [json.loads(line) for line in open(shared / f"pope/pope_repo_v2023-08-10/coco_pope_{s}.json")]
        for s in SPLITS
    }
    seen = {s: 0 for s in SPLITS}
    expected = {s: {"tp": 0, "fp": 0, "tn": 0, "fn": 0} for s in SPLITS}
    with open(path, "w") as f:
        for q in questions:
            split = q["category"]
            label = labels[split][seen[split]]["label"]
            k = seen[split]
            seen[split] += 1
            if label == "yes":
                wrong = k % flip_yes_every[split] == 0
                text, key = ("No, there is not.", "fn") if wrong else ("Yes", "tp")
            else:
                wrong = k % flip_no_every[split] == 0
                text, key = ("Yes, there is a cat.", "fp") if wrong else ("No", "tn")
            expected[split][key] += 1
            f.write(json.dumps({"question_id": q["question_id"], "prompt": q["text"], "text": text}) + "\n")
    return expected


def test_import_reproduces_known_counts(shared, tmp_path):
    flips_yes = {"random": 7, "popular": 5, "adversarial": 3}
    flips_no = {"random": 11, "popular": 4, "adversarial": 2}
    answers = tmp_path / "answers.jsonl"
    expected = _write_answers(shared, answers, flips_yes, flips_no)
    result = import_answers(
        "pope",
        answers,
        tmp_path / "run",
        questions=shared / "pope/llava_eval_zip/llava_pope_test.jsonl",
        data_dir=shared / "pope/pope_repo_v2023-08-10",
    )
    m = result.metrics["pope"]["metrics"]
    f1s = []
    for split in SPLITS:
        c = expected[split]
        precision = c["tp"] / (c["tp"] + c["fp"])
        recall = c["tp"] / (c["tp"] + c["fn"])
        f1 = 2 * precision * recall / (precision + recall)
        f1s.append(f1)
        n = sum(c.values())
        assert m[f"{split}/precision"]["value"] == pytest.approx(100 * precision)
        assert m[f"{split}/recall"]["value"] == pytest.approx(100 * recall)
        assert m[f"{split}/f1"]["value"] == pytest.approx(100 * f1)
        assert m[f"{split}/acc"]["value"] == pytest.approx(100 * (c["tp"] + c["tn"]) / n)
        assert m[f"{split}/yes_ratio"]["value"] == pytest.approx(100 * (c["tp"] + c["fp"]) / n)
    assert m["f1_mean"]["value"] == pytest.approx(100 * sum(f1s) / 3)
    accs = [(expected[s]["tp"] + expected[s]["tn"]) / sum(expected[s].values()) for s in SPLITS]
    assert m["acc_mean"]["value"] == pytest.approx(100 * sum(accs) / 3)
    tp, fp, tn, fn = (sum(expected[s][key] for s in SPLITS) for key in ("tp", "fp", "tn", "fn"))
    assert tp + fp + tn + fn == 8910
    assert m["pooled/acc"]["value"] == pytest.approx(100 * (tp + tn) / 8910)
    assert m["pooled/precision"]["value"] == pytest.approx(100 * tp / (tp + fp))
    assert m["pooled/recall"]["value"] == pytest.approx(100 * tp / (tp + fn))
    assert m["pooled/f1"]["value"] == pytest.approx(100 * 2 * tp / (2 * tp + fp + fn))
    lo, hi = m["f1_mean"]["ci_low"], m["f1_mean"]["ci_high"]
    assert lo < m["f1_mean"]["value"] < hi and not math.isnan(lo)
    rows = [json.loads(line) for line in open(tmp_path / "run/samples/pope.jsonl")]
    assert len(rows) == 8910 and len({r["id"] for r in rows}) == 8910
    header = json.loads((tmp_path / "run/run.json").read_text())
    assert header["tasks"]["pope"]["data"]["version"].startswith("2023-08-10")


def test_import_refuses_mismatched_counts(shared, tmp_path):
    answers = tmp_path / "answers.jsonl"
    _write_answers(shared, answers, {s: 2 for s in SPLITS}, {s: 2 for s in SPLITS})
    lines = answers.read_text().splitlines()
    answers.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(UserError, match="matched to labels by order"):
        import_answers(
            "pope",
            answers,
            tmp_path / "run",
            questions=shared / "pope/llava_eval_zip/llava_pope_test.jsonl",
            data_dir=shared / "pope/pope_repo_v2023-08-10",
        )
