"""`evalkit run --tasks mt_bench` against a real OpenAI-compatible server on 127.0.0.1 that plays the model
under test ("candidate") and the official judge ("gpt-4"): the two-turn conversation, per-category
temperatures, the exact FastChat judge messages (with GPT-4's or a user-given reference answer), the
rating parse and its fallback, the MT-Bench score against a hand computation, several judge runs, faults,
rescore, and data errors. Questions are official lines of question.jsonl written into a test folder.
"""

import hashlib
import json
import re

import pytest
from support.openai_server import FakeOpenAIServer, Fault, last_user_text, message_text

from evalkit.judges.settings import JudgeSettings
from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import evaluate, load_tasks, plan_judging
from evalkit.scoring import rescore_run
from evalkit.task import DataSpec
from evalkit.tasks.mt_bench import MTBench
from evalkit.tasks.mt_bench.data import DATA_DIR
from evalkit.types import UserError

pytestmark = pytest.mark.usefixtures("fast_retries")

#: writing (T 0.7), roleplay (0.7), math (0.0, graded against a reference), stem (0.1)
QIDS = (81, 91, 111, 141)
TEMPERATURES = {81: 0.7, 91: 0.7, 111: 0.0, 141: 0.1}
RATINGS = {
    (81, 1): "Vivid and well organised. Rating: [[7]]",
    (81, 2): "Most sentences follow the rule. Rating: [5]",  # the official [x] fallback
    (91, 1): "Rating: [[8.5]]",
    (91, 2): "I cannot rate this response.",  # no rating: -1, dropped
    (111, 1): "Matches the reference answer. [[10]]",
    (111, 2): "Step [2] is wrong. Rating: [[3]]",  # [[x]] anywhere beats an earlier [x]
    (141, 1): "Rating: [[6]]",
    (141, 2): "Rating: [[4]] (I considered [[9]])",  # the first [[x]]
}
SCORES = {
    (81, 1): 7,
    (81, 2): 5,
    (91, 1): 8.5,
    (91, 2): -1,
    (111, 1): 10,
    (111, 2): 3,
    (141, 1): 6,
    (141, 2): 4,
}
STATUS = {(81, 2): "fallback", (91, 2): "unparsed"}
# by hand over the 7 kept judgments (the -1 is dropped, not averaged)
EXPECTED = {
    "score": (7 + 5 + 8.5 + 10 + 3 + 6 + 4) / 7,
    "turn1": (7 + 8.5 + 10 + 6) / 4,
    "turn2": (5 + 3 + 4) / 3,
    "category/writing": (7 + 5) / 2,
    "category/roleplay": 8.5,
    "category/math": (10 + 3) / 2,
    "category/stem": (6 + 4) / 2,
    "dropped": 1.0,
}


def official_lines(name):
    return [json.loads(line) for line in (DATA_DIR / name).read_text().splitlines() if line.strip()]


QUESTIONS = {q["question_id"]: q for q in official_lines("question.jsonl")}
PROMPTS = {p["name"]: p for p in official_lines("judge_prompts.jsonl")}
GPT4_REFS = {
    r["question_id"]: r["choices"][0]["turns"] for r in official_lines("reference_answer/gpt-4.jsonl")
}


def answer(qid, turn):
    """What the candidate says, before FastChat's strip (braces are data, never placeholders)."""
    return f"  ans{qid}t{turn} {{keep}} text \n"


def candidate(body):
    users = [message_text(m) for m in body["messages"] if m["role"] == "user"]
    qid = next(q for q, row in QUESTIONS.items() if row["turns"][0] == users[0])
    return answer(qid, len(users))


def judged(body):
    """(question id, turn) a judge request grades: the last answer tag in its user prompt."""
    qid, turn = re.findall(r"ans(\d+)t(\d)", last_user_text(body))[-1]
    return int(qid), int(turn)


def play(body):
    return candidate(body) if body["model"] == "candidate" else RATINGS[judged(body)]


def play_runs(body):
    """A judge whose rating depends on the run (the request's seed)."""
    if body["model"] == "candidate":
        return candidate(body)
    qid, turn = judged(body)
    return f"Rating: [[{(qid + turn + body['seed']) % 10 + 1}]]"


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "mt_bench"
    folder.mkdir()
    (folder / "question.jsonl").write_text("".join(json.dumps(QUESTIONS[q]) + "\n" for q in QIDS))
    return folder


def run(server, tmp_path, data_dir, name="run", runs=None, **kw):
    backend = OpenAIBackend(
        "candidate", BackendOptions(base_url=server.base_url, max_retries=3, timeout_s=2.0)
    )
    settings = JudgeSettings(
        base_url=server.base_url,
        concurrency=8,
        timeout_s=2.0,
        runs=runs,
        cache_path=tmp_path / f"{name}-judge-cache.sqlite",
    )
    try:
        return evaluate(
            backend,
            [MTBench()],
            data_dir=data_dir,
            output=tmp_path / name,
            judges=settings,
            progress=False,
            **{"max_failure_rate": 1.0, **kw},  # the unparsed rating is part of the protocol under test
        )
    finally:
        backend.close()


def rows_of(result):
    return [json.loads(line) for line in open(result.run_dir / "samples" / "mt_bench.jsonl")]


def messages(body):
    return [(m["role"], message_text(m)) for m in body["messages"]]


def expected_judge_messages(qid, turn, refs):
    """The judge conversation FastChat builds, from the raw official prompt file."""
    q = QUESTIONS[qid]["turns"]
    a = [answer(qid, 1).strip(), answer(qid, 2).strip()]
    math = qid in refs
    name = ("single-math-v1" if math else "single-v1") + ("-multi-turn" if turn == 2 else "")
    kwargs = {"ref_answer_1": refs[qid][0], "ref_answer_2": refs[qid][1]} if math else {}
    template = PROMPTS[name]["prompt_template"]
    if turn == 1:
        user = template.format(question=q[0], answer=a[0], **kwargs)
    else:
        user = template.format(question_1=q[0], question_2=q[1], answer_1=a[0], answer_2=a[1], **kwargs)
    return [("system", PROMPTS[name]["system_prompt"]), ("user", user)], name


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_judged_run_follows_fastchat_and_scores_like_show_result(tmp_path, data_dir):
    with FakeOpenAIServer(responder=play) as server:
        result = run(server, tmp_path, data_dir)
        bodies = server.requests
    model = [b for b in bodies if b["model"] == "candidate"]
    judge = [b for b in bodies if b["model"] != "candidate"]
    assert len(model) == 2 * len(QIDS) and len(judge) == 2 * len(QIDS)

    for qid in QIDS:
        q = QUESTIONS[qid]["turns"]
        first = [b for b in model if messages(b) == [("user", q[0])]]
        second = [b for b in model if len(b["messages"]) == 3 and message_text(b["messages"][0]) == q[0]]
        assert len(first) == len(second) == 1
        # turn 2 continues the conversation with the stripped turn-1 answer
        assert messages(second[0]) == [("user", q[0]), ("assistant", answer(qid, 1).strip()), ("user", q[1])]
        for b in (first[0], second[0]):
            assert b["temperature"] == TEMPERATURES[qid] and b["max_tokens"] == 1024

    assert {(b["model"], b["temperature"], b["max_tokens"]) for b in judge} == {("gpt-4", 0.0, 2048)}
    by_item = {judged(b): b for b in judge}
    assert sorted(by_item) == sorted(RATINGS)
    for qid in (81, 111):  # a general and a reference-graded question, both turns
        for turn in (1, 2):
            expected, _ = expected_judge_messages(qid, turn, GPT4_REFS)
            assert messages(by_item[(qid, turn)]) == expected
    math_turn1 = messages(by_item[(111, 1)])[1][1]
    assert GPT4_REFS[111][0] in math_turn1 and "[The Start of Reference Answer]" in math_turn1
    assert "Reference" not in messages(by_item[(81, 2)])[1][1]

    rows = {int(r["id"]): r for r in rows_of(result)}
    assert sorted(rows) == sorted(QIDS)
    for qid, row in rows.items():
        assert row["responses"] == [answer(qid, 1), answer(qid, 2)] and row["response"] == answer(qid, 1)
        assert row["meta"] == {
            "question_id": qid,
            "category": QUESTIONS[qid]["category"],
            "questions": QUESTIONS[qid]["turns"],
        }
        record = row["judge"]
        assert record["outputs"] == [RATINGS[(qid, 1)], RATINGS[(qid, 2)]]
        assert record["turns"] == [1, 2] and "runs" not in record
        assert record["prompts"] == [expected_judge_messages(qid, t, GPT4_REFS)[1] for t in (1, 2)]
        assert row["judge_scores"] == [SCORES[(qid, 1)], SCORES[(qid, 2)]]
        assert row["judge_parse"] == [STATUS.get((qid, t), "parsed") for t in (1, 2)]
        assert row["judge_dropped"] == (1 if qid == 91 else 0)
    assert rows[111]["target"] == GPT4_REFS[111] and rows[81]["target"] is None

    summary = result.metrics["mt_bench"]
    assert summary["headline"] == "score" and summary["n_errors"] == 0
    # question 91's dropped turn-2 rating makes its row failed; the "[x]" fallback of 81 parsed
    assert (summary["n_unparsed"], summary["n_failed"]) == (1, 1)
    assert summary["failure_rate"] == 1 / len(QIDS)
    metrics = summary["metrics"]
    assert {k: m["value"] for k, m in metrics.items()} == pytest.approx(EXPECTED)
    assert metrics["score"]["n"] == 7 and metrics["dropped"]["n"] == 8
    data = json.loads((result.run_dir / "run.json").read_text())["tasks"]["mt_bench"]["data"]
    assert data["reference"]["sha256"] == sha(DATA_DIR / "reference_answer" / "gpt-4.jsonl")
    assert data["questions"]["sha256"] == sha(data_dir / "question.jsonl")


def test_several_judge_runs_are_pooled(tmp_path, data_dir):
    with FakeOpenAIServer(responder=play_runs) as server:
        result = run(server, tmp_path, data_dir, runs=2)
        judge = [b for b in server.requests if b["model"] != "candidate"]
    assert len(judge) == 2 * 2 * len(QIDS) and {b["seed"] for b in judge} == {0, 1}
    ratings = {(q, t, r): (q + t + r) % 10 + 1 for q in QIDS for t in (1, 2) for r in (0, 1)}
    for row in rows_of(result):
        qid = int(row["id"])
        assert row["judge"]["runs"] == [0, 0, 1, 1] and row["judge"]["turns"] == [1, 2, 1, 2]
        assert row["judge_scores"] == [ratings[(qid, t, r)] for r in (0, 1) for t in (1, 2)]
    metrics = result.metrics["mt_bench"]["metrics"]
    assert metrics["score"]["value"] == pytest.approx(sum(ratings.values()) / len(ratings))
    turn2 = [v for (_, t, _), v in ratings.items() if t == 2]
    assert metrics["turn2"]["value"] == pytest.approx(sum(turn2) / len(turn2))
    assert metrics["score"]["n"] == 16 and metrics["dropped"]["value"] == 0


def test_faults_do_not_change_the_result(tmp_path, data_dir):
    with FakeOpenAIServer(responder=play) as clean_server:
        clean = run(clean_server, tmp_path, data_dir, "clean")
    faults = {0: "429", 2: "500", 5: "malformed", 9: Fault("delay", seconds=3.0), 11: "close", 13: "503"}
    with FakeOpenAIServer(responder=play, faults=faults) as server:
        faulty = run(server, tmp_path, data_dir, "faulty")
        assert len(server.requests) > len(clean_server.requests)
    for a, b in zip(rows_of(clean), rows_of(faulty), strict=True):
        for r in (a, b):
            r.pop("latency_s")
            r["judge"]["fingerprint"].pop("backend")  # another port
        assert a == b
    assert clean.metrics["mt_bench"]["metrics"] == faulty.metrics["mt_bench"]["metrics"]


def test_rescore_reproduces_the_metrics_from_stored_judgments(tmp_path, data_dir):
    with FakeOpenAIServer(responder=play) as server:
        result = run(server, tmp_path, data_dir)
    assert rescore_run(result.run_dir)["mt_bench"]["metrics"] == result.metrics["mt_bench"]["metrics"]
    # rescore re-parses the stored texts: a judgment edited in the sample log changes the score
    path = result.run_dir / "samples" / "mt_bench.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for r in rows:
        if r["id"] == "91":
            r["judge"]["outputs"][1] = "Rating: [[2]]"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = rescore_run(result.run_dir)["mt_bench"]["metrics"]
    assert metrics["score"]["value"] == pytest.approx((7 + 5 + 8.5 + 2 + 10 + 3 + 6 + 4) / 8)
    assert metrics["dropped"]["value"] == 0


def test_reference_option_changes_the_math_judge_prompt(tmp_path, data_dir):
    refs = {111: ["Our reference {one}: 12", "Our second reference: 40"]}
    ref_file = tmp_path / "my-judge.jsonl"
    ref_file.write_text(
        json.dumps(
            {"question_id": 111, "model_id": "my-judge", "choices": [{"index": 0, "turns": refs[111]}]}
        )
        + "\n"
    )
    with FakeOpenAIServer(responder=play) as server:
        result = run(server, tmp_path, data_dir, task_options={"mt_bench.reference": str(ref_file)})
        by_item = {judged(b): b for b in server.requests if b["model"] != "candidate"}
    for turn in (1, 2):
        expected, _ = expected_judge_messages(111, turn, refs)
        assert messages(by_item[(111, turn)]) == expected
        assert GPT4_REFS[111][0] not in messages(by_item[(111, turn)])[1][1]
    assert messages(by_item[(81, 1)]) == expected_judge_messages(81, 1, refs)[0]  # no reference used
    data = json.loads((result.run_dir / "run.json").read_text())["tasks"]["mt_bench"]["data"]
    assert data["reference"] == {"file": "my-judge.jsonl", "sha256": sha(ref_file)}


def test_missing_data_is_a_user_error_before_any_request(tmp_path, data_dir):
    other = tmp_path / "refs.jsonl"
    other.write_text(json.dumps({"question_id": 101, "choices": [{"index": 0, "turns": ["a", "b"]}]}) + "\n")
    with FakeOpenAIServer(responder=play) as server:
        with pytest.raises(UserError, match=r"refs\.jsonl.*question 111 \(math\)"):
            run(server, tmp_path, data_dir, task_options={"mt_bench.reference": str(other)})
        with pytest.raises(UserError, match=r"nowhere\.jsonl: file not found"):
            run(
                server,
                tmp_path,
                data_dir,
                task_options={"mt_bench.reference": str(tmp_path / "nowhere.jsonl")},
            )
        takes = r"mt_bench\.reference, mt_bench\.image_dir, mt_bench\.image_seed, mt_bench\.image_mode$"
        with pytest.raises(UserError, match=r"mt_bench takes " + takes):
            run(server, tmp_path, data_dir, task_options={"mt_bench.judge": "x"})
        with pytest.raises(UserError, match=r"empty[/\\]question\.jsonl not found"):
            (tmp_path / "empty").mkdir()
            run(server, tmp_path, tmp_path / "empty")
        assert server.count == 0
    # a reference file covering the loaded questions is enough, whatever else it lacks
    spec = DataSpec(data_dir=data_dir, limit=2, options={"mt_bench.reference": str(other)})
    assert [s.id for s in MTBench().load(spec).samples] == ["81", "91"]


def test_bundled_questions_need_no_data_flags(tmp_path):
    _, loaded = load_tasks("mt_bench")
    data = loaded["mt_bench"]
    assert [s.id for s in data.samples] == [str(q) for q in range(81, 161)]
    assert (
        data.info["questions"]["sha256"] == sha(DATA_DIR / "question.jsonl")
        and data.info["questions_bundled"]
    )
    limited = MTBench().load(DataSpec(limit=3))
    assert [s.id for s in limited.samples] == ["81", "82", "83"]
    toy = MTBench().load(DataSpec(toy=True, limit=3))
    assert [s.messages for s in toy.samples] == [s.messages for s in limited.samples]
    # --dry-run: two judge calls per question, at the official judge settings
    plan = plan_judging([MTBench()], JudgeSettings(base_url="http://127.0.0.1:9/v1"), limit=5)["mt_bench"]
    assert (
        plan["judge"] == "openai:gpt-4" and plan["calls"] == 10 and plan["est_completion_tokens"] == 10 * 2048
    )
