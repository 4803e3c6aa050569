"""The judge phase of `evaluate` against a real OpenAI-compatible server on 127.0.0.1 that plays both the
model under test and the judge: a run under injected faults stores the same judgments and scores as a
clean run, a finished run re-runs with zero requests, judge cost equals the server's reported usage,
unreachable judges are counted failures that a re-run repairs without regenerating, and `--dry-run` /
`--judge-budget-usd` count the calls a run will make.

The task here is a small judged two-turn task written for these tests; it follows the judged-task
protocol (`JudgedTask`) the benchmark tasks implement, including a re-ask after an unparseable grade.
"""

import hashlib
import json
import re

import pytest
from support.openai_server import FakeOpenAIServer, Fault, completion, last_user_text, message_text

from evalkit.judges.judge import JudgeCall, JudgeSpec, prompt_sha256
from evalkit.judges.settings import JudgeSettings
from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import RunFailed, evaluate, plan_judging
from evalkit.stats import mean_estimate
from evalkit.task import JudgedTask, LoadedData
from evalkit.types import GenerationConfig, Message, Request, Sample, UserError

N = 12
TEMPLATE = "Grade the answer from 0 to 9.\nQuestion: {q}\nAnswer: {a}"
RETRY = "\nReply with the digit only."
GRADE = re.compile(r"^Grade: (\d)$")


class TwoTurnGraded(JudgedTask):
    name = "two_turn_graded"
    version = "1"
    description = "test task"
    data_needs = "none"
    headline = "score"
    generation = GenerationConfig(max_new_tokens=16)
    judge_spec = JudgeSpec("openai:gpt-4-0613", temperature=0.5, max_tokens=8, n_runs=2)

    def load(self, spec):
        samples = [Sample(f"s{i}", (Message("user", f"Question {i}?"),), meta={"i": i}) for i in range(N)]
        return LoadedData(samples, {"n": N})

    def n_turns(self, sample):
        return 2

    def turn_request(self, sample, turn, previous, seed=0):
        messages = (*sample.messages, Message("assistant", previous[0]), Message("user", "And then?"))
        return Request(sample.id, messages, self.generation, seed)

    def score(self, response, target, meta):
        raise AssertionError("judged rows are scored from their judge record")

    def judge_prompt_hash(self):
        return prompt_sha256(TEMPLATE, RETRY)

    def judge_calls(self, row, done, n_runs):
        calls = []
        for run in range(n_runs):
            mine = [d for d in done if d["run"] == run]
            if mine and (parse(mine[-1]["output"]) is not None or len(mine) == 3):
                continue  # graded, or given up after 3 tries
            text = TEMPLATE.format(q=row["prompt"], a=" / ".join(row["responses"])) + (RETRY if mine else "")
            gen = GenerationConfig(max_new_tokens=8, temperature=0.5 + 0.5 * len(mine))
            calls.append(JudgeCall(f"run{run}/try{len(mine)}", (Message("user", text),), gen, run))
        return calls

    def judge_record(self, row, done, n_runs):
        return {"outputs": [[d["output"] for d in done if d["run"] == r][-1] for r in range(n_runs)]}

    def score_row(self, row):
        grades = [parse(o) for o in row["judge"]["outputs"]]
        return {"grades": [0 if g is None else g for g in grades], "unparsed": sum(g is None for g in grades)}

    def aggregate(self, rows):
        est = mean_estimate([sum(r["grades"]) / len(r["grades"]) for r in rows])
        return {"score": est.to_dict(), "unparsed": {"value": float(sum(r["unparsed"] for r in rows))}}


def parse(output):
    m = GRADE.match(output.strip())
    return int(m.group(1)) if m else None


def digest(text):
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def play(body):
    """The model under test answers from the question; the judge grades from the answers it sees,
    and answers the first try for every third question with something unparseable."""
    text = last_user_text(body)
    if body["model"] == "candidate":
        history = " ".join(message_text(m) for m in body["messages"])
        return f"answer {digest(history) % 1000}"
    if "Reply with the digit only" not in text and digest(text) % 3 == 0:
        return "I cannot decide."
    return completion(body, f"Grade: {digest(text + str(body.get('seed'))) % 10}")


def judge_bodies(server):
    return [b for b in server.requests if b["model"] != "candidate"]


def run(server, tmp_path, name="run", settings=None, **kw):
    backend = OpenAIBackend(
        "candidate", BackendOptions(base_url=server.base_url, max_retries=3, timeout_s=2.0)
    )
    settings = settings or JudgeSettings(base_url=server.base_url, concurrency=8, timeout_s=2.0)
    return evaluate(backend, [TwoTurnGraded()], output=tmp_path / name, judges=settings, progress=False, **kw)


def rows_of(result):
    return [json.loads(line) for line in open(result.run_dir / "samples" / "two_turn_graded.jsonl")]


pytestmark = pytest.mark.usefixtures("fast_retries")


def test_judged_run_stores_the_protocol_and_scores_it(tmp_path, openai_server):
    server = openai_server(responder=play)
    result = run(server, tmp_path)
    model_requests = [b for b in server.requests if b["model"] == "candidate"]
    rows = rows_of(result)
    assert len(model_requests) == 2 * N  # two turns each
    assert len(rows) == N and all(len(r["responses"]) == 2 for r in rows)
    expected = []
    for r in rows:
        grades = []
        for run_index in range(2):
            text = TEMPLATE.format(q=r["prompt"], a=" / ".join(r["responses"]))
            first_unparsed = digest(text) % 3 == 0
            final = text + RETRY if first_unparsed else text
            grades.append(digest(final + str(run_index)) % 10)
            calls = [c for c in r["judge"]["calls"] if c["run"] == run_index]
            assert len(calls) == (2 if first_unparsed else 1)
        assert r["grades"] == grades
        expected.append(sum(grades) / 2)
        fp = r["judge"]["fingerprint"]
        assert fp["model"] == "openai:gpt-4-0613" and fp["n_runs"] == 2
        assert fp["prompt_sha256"] == prompt_sha256(TEMPLATE, RETRY)
        assert all(len(c["prompt_hash"]) == 16 and isinstance(c["output"], str) for c in r["judge"]["calls"])
    metrics = result.metrics["two_turn_graded"]
    assert metrics["metrics"]["score"]["value"] == pytest.approx(sum(expected) / N)
    assert metrics["n_errors"] == 0
    header = json.loads((result.run_dir / "run.json").read_text())
    assert header["judges"]["two_turn_graded"]["fingerprint"] == rows[0]["judge"]["fingerprint"]


def test_faults_do_not_change_the_judgments_and_a_rerun_makes_no_request(
    tmp_path, monkeypatch, openai_server
):
    clean_server = openai_server(responder=play)
    monkeypatch.setenv("EVALKIT_JUDGE_CACHE", str(tmp_path / "judge-clean.sqlite"))
    clean = run(clean_server, tmp_path, "clean")
    faults = {1: "429", 4: "500", 9: "malformed", 13: Fault("delay", seconds=3.0), 20: "503", 31: "close"}
    faults.update({k: "500" for k in range(40, 44)})
    server = openai_server(responder=play, faults=faults)
    monkeypatch.setenv("EVALKIT_JUDGE_CACHE", str(tmp_path / "judge-faulty.sqlite"))
    faulty = run(server, tmp_path, "faulty")
    assert len(server.requests) > len(clean_server.requests)  # the faults were hit and retried
    n = server.count
    usage = json.loads((faulty.run_dir / "run.json").read_text())["judges"]["two_turn_graded"]["usage"]
    again = run(server, tmp_path, "faulty")
    assert server.count == n  # finished run: nothing generated, nothing judged
    # the run's judge cost is kept, not replaced by the re-run's zero
    assert json.loads((again.run_dir / "run.json").read_text())["judges"]["two_turn_graded"]["usage"] == usage
    assert usage["calls"] > 0
    strip = ["latency_s"]
    clean_rows = [{k: v for k, v in r.items() if k not in strip} for r in rows_of(clean)]
    faulty_rows = [{k: v for k, v in r.items() if k not in strip} for r in rows_of(faulty)]
    for a, b in zip(clean_rows, faulty_rows, strict=True):
        a["judge"]["fingerprint"].pop("backend"), b["judge"]["fingerprint"].pop("backend")  # other port
        assert a == b
    assert faulty.metrics == again.metrics
    assert clean.metrics["two_turn_graded"]["metrics"] == faulty.metrics["two_turn_graded"]["metrics"]


def test_a_new_run_reuses_the_judge_cache(tmp_path, openai_server):
    server = openai_server(responder=play)
    run(server, tmp_path, "first")
    n_judge = len(judge_bodies(server))
    result = run(server, tmp_path, "second")  # another folder: answers again, judges from the cache
    assert len(judge_bodies(server)) == n_judge
    usage = json.loads((result.run_dir / "run.json").read_text())["judges"]["two_turn_graded"]["usage"]
    assert usage["calls"] == 0 and usage["cache_hits"] == n_judge


def test_judge_cost_matches_the_usage_the_server_reported(tmp_path, openai_server):
    server = openai_server(responder=play)
    result = run(server, tmp_path)
    prompt = completion_tokens = 0
    for body in judge_bodies(server):
        reply = play(body)
        usage = reply["usage"] if isinstance(reply, dict) else completion(body, reply)["usage"]
        prompt += usage["prompt_tokens"]
        completion_tokens += usage["completion_tokens"]
    usage = json.loads((result.run_dir / "run.json").read_text())["judges"]["two_turn_graded"]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (prompt, completion_tokens)
    assert usage["cost_usd"] == pytest.approx((prompt * 30 + completion_tokens * 60) / 1e6)  # gpt-4-0613


def test_unreachable_judge_is_a_counted_failure_repaired_by_a_rerun(tmp_path, openai_server):
    down = {"on": True}

    def judge_down(index, body):
        hit = down["on"] and body["model"] != "candidate" and "Question 3?" in last_user_text(body)
        return "500" if hit else None

    server = openai_server(responder=play, faults=judge_down)
    with pytest.raises(RunFailed, match="failure rate"):
        run(server, tmp_path)
    rows = {r["id"]: r for r in rows_of_dir(tmp_path / "run")}
    assert rows["s3"]["error"]["type"] == "judge_error" and len(rows["s3"]["responses"]) == 2
    assert all(r["error"] is None for k, r in rows.items() if k != "s3")
    down["on"] = False
    n = server.count
    before = json.loads((tmp_path / "run" / "run.json").read_text())["judges"]["two_turn_graded"]["usage"]
    result = run(server, tmp_path)  # the same command again
    again = server.requests[n:]
    after = json.loads((result.run_dir / "run.json").read_text())["judges"]["two_turn_graded"]["usage"]
    assert before["failures"] == 2 and after["failures"] == 2  # s3's two runs failed the first time
    assert after["calls"] == before["calls"] + len(again)  # the cost of both attempts at the run
    assert all(b["model"] != "candidate" for b in again)  # nothing generated again
    assert all("Question 3?" in last_user_text(b) for b in again)  # only s3 judged
    assert 2 <= len(again) <= 4  # 2 runs, perhaps a re-ask each
    assert result.metrics["two_turn_graded"]["n_errors"] == 0


def rows_of_dir(run_dir):
    return [json.loads(line) for line in open(run_dir / "samples" / "two_turn_graded.jsonl")]


def test_dry_run_counts_calls_and_the_budget_refuses_a_run(tmp_path):
    settings = JudgeSettings(base_url="http://127.0.0.1:9/v1")
    plan = plan_judging([TwoTurnGraded()], settings)["two_turn_graded"]
    assert plan["calls"] == 2 * N and plan["cached"] == 0
    assert plan["est_completion_tokens"] == 2 * N * 8
    assert plan["est_cost_usd"] == pytest.approx(
        (plan["est_prompt_tokens"] * 30 + plan["est_completion_tokens"] * 60) / 1e6
    )
    with FakeOpenAIServer(responder=play) as server:
        tight = JudgeSettings(base_url=server.base_url, budget_usd=plan["est_cost_usd"] / 2)
        with pytest.raises(UserError, match="exceeds --judge-budget-usd"):
            run(server, tmp_path, settings=tight)
        assert server.count == 0
        unpriced = JudgeSettings(model="openai:local-judge", base_url=server.base_url, budget_usd=100.0)
        with pytest.raises(UserError, match="no price is known"):
            run(server, tmp_path, "unpriced", settings=unpriced)
        result = run(server, tmp_path)
    stored = plan_judging([TwoTurnGraded()], JudgeSettings(base_url=server.base_url), output=result.run_dir)
    assert stored["two_turn_graded"]["calls"] == 0  # everything judged already


def test_another_judge_is_never_merged_into_a_run(tmp_path, openai_server):
    server = openai_server(responder=play)
    run(server, tmp_path)
    other = JudgeSettings(model="openai:gpt-4o", base_url=server.base_url)
    with pytest.raises(UserError, match="holds a different run"):
        run(server, tmp_path, settings=other)


def test_logprobs_are_requested_and_stored_in_the_official_choice_shape(tmp_path, openai_server):
    from evalkit.judges.judge import Judge

    top = [{"token": "m", "logprob": -0.1}, {"token": "M", "logprob": -2.5}]

    def reply(body):
        assert body["logprobs"] is True and body["top_logprobs"] == 5
        out = completion(body, "m")
        out["choices"][0]["logprobs"] = {"content": [{"token": "m", "logprob": -0.1, "top_logprobs": top}]}
        return out

    server = openai_server(responder=reply)
    backend = OpenAIBackend("gpt-4-1106-preview", BackendOptions(base_url=server.base_url))
    judge = Judge(JudgeSpec("openai:gpt-4-1106-preview"), backend, "h")
    gen = GenerationConfig(max_new_tokens=1, temperature=1.0, top_logprobs=5)
    (answer,) = judge.ask_calls([JudgeCall("a", (Message("user", "which?"),), gen, 0)])
    backend.close()
    assert answer.output["logprobs"]["content"][0]["top_logprobs"] == top
    assert answer.output["message"]["content"] == "m"


def test_a_local_checkpoint_can_judge(tmp_path, openai_server):
    """`--judge hf:PATH`: the toy checkpoint judges (badly: its grades rarely parse, so the re-ask rule
    runs to its end); its fingerprint carries the weights hash, and a re-run is served from the cache."""
    from evalkit.toy.model import ensure_toy_model

    path = ensure_toy_model()
    server = openai_server(responder=play)
    settings = JudgeSettings(model=f"hf:{path}")
    result = run(server, tmp_path, settings=settings)
    again = run(server, tmp_path, "again", settings=settings)
    rows = rows_of(result)
    fp = rows[0]["judge"]["fingerprint"]
    assert fp["model"] == f"hf:{path}" and fp["backend"]["weights_sha256"]
    for r in rows:
        for run_index in range(2):
            outputs = [c["output"] for c in r["judge"]["calls"] if c["run"] == run_index]
            first_parsed = next((i for i, o in enumerate(outputs) if parse(o) is not None), None)
            assert len(outputs) == (3 if first_parsed is None else first_parsed + 1)
    header = json.loads((again.run_dir / "run.json").read_text())
    usage = header["judges"]["two_turn_graded"]["usage"]
    assert usage["calls"] == 0 and usage["cost_usd"] == 0.0
    assert again.metrics["two_turn_graded"]["metrics"] == result.metrics["two_turn_graded"]["metrics"]
