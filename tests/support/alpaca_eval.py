"""The AlpacaEval run harness: a local OpenAI-compatible server's responders for the model under test and
both official judges, reference files built from them, and the preferences and win rates the official rules
give, worked out by hand (used by the judged-run and length-controlled refit tests)."""

import hashlib
import json
import math
import random
import statistics

from evalkit.judges.settings import JudgeSettings
from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import evaluate
from support.openai_server import completion, last_user_text

TASKS = ["alpaca_eval", "alpaca_eval_v1"]
REFERENCE = {"alpaca_eval": "gpt4_1106_preview", "alpaca_eval_v1": "text_davinci_003"}
SAME = "Paris is the capital of France."
INSTRUCTIONS = [
    "What is the capital of France?",  # the model answers exactly as the references do: never judged
    "Give three tips for staying healthy.",
    "Write a haiku about autumn leaves.",
    "Explain why the sky is blue in two sentences.",
    "UNPARSABLE: the judge answers this one with something the parser cannot read.",
    "Translate 'good morning' into Spanish.",
    "List the planets of the solar system in order.",
    "What is 17 times 23?",
]
N = len(INSTRUCTIONS)

SYSTEM_2 = (
    "You are a highly efficient assistant, who evaluates and selects the best large language model (LLMs) "
    "based on the quality of their responses to a given instruction. This process will be used to create a "
    "leaderboard reflecting the most accurate and human-preferred answers."
)
USER_2 = '''I require a leaderboard for various large language models. I'll provide you with prompts given to these models and their corresponding outputs. Your task is to assess these responses, and select the model that produces the best output from a human perspective.

## Instruction

{
    "instruction": """<I>""",
}

## Model Outputs

Here are the unordered outputs from the models. Each output is associated with a specific model, identified by a unique model identifier.

{
    {
        "model_identifier": "m",
        "output": """<O1>"""
    },
    {
        "model_identifier": "M",
        "output": """<O2>"""
    }
}

## Task

Evaluate the models based on the quality and relevance of their outputs, and select the model that generated the best output. Answer by providing the model identifier of the best model. We will use your output as the name of the best model, so make sure your output only contains one of the following model identifiers and nothing else (no quotes, no spaces, no new lines, ...): m or M.

## Best Model Identifier'''  # noqa: E501
SYSTEM_1 = "You are a helpful assistant, that ranks models by the quality of their answers."
USER_1 = '''I want you to create a leaderboard of different of large-language models. To do so, I will give you the instructions (prompts) given to the models, and the responses of two models. Please rank the models based on which responses would be preferred by humans. All inputs and outputs should be python dictionaries.

Here is the prompt:
{
    "instruction": """<I>""",
}

Here are the outputs of the models:
[
    {
        "model": "model_1",
        "answer": """<O1>"""
    },
    {
        "model": "model_2",
        "answer": """<O2>"""
    }
]

Now please rank the models by the quality of their answers, so that the model with rank 1 has the best output. Then return a list of the model names and ranks, i.e., produce the following output:
[
    {'model': <model-name>, 'rank': <model-rank>},
    {'model': <model-name>, 'rank': <model-rank>}
]

Your response must be a valid Python dictionary and should contain nothing else because we will directly execute it in Python. Please provide the ranking that the majority of humans would give.'''  # noqa: E501
TEMPLATES = {"alpaca_eval": (SYSTEM_2, USER_2), "alpaca_eval_v1": (SYSTEM_1, USER_1)}
JUDGE_MODEL = {"alpaca_eval": "gpt-4-1106-preview", "alpaca_eval_v1": "gpt-4"}
M_LOGIT = 3.0  # the local judge's logit for "m" (every other token: 0)


def digest(text):
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def reference_output(task, instruction):
    return (
        SAME
        if instruction.startswith("What is the capital")
        else f"{REFERENCE[task]} says: {instruction[::-1]}"
    )


def answer(instruction):
    return SAME if instruction.startswith("What is the capital") else f"Answer {digest(instruction) % 1000}."


def switched(instruction):
    """The official seeded order: the model's output comes first when this is True."""
    return random.Random("is_switched_outputs" + instruction + "0").choices([False, True])[0]


def expected_messages(task, instruction, reference, model_output):
    first, second = (model_output, reference) if switched(instruction) else (reference, model_output)
    system, user = TEMPLATES[task]
    user = user.replace("<I>", instruction).replace("<O1>", first).replace("<O2>", second)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def judge_2_logprobs(user_text, seed):
    """The 2.0 judge's top logprobs: derived from the prompt and seed; no "m"/"M" for UNPARSABLE."""
    if "UNPARSABLE" in user_text:
        return [("The", -0.5), ("Model", -1.5)]
    d = digest(user_text + str(seed))
    return [("m", -(d % 40) / 8), ("M", -((d // 40) % 40) / 8), ("The", -9.0)]


def judge_1_rank(user_text, seed):
    """The 1.0 judge's rank for model_1, None for a prose answer (UNPARSABLE)."""
    return None if "UNPARSABLE" in user_text else 1 + digest(user_text + str(seed)) % 2


def play(body):
    text = last_user_text(body)
    if body["model"] == "candidate":
        return answer(text)
    if body["model"] == "gpt-4":
        rank = judge_1_rank(text, body["seed"])
        if rank is None:
            return "The first answer is better."
        return f"[{{'model': 'model_1', 'rank': {rank}}}, {{'model': 'model_2', 'rank': {3 - rank}}}]"
    assert body["model"] == "gpt-4-1106-preview", body["model"]
    top = [{"token": t, "logprob": lp} for t, lp in judge_2_logprobs(text, body["seed"])]
    out = completion(body, top[0]["token"])
    out["choices"][0]["logprobs"] = {"content": [{**top[0], "top_logprobs": top}]}
    return out


def hand_preference(task, instruction, seeds=(0,)):
    """Final preference by the official rules from the responders' rules; None when unparsable."""
    if answer(instruction) == reference_output(task, instruction):
        return 1.5
    user = expected_messages(task, instruction, reference_output(task, instruction), answer(instruction))
    text = user[1]["content"]
    prefs = []
    for seed in seeds:
        if task == "alpaca_eval":
            lp = dict(judge_2_logprobs(text, seed))
            if "m" not in lp:
                continue
            p = 2 - math.exp(lp["m"]) / (math.exp(lp["m"]) + math.exp(lp["M"]))
        else:
            p = judge_1_rank(text, seed)
            if p is None:
                continue
        prefs.append(3 - p if switched(instruction) else p)
    return sum(prefs) / len(prefs) if prefs else None


def write_data(root, tasks=TASKS):
    for task in tasks:
        folder = root / "results" / REFERENCE[task]
        folder.mkdir(parents=True)
        rows = [
            {
                "dataset": "selfinstruct",
                "instruction": i,
                "output": reference_output(task, i),
                "generator": REFERENCE[task],
            }
            for i in INSTRUCTIONS
        ]
        (folder / "model_outputs.json").write_text(json.dumps(rows, indent=2))
    return root


def run(server, tmp_path, data_dir, name="run", tasks=TASKS, **settings):
    backend = OpenAIBackend(
        "candidate", BackendOptions(base_url=server.base_url, max_retries=3, timeout_s=2.0)
    )
    judges = JudgeSettings(
        base_url=server.base_url, timeout_s=2.0, cache_path=tmp_path / f"{name}-judge.sqlite", **settings
    )
    return evaluate(  # the dropped unparsable preference is part of the protocol under test
        backend,
        list(tasks),
        data_dir=data_dir,
        output=tmp_path / name,
        judges=judges,
        progress=False,
        max_failure_rate=1.0,
    )


def rows_of(result, task):
    return [json.loads(line) for line in open(result.run_dir / "samples" / f"{task}.jsonl")]


def hand_win_rate(prefs):
    valid = [p - 1 for p in prefs if p is not None]
    return 100 * statistics.fmean(valid), 100 * statistics.stdev(valid) / math.sqrt(len(valid))
