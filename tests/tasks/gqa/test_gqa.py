"""GQA: the exact match of LLaVA's `convert_gqa_for_eval.py` + GQA's `eval.py` on hand-built cases; the
per-type accuracy; the hub copy's two configs joined on imageId giving the samples and metrics the same
questions give as the official files; `evalkit import` of LLaVA's answer and prediction files."""

import hashlib
import json

import pytest
from support.hub_cache import HubCache, parquet_bytes, png_bytes
from support.openai_server import last_user_text

from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import evaluate, load_tasks
from evalkit.tasks.gqa.hub import IMAGE_FILES, QUESTION_FILES, SOURCE
from evalkit.tasks.gqa.protocol import is_correct, prediction
from evalkit.types import UserError


@pytest.mark.parametrize(
    ("response", "answer", "right"),
    [
        ("Yes", "yes", True),  # lower-cased
        ("yes.", "yes", True),  # the trailing period stripped
        ("Left...", "left", True),  # every trailing period
        (" no.\n", "no", True),  # LLaVA's loader strips the text first
        ("t-shirt", "t-shirt", True),
        ("tshirt", "t-shirt", False),  # no other punctuation is removed
        ("yes!", "yes", False),
        ("yes, it is", "yes", False),  # no parsing: the whole answer must match
        ("The table", "table", False),  # articles are kept
        ("no. ", "no", True),
        ("3.", "3", True),
    ],
)
def test_exact_match_after_lower_casing_and_stripping_the_trailing_period(response, answer, right):
    assert is_correct(response, answer) is right


def test_question_types_as_an_object_or_its_json_text():
    from evalkit.tasks.gqa.data import types_of

    assert types_of("w", {"structural": "query", "semantic": "attr"}) == ("query", "attr")
    assert types_of("w", '{"structural": "verify", "semantic": "obj", "detailed": "exist"}') == (
        "verify",
        "obj",
    )
    assert types_of("w", None) == (None, None)
    with pytest.raises(UserError, match="w: 'types' is text but not JSON"):
        types_of("w", "verify")


def test_prediction_is_the_converted_text():
    assert prediction("Blue.") == "blue" and prediction("U.S.") == "u.s" and prediction("") == ""


COLORS = [(220, 20, 20), (20, 220, 20)]
#: question id → (image id, question, answer, structural, semantic)
QUESTIONS = {
    "201": ("n1", "Is there a dog?", "yes", "verify", "obj"),
    "202": ("n1", "What color is the car?", "red", "query", "attr"),
    "203": ("n2", "Is the cup to the left or right?", "left", "choose", "rel"),
    "204": ("n2", "What is on the table?", "cup", "query", "obj"),
}
REPLIES = {"201": "Yes.", "202": "Red", "203": "right", "204": "The cup."}
RIGHT = {"201": True, "202": True, "203": False, "204": False}


def image_of(image_id: str) -> bytes:
    return png_bytes(COLORS[int(image_id[-1]) % len(COLORS)])


def reply(body) -> str:
    text = last_user_text(body)
    return next(REPLIES[q] for q, item in QUESTIONS.items() if text.startswith(item[1]))


def write_official(folder):
    (folder / "images").mkdir(parents=True)
    doc = {}
    for qid, (image, question, answer, structural, semantic) in QUESTIONS.items():
        (folder / "images" / f"{image}.jpg").write_bytes(image_of(image))
        doc[qid] = {
            "imageId": image,
            "question": question,
            "answer": answer,
            "fullAnswer": "...",
            "isBalanced": True,
            "types": {"structural": structural, "semantic": semantic, "detailed": "x"},
        }
    doc["299"] = doc["201"] | {"isBalanced": False}  # not balanced: not scored
    (folder / "testdev_balanced_questions.json").write_text(json.dumps(doc))
    return folder


def hub_files() -> dict[str, bytes]:
    questions = [
        {
            "id": qid,
            "imageId": image,
            "question": question,
            "answer": answer,
            "types": {"structural": structural, "semantic": semantic, "detailed": "x"},
        }
        for qid, (image, question, answer, structural, semantic) in QUESTIONS.items()
    ]
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(questions), buf)  # `types` a struct column, as the hub's
    images = [{"id": i, "image": {"bytes": image_of(i), "path": f"{i}.jpg"}} for i in ("n2", "n1", "n9")]
    return {
        QUESTION_FILES.replace("*", "00000-of-00001"): buf.getvalue(),
        IMAGE_FILES.replace("*", "00000-of-00001"): parquet_bytes(images, {"id": "string", "image": "Image"}),
    }


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "evalkit"))
    return HubCache.install(tmp_path / "hf", monkeypatch)


def run(server, tmp_path, name, **kwargs):
    backend = OpenAIBackend("m", BackendOptions(base_url=server.base_url, max_retries=1))
    result = evaluate(backend, ["gqa"], output=tmp_path / name, progress=False, **kwargs)
    rows = [json.loads(line) for line in open(tmp_path / name / "samples" / "gqa.jsonl")]
    return result.metrics["gqa"]["metrics"], {r["id"]: r for r in rows}


def test_hub_and_official_files_give_the_same_samples_and_scores(tmp_path, cache, openai_server):
    snapshot = cache.add(SOURCE.repo_id, SOURCE.revision, hub_files())
    official = write_official(tmp_path / "official")
    server = openai_server(responder=reply)
    hub, hub_rows = run(server, tmp_path, "hub")
    local, dir_rows = run(server, tmp_path, "dir", data_dir=official)
    assert {k: v["value"] for k, v in hub.items()} == {k: v["value"] for k, v in local.items()}
    assert hub["accuracy"]["value"] == pytest.approx(50.0) and hub["accuracy"]["n"] == 4
    assert hub["structural/query"]["value"] == pytest.approx(50.0) and hub["structural/query"]["n"] == 2
    assert hub["structural/verify"]["value"] == 100.0 and hub["structural/choose"]["value"] == 0.0
    assert hub["semantic/obj"]["value"] == pytest.approx(50.0) and hub["semantic/attr"]["value"] == 100.0
    assert {k for k in hub if "/" in k} == {
        "structural/verify", "structural/query", "structural/choose", "semantic/obj", "semantic/attr",
        "semantic/rel",
    }  # fmt: skip
    assert {i: r["correct"] for i, r in hub_rows.items()} == RIGHT
    for sid, r in hub_rows.items():
        d = dir_rows[sid]
        assert (r["prompt"], r["target"], r["meta"], r["cluster"]) == (
            d["prompt"],
            d["target"],
            d["meta"],
            d["cluster"],
        )
    assert hub_rows["201"]["prompt"] == "Is there a dog?\nAnswer the question using a single word or phrase."
    data = json.loads((tmp_path / "hub" / "run.json").read_text())["tasks"]["gqa"]["data"]
    assert data["hub"]["revision"] == SOURCE.revision and data["hub"]["rows"] == 4
    assert data["hub"]["files"] == {
        n: hashlib.sha256((snapshot / n).read_bytes()).hexdigest() for n in hub_files()
    }
    # only the images the questions name were written
    assert sorted(p.name for p in (tmp_path / "evalkit" / "hub").rglob("*.png")) == ["n1.png", "n2.png"]


def test_a_question_whose_image_is_missing_from_the_hub_is_one_line(tmp_path, cache):
    files = hub_files()
    name = IMAGE_FILES.replace("*", "00000-of-00001")
    files[name] = parquet_bytes(
        [{"id": "n1", "image": {"bytes": image_of("n1"), "path": None}}], {"id": "string", "image": "Image"}
    )
    cache.add(SOURCE.repo_id, SOURCE.revision, files)
    with pytest.raises(UserError, match="no image row with id n2"):
        load_tasks("gqa")


def test_import_of_llava_answer_and_prediction_files(tmp_path, cache):
    from evalkit.interop.importer import import_answers

    official = write_official(tmp_path / "official")
    merge = tmp_path / "merge.jsonl"
    merge.write_text(
        "".join(json.dumps({"question_id": q, "prompt": "p", "text": t}) + "\n" for q, t in REPLIES.items())
    )
    a = import_answers("gqa", merge, tmp_path / "a", data_dir=official).metrics["gqa"]["metrics"]
    predictions = tmp_path / "testdev_balanced_predictions.json"
    converted = [{"questionId": q, "prediction": t.rstrip(".").lower()} for q, t in REPLIES.items()]
    predictions.write_text(json.dumps(converted))
    b = import_answers("gqa", predictions, tmp_path / "b", data_dir=official).metrics["gqa"]["metrics"]
    assert a["accuracy"]["value"] == b["accuracy"]["value"] == pytest.approx(50.0)
    predictions.write_text(json.dumps(converted + [{"questionId": "299", "prediction": "yes"}]))
    with pytest.raises(UserError, match="'299' is not a balanced question"):
        import_answers("gqa", predictions, tmp_path / "c", data_dir=official)
    with pytest.raises(UserError, match="needs --data-dir"):
        import_answers("gqa", merge, tmp_path / "d")


def test_the_toy_set(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "evalkit"))
    _, loaded = load_tasks("gqa", data="toy")
    samples = loaded["gqa"].samples
    assert len(samples) == 120
    kinds = {(s.meta["structural"], s.meta["semantic"]) for s in samples}
    assert kinds == {
        ("verify", "obj"),
        ("query", "attr"),
        ("query", "cat"),
        ("logical", "obj"),
        ("choose", "rel"),
    }
    yes_no = [s.target for s in samples if s.target in ("yes", "no")]
    assert yes_no.count("yes") == pytest.approx(len(yes_no) / 2, abs=4)
    assert all(s.target == s.target.lower() and " " not in s.target for s in samples)


def test_import_of_an_lmms_eval_log(tmp_path, cache):
    from evalkit.interop.importer import import_answers

    lines = []
    for doc_id, (qid, (image, question, answer, structural, semantic)) in enumerate(QUESTIONS.items()):
        doc = {"id": qid, "imageId": image, "question": question, "answer": answer}
        doc["types"] = {"structural": structural, "semantic": semantic, "detailed": "x"}
        rec = {"doc_id": doc_id, "doc": doc, "target": answer, "input": question, "exact_match": 0.0}
        lines.append(json.dumps(rec | {"filtered_resps": [REPLIES[qid]]}))
    stray = json.loads(lines[0])
    stray["doc"] |= {"id": "77"}  # a question the official file lacks (and the stand-in answers right)
    lines.append(json.dumps(stray | {"doc_id": 9}))
    log = tmp_path / "20250101_samples_gqa.jsonl"
    log.write_text("\n".join(lines) + "\n")
    alone = import_answers("gqa", log, tmp_path / "alone").metrics["gqa"]["metrics"]
    official = write_official(tmp_path / "official")
    with pytest.warns(UserWarning, match="1 records match no official question"):
        paired = import_answers("gqa", log, tmp_path / "paired", data_dir=official).metrics["gqa"]["metrics"]
    # LLaVA's rule, not lmms-eval's: "The cup." is wrong (lmms-eval strips punctuation, not the article)
    assert alone["accuracy"]["value"] == pytest.approx(60.0) and alone["accuracy"]["n"] == 5
    assert paired["accuracy"]["value"] == pytest.approx(50.0) and paired["accuracy"]["n"] == 4
    assert alone["semantic/attr"]["value"] == 100.0 and paired["structural/choose"]["value"] == 0.0
