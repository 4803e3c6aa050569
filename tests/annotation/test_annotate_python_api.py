"""`annotate` from Python with a ready judge `Backend`: judge failures are counted, kept without ratings,
and asked again (only they) on the next run."""

from __future__ import annotations

import json

import pytest
from support.training import save_toy_base

from evalkit.annotation.pipeline import annotate, attribute_judge
from evalkit.models.base import Backend
from evalkit.types import ErrorInfo, Response

pytestmark = pytest.mark.usefixtures("one_thread")


class FlakyJudge(Backend):
    """Rates every response 3/3/3/2/2, but fails on its first answer to each response ending in a
    letter from a to m (so a retry on the next run succeeds)."""

    name = "flaky-judge"

    def __init__(self):
        self.asked: list[str] = []
        self.failed: set[str] = set()

    def generate(self, requests):
        out = []
        for r in requests:
            text = r.messages[-1].text
            response = text.split("[The Start of Response]\n", 1)[1].split("\n[The End of Response]", 1)[0]
            self.asked.append(response)
            if response[-1:] <= "m" and response not in self.failed:
                self.failed.add(response)
                out.append(Response(r.id, error=ErrorInfo("judge_error", "server said no")))
            else:
                lines = "Helpfulness: 3\nCorrectness: 3\nCoherence: 3\nComplexity: 2\nVerbosity: 2"
                out.append(Response(r.id, "fine.\n" + lines))
        return out

    def fingerprint(self):
        return {"name": self.name}


def test_judge_failures_are_counted_and_asked_again(tmp_path):
    base = save_toy_base(tmp_path)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(json.dumps({"id": f"q{i}", "question": f"what is {i}?"}) + "\n" for i in range(3))
    )
    backend = FlakyJudge()
    judge = attribute_judge(backend)  # no cache: every answer comes from the backend
    first = annotate(prompts, str(base), tmp_path / "out", judge=judge, samples=3, max_new_tokens=4)
    rows = [json.loads(x) for x in (tmp_path / "out" / "annotations.jsonl").read_text().splitlines()]
    failing = {r["id"] for r in rows if r["response"][-1:] <= "m"}
    assert 1 <= len(failing) < 9 and len(backend.asked) == 9
    assert first["judge_failures"] == len(failing) and first["rated"] == 9 - len(failing)
    for r in rows:
        if r["id"] in failing:
            assert r["ratings"] is None and r["unrated_reason"] == "judge failed"
            assert r["judge"]["error"]["message"] == "server said no"
        else:
            assert r["quality"] == 9
    second = annotate(prompts, str(base), tmp_path / "out", judge=judge, samples=3, max_new_tokens=4)
    assert len(backend.asked) == 9 + len(failing)
    assert (second["rated"], second["judge_failures"]) == (9, 0)
    # every rated sample has quality 9: no pair, each group counted as all equal
    assert second["pairs"] == 0 and second["skipped"]["dpo"] == {"all rated samples have the same quality": 3}
    assert second["rejection_sampling"] == 3 and second["steerlm"] == 9
