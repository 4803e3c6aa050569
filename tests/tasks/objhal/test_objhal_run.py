"""Object HalBench through `evaluate` against a real OpenAI-compatible server on 127.0.0.1 playing the model
under test and the extraction judge (gpt-3.5-turbo-0613): the official prompt byte for byte, the JSON parse
with its last-line fallback and re-ask, short answers skipping the judge, N judge runs, a fault-injected run
equal to a clean run, `rescore` reproducing the metrics, the re-ask bound, and a words-mode run that needs no
server and no API key for its judge."""

import json

import pytest
from support.objhal import make_data
from support.openai_server import FakeOpenAIServer, last_user_text, message_text

from evalkit.judges.settings import JudgeSettings
from evalkit.models.base import Backend, BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import RunFailed, evaluate, plan_judging
from evalkit.scoring import rescore_run
from evalkit.tasks.objhal import ObjHal
from evalkit.types import Response

pytestmark = pytest.mark.usefixtures("fast_retries")

JUDGE = "gpt-3.5-turbo-0613"
#: what the model under test answers to each question (image ids 101..104)
ANSWERS = {
    "Describe image 1 in detail.": "A man and his puppy play with a cat. The dog runs.",
    "Describe image 2 in detail.": "Yellow taxi.",  # ≤ 3 words: no judge call, no object
    "Describe image 3 in detail.": "A clean white bathroom with tiles.",
    "Describe image 4 in detail.": "Assistant: An elephant sits on a chair wearing a bow tie. ",
}
#: the judge's reply per answer (keyed by a word of it) and run (seed % 1000); 'bathroom' is unparseable on a
#: first try (seed < 1000) and parses from its last line on the re-ask
REPLIES = {
    ("puppy", 0): '["men", "puppies", "black cat", "dog", "dog"]',
    ("puppy", 1): '["men", "puppies", "black cat", "dog", "dog"]',
    ("elephant", 0): '["elephant", "wooden chair", "bow tie"]',
    ("elephant", 1): '["elephant"]',
}
EXPECTED_PROMPT = (
    "You are an expert in image objects extraction according to a question answer pair. We asked an "
    "examiner to answer a question about a picture.\n\n[Start of Question]\n\n<image> Describe image 4 in "
    "detail.\n\n[End of Question]\n\n[Start of Examiner's Answer]\n\nAn elephant sits on a chair wearing a "
    "bow tie.\n\n[End of Examiner's Answer]\n\n\nAssume that the answer is correct, please identify all "
    "visible objects that are directly shown in the image. Please following the instructions in below:\n\n"
    "1. You should only mention objects that are explicitly mentioned in the examiner's answer.\n"
    "2. You should only extract the object names without the attributes of the objects.\n"
    "3. You should not include the properties of the object, like the color, material, etc. as part of the "
    "object name in your result.\n"
    '4. Make your answer precise. Present the results in a JSON list format: ["object_1", ..., "object_n"].\n'
    "5. You should return an empty JSON list () if no visible objects can be found.\n"
)


def play(body):
    if body["model"] == "candidate":
        return ANSWERS[last_user_text(body)]
    (system,) = body["messages"]
    text = message_text(system)
    seed = body.get("seed", 0)
    if "bathroom" in text:
        return "The objects are a bathroom and tiles." if seed < 1000 else 'Sure:\n["bathroom", "tile"]'
    key = "puppy" if "puppy" in text else "elephant"
    return REPLIES[(key, seed % 1000)]


def run(server, data_dir, out, runs=None, **options):
    backend = OpenAIBackend("candidate", BackendOptions(base_url=server.base_url, max_retries=3))
    settings = JudgeSettings(base_url=server.base_url, timeout_s=5.0, runs=runs)
    return evaluate(
        backend,
        [ObjHal()],
        data_dir=data_dir,
        output=out,
        judges=settings,
        task_options={"objhal.nlp": "builtin", **options},
        progress=False,
    )


def rows_of(result):
    return [json.loads(line) for line in open(result.run_dir / "samples" / "objhal.jsonl")]


def judge_bodies(server):
    return [b for b in server.requests if b["model"] != "candidate"]


def test_llm_extraction_run(tmp_path):
    data = make_data(tmp_path / "data")
    with FakeOpenAIServer(responder=play) as server:
        result = run(server, data, tmp_path / "run")
        bodies = judge_bodies(server)
    # the official request for item 4: one system message, "Assistant:" stripped from the answer
    (body,) = [b for b in bodies if "elephant" in message_text(b["messages"][0])]
    assert body["model"] == JUDGE
    assert body["messages"] == [{"role": "system", "content": EXPECTED_PROMPT}]
    assert (body["temperature"], body["max_tokens"], body["top_p"]) == (0.2, 512, 1.0)
    # image 2's answer has 2 words: no call; image 3's first reply is unparseable: asked again (seed 1000)
    assert sorted(b.get("seed") for b in bodies) == [0, 0, 0, 1000]
    rows = {r["meta"]["image_id"]: r for r in rows_of(result)}
    assert rows[102]["judge"]["calls"] == [] and rows[102]["extraction_status"] == ["short"]
    assert rows[103]["extraction_status"] == ["last_line"] and rows[103]["reasks"] == 1
    assert len(rows[103]["judge"]["attempts"][0]) == 2 and rows[103]["objects"] == [[]]
    assert rows[101]["objects"] == [[["man", "person"], ["puppy", "dog"], ["cat", "cat"], ["dog", "dog"]]]
    assert rows[104]["hallucinated_objects"] == [[["chair", "chair"], ["tie", "tie"]]]
    m = result.metrics["objhal"]["metrics"]
    # hallucinated: 101 (cat), 104 (chair, tie); with objects: 101, 104; mentions 4 + 3 (one per phrase)
    assert m["CHAIRs"]["value"] == pytest.approx(100 * 2 / 4)
    assert m["CHAIRs_refine"]["value"] == pytest.approx(100.0)
    assert m["CHAIRi"]["value"] == pytest.approx(100 * 3 / 7)
    assert m["obj_recall"]["value"] == pytest.approx(100 * (2 + 1) / 6)
    assert m["unparsed"]["value"] == 0 and m["reasks"]["value"] == 1
    assert result.metrics["objhal"]["headline"] == "CHAIRs_refine"
    fp = rows[101]["judge"]["fingerprint"]
    assert fp["model"] == f"openai:{JUDGE}" and fp["temperature"] == 0.2 and fp["max_tokens"] == 512
    # rescore from the stored rows alone gives the same metrics
    assert rescore_run(result.run_dir)["objhal"]["metrics"] == m


def test_two_judge_runs_average_their_rates(tmp_path):
    data = make_data(tmp_path / "data")
    with FakeOpenAIServer(responder=play) as server:
        result = run(server, data, tmp_path / "run", runs=2)
        seeds = sorted(b.get("seed") for b in judge_bodies(server))
    assert seeds == [0, 0, 0, 1, 1, 1, 1000, 1001]
    rows = {r["meta"]["image_id"]: r for r in rows_of(result)}
    assert [len(o) for o in rows[104]["objects"]] == [3, 1]
    m = result.metrics["objhal"]["metrics"]
    # run 0: refine 2/2, CHAIRi 3/7; run 1: 104 mentions only the elephant → refine 1/2, CHAIRi 1/5
    assert m["CHAIRs_refine"]["value"] == pytest.approx((100 + 50) / 2)
    assert m["CHAIRi"]["value"] == pytest.approx((100 * 3 / 7 + 100 * 1 / 5) / 2)
    assert m["obj_recall"]["value"] == pytest.approx(50.0)


def test_faults_do_not_change_the_result(tmp_path, monkeypatch):
    data = make_data(tmp_path / "data")
    with FakeOpenAIServer(responder=play) as server:
        monkeypatch.setenv("EVALKIT_JUDGE_CACHE", str(tmp_path / "judge-clean.sqlite"))
        clean = run(server, data, tmp_path / "clean")
    kinds, seen = ("429", "500", "malformed", "close", "503"), set()

    def first_attempt_fails(index, body):  # every request (model and judge) fails once, then succeeds
        key = json.dumps(body, sort_keys=True)
        if key in seen:
            return None
        seen.add(key)
        return kinds[len(seen) % len(kinds)]

    with FakeOpenAIServer(responder=play, faults=first_attempt_fails) as server:
        monkeypatch.setenv("EVALKIT_JUDGE_CACHE", str(tmp_path / "judge-faulty.sqlite"))
        faulty = run(server, data, tmp_path / "faulty")
        assert server.count == 2 * (4 + 4)  # 4 answers, 4 judge calls, each twice
    for a, b in zip(rows_of(clean), rows_of(faulty), strict=True):
        for r in (a, b):
            r.pop("latency_s"), r["judge"]["fingerprint"].pop("backend")
            r.pop("images"), r.pop("prompt_hash")  # the pictures are decoded into each run's own cache
        assert a == b
    assert clean.metrics["objhal"]["metrics"] == faulty.metrics["objhal"]["metrics"]


def test_the_reask_bound_and_the_dry_run(tmp_path):
    data = make_data(tmp_path / "data")

    def never_json(body):
        return ANSWERS[last_user_text(body)] if body["model"] == "candidate" else "no list here"

    settings = JudgeSettings(base_url="http://127.0.0.1:9/v1")
    plan = plan_judging([ObjHal()], settings, data_dir=data, task_options={"objhal.nlp": "builtin"})
    assert plan["objhal"]["calls"] == 4  # unanswered samples are estimated as long answers
    with FakeOpenAIServer(responder=never_json) as server:
        # no extraction parses: the headline has no value and 3 of 4 rows failed, so the run fails
        with pytest.raises(
            RunFailed, match=r"objhal: CHAIRs_refine has no value.*failure rate 75\.0%"
        ) as exc:
            run(server, data, tmp_path / "run")
        result = exc.value.result
        n_judge = len(judge_bodies(server))
    assert n_judge == 3 * 100  # three answers of more than 3 words, 100 tries each
    rows = {r["meta"]["image_id"]: r for r in rows_of(result)}
    assert rows[101]["extraction_status"] == ["failed"] and rows[101]["objects"] == [[]]
    m = result.metrics["objhal"]["metrics"]
    assert m["unparsed"]["value"] == 3 and m["reasks"]["value"] == 3 * 99
    assert m["CHAIRs"]["value"] == 0 and m["CHAIRs_refine"]["value"] is None  # no response with objects


class Scripted(Backend):
    """A model under test in this process: answers each question from `ANSWERS`."""

    name = "scripted"

    def generate(self, requests):
        return [Response(r.id, text=ANSWERS[r.messages[-1].text]) for r in requests]

    def fingerprint(self):
        return {"scripted": 1}


def test_words_mode_needs_no_judge_server_or_key(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    data = make_data(tmp_path / "data")
    settings = JudgeSettings(base_url="http://127.0.0.1:9/v1", max_retries=0)  # nothing listens there
    result = evaluate(
        Scripted(),
        [ObjHal()],
        data_dir=data,
        output=tmp_path / "run",
        judges=settings,
        task_options={"objhal.nlp": "builtin", "objhal.extraction": "words"},
        progress=False,
    )
    m = result.metrics["objhal"]["metrics"]
    assert result.metrics["objhal"]["n_errors"] == 0
    # words mode: 101 person, dog, cat (h), dog; 102 taxi; 104 elephant, chair (h), tie (h); 103 nothing
    assert m["CHAIRs_refine"]["value"] == pytest.approx(100 * 2 / 3)
    assert m["CHAIRi"]["value"] == pytest.approx(100 * 3 / 8)
    header = json.loads((result.run_dir / "run.json").read_text())
    assert header["judges"]["objhal"]["usage"]["calls"] == 0
    assert header["tasks"]["objhal"]["data"]["extraction"] == "words"
    assert rescore_run(result.run_dir)["objhal"]["metrics"] == m
