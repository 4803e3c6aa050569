"""MM-Vet generated and judged by `evaluate` against a real OpenAI-compatible server on 127.0.0.1 that plays
the model under test ("candidate") and the official judge (gpt-4-0613), on a data folder written here in the
official mm-vet.json format: the exact grading message, the official re-ask loop and its 0.0 fallback, N
judge runs, hand-computed tables, faults, rescore, missing data and the toy data set."""

import json
from pathlib import Path

import pytest
from PIL import Image
from support.openai_server import FakeOpenAIServer

from evalkit.judges.settings import JudgeSettings
from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import evaluate, plan_judging
from evalkit.scoring import rescore_run
from evalkit.task import DataSpec
from evalkit.tasks.mmvet import MMVet
from evalkit.types import UserError

pytestmark = pytest.mark.usefixtures("fast_retries")

ROOT = Path(__file__).resolve().parents[3]
PROMPT = (ROOT / "tasks" / "mmvet" / "assets" / "mmvet_grader_prompt.txt").read_bytes().decode()
RETRY = "\nPredict the correctness of the answer (digit): "
GARBAGE = ["Correct", "It is", "N/A", "maybe", "unsure"]

#: key → (image, question, ground truth, capabilities, the candidate's answer)
ITEMS = {
    "v1_0": ("eq.png", "What is x in the equation?", "-1<AND>-5", ["ocr", "math"], "x = 3"),
    "v1_1": ("eq.png", "What colour is the square?", "red<OR>crimson", ["rec"], "It is red."),
    "v1_2": ("dots.png", "How many dots are there?", "3", ["rec"], "There are three dots."),
    "v1_3": ("desk.png", "What is to the left of the cup?", "apple", ["rec", "spat"], "A pear."),
}
#: question → per judge run, the judge's output at try 1, 2, ... (the last one repeats)
SCRIPT = {
    "What is x in the equation?": [GARBAGE, GARBAGE],
    "What colour is the square?": [["Sure", "0.5"], ["0.5"]],
    "How many dots are there?": [["1.0"], ["0.6 because"]],
    "What is to the left of the cup?": [["0.3"], ["The", "0.9"]],
}
PREDICTIONS = {question: answer for _, question, _, _, answer in ITEMS.values()}


def play(body):
    """The candidate answers from the question; the judge reads the item line of the grading message,
    the try from the retry suffix and temperature, and the run from the seed."""
    if body["model"] == "candidate":
        (message,) = body["messages"]
        return PREDICTIONS[next(p["text"] for p in message["content"] if p["type"] == "text")]
    text = body["messages"][0]["content"]
    question = text[len(PROMPT) + 1 :].split(" | ")[0]
    attempt = 1 + round(body["temperature"] / 0.5) if text.endswith(RETRY) else 0
    outputs = SCRIPT[question][body["seed"]]
    return outputs[min(attempt, len(outputs) - 1)]


def write_data(root, items=ITEMS):
    (root / "images").mkdir(parents=True)
    colours = {"eq.png": (255, 0, 0), "dots.png": (0, 255, 0), "desk.png": (0, 0, 255)}
    for name, colour in colours.items():
        Image.new("RGB", (4, 4), colour).save(root / "images" / name)
    meta = {
        k: {"imagename": img, "question": q, "answer": a, "capability": caps}
        for k, (img, q, a, caps, _) in items.items()
    }
    (root / "mm-vet.json").write_text(json.dumps(meta, indent=4))
    return root


@pytest.fixture
def data_dir(tmp_path):
    return write_data(tmp_path / "mm-vet")


def run(server, tmp_path, data_dir, name="run", runs=None, cache="judge.sqlite"):
    backend = OpenAIBackend(
        "candidate", BackendOptions(base_url=server.base_url, max_retries=3, timeout_s=2.0)
    )
    settings = JudgeSettings(
        base_url=server.base_url, concurrency=4, timeout_s=2.0, runs=runs, cache_path=tmp_path / cache
    )
    return evaluate(  # the 0.0 fallback after 5 unparseable grades is part of the protocol under test
        backend,
        [MMVet()],
        data_dir=data_dir,
        output=tmp_path / name,
        judges=settings,
        progress=False,
        max_failure_rate=1.0,
    )


def rows_of(result):
    lines = open(result.run_dir / "samples" / "mmvet.jsonl")
    return {r["id"]: r for r in map(json.loads, lines)}


def judge_bodies(server, question=None):
    bodies = [b for b in server.requests if b["model"] != "candidate"]
    if question is None:
        return bodies
    # the item line follows the prompt (whose examples ask "What is x in the equation?" too)
    return [b for b in bodies if b["messages"][0]["content"][len(PROMPT) + 1 :].startswith(f"{question} | ")]


def test_the_model_and_the_judge_get_the_official_requests(tmp_path, data_dir):
    with FakeOpenAIServer(responder=play) as server:
        result = run(server, tmp_path, data_dir)
        candidate = [b for b in server.requests if b["model"] == "candidate"]
        first = judge_bodies(server, "What is x in the equation?")[0]
    assert len(candidate) == 4
    for body in candidate:
        (message,) = body["messages"]
        image, text = message["content"]
        assert image["type"] == "image_url" and image["image_url"]["url"].startswith("data:image/png")
        assert text["text"] in PREDICTIONS  # the bare question, no suffix
        assert (body["max_tokens"], body["temperature"]) == (1024, 0.0)
    expected = PROMPT + "\n" + "What is x in the equation? | -1 <AND> -5 | x = 3 | "
    assert first["messages"] == [{"role": "user", "content": expected}]
    assert (first["model"], first["max_tokens"], first["temperature"]) == ("gpt-4-0613", 3, 0.0)
    rows = rows_of(result)
    assert rows["v1_2"]["judge"]["fingerprint"]["model"] == "openai:gpt-4-0613"
    assert rows["v1_2"]["judge"]["fingerprint"]["n_runs"] == 1  # the official evaluator's default
    assert rows["v1_3"]["target"] == "apple" and rows["v1_3"]["cluster"] == "desk.png"
    assert rows["v1_3"]["meta"]["capability"] == ["rec", "spat"]


def test_re_asks_follow_the_official_loop_and_fall_back_to_zero(tmp_path, data_dir):
    with FakeOpenAIServer(responder=play) as server:
        result = run(server, tmp_path, data_dir)
        failing = judge_bodies(server, "What is x in the equation?")
        colour = judge_bodies(server, "What colour is the square?")
        dots = judge_bodies(server, "How many dots are there?")
    assert [b["temperature"] for b in failing] == [0.0, 0.0, 0.5, 1.0, 1.5]  # 5 tries, no 6th
    suffixed = [b["messages"][0]["content"].endswith(RETRY) for b in failing]
    assert suffixed == [False, True, True, True, True]
    assert [b["temperature"] for b in colour] == [0.0, 0.0] and len(dots) == 1
    rows = rows_of(result)
    fallback = rows["v1_0"]
    assert fallback["judge"]["attempts"] == [GARBAGE] and fallback["judge"]["outputs"] == ["unsure"]
    assert (fallback["judge_scores"], fallback["judge_tries"], fallback["judge_fell_back"]) == (
        [0.0],
        [5],
        [True],
    )
    reasked = rows["v1_1"]
    assert reasked["judge"]["attempts"] == [["Sure", "0.5"]] and reasked["judge"]["outputs"] == ["0.5"]
    assert (reasked["judge_scores"], reasked["judge_tries"], reasked["judge_fell_back"]) == (
        [0.5],
        [2],
        [False],
    )
    metrics = result.metrics["mmvet"]["metrics"]
    assert metrics["judge_fallbacks"]["value"] == 1 and metrics["judge_reasks"]["value"] == 4 + 1
    summary = result.metrics["mmvet"]  # the fallen-back item counts as failed, the re-asked one does not
    assert (summary["n_unparsed"], summary["n_failed"], summary["failure_rate"]) == (1, 1, 1 / 4)
    # run 0 only: (0 + 0.5 + 1.0 + 0.3) / 4
    assert metrics["total"]["value"] == 45.0 and metrics["run1/total"]["value"] == 45.0


def test_two_runs_give_per_run_totals_and_the_hand_computed_tables(tmp_path, data_dir):
    with FakeOpenAIServer(responder=play) as server:
        result = run(server, tmp_path, data_dir, runs=2)
        seeds = {q: sorted({b["seed"] for b in judge_bodies(server, q)}) for q in SCRIPT}
        n_judge = len(judge_bodies(server))
    assert all(s == [0, 1] for s in seeds.values())
    assert n_judge == 2 * 5 + (2 + 1) + (1 + 1) + (1 + 2)
    rows = rows_of(result)
    assert rows["v1_2"]["judge_scores"] == [1.0, 0.6] and rows["v1_2"]["judge"]["outputs"] == [
        "1.0",
        "0.6 because",
    ]
    assert rows["v1_3"]["judge_tries"] == [1, 2] and rows["v1_3"]["judge_scores"] == [0.3, 0.9]
    m = result.metrics["mmvet"]["metrics"]
    # run totals: (0 + .5 + 1 + .3) / 4 = 45.0 and (0 + .5 + .6 + .9) / 4 = 50.0
    assert (m["run1/total"]["value"], m["run2/total"]["value"], m["std"]["value"]) == (45.0, 50.0, 2.5)
    assert m["total"]["value"] == 47.5 and m["total"]["n"] == 4
    # rec: v1_1-3 → 60.0 and 66.67 → 63.3; spat: v1_3 → 30, 90 → 60.0; ocr/math: v1_0 → 0.0
    assert {k: v["value"] for k, v in m.items() if k.startswith("cap/")} == {
        "cap/rec": 63.3,
        "cap/spat": 60.0,
        "cap/ocr": 0.0,
        "cap/math": 0.0,
    }
    # integrations: {rec}: v1_1, v1_2 → 75, 55 → 65.0; {rec, spat}: 60.0; {ocr, math}: 0.0
    assert {k: v["value"] for k, v in m.items() if k.startswith("capint/")} == {
        "capint/rec": 65.0,
        "capint/ocr_math": 0.0,
        "capint/rec_spat": 60.0,
    }
    assert m["judge_fallbacks"]["value"] == 2 and m["judge_reasks"]["value"] == 8 + 1 + 1


def test_faults_do_not_change_the_judgments(tmp_path, data_dir):
    with FakeOpenAIServer(responder=play) as server:
        clean = run(server, tmp_path, data_dir, "clean", runs=2, cache="clean.sqlite")
        n_clean = server.count
    faults = {0: "429", 2: "500", 5: "malformed", 9: "close", 12: "503", 16: "bad_schema"}
    with FakeOpenAIServer(responder=play, faults=faults) as server:
        faulty = run(server, tmp_path, data_dir, "faulty", runs=2, cache="faulty.sqlite")
        assert server.count == n_clean + len(faults)  # each fault was hit once and retried
    strip = ("latency_s",)
    a_rows, b_rows = rows_of(clean), rows_of(faulty)
    assert list(a_rows) == list(b_rows)
    for key, a in a_rows.items():
        a, b = ({k: v for k, v in r.items() if k not in strip} for r in (a, b_rows[key]))
        a["judge"]["fingerprint"].pop("backend"), b["judge"]["fingerprint"].pop("backend")  # other port
        assert a == b
    assert json.dumps(clean.metrics["mmvet"]["metrics"]) == json.dumps(faulty.metrics["mmvet"]["metrics"])
    assert faulty.metrics["mmvet"]["n_errors"] == 0


def test_rescore_reproduces_the_metrics_without_a_judge(tmp_path, data_dir):
    with FakeOpenAIServer(responder=play) as server:
        result = run(server, tmp_path, data_dir, runs=2)
    stored = json.loads((result.run_dir / "metrics.json").read_text())
    rescored = rescore_run(result.run_dir)  # the server is gone: any judge call would fail
    assert json.dumps(rescored, sort_keys=True) == json.dumps(stored, sort_keys=True)
    assert rescored["mmvet"]["metrics"]["total"]["value"] == 47.5


def test_imported_rows_have_one_output_per_run_and_the_same_parse_status():
    row = {"judge": {"outputs": ["0.5", "bad", "1.0 ok"]}}
    scored = MMVet().score_row(row)
    assert scored["judge_scores"] == [0.5, 0.0, 1.0]
    assert (scored["judge_tries"], scored["judge_fell_back"]) == ([1, 5, 1], [False, True, False])
    assert (scored["judge_fallbacks"], scored["judge_reasks"]) == (1, 4)


def test_dry_run_counts_one_call_per_item_and_run(tmp_path, data_dir):
    settings = JudgeSettings(base_url="http://127.0.0.1:9/v1", runs=2, cache_path=tmp_path / "c.sqlite")
    plan = plan_judging([MMVet()], settings, data_dir=data_dir)["mmvet"]
    assert (plan["calls"], plan["est_completion_tokens"]) == (4 * 2, 4 * 2 * 3)


def test_missing_data_names_the_file_and_where_it_comes_from(tmp_path, data_dir):
    with pytest.raises(UserError, match="pass --data toy, or --data-dir"):
        MMVet().load(DataSpec())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError) as err:
        MMVet().load(DataSpec(data_dir=empty))
    assert str(empty / "mm-vet.json") in str(err.value) and "releases/download/v1/mm-vet.zip" in str(
        err.value
    )
    (data_dir / "images" / "dots.png").unlink()
    with pytest.raises(UserError) as err:
        MMVet().load(DataSpec(data_dir=data_dir))
    assert str(data_dir / "images" / "dots.png") in str(err.value) and "--image-dir" in str(err.value)
    # --limit 1 only needs the first item's image; --image-dir replaces images/
    assert [s.id for s in MMVet().load(DataSpec(data_dir=data_dir, limit=1)).samples] == ["v1_0"]
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(UserError, match=str(other / "eq.png")):
        MMVet().load(DataSpec(data_dir=data_dir, image_dir=other))
    with FakeOpenAIServer(responder=play) as server:
        with pytest.raises(UserError, match="dots.png"):
            run(server, tmp_path, data_dir)
        assert server.count == 0  # refused before any request


def test_toy_data_has_the_official_schema_and_matches_its_images(tmp_path):
    from evalkit.tasks.mmvet.protocol import CAPABILITIES
    from evalkit.toy.world import STYLE

    loaded = MMVet().load(DataSpec(toy=True, seed=3))
    meta_path = Path(loaded.info["image_dir"]).parent / "mm-vet.json"
    raw = json.loads(meta_path.read_text())
    assert list(raw) == [f"v1_{i}" for i in range(len(raw))] and len(raw) == len(loaded.samples) >= 50
    for item in raw.values():
        assert set(item) == {"imagename", "question", "answer", "capability"}
        assert all(isinstance(item[f], str) for f in ("imagename", "question", "answer"))
        assert item["capability"] and set(item["capability"]) <= set(CAPABILITIES)
    assert {c for item in raw.values() for c in item["capability"]} == {"rec", "spat", "math"}
    assert any("<AND>" in item["answer"] for item in raw.values())
    assert any("<OR>" in item["answer"] for item in raw.values())
    colour_to_object = {colour: name for name, (_, colour) in STYLE.items()}
    checked = 0
    for sample in loaded.samples:
        image = Image.open(sample.messages[0].images[0]).convert("RGB")
        seen = {colour_to_object[c] for _, c in image.getcolors() if c != (0, 0, 0)}
        question = sample.messages[0].text
        if question == "How many objects are in the image?":
            assert sample.target == str(len(seen))
            checked += 1
        elif question == "What objects are in the image?":
            assert set(sample.target.split("<AND>")) == seen
            checked += 1
    assert checked > 0
    mtime = meta_path.stat().st_mtime_ns
    again = MMVet().load(DataSpec(toy=True, seed=3))  # written once, then read
    assert meta_path.stat().st_mtime_ns == mtime and [s.target for s in again.samples] == [
        s.target for s in loaded.samples
    ]
    other = MMVet().load(DataSpec(toy=True, seed=4))
    assert [s.target for s in other.samples] != [s.target for s in loaded.samples]
