"""The whole `evaluate` pipeline on toy POPE through a real OpenAI-compatible server on 127.0.0.1:
metrics equal a hand computation from the label files; failures are typed, counted and gate the run."""

import json
import re
import shutil

import pytest
from support.openai_server import last_user_text

from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import RunFailed, evaluate
from evalkit.tasks.pope.protocol import SPLITS
from evalkit.tasks.pope.toy import write_pope

SAYS_YES = {"apple", "cup", "dog", "car", "tree"}
NOUN = re.compile(r"Is there an? (\w+) in the")


def responder(body):
    noun = NOUN.search(last_user_text(body)).group(1)
    return "Yes, there is." if noun in SAYS_YES else "No, there is not."


def expected_f1(data_dir, per_split):
    f1s = {}
    for split in SPLITS:
        rows = [json.loads(line) for line in open(data_dir / f"coco_pope_{split}.json")][:per_split]
        tp = sum(NOUN.search(r["text"]).group(1) in SAYS_YES and r["label"] == "yes" for r in rows)
        fp = sum(NOUN.search(r["text"]).group(1) in SAYS_YES and r["label"] == "no" for r in rows)
        fn = sum(NOUN.search(r["text"]).group(1) not in SAYS_YES and r["label"] == "yes" for r in rows)
        f1s[split] = 100 * 2 * tp / (2 * tp + fp + fn)
    return f1s


@pytest.fixture
def toy_pope(tmp_path):
    return write_pope(tmp_path / "pope", seed=0, n_images=20)


def backend_for(server):
    return OpenAIBackend(
        "judge-free", BackendOptions(base_url=server.base_url, max_retries=1), backoff_base_s=0.01
    )


def test_openai_run_matches_hand_computed_metrics(toy_pope, tmp_path, openai_server):
    server = openai_server(responder=responder)
    result = evaluate(
        backend_for(server), "pope", data_dir=toy_pope, limit=60, output=tmp_path / "run", progress=False
    )
    assert server.count == 60
    image_part = server.requests[0]["messages"][-1]["content"][0]
    assert image_part["image_url"]["url"].startswith("data:image/png;base64,")
    m = result.metrics["pope"]["metrics"]
    want = expected_f1(toy_pope, 20)
    for split in SPLITS:
        assert m[f"{split}/f1"]["value"] == pytest.approx(want[split])
    assert m["f1_mean"]["value"] == pytest.approx(sum(want.values()) / 3)
    header = json.loads((tmp_path / "run/run.json").read_text())
    assert header["status"] == "finished" and header["tasks"]["pope"]["n_samples"] == 60
    assert header["model"]["fingerprint"]["model"] == "judge-free"


def test_corrupt_image_is_a_counted_typed_failure_that_gates_the_run(toy_pope, tmp_path, openai_server):
    data = tmp_path / "data"
    shutil.copytree(toy_pope, data)
    first_image = json.loads(open(data / "coco_pope_random.json").readline())["image"]
    (data / "images" / first_image).write_bytes(b"not a png at all")
    server = openai_server(responder=responder)
    with pytest.raises(RunFailed, match="failure rate"):
        evaluate(
            backend_for(server),
            "pope",
            data_dir=data,
            limit=60,
            output=tmp_path / "strict",
            progress=False,
        )
    result = evaluate(
        backend_for(server),
        "pope",
        data_dir=data,
        limit=60,
        output=tmp_path / "lenient",
        max_failure_rate=0.5,
        progress=False,
    )
    summary = result.metrics["pope"]
    # the corrupt image's questions that fall in the first 20 of each split (the same image in all three)
    n_bad = sum(
        json.loads(line)["image"] == first_image
        for s in SPLITS
        for line in open(data / f"coco_pope_{s}.json").readlines()[:20]
    )
    assert n_bad > 0
    assert summary["n_errors"] == n_bad and summary["errors_by_type"] == {"image_error": n_bad}
    assert summary["n_scored"] == 60 - n_bad and summary["metrics"]["f1_mean"]["n"] == 60 - n_bad
    rows = [json.loads(line) for line in open(tmp_path / "lenient/samples/pope.jsonl")]
    bad = [r for r in rows if r["error"]]
    assert all(r["response"] is None and "parsed" not in r for r in bad)  # never scored as an answer
    assert json.loads((tmp_path / "strict/run.json").read_text())["status"] == "failed"
