"""lmms-eval POPE logs as they come: recognised by their records whatever the file is called, and
lmms-eval's per-split run (`pope_random`, `pope_pop`, `pope_adv`: one file each) imported as one run. The
logs are written in the tracker's layout from the official POPE files; every expected number is counted
here from the answers written."""

import json
import subprocess
import sys
import warnings

import pytest
from support.lmms_eval import mmbench_records, pope_record, write_lmms_run

from evalkit.interop.importer import import_answers
from evalkit.tasks.pope.protocol import SPLITS
from evalkit.types import UserError

TASK_OF = {"random": "pope_random", "popular": "pope_pop", "adversarial": "pope_adv"}


@pytest.fixture
def labels(shared):
    folder = shared / "pope/output/coco"
    return {s: [json.loads(line) for line in open(folder / f"coco_pope_{s}.json")] for s in SPLITS}


@pytest.fixture
def data_dir(shared):
    return shared / "pope/output/coco"


def answer(split, k, label):
    """Mostly right, with flips that differ by split and label (the official parser reads a "No"/"not"
    as no, anything else as yes)."""
    every = {"random": 5, "popular": 3, "adversarial": 2}[split]
    if label == "yes":
        return "No, there is not." if k % (every + 2) == 0 else "Yes"
    return "Yes, there is one." if k % every == 0 else "No"


def records(labels, split):
    return [pope_record(k, row, answer(split, k, row["label"])) for k, row in enumerate(labels[split])]


def expected(labels, split):
    """The split's metrics in percent, counted from the answers written."""
    tp = fp = tn = fn = 0
    for k, row in enumerate(labels[split]):
        said_yes = answer(split, k, row["label"]).startswith("Yes")
        truth = row["label"] == "yes"
        tp, fp = tp + (said_yes and truth), fp + (said_yes and not truth)
        tn, fn = tn + (not said_yes and not truth), fn + (not said_yes and truth)
    n = tp + fp + tn + fn
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return {
        "acc": 100 * (tp + tn) / n,
        "precision": 100 * precision,
        "recall": 100 * recall,
        "f1": 100 * 2 * precision * recall / (precision + recall),
        "yes_ratio": 100 * (tp + fp) / n,
    }


def lmms_info(run_dir):
    return json.loads((run_dir / "run.json").read_text())["tasks"]["pope"]["data"]["lmms_eval"]


def test_a_locally_named_pope_log_imports_by_its_records(labels, data_dir, tmp_path):
    """`toypope` (a task defined locally, which lmms-eval cannot call `pope`) holding the random split:
    recognised by its pope_* records, its split found from the content."""
    (log,) = write_lmms_run(tmp_path / "logs", {"toypope": records(labels, "random")})
    assert log.name == "20260101_120000_samples_toypope.jsonl"
    with pytest.warns(
        UserWarning, match="official questions without an answer: popular 3000, adversarial 3000"
    ):
        got = import_answers("pope", log, tmp_path / "run", data_dir=data_dir)
    m = got.metrics["pope"]["metrics"]
    assert set(m) == {"f1_mean"} | {f"random/{k}" for k in expected(labels, "random")}
    for name, value in expected(labels, "random").items():
        assert m[f"random/{name}"]["value"] == pytest.approx(value)
    info = lmms_info(tmp_path / "run")
    assert info["task"] == "toypope" and info["matched"] == 3000 and info["ambiguous_records"] == 0
    assert [b["split"] for b in info["split_blocks"]] == ["random"]
    assert info["model"] == "llava_hf pretrained=m"


def test_a_log_whose_records_are_not_popes_is_refused_naming_what_is_missing(data_dir, tmp_path):
    mme = {
        "doc_id": 0,
        "target": "Yes",
        "filtered_resps": ["Yes"],
        "mme_percetion_score": {"question_id": "a"},
    }
    (log,) = write_lmms_run(tmp_path / "logs", {"pope": [mme]})  # named pope, holding another task's records
    with pytest.raises(UserError) as err:
        import_answers("pope", log, tmp_path / "run", data_dir=data_dir)
    message = str(err.value)
    assert "\n" not in message
    assert "its per-sample fields: mme_percetion_score" in message
    assert "pope records carry a pope_accuracy object (question_id, a yes/no ground_truth)" in message
    # an MMBench log called pope is MMBench's, whatever its name
    (mmb,) = write_lmms_run(tmp_path / "logs2", {"pope": mmbench_records()})
    with pytest.raises(UserError, match="which is evalkit's 'mmbench'; pass --task mmbench"):
        import_answers("pope", mmb, tmp_path / "run", data_dir=data_dir)


def test_the_per_split_run_imports_as_one_run(labels, data_dir, tmp_path):
    """pope_random, pope_pop and pope_adv of one lmms-eval run (an MMBench log beside them in the folder):
    given as the folder or as the three files, one run with the three splits, each scored as by hand."""
    logs = {TASK_OF[s]: records(labels, s) for s in ("adversarial", "popular", "random")}
    folder = tmp_path / "logs" / "llava_hf"
    files = write_lmms_run(folder, {**logs, "mmbench_en_dev": mmbench_records()})[:3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every record paired, every split logged: no warning
        got = import_answers("pope", folder, tmp_path / "run", data_dir=data_dir)
        again = import_answers("pope", list(reversed(files)), tmp_path / "again", data_dir=data_dir)
    m = got.metrics["pope"]["metrics"]
    for split in SPLITS:
        for name, value in expected(labels, split).items():
            assert m[f"{split}/{name}"]["value"] == pytest.approx(value)
    assert m["f1_mean"]["value"] == pytest.approx(sum(expected(labels, s)["f1"] for s in SPLITS) / 3)
    assert m["pooled/acc"]["value"] == pytest.approx(sum(expected(labels, s)["acc"] for s in SPLITS) / 3)
    assert again.metrics["pope"]["metrics"] == m
    info = lmms_info(tmp_path / "run")
    assert sorted(info["task"]) == ["pope_adv", "pope_pop", "pope_random"]
    assert info["matched"] == 9000 and info["records"] == 9000 and info["splits_without_log"] == []
    assert info["official_without_answer"] == {s: 0 for s in SPLITS}
    header = json.loads((tmp_path / "run/run.json").read_text())
    assert sorted(header["tasks"]["pope"]["data"]["inputs"]) == sorted(f.name for f in files)
    assert "partial" not in header["tasks"]["pope"]["data"]
    # identified by content: the same three files give the same identity, in whatever order
    other = json.loads((tmp_path / "again/run.json").read_text())
    assert other["model"]["fingerprint"] == header["model"]["fingerprint"]
    rows = [json.loads(line) for line in open(tmp_path / "run/samples/pope.jsonl")]
    assert len(rows) == 9000 and len({r["id"] for r in rows}) == 9000

    # the command line: --answers repeated
    cli = [sys.executable, "-m", "evalkit", "import", "--task", "pope", "--data-dir", str(data_dir), "--json"]
    done = subprocess.run(
        [*cli, *(x for f in files for x in ("--answers", str(f))), "--output", str(tmp_path / "cli")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    stored = json.loads((tmp_path / "cli/metrics.json").read_text())["pope"]["metrics"]
    assert {k: v["value"] for k, v in stored.items()} == {k: v["value"] for k, v in m.items()}


def test_a_missing_split_is_named_and_the_set_is_partial(labels, data_dir, tmp_path):
    files = write_lmms_run(
        tmp_path / "logs", {TASK_OF[s]: records(labels, s) for s in ("random", "adversarial")}
    )
    with pytest.warns(UserWarning, match=r"no log of split popular \(pope_pop\)"):
        got = import_answers("pope", files, tmp_path / "run", data_dir=data_dir)
    m = got.metrics["pope"]["metrics"]
    assert not any(k.startswith("popular/") for k in m)
    both = (expected(labels, "random")["f1"] + expected(labels, "adversarial")["f1"]) / 2
    assert m["f1_mean"]["value"] == pytest.approx(both)
    data = json.loads((tmp_path / "run/run.json").read_text())["tasks"]["pope"]["data"]
    assert data["lmms_eval"]["splits_without_log"] == ["popular (pope_pop)"]
    assert data["partial"]["answered"] == 6000 and data["partial"]["of"] == 9000


def test_duplicates_across_logs_are_refused(labels, data_dir, tmp_path):
    first = write_lmms_run(tmp_path / "a", {"pope_random": records(labels, "random")}, date="20260101_1")
    second = write_lmms_run(tmp_path / "b", {"pope_random": records(labels, "random")}, date="20260102_1")
    with pytest.raises(UserError, match="are both logs of lmms-eval task 'pope_random'; import one of them"):
        import_answers("pope", first + second, tmp_path / "r1", data_dir=data_dir)
    # pope (all splits) and pope_random answer the same random questions
    full = [pope_record(k, row, "Yes") for k, row in enumerate(labels["random"] + labels["popular"])]
    both = write_lmms_run(tmp_path / "c", {"pope": full, "pope_random": records(labels, "random")})
    with pytest.raises(UserError, match="POPE random question 1 is answered in .*samples_pope.jsonl too"):
        import_answers("pope", both, tmp_path / "r2", data_dir=data_dir)
    # the same file twice
    with pytest.raises(UserError, match="are both logs of lmms-eval task 'pope_random'"):
        import_answers("pope", first + first, tmp_path / "r3", data_dir=data_dir)


def test_logs_of_different_models_or_of_no_log_are_refused(labels, data_dir, tmp_path):
    a = write_lmms_run(tmp_path / "a", {"pope_random": records(labels, "random")}, model_args="pretrained=x")
    b = write_lmms_run(tmp_path / "b", {"pope_pop": records(labels, "popular")}, model_args="pretrained=y")
    with pytest.raises(UserError, match="the logs are of different models"):
        import_answers("pope", a + b, tmp_path / "r1", data_dir=data_dir)
    official = tmp_path / "answers.jsonl"
    official.write_text('{"question_id": 1, "text": "Yes"}\n')
    with pytest.raises(UserError, match="is not an lmms-eval samples log; several answer files"):
        import_answers("pope", [*a, official], tmp_path / "r2", data_dir=data_dir)
    empty = tmp_path / "empty"
    write_lmms_run(empty, {"mmbench_en_dev": mmbench_records()})
    with pytest.raises(UserError, match="no lmms-eval log of pope in this folder"):
        import_answers("pope", empty, tmp_path / "r3", data_dir=data_dir)


def test_a_local_task_over_the_toy_pope_set(tmp_path):
    """lmms-eval over evalkit's toy POPE set (a local task, `toypope`, its three splits in one log, doc
    dropped): each split recovered from the content and scored as by hand."""
    from evalkit.tasks.pope.toy import write_pope

    toy = write_pope(tmp_path / "toy", n_images=40)
    labels = {s: [json.loads(line) for line in open(toy / f"coco_pope_{s}.json")] for s in SPLITS}
    logged = [row for s in SPLITS for row in labels[s]]
    answers = [answer(s, k, row["label"]) for s in SPLITS for k, row in enumerate(labels[s])]
    (log,) = write_lmms_run(
        tmp_path / "logs",
        {"toypope": [pope_record(i, r, a) for i, (r, a) in enumerate(zip(logged, answers, strict=True))]},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = import_answers("pope", log, tmp_path / "run", data_dir=toy)
    m = got.metrics["pope"]["metrics"]
    for split in SPLITS:
        for name, value in expected(labels, split).items():
            assert m[f"{split}/{name}"]["value"] == pytest.approx(value)
    info = lmms_info(tmp_path / "run")
    assert [b["split"] for b in info["split_blocks"]] == list(SPLITS)
    assert info["matched"] == 3 * 240
