"""`evalkit annotate` end to end: a saved toy LLaVA samples, a scripted judge on the local OpenAI-compatible
server rates, and the built files are checked against the study's rules applied here by hand; re-runs,
changed settings, `--dry-run` and a killed run."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from support.openai_server import completion, last_user_text
from support.training import save_toy_base
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.judges.pricing import cost_usd
from evalkit.toy.world import render, sample_scenes
from evalkit.training.data import load_preferences, load_sft

pytestmark = pytest.mark.usefixtures("one_thread")
NAMES = ("Helpfulness", "Correctness", "Coherence", "Complexity", "Verbosity")
K = 4
QUESTIONS = ("describe the image.", "describe the image.", "what colour is it?", "how many shapes?")
PROMPTS = ("p0", "p1", "p2", "p3", "text")
N = len(PROMPTS) * K
FIRST: dict[str, str] = {}


def scripted(question: str, response: str) -> dict[str, int] | None:
    """The judge's ratings of a response (None: it answers out of range, so the rating is unparsed), by
    question: random-looking, never parsed, all equal, or with a quality gap of at most 1."""
    h = hashlib.sha256(response.encode()).digest()
    if question == "what colour is it?" or (question == "describe the image." and h[7] % 5 == 0):
        return None
    if question == "what is a cube?":
        return {"helpfulness": 2, "correctness": 2, "coherence": 2, "complexity": 1, "verbosity": 1}
    if question == "how many shapes?":  # the first answer the judge sees is rated one point higher
        first = FIRST.setdefault(question, response)
        return {
            "helpfulness": 2 if response == first else 1,
            "correctness": 3,
            "coherence": 3,
            "complexity": 0,
            "verbosity": 4,
        }
    return {n.lower(): h[i] % 5 for i, n in enumerate(NAMES)}


def judge_reply(body):
    text = last_user_text(body)
    question = text.split("[Question]\n", 1)[1].split("\n\n", 1)[0]
    response = text.split("[The Start of Response]\n", 1)[1].split("\n[The End of Response]", 1)[0]
    scores = scripted(question, response)
    lines = [f"{n}: {scores[n.lower()]}" for n in NAMES] if scores else [f"{n}: 7" for n in NAMES]
    # an early draft line: the parser must take the last one
    return completion(body, "Helpfulness: 0\nThe response is as it is.\n" + "\n".join(lines))


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    FIRST.clear()
    base = save_toy_base(tmp_path)
    records = []
    questions = QUESTIONS[:4]
    for i, (scene, question) in enumerate(zip(sample_scenes(4, seed=3), questions, strict=True)):
        render(scene).save(tmp_path / f"img{i}.png")
        records.append({"id": f"p{i}", "question": question, "image": f"img{i}.png"})
    records.append({"id": "text", "question": "what is a cube?", "image": None, "reference": "A solid."})
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return tmp_path, base


def cli(*args):
    result = CliRunner().invoke(app, ["annotate", *map(str, args)])
    return result


def args(d, base, out, server, model="openai:judge"):
    return ["--prompts", d / "prompts.jsonl", "--model", base, "--output", out, "--judge", model,
            "--judge-base-url", server.base_url, "--samples", K, "--max-new-tokens", 5,
            "--threads", 1]  # fmt: skip


def read(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def expected_files(rows, min_gap=2):
    """The study's rules, by hand: quality = H + C + Co; best and worst, ties to the lowest index."""
    dpo, rs, steer, skipped = [], [], [], {}
    for pid in PROMPTS:
        mine = sorted((r for r in rows if r["prompt_id"] == pid), key=lambda r: r["sample_index"])
        rated = []
        for r in mine:
            s = scripted(r["question"], r["response"])
            if s is not None:
                rated.append((s["helpfulness"] + s["correctness"] + s["coherence"], r["sample_index"], r, s))
                steer.append((f"{pid}/{r['sample_index']}", r["response"], s))
        if rated:
            best = min(rated, key=lambda t: (-t[0], t[1]))
            rs.append((pid, best[2]["response"]))
        else:
            skipped["none"] = skipped.get("none", 0) + 1
        if len(rated) < 2:
            skipped["few"] = skipped.get("few", 0) + 1
            continue
        best, worst = min(rated, key=lambda t: (-t[0], t[1])), min(rated, key=lambda t: (t[0], t[1]))
        if best[0] == worst[0]:
            skipped["equal"] = skipped.get("equal", 0) + 1
            continue
        if best[0] - worst[0] < min_gap:
            skipped["gap"] = skipped.get("gap", 0) + 1
            continue
        dpo.append((pid, best[2]["response"], worst[2]["response"]))
    return dpo, rs, steer, skipped


def test_annotate_end_to_end_rerun_and_dry_run(world, tmp_path, openai_server, monkeypatch):
    d, base = world
    server = openai_server(judge_reply)
    out = tmp_path / "out"

    plan = cli(*args(d, base, out, server), "--dry-run", "--json")
    assert plan.exit_code == 0, plan.output
    p = json.loads(plan.output)
    assert (p["samples"], p["generations"], p["calls"], p["cached"]) == (N, N, N, 0)
    assert p["est_cost_usd"] is None  # "judge" has no known price: unknown, never 0
    assert server.count == 0 and not out.exists()

    result = cli(*args(d, base, out, server))
    assert result.exit_code == 0, result.output
    rows = read(out / "annotations.jsonl")
    assert server.count == len(rows) == N
    assert sorted(r["id"] for r in rows) == sorted(f"{p}/{k}" for p in PROMPTS for k in range(K))
    for r in rows:
        assert r["ratings"] == scripted(r["question"], r["response"])
        assert r["quality"] == (None if r["ratings"] is None else sum(list(r["ratings"].values())[:3]))
        assert r["finish_reason"] in ("stop", "length") and r["judge"]["raw"]
    # the judge saw each image, and the reference only where the record has one
    for body in server.requests:
        content = body["messages"][-1]["content"]
        text = last_user_text(body)
        has_image = isinstance(content, list) and any(c.get("type") == "image_url" for c in content)
        assert has_image == ("what is a cube?" not in text)
        assert ("[Reference answer]\nA solid." in text) == ("what is a cube?" in text)
    # seeds come from (seed, prompt id, sample index): distinct per sample
    assert len({r["seed"] for r in rows}) == len(rows)

    dpo, rs, steer, skipped = expected_files(rows)
    got_dpo = read(out / "dpo.jsonl")
    assert [(x["id"], x["chosen"], x["rejected"]) for x in got_dpo] == dpo
    assert [(x["id"], x["response"]) for x in read(out / "rejection_sampling.jsonl")] == rs
    assert [(x["id"], x["response"], x["attributes"]) for x in read(out / "steerlm.jsonl")] == steer
    summary = json.loads((out / "summary.json").read_text())
    unparsed = sum(scripted(r["question"], r["response"]) is None for r in rows)
    assert (summary["rated"], summary["unparsed"], summary["pairs"]) == (
        len(rows) - unparsed,
        unparsed,
        len(dpo),
    )
    by_reason = summary["skipped"]["dpo"]
    assert by_reason.get("quality gap below 2", 0) == skipped.get("gap", 0)
    assert by_reason.get("fewer than 2 rated samples", 0) == skipped.get("few", 0)
    assert by_reason.get("all rated samples have the same quality", 0) == skipped.get("equal", 0)
    assert summary["skipped"]["rejection_sampling"] == {"no rated sample": skipped["none"]}
    assert len(dpo) >= 1 and skipped["few"] >= 1 and skipped["equal"] >= 1 and skipped["gap"] == 1
    assert unparsed >= K
    assert summary["judge"]["fingerprint"]["parser_version"] == "helpsteer-1"

    # the files load with `evalkit train`'s own loaders
    pairs = load_preferences(out / "dpo.jsonl")
    assert [(x.chosen, x.rejected) for x in pairs.items] == [(c, r) for _, c, r in dpo]
    assert [x.response for x in load_sft(out / "rejection_sampling.jsonl").items] == [t for _, t in rs]
    steer_loaded = load_sft(out / "steerlm.jsonl").items
    assert [x.attributes for x in steer_loaded] == [s for _, _, s in steer]

    # a re-run generates nothing and calls no one
    import evalkit.models.base

    def no_model(*a, **k):
        raise AssertionError("a finished annotation loaded the model again")

    monkeypatch.setattr(evalkit.models.base, "load_backend", no_model)
    again = cli(*args(d, base, out, server))
    assert again.exit_code == 0, again.output
    assert server.count == N
    assert read(out / "annotations.jsonl") == rows
    plan = json.loads(cli(*args(d, base, out, server), "--dry-run", "--json").output)
    assert (plan["generations"], plan["calls"]) == (0, 0)

    # another gap threshold only rebuilds the files
    wide = cli(*args(d, base, out, server), "--min-gap", "1")
    assert wide.exit_code == 0 and server.count == N
    assert [(x["id"], x["chosen"], x["rejected"]) for x in read(out / "dpo.jsonl")] == expected_files(
        rows, 1
    )[0]

    # other settings in the same folder are refused, naming the setting
    refused = cli(*args(d, base, out, server), "--samples", "3")
    assert refused.exit_code == 2 and "--samples = 4, not 3" in refused.output
    refused = cli(*args(d, base, out, server), "--no-judge-sees-image")
    assert refused.exit_code == 2 and "--judge-sees-image" in refused.output


def test_dry_run_prices_a_known_judge(world, tmp_path, openai_server):
    d, base = world
    server = openai_server(judge_reply)
    p = json.loads(cli(*args(d, base, tmp_path / "o", server, "openai:gpt-4o"), "--dry-run", "--json").output)
    assert p["est_completion_tokens"] == N * 1024
    assert p["est_cost_usd"] == pytest.approx(cost_usd("gpt-4o", p["est_prompt_tokens"], N * 1024))


def test_a_killed_run_resumes(world, tmp_path, openai_server, monkeypatch):
    d, base = world
    whole = tmp_path / "whole"
    fast = openai_server(judge_reply)
    assert cli(*args(d, base, whole, fast, "openai:judge-a")).exit_code == 0

    def slow(body):
        time.sleep(0.4)
        return judge_reply(body)

    server = openai_server(slow)
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "evalkit",
        "annotate",
        *map(str, args(d, base, out, server, "openai:judge-b")),
    ]
    proc = subprocess.Popen(
        [*cmd, "--judge-concurrency", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.time() + 120
    while server.count < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read().decode()[-2000:]
    asked = server.count
    assert 3 <= asked < N
    assert len(read(out / "annotations.jsonl")) == N  # every sample was stored before judging began

    import evalkit.models.base

    def no_model(*a, **k):
        raise AssertionError("the resumed run generated again")

    monkeypatch.setattr(evalkit.models.base, "load_backend", no_model)
    resumed = cli(*args(d, base, out, server, "openai:judge-b"))
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads((out / "summary.json").read_text())
    # answers that arrived before the kill came from the judge cache (one in flight may be asked again)
    assert summary["judge"]["usage"]["cache_hits"] >= asked - 1
    assert server.count <= N + 1
    strip = lambda rows: [{k: v for k, v in r.items() if k != "judge"} for r in rows]  # noqa: E731
    assert strip(read(out / "annotations.jsonl")) == strip(read(whole / "annotations.jsonl"))
    assert read(out / "dpo.jsonl") == read(whole / "dpo.jsonl")
