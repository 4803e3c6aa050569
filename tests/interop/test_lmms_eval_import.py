"""`evalkit import` of lmms-eval per-sample logs: records built here in lmms-eval's format from the official
files, scored by evalkit's rules and compared with the same answers imported through the official path."""

import hashlib
import json
import warnings

import pytest
from support.lmms_eval import mmbench_records

from evalkit.interop.importer import import_answers
from evalkit.scoring import rescore_run
from evalkit.tasks.pope.protocol import SPLITS
from evalkit.types import UserError

SUFFIX = "\nAnswer the question using a single word or phrase."


def _official(shared, folder):
    return {
        s: [json.loads(line) for line in open(shared / f"pope/{folder}/coco_pope_{s}.json")] for s in SPLITS
    }


def _answer(split, k, label):
    """A deterministic answer: mostly right, with flips that differ by split and by label."""
    every = {"random": 5, "popular": 3, "adversarial": 2}[split]
    if label == "yes":
        return "No, there is not." if k % (every + 2) == 0 else "Yes"
    return "Yes, there is one." if k % every == 0 else "No"


def _sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def _record(doc_id, row, split, text, *, with_doc):
    """One record as lmms-eval's tracker writes it (doc dropped), or as older logs keep it (with doc)."""
    pred = text.lower().strip()
    metric = {
        "question_id": str(row["question_id"]),
        "score": float(pred == row["label"]),
        "prediction": pred,
    }
    metric["ground_truth"] = row["label"]
    rec = {"doc_id": doc_id, "target": row["label"], "filtered_resps": [text], "doc_hash": _sha(row["text"])}
    rec.update(prompt_hash=_sha(row["text"] + SUFFIX), target_hash=_sha(row["label"]))
    rec.update({f"pope_{m}": metric for m in ("accuracy", "precision", "recall", "f1_score", "yes_ratio")})
    rec["input"] = row["text"] + SUFFIX
    if with_doc:
        rec["doc"] = {
            "id": str(doc_id),
            "question_id": str(row["question_id"]),
            "question": row["text"],
            "answer": row["label"],
            "image_source": row["image"].removesuffix(".jpg"),
            "category": split,
        }
    return rec


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _llava_files(tmp_path, labels):
    """The same answers in LLaVA's format: a question file with categories and an answer file."""
    questions, answers = [], []
    for split in SPLITS:
        for k, row in enumerate(labels[split]):
            qid = f"{split}/{row['question_id']}"
            questions.append({"question_id": qid, "text": row["text"] + SUFFIX, "category": split})
            answers.append({"question_id": qid, "text": _answer(split, k, row["label"])})
    return _write_jsonl(tmp_path / "q.jsonl", questions), _write_jsonl(tmp_path / "a.jsonl", answers)


def _values(metrics):
    return {k: v["value"] for k, v in metrics.items()}


def test_pope_log_without_docs_equals_the_official_path(shared, tmp_path):
    """lmms-eval's `pope` (9,000 records, no doc): the split of each record is recovered from the
    official files; every metric equals that of the same answers imported in LLaVA's format."""
    labels = _official(shared, "output/coco")
    records, doc_id = [], 0
    for split in ("adversarial", "popular", "random"):  # lmms-lab/POPE order is not assumed by the reader
        for k, row in enumerate(labels[split]):
            records.append(_record(doc_id, row, split, _answer(split, k, row["label"]), with_doc=False))
            doc_id += 1
    log = _write_jsonl(tmp_path / "2026-01-01T00-00-00_samples_pope.jsonl", records)
    config = {"model": "llava_hf", "model_args": "pretrained=llava-hf/llava-1.5-7b-hf"}
    (tmp_path / "2026-01-01T00-00-00_results.json").write_text(json.dumps({"results": {}, "config": config}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # everything is paired: no warning
        got = import_answers("pope", log, tmp_path / "lmms", data_dir=shared / "pope/output/coco")
    q, a = _llava_files(tmp_path, labels)
    ref = import_answers("pope", a, tmp_path / "llava", questions=q, data_dir=shared / "pope/output/coco")
    assert _values(got.metrics["pope"]["metrics"]) == _values(ref.metrics["pope"]["metrics"])
    # and by hand, for one split
    tp = fp = fn = 0
    for k, row in enumerate(labels["adversarial"]):
        said_yes = _answer("adversarial", k, row["label"]).startswith("Yes")
        tp += said_yes and row["label"] == "yes"
        fp += said_yes and row["label"] == "no"
        fn += not said_yes and row["label"] == "yes"
    f1 = 2 * tp / (2 * tp + fp + fn)
    assert got.metrics["pope"]["metrics"]["adversarial/f1"]["value"] == pytest.approx(100 * f1)
    # lmms-eval's `pope` reading: all 9,000 rows pooled, by hand with the official parser's outcome
    cells = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    for split in SPLITS:
        for k, row in enumerate(labels[split]):
            said_yes = _answer(split, k, row["label"]).startswith("Yes")
            cells[("t" if said_yes == (row["label"] == "yes") else "f") + ("p" if said_yes else "n")] += 1
    tp, fp, tn, fn = cells["tp"], cells["fp"], cells["tn"], cells["fn"]
    pooled = _values(got.metrics["pope"]["metrics"])
    assert pooled["pooled/acc"] == pytest.approx(100 * (tp + tn) / 9000)
    assert pooled["pooled/precision"] == pytest.approx(100 * tp / (tp + fp))
    assert pooled["pooled/recall"] == pytest.approx(100 * tp / (tp + fn))
    assert pooled["pooled/f1"] == pytest.approx(100 * 2 * tp / (2 * tp + fp + fn))
    header = json.loads((tmp_path / "lmms/run.json").read_text())
    info = header["tasks"]["pope"]["data"]["lmms_eval"]
    assert info["matched"] == 9000 and info["unmatched_records"] == 0 and info["ambiguous_records"] == 0
    assert info["official_without_answer"] == {s: 0 for s in SPLITS}
    assert header["model"]["fingerprint"]["format"] == "lmms-eval"
    assert header["model"]["fingerprint"]["lmms_eval_model"] == "llava_hf pretrained=llava-hf/llava-1.5-7b-hf"
    # labelled by content: the official name and a hash of the label files, the same whichever answer
    # format was imported (and the same as a run on those files)
    version = header["tasks"]["pope"]["data"]["version"]
    assert version.startswith("current #") and version == ref.header["tasks"]["pope"]["data"]["version"]
    rows = [json.loads(line) for line in open(tmp_path / "lmms/samples/pope.jsonl")]
    assert {r["id"] for r in rows} == {f"{s}-{r['question_id']}" for s in SPLITS for r in labels[s]}
    assert [b["split"] for b in info["split_blocks"]] == ["adversarial", "popular", "random"]
    assert rescore_run(tmp_path / "lmms")["pope"]["metrics"] == got.metrics["pope"]["metrics"]

    # the same log against the 2023-08-10 files: their random split was regenerated, so the random block
    # cannot be told apart and is left out (counted); the two other splits score as before
    with pytest.warns(UserWarning, match="3000 records could not be given a split"):
        old = import_answers("pope", log, tmp_path / "old", data_dir=shared / "pope/pope_repo_v2023-08-10")
    info = json.loads((tmp_path / "old/run.json").read_text())["tasks"]["pope"]["data"]["lmms_eval"]
    assert info["ambiguous_records"] == 3000 and info["matched"] == 6000
    assert info["official_without_answer"] == {"random": 2910, "popular": 0, "adversarial": 0}
    m_old, m_new = old.metrics["pope"]["metrics"], got.metrics["pope"]["metrics"]
    for split in ("popular", "adversarial"):
        assert m_old[f"{split}/f1"]["value"] == pytest.approx(m_new[f"{split}/f1"]["value"])
    both = (m_new["popular/f1"]["value"] + m_new["adversarial/f1"]["value"]) / 2
    assert m_old["f1_mean"]["value"] == pytest.approx(both)


def test_pope_split_log_against_other_version_counts_what_does_not_match(shared, tmp_path):
    """lmms-eval `pope_random` (3,000 HEAD questions, old JSON format with docs) against the 2023-08-10
    files, whose random split was regenerated: only rows that agree are scored; the rest are counted."""
    head = _official(shared, "output/coco")["random"]
    old = {r["question_id"]: r for r in _official(shared, "pope_repo_v2023-08-10")["random"]}
    logs = [
        _record(i, row, "random", _answer("random", i, row["label"]), with_doc=True)
        for i, row in enumerate(head)
    ]
    log = tmp_path / "pope_random.json"
    args = {"model": "llava", "model_args": "pretrained=liuhaotian/llava-v1.5-7b"}
    log.write_text(
        json.dumps({"args": args, "model_configs": {"task": "pope_random"}, "logs": logs}, indent=4)
    )

    def same(r):
        o = old.get(r["question_id"])
        norm = lambda t: " ".join(t.replace("imange", "image").lower().split())  # noqa: E731
        return o is not None and (norm(o["text"]), o["label"], o["image"]) == (
            norm(r["text"]),
            r["label"],
            r["image"],
        )

    matched = [r for r in head if same(r)]
    conflicting = sum(1 for r in head if r["question_id"] in old and not same(r))
    assert 0 < len(matched) < 2910
    with pytest.warns(UserWarning, match="records disagree with the official question"):
        got = import_answers("pope", log, tmp_path / "run", data_dir=shared / "pope/pope_repo_v2023-08-10")
    info = json.loads((tmp_path / "run/run.json").read_text())["tasks"]["pope"]["data"]["lmms_eval"]
    assert info["matched"] == len(matched)
    assert info["conflicting_records"] == conflicting
    assert info["unmatched_records"] == 3000 - len(matched) - conflicting
    assert info["official_without_answer"] == {
        "random": 2910 - len(matched),
        "popular": 3000,
        "adversarial": 3000,
    }
    assert info["task"] == "pope_random"  # from an older log's config
    assert info["model"] == "llava pretrained=liuhaotian/llava-v1.5-7b"
    version = json.loads((tmp_path / "run/run.json").read_text())["tasks"]["pope"]["data"]["version"]
    assert version.endswith(f"{len(matched)} of 8910 questions answered in the lmms-eval log")
    m = got.metrics["pope"]["metrics"]
    assert set(m) == {"f1_mean"} | {f"random/{k}" for k in ("acc", "precision", "recall", "f1", "yes_ratio")}
    k_of = {r["question_id"]: k for k, r in enumerate(head)}
    correct = sum(
        _answer("random", k_of[r["question_id"]], r["label"]).startswith(r["label"].title()) for r in matched
    )
    assert m["random/acc"]["value"] == pytest.approx(100 * correct / len(matched))


def test_mmbench_log_scored_by_circular_rules(tmp_path):
    log = _write_jsonl(tmp_path / "2026-01-01T00-00-00_samples_mmbench_en_dev.jsonl", mmbench_records())
    got = import_answers("mmbench", log, tmp_path / "run")
    m = got.metrics["mmbench"]["metrics"]
    assert m["overall"]["value"] == pytest.approx(50.0)  # question 7 hit, question 9 missed
    assert m["vanilla"]["value"] == pytest.approx(100.0)  # both first passes right
    assert m["passes/rule"]["value"] == 5 and m["passes/random"]["value"] == 0
    rows = [json.loads(line) for line in open(tmp_path / "run/samples/mmbench.jsonl")]
    assert {r["id"] for r in rows} == {"7", "1000007", "2000007", "9", "1000009"}
    assert all(r["meta"]["matcher"] == "none" for r in rows)
    by_id = {r["id"]: r for r in rows}
    assert by_id["7"]["meta"]["hint"] is None and by_id["9"]["meta"]["hint"] == "Look closely."
    assert by_id["1000007"]["meta"]["options"] == {"A": "dog", "B": "bird", "C": "cat"}
    assert rescore_run(tmp_path / "run")["mmbench"]["metrics"] == m


def test_mmvet_log_keeps_lmms_eval_judge_apart(tmp_path):
    scores = {0: 1.0, 1: 0.5, 2: 0.0, 3: 0.3}
    records = []
    for i, s in scores.items():
        g = {"question_id": f"v1_{i}", "question": f"q{i}", "gt_answer": "a", "capabilities": "rec,ocr"}
        g.update(pred_answer=f"answer {i}", score=s, eval_model="gpt-4.1-mini")
        records.append(
            {
                "doc_id": i,
                "target": "a",
                "input": f"q{i}",
                "filtered_resps": [f"answer {i}"],
                "gpt_eval_score": g,
            }
        )
    failed = {"question_id": "v1_4", "question": "q4", "gt_answer": "a", "capabilities": "rec", "score": 0.0}
    failed.update(pred_answer="answer 4", eval_model="")  # lmms-eval's record of a failed judge call
    records.append({"doc_id": 4, "target": "a", "filtered_resps": ["answer 4"], "gpt_eval_score": failed})
    log = _write_jsonl(tmp_path / "x_samples_mmvet.jsonl", records)
    with pytest.warns(UserWarning, match="1 records were left out: lmms-eval's judge call failed"):
        got = import_answers("mmvet", log, tmp_path / "run")
    assert got.metrics["mmvet"]["metrics"]["total"]["value"] == pytest.approx(100 * sum(scores.values()) / 4)
    assert got.metrics["mmvet"]["n_samples"] == 4
    row = json.loads(open(tmp_path / "run/samples/mmvet.jsonl").readline())
    assert row["judge"]["fingerprint"]["model"] == "gpt-4.1-mini"
    assert "lmms-eval" in row["judge"]["fingerprint"]["source"]


def test_clear_errors(shared, tmp_path):
    mme = {
        "doc_id": 0,
        "target": "Yes",
        "filtered_resps": ["Yes"],
        "mme_percetion_score": {"question_id": "a"},
    }
    log = _write_jsonl(tmp_path / "2026_samples_mme.jsonl", [mme])
    with pytest.raises(UserError, match="lmms-eval task 'mme' that evalkit does not share"):
        import_answers("pope", log, tmp_path / "r1", data_dir=shared / "pope/output/coco")
    row = json.loads(open(shared / "pope/output/coco/coco_pope_random.json").readline())
    pope_log = _write_jsonl(
        tmp_path / "2026_samples_pope.jsonl", [_record(0, row, "random", "Yes", with_doc=False)]
    )
    with pytest.raises(UserError, match="evalkit's 'pope'; pass --task pope"):
        import_answers("mmvet", pope_log, tmp_path / "r2")
    with pytest.raises(UserError, match="needs --data-dir"):
        import_answers("pope", pope_log, tmp_path / "r3")
    wild = {"doc_id": 0, "target": "x", "filtered_resps": ["y"], "gpt_eval_llava_all": {"scores": [8, 7]}}
    with pytest.raises(UserError, match="llava_in_the_wild"):
        import_answers("llava_bench", _write_jsonl(tmp_path / "w.jsonl", [wild]), tmp_path / "r4")
    neither = tmp_path / "answers.jsonl"
    neither.write_text('{"id": 1, "answer": "Yes"}\n')
    with pytest.raises(UserError, match="not an lmms-eval samples log either"):
        import_answers(
            "pope", neither, tmp_path / "r5", questions=neither, data_dir=shared / "pope/output/coco"
        )
    with pytest.raises(UserError, match="imports lmms-eval logs only"):
        import_answers("mmbench", neither, tmp_path / "r6")
