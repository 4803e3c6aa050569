"""Real runs of any registered task for the contract tests: the task's toy data (or, for a task without a toy
mode, a few reference outputs written here) answered by a local OpenAI-compatible server that plays the
model under test and every judge. Answers and judgments are derived from the prompt, varied enough that
every metric sees both outcomes, and the judge's answer carries every official judgment format at once
(LLaVA-Bench's score pair, MMHal's single rating and MT-Bench's [[rating]] in one answer; MM-Vet's score,
AlpacaEval's rank list or logprobs where a judge asks for those)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from evalkit.judges.settings import JudgeSettings
from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import evaluate
from support.openai_server import completion, last_user_text, message_text

MODEL = "contract-model"
WORDS = ("dog", "apple", "cup", "tree", "car", "bus", "clock", "kite", "ball", "egg", "cake", "umbrella")
INSTRUCTIONS = [f"Write one sentence about the {w}." for w in WORDS[:8]]

#: task options of the runs: those `evalkit import` scores with (it takes none: each task's defaults), where a
#: toy run's default differs (AMBER reads toy yes/no answers normalized, official ones exactly)
OPTIONS = {"amber.answers": "exact"}


def digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def answer(text: str) -> str:
    """The model under test: a letter for a multiple-choice prompt, yes/no for a yes/no question, else a
    short description naming 0-3 objects (sometimes an instruction's reference answer, word for word)."""
    h = digest(text)
    if re.search(r"^\s*[A-D][.:)]", text, re.M):
        return ["A", "B", "C", "The answer is B.", "I am not sure"][h % 5]
    if re.match(r"\s*(Is|Are|Does|Do) ", text):
        return ["Yes", "No", "yes, there is", "No, there is not.", "maybe"][h % 5]
    if text in INSTRUCTIONS and h % 4 == 0:
        return reference(text)
    return "I see " + " and ".join(f"a {WORDS[(h >> (4 * i)) % len(WORDS)]}" for i in range(h % 4)) + "."


def reference(instruction: str) -> str:
    return f"Reference answer to: {instruction}"


def judge(body: dict) -> str | dict:
    text = "\n".join(message_text(m) for m in body.get("messages", []))
    h = digest(text + str(body.get("seed")))
    if body.get("logprobs"):  # AlpacaEval 2.0: the preference is read from the top logprobs of "m" / "M"
        top = [{"token": "m", "logprob": -(h % 40) / 8}, {"token": "M", "logprob": -((h >> 8) % 40) / 8}]
        out = completion(body, "m")
        out["choices"][0]["logprobs"] = {"content": [{**top[0], "top_logprobs": top}]}
        return out
    if "model_1" in text:  # AlpacaEval 1.0: a rank list
        rank = 1 + h % 2
        return f"[{{'model': 'model_1', 'rank': {rank}}}, {{'model': 'model_2', 'rank': {3 - rank}}}]"
    if "correctness score" in text:  # MM-Vet's grader: a score in [0, 1] first
        return f"0.{h % 10}"
    return f"{1 + h % 10} {1 + (h >> 4) % 10}\nRating: {(h >> 8) % 7} [[{1 + (h >> 12) % 10}]]"


def play(body: dict) -> str | dict:
    return answer(last_user_text(body)) if body["model"] == MODEL else judge(body)


def write_references(path: Path, generator: str) -> Path:
    """Reference outputs for a task without a toy mode: AlpacaEval's model_outputs.json of its reference
    model (`task.protocol.reference`). A new task without a toy mode fails its contract run here until it
    gets a toy mode or a writer of its own."""
    rows = [{"instruction": i, "output": reference(i), "generator": generator} for i in INSTRUCTIONS]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows))
    return path


def run_task(task, server, out: Path, judge_cache: Path):
    """One finished run of `task` in `out` (failures allowed: a judged row whose judgment never parsed
    is part of a task's protocol, and the contracts must hold on it too)."""
    backend = OpenAIBackend(
        MODEL, BackendOptions(base_url=server.base_url, max_retries=1), backoff_base_s=0.01
    )
    judges = JudgeSettings(base_url=server.base_url, cache_path=judge_cache)
    options = {k: v for k, v in OPTIONS.items() if k.startswith(f"{task.name}.")}
    data = {"data": "toy"} if task.supports_toy else {}  # the whole toy set: some imports refuse a part
    if not task.supports_toy:
        path = write_references(out.parent / f"{task.name}-data.json", task.protocol.reference)
        options[f"{task.name}.reference"] = str(path)
    return evaluate(
        backend,
        [task],
        output=out,
        judges=judges,
        task_options=options,
        progress=False,
        max_failure_rate=1.0,
        **data,
    )
