"""TextVQA's data paths: the toy set, the official files from --data-dir (with LLaVA's OCR question file),
the hub copy in a Hugging Face cache laid out on disk (the same samples and metrics as the same items
through --data-dir), `evalkit import` of LLaVA's answer file, and the OCR option recorded in the run."""

import hashlib
import json

import pytest
from support.hub_cache import HubCache, parquet_bytes, png_bytes
from support.openai_server import last_user_text

from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import evaluate, load_tasks
from evalkit.tasks.textvqa.hub import SOURCE
from evalkit.types import UserError

MAIN = "5" * 40
SUFFIX = "Answer the question using a single word or phrase."
COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
#: question id → (image, question, its 10 answers, OCR tokens)
ITEMS = {
    101: (
        "img0",
        "what brand is the camera?",
        ["dakota"] * 7 + ["Dakota digital"] * 3,
        ["DAKOTA", "DIGITAL"],
    ),
    102: ("img0", "how many lenses?", ["two", "2", "Two."] + ["one"] * 7, ["1"]),
    103: ("img1", "what does the sign say?", ["stop"] * 2 + ["STOP!"] + ["halt"] * 7, ["STOP"]),
    104: ("img2", "what is written on the cup?", ["coffee"] * 10, []),
}
#: what the stand-in model answers to each question, and its soft accuracy by the rules (matches among 10)
REPLIES = {101: "Dakota", 102: "Two", 103: "stop", 104: "tea"}
EXPECTED = {101: 1.0, 102: 0.9, 103: 0.9, 104: 0.0}


def image_of(name: str) -> bytes:
    return png_bytes(COLORS[int(name[-1])])


def reply(body) -> str:
    text = last_user_text(body).lower()
    return next(REPLIES[q] for q, item in ITEMS.items() if text.startswith(item[1]))


def write_official(folder, *, ocr_in_file: bool = False, llava: bool = True, n_answers: int = 10):
    (folder / "train_images").mkdir(parents=True)
    data = []
    for qid, (image, question, answers, tokens) in ITEMS.items():
        (folder / "train_images" / f"{image}.jpg").write_bytes(image_of(image))
        row = {"question_id": qid, "image_id": image, "question": question, "answers": answers[:n_answers]}
        data.append(row | ({"ocr_tokens": tokens} if ocr_in_file else {}))
    (folder / "TextVQA_0.5.1_val.json").write_text(json.dumps({"dataset_name": "textvqa", "data": data}))
    if llava:
        lines = [
            {
                "question_id": image,
                "image": f"{image}.jpg",
                "text": f"{question}\nReference OCR token: {', '.join(tokens)}\n"
                "Answer the question using a single word or phrase.",
            }
            for image, question, _, tokens in ITEMS.values()
        ]
        (folder / "llava_textvqa_val_v051_ocr.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return folder


def hub_file() -> bytes:
    rows = [
        {
            "image_id": image,
            "question_id": qid,
            "question": question,
            "answers": answers,
            "ocr_tokens": tokens,
            "set_name": "val",
            "image": {"bytes": image_of(image), "path": None},
        }
        for qid, (image, question, answers, tokens) in ITEMS.items()
    ]
    features = {"image_id": "string", "question_id": "int32", "question": "string", "answers": "list[string]"}
    features |= {"ocr_tokens": "list[string]", "set_name": "string", "image": "Image"}
    return parquet_bytes(rows, features)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "evalkit"))
    return HubCache.install(tmp_path / "hf", monkeypatch)


def run(server, tmp_path, name, **kwargs):
    backend = OpenAIBackend("m", BackendOptions(base_url=server.base_url, max_retries=1))
    result = evaluate(backend, ["textvqa"], output=tmp_path / name, progress=False, **kwargs)
    rows = [json.loads(line) for line in open(tmp_path / name / "samples" / "textvqa.jsonl")]
    return result.metrics["textvqa"]["metrics"], {r["id"]: r for r in rows}


def test_hub_and_official_files_give_the_same_samples_and_scores(tmp_path, cache, openai_server):
    snapshot = cache.add(SOURCE.repo_id, MAIN, {"data/validation-00000-of-00001.parquet": hub_file()})
    official = write_official(tmp_path / "official")
    server = openai_server(responder=reply)
    options = {"textvqa.ocr": "true"}
    hub_metrics, hub_rows = run(server, tmp_path, "hub", task_options=options)
    dir_metrics, dir_rows = run(server, tmp_path, "dir", data_dir=official, task_options=options)
    want = 100 * sum(EXPECTED.values()) / len(EXPECTED)
    assert hub_metrics["accuracy"]["value"] == pytest.approx(want) == dir_metrics["accuracy"]["value"]
    assert hub_metrics["accuracy"]["n"] == 4
    assert {i: r["accuracy"] for i, r in hub_rows.items()} == {str(q): v for q, v in EXPECTED.items()}
    for sid, r in hub_rows.items():
        d = dir_rows[sid]
        assert (r["prompt"], r["target"], r["meta"], r["cluster"]) == (
            d["prompt"],
            d["target"],
            d["meta"],
            d["cluster"],
        )
    assert hub_rows["101"]["prompt"] == (
        "what brand is the camera?\nReference OCR token: DAKOTA, DIGITAL\n"
        "Answer the question using a single word or phrase."
    )
    assert hub_rows["104"]["prompt"].count("\n") == 2  # no tokens: the line is there, empty
    run_json = json.loads((tmp_path / "hub" / "run.json").read_text())
    data = run_json["tasks"]["textvqa"]["data"]
    assert data["ocr"] == "hub ocr_tokens" and data["hub"]["rows"] == 4 and not data["hub"]["pinned"]
    name = "data/validation-00000-of-00001.parquet"
    assert data["hub"]["files"] == {name: hashlib.sha256((snapshot / name).read_bytes()).hexdigest()}
    dir_data = json.loads((tmp_path / "dir" / "run.json").read_text())["tasks"]["textvqa"]["data"]
    assert dir_data["ocr"] == "llava_textvqa_val_v051_ocr.jsonl"
    assert set(dir_data["files"]) == {"TextVQA_0.5.1_val.json", "llava_textvqa_val_v051_ocr.jsonl"}


def test_the_ocr_option_changes_the_prompt_and_the_run_identity(tmp_path, cache):
    official = write_official(tmp_path / "official", ocr_in_file=True, llava=False)
    _, plain = load_tasks("textvqa", data_dir=official)
    _, ocr = load_tasks("textvqa", data_dir=official, task_options={"textvqa.ocr": "true"})
    p, o = plain["textvqa"], ocr["textvqa"]
    assert (
        p.samples[0].messages[0].text
        == "what brand is the camera?\nAnswer the question using a single word or phrase."
    )
    assert "\nReference OCR token: DAKOTA, DIGITAL\n" in o.samples[0].messages[0].text
    assert p.info["ocr"] == "off" and o.info["ocr"] == "TextVQA_0.5.1_val.json ocr_tokens"
    with pytest.raises(UserError, match="expected one of true, false"):
        load_tasks("textvqa", data_dir=official, task_options={"textvqa.ocr": "yes"})


def test_official_file_problems_are_one_line(tmp_path, cache):
    with pytest.raises(UserError, match="expected 10 human answers"):
        load_tasks("textvqa", data_dir=write_official(tmp_path / "nine", n_answers=9))
    bare = write_official(tmp_path / "bare", llava=False)
    with pytest.raises(UserError, match="llava_textvqa_val_v051_ocr.jsonl .* is not there"):
        load_tasks("textvqa", data_dir=bare, task_options={"textvqa.ocr": "true"})
    with pytest.raises(UserError, match="TextVQA annotations not found"):
        load_tasks("textvqa", data_dir=tmp_path)


def test_import_of_llava_answers_pairs_by_image_and_question(tmp_path, cache):
    from evalkit.interop.importer import import_answers

    official = write_official(tmp_path / "official")
    lines = [
        {
            "question_id": image,
            "prompt": f"{question.upper()}\nReference OCR token: x\n{SUFFIX}",
            "text": REPLIES[qid],
            "answer_id": "a",
        }
        for qid, (image, question, _, _) in reversed(ITEMS.items())
    ]
    answers = tmp_path / "llava.jsonl"
    answers.write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = import_answers("textvqa", answers, tmp_path / "imported", data_dir=official)
    assert result.metrics["textvqa"]["metrics"]["accuracy"]["value"] == pytest.approx(
        100 * sum(EXPECTED.values()) / 4
    )
    answers.write_text("".join(json.dumps(x) + "\n" for x in lines[:2]))
    with pytest.warns(UserWarning, match="2 of 4 questions"):
        partial = import_answers("textvqa", answers, tmp_path / "partial", data_dir=official)
    assert partial.metrics["textvqa"]["metrics"]["accuracy"]["n"] == 2
    lines[0]["question_id"] = "img9"
    answers.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(UserError, match="no question 'what is written on the cup\\?' about image 'img9'"):
        import_answers("textvqa", answers, tmp_path / "bad", data_dir=official)


def test_the_toy_set_answers_fold_under_the_normalisation(tmp_path, monkeypatch):
    from evalkit.tasks.textvqa.protocol import soft_accuracy

    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "evalkit"))
    _, loaded = load_tasks("textvqa", data="toy")
    samples = loaded["textvqa"].samples
    assert len(samples) == 100 and all(len(s.target) == 10 for s in samples)
    # every spelling of the right answer scores 1, the wrong answer at most 0.9, anything else 0
    scores = [sorted({round(soft_accuracy(a, s.target), 10) for a in s.target}) for s in samples]
    assert all(sc[-1] == 1.0 and (len(sc) == 1 or sc[-2] <= 0.9) for sc in scores)
    assert {len(sc) for sc in scores} == {1, 2}  # some questions have a wrong answer, some none
    assert all(soft_accuracy("I am not sure", s.target) == 0 for s in samples)


def lmms_log(tmp_path, with_doc: bool = True):
    """lmms-eval's textvqa_val log of the stand-in model's answers (its scorer normalised the doc's
    answers in place before the doc was logged)."""
    from evalkit.tasks.textvqa.protocol import normalize

    lines = []
    for doc_id, (qid, (image, question, answers, tokens)) in enumerate(ITEMS.items()):
        rec = {
            "doc_id": doc_id,
            "target": "",
            "input": question.capitalize() + "\n" + SUFFIX,
            "filtered_resps": [REPLIES[qid]],
            "exact_match": 0.0,
            "submission": {"question_id": qid, "answer": normalize(REPLIES[qid])},
        }
        if with_doc:
            doc = {"question_id": qid, "image_id": image, "question": question, "ocr_tokens": tokens}
            rec["doc"] = doc | {"answers": [normalize(a) for a in answers]}
        lines.append(json.dumps(rec))
    path = tmp_path / "20250101_samples_textvqa_val.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_import_of_an_lmms_eval_log_with_or_without_the_official_file(tmp_path, cache):
    from evalkit.interop.importer import import_answers

    want = pytest.approx(100 * sum(EXPECTED.values()) / 4)
    alone = import_answers("textvqa", lmms_log(tmp_path), tmp_path / "alone")
    assert alone.metrics["textvqa"]["metrics"]["accuracy"]["value"] == want
    official = write_official(tmp_path / "official")
    paired = import_answers(
        "textvqa", lmms_log(tmp_path, with_doc=False), tmp_path / "paired", data_dir=official
    )
    assert paired.metrics["textvqa"]["metrics"]["accuracy"]["value"] == want
    rows = [json.loads(line) for line in open(tmp_path / "paired" / "samples" / "textvqa.jsonl")]
    assert rows[0]["prompt"] == "What brand is the camera?\n" + SUFFIX  # lmms-eval's prompt, kept
    with pytest.raises(UserError, match="pass --data-dir with TextVQA_0.5.1_val.json"):
        import_answers("textvqa", lmms_log(tmp_path, with_doc=False), tmp_path / "no-doc")
