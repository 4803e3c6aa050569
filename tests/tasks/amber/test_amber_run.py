"""AMBER through `evaluate` on the toy data, with a real OpenAI-compatible server on 127.0.0.1 as the model.

The server answers by a fixed rule: a description names the image's first truth object and its first
hallu object (it recognises the image by its pixels, against the toy files); a question is answered "Yes"
when it asks about one object or about left/right, "yes" (neither Yes nor No) when it asks "above", and
"No" otherwise. Expected metrics are computed here from that rule and the toy files, by the official
formulas written out in this file.
"""

import base64
import io
import json

import pytest
from PIL import Image
from support.openai_server import FakeOpenAIServer, last_user_text

from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import evaluate
from evalkit.scoring import rescore_run
from evalkit.tasks.amber.toy import default_toy_dir, write_amber

pytestmark = pytest.mark.usefixtures("fast_retries")

LIMIT = 40  # 10 items of each dimension
OPTIONS = {"amber.nlp": "basic", "amber.answers": "exact"}


@pytest.fixture
def toy():
    root = write_amber(default_toy_dir(0), seed=0)
    annotations = json.loads((root / "annotations.json").read_text())
    queries = json.loads((root / "query" / "query_all.json").read_text())
    by_pixels = {}
    for q in queries:
        if annotations[q["id"] - 1]["type"] == "generative":
            by_pixels[Image.open(root / "images" / q["image"]).convert("RGB").tobytes()] = q["id"]
    return {"annotations": annotations, "queries": queries, "by_pixels": by_pixels}


def answer(question: str) -> str:
    if "above" in question:
        return "yes"
    return "Yes" if " one " in question or "left" in question else "No"


def responder(toy):
    def play(body):
        text = last_user_text(body)
        if text != "Describe this image.":
            return answer(text)
        url = body["messages"][0]["content"][0]["image_url"]["url"]
        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
        ann = toy["annotations"][toy["by_pixels"][image.tobytes()] - 1]
        return f"There is a {ann['truth'][0]} next to a {ann['hallu'][0]}."

    return play


def run(server, tmp_path, name="run", **kw):
    backend = OpenAIBackend("candidate", BackendOptions(base_url=server.base_url, max_retries=3, timeout_s=5))
    return evaluate(
        backend,
        ["amber"],
        data="toy",
        limit=LIMIT,
        output=tmp_path / name,
        task_options=kw.pop("task_options", OPTIONS),
        progress=False,
        **kw,
    )


def r1(x):
    return round(x, 1)


def expected_metrics(toy, ids):
    """The official numbers for the answers the responder gives to items `ids`, by hand-written formulas."""
    ann = toy["annotations"]
    gen = [ann[i - 1] for i in ids if ann[i - 1]["type"] == "generative"]
    # every description: 2 vocabulary nouns, the hallu one hallucinated; 1 truth and 1 hallu object covered
    out = {
        "chair": r1(len(gen) / (2 * len(gen) + 0.001) * 100),
        "cover": r1(len(gen) / (sum(len(a["truth"]) for a in gen) + 0.001) * 100),
        "hal": r1(100 - 0 / (len(gen) + 0.001) * 100),
        "cog": r1(len(gen) / (sum(len(a["hallu"]) for a in gen) + 0.001) * 100),
    }
    text = {q["id"]: q["query"] for q in toy["queries"]}
    disc = [(ann[i - 1]["truth"], answer(text[i])) for i in ids if ann[i - 1]["type"] != "generative"]
    correct = sum((t == "yes" and a == "Yes") or (t == "no" and a == "No") for t, a in disc)
    said_no = sum(a == "No" for _, a in disc)
    hit = sum(a == "No" and t == "no" for t, a in disc)
    truth_no = sum(t == "no" for t, _ in disc)
    p, r = r1(hit / (said_no + 0.001) * 100), r1(hit / (truth_no + 0.001) * 100)
    out |= {"acc": r1(correct / (len(disc) + 0.001) * 100), "precision": p, "recall": r}
    out["f1"] = r1(2 * (p / 100) * (r / 100) / (p / 100 + r / 100 + 0.0001) * 100)
    out["amber_score"] = r1((100 - out["chair"] + out["f1"]) / 2)
    out["neither"] = sum(a not in ("Yes", "No") for _, a in disc)
    return out


def test_toy_run_scores_by_the_official_rules(tmp_path, toy):
    with FakeOpenAIServer(responder=responder(toy)) as server:
        result = run(server, tmp_path)
        bodies = list(server.requests)
    rows = [json.loads(line) for line in open(result.run_dir / "samples" / "amber.jsonl")]
    ids = sorted(int(r["id"]) for r in rows)
    kinds = [toy["annotations"][i - 1]["type"] for i in ids]
    assert (
        len(ids) == LIMIT
        and kinds.count("generative") == 10
        and kinds.count("discriminative-hallucination") == 10
    )
    # the prompts sent are the queries as they are, each with its image first
    sent = sorted(last_user_text(b) for b in bodies)
    assert sent == sorted(q["query"] for q in toy["queries"] if q["id"] in ids)
    assert all(b["messages"][0]["content"][0]["type"] == "image_url" for b in bodies)
    m = result.metrics["amber"]["metrics"]
    expected = expected_metrics(toy, ids)
    assert {k: m[k]["value"] for k in expected} == expected
    assert (
        m["existence/recall"]["value"] == 100.0
    )  # every existence item is 'no' and answered "No": 10 / 10.001
    header = json.loads((result.run_dir / "run.json").read_text())
    assert header["tasks"]["amber"]["data"]["nlp"]["id"] == "basic"
    assert header["tasks"]["amber"]["data"]["options"]["answers"] == "exact"
    gen_row = next(r for r in rows if r["meta"]["type"] == "generative")
    assert gen_row["nlp"] == "basic" and gen_row["n_hallucinated"] == 1
    # rescore recomputes every number from the stored rows alone
    assert rescore_run(result.run_dir)["amber"]["metrics"] == m


def test_faults_do_not_change_the_numbers(tmp_path, toy):
    with FakeOpenAIServer(responder=responder(toy)) as server:
        clean = run(server, tmp_path, "clean")
    faults = {0: "500", 3: "429", 7: "close", 12: "malformed", 20: "503"}
    with FakeOpenAIServer(responder=responder(toy), faults=faults) as server:
        faulty = run(server, tmp_path, "faulty")
    assert faulty.metrics["amber"]["n_errors"] == 0
    assert faulty.metrics["amber"]["metrics"] == clean.metrics["amber"]["metrics"]


def test_toy_data_defaults_to_the_normalize_rule_and_records_it(tmp_path, toy):
    options = {"amber.nlp": "basic", "amber.evaluation_type": "dr"}  # toy data: answers=normalize
    with FakeOpenAIServer(responder=responder(toy)) as server:
        result = run(server, tmp_path, task_options=options)
    m = result.metrics["amber"]["metrics"]
    rows = [json.loads(line) for line in open(result.run_dir / "samples" / "amber.jsonl")]
    assert {r["meta"]["type"] for r in rows} <= {"discriminative-relation", "relation"}
    assert all(r["meta"]["answers"] == "normalize" for r in rows)
    header = json.loads((result.run_dir / "run.json").read_text())
    assert header["tasks"]["amber"]["data"]["options"]["answers"] == "normalize"
    # every "above" question was answered "yes": neither under the official rule, Yes once normalised
    n_above = sum("above" in r["prompt"] for r in rows)
    assert m["neither"]["value"] == n_above and m["unparsed"]["value"] == 0
    assert "relation/f1" in m and "chair" not in m and "f1" not in m
