"""Credentials in an endpoint URL (`user:password@`, `?api-key=`) are used for the requests and never
written: not to run.json, the sample rows or train_config.json, and not in error messages."""

import base64
import json

import pytest
from support.openai_server import FakeOpenAIServer, completion, last_user_text
from support.training import save_toy_base

from evalkit.judges.settings import JudgeSettings
from evalkit.models.base import BackendOptions, public_url
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import evaluate
from evalkit.types import GenerationConfig, Message, Request

PASSWORD, KEY = "s3cret-pw", "KEY-abcdef123456"
BASIC = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()


def secret(url):
    return url.replace("http://", f"http://alice:{PASSWORD}@") + f"?api-key={KEY}"


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("http://alice:pw@host:8000/v1?api-key=k#frag", "http://host:8000/v1"),
        ("https://host/v1/?key=abc&api-version=2024", "https://host/v1/"),
        ("http://host/v1", "http://host/v1"),
        ("not a url user:pw@x?key=1", "not a url user:pw@x"),  # no scheme: only the query is cut
        ("//alice:pw@host/v1?k=1", "//host/v1"),
    ],
)
def test_public_url(url, public):
    assert public_url(url) == public


def respond(body):
    if body["model"] == "candidate":
        return "A cat on a mat."
    return completion(body, "0.5")  # MM-Vet's judge answers a score


def test_run_json_and_rows_hold_no_credentials(tmp_path):
    with FakeOpenAIServer(responder=respond) as server:
        backend = OpenAIBackend("candidate", BackendOptions(base_url=server.base_url))
        judges = JudgeSettings(base_url=secret(server.base_url), runs=1)
        result = evaluate(
            backend, ["mmvet"], data="toy", limit=3, output=tmp_path / "run", judges=judges, progress=False
        )
        judge_requests = [r for r in server.log if r.body["model"] != "candidate"]
    assert len(judge_requests) == 3
    assert all(r.headers["authorization"] == BASIC and f"api-key={KEY}" in r.path for r in judge_requests)
    header = json.loads((result.run_dir / "run.json").read_text())
    assert header["command"]["judge_base_url"] == server.base_url
    assert header["judges"]["mmvet"]["backend"]["base_url"] == server.base_url
    for path in result.run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert PASSWORD.encode() not in data and KEY.encode() not in data, path


def test_error_messages_hold_no_credentials(openai_server):
    """A server whose malformed answer echoes the URL it was called with (as some proxies do): the row's
    error message keeps the server's text without the password or the key."""
    server = openai_server()
    url = secret(server.base_url)
    server.responder = lambda body: {"error": f"no route for {url}"}  # 200 without `choices`
    backend = OpenAIBackend("m", BackendOptions(base_url=url, max_retries=0))
    (response,) = backend.generate([Request("a", (Message("user", "hi"),), GenerationConfig())])
    message = response.error.message
    assert "malformed response" in message and "no route for http://alice:***@" in message
    assert PASSWORD not in message and KEY not in message


@pytest.mark.usefixtures("one_thread")
def test_train_config_holds_no_credentials(tmp_path):
    from evalkit.toy.world import render, sample_scenes
    from evalkit.training.trainer import train

    save_toy_base(tmp_path)
    records = []
    for scene in sample_scenes(2, seed=11):
        render(scene).save(tmp_path / f"{scene.image_id}.png")
        image = str(tmp_path / f"{scene.image_id}.png")
        records.append({"id": scene.image_id, "image": image, "prompt": "What is it?", "response": "A cat."})
    (tmp_path / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    def rate(body):
        return completion(body, f"Rating: [[{len(last_user_text(body)) % 10}]]")

    with FakeOpenAIServer(responder=rate) as server:
        out = tmp_path / "rs"
        train(
            method="rs", model=str(tmp_path / "base"), data=str(tmp_path / "sft.jsonl"), output=str(out),
            judge="openai:rater", judge_base_url=secret(server.base_url), samples=2, max_new_tokens=4,
            max_steps=1, batch_size=2, lora_rank=4, save_every=0,
        )  # fmt: skip
        assert server.count > 0
        assert all(r.headers["authorization"] == BASIC and f"api-key={KEY}" in r.path for r in server.log)
    info = (out / "train_config.json").read_text()
    assert PASSWORD not in info and KEY not in info
    assert json.loads(info)["config"]["judge_base_url"] == server.base_url
