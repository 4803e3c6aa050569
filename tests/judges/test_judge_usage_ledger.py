"""run.json's judge `calls` equal the requests the judge server saw over every process of a run: a judge
failure repaired by a re-run adds its requests (retries included), and a run whose judge cache was deleted
in between keeps the earlier count from run.json."""

import json

import pytest
from support.openai_server import completion, last_user_text

from evalkit.judges.settings import JudgeSettings
from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import RunFailed, evaluate

pytestmark = pytest.mark.usefixtures("fast_retries")


def scripted(down):
    """The candidate answers "An answer."; the judge answers 0.5, except that while `down["on"]` every
    request carrying the first grading message it received gets a 500."""

    def respond(body):
        if body["model"] == "candidate":
            return "An answer."
        return completion(body, "0.5")

    def faults(index, body):
        if body["model"] == "candidate" or not down["on"]:
            return None
        down["target"] = down["target"] or last_user_text(body)
        return "500" if last_user_text(body) == down["target"] else None

    return respond, faults


def run(server, out):
    backend = OpenAIBackend("candidate", BackendOptions(base_url=server.base_url))
    judges = JudgeSettings(base_url=server.base_url, runs=1, max_retries=2)
    return evaluate(backend, ["mmvet"], data="toy", limit=4, output=out, judges=judges, progress=False)


def judge_count(server):
    return sum(r.body["model"] != "candidate" for r in server.log)


def usage_of(out):
    return json.loads((out / "run.json").read_text())["judges"]["mmvet"]["usage"]


@pytest.mark.parametrize("lose_cache", [False, True])
def test_calls_add_up_over_a_failed_run_and_its_repair(tmp_path, monkeypatch, lose_cache, openai_server):
    down = {"on": True, "target": None}
    respond, faults = scripted(down)
    server = openai_server(responder=respond, faults=faults)
    with pytest.raises(RunFailed):
        run(server, tmp_path / "run")
    first = judge_count(server)
    before = usage_of(tmp_path / "run")
    assert first == 3 + 3  # 3 items answered, 1 item tried 3 times (2 retries)
    assert before["calls"] == first and before["failures"] == 1
    down["on"] = False
    if lose_cache:
        monkeypatch.setenv("EVALKIT_JUDGE_CACHE", str(tmp_path / "another.sqlite"))
    run(server, tmp_path / "run")
    total = judge_count(server)
    after = usage_of(tmp_path / "run")
    assert total == first + 1  # only the failed item is judged again
    assert after["calls"] == total and after["failures"] == 1
