"""MMBench's official answer matching, prompts and circular rotation (no I/O).

Matching follows VLMEvalKit (`vlmeval/utils/matching_util.py`, `vlmeval/dataset/utils/multiple_choice.py`,
current version): a pass's answer is first read by rule (`can_infer`: the option letter, then the option
text); when the rules fail, the ChatGPT matcher gets `build_prompt` and its output is read by the same rules,
up to `MAX_TRIES` times; when every try fails, a letter is drawn at random among the options and "Z" (the
official `options = list(choices) + ['Z']`). A question counts only if every pass (every rotation of its
options) is right.

Randomness: the official scorer calls `random.seed(2680)` once and then `random.choice` from parallel
workers in whatever order groups finish, so the letter a given pass draws is not reproducible. Here each
pass draws from its own `random.Random` seeded by (2680, the pass's index, the judge run), uniform over the
same options + "Z": a rerun or `rescore` gives the same number, and the expected score is unchanged.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from evalkit.judges.judge import JudgeSpec
from evalkit.types import GenerationConfig

#: LLaVA-1.5 (`model_vqa_mmbench.py`, `scripts/v1_5/eval/mmbench.sh`): greedy, 1,024 new tokens
GENERATION = GenerationConfig(max_new_tokens=1024, temperature=0.0)
JUDGE_MODEL = "gpt-3.5-turbo-0613"
#: VLMEvalKit's `OpenAIWrapper` defaults of the gpt-3.5-turbo-0613 era: temperature 0, 1,024 max tokens
#: (later versions raised the default to 2,048; a one-letter answer never reaches either)
JUDGE_SPEC = JudgeSpec(
    f"openai:{JUDGE_MODEL}", temperature=0.0, max_tokens=1024, n_runs=1, parser_version="1"
)
JUDGE_GENERATION = GenerationConfig(max_new_tokens=JUDGE_SPEC.max_tokens, temperature=JUDGE_SPEC.temperature)
MAX_TRIES = 3
FALLBACK_SEED = 2680
Z = "Z"

LLAVA_SUFFIX = "Answer with the option's letter from the given choices directly."
PROMPT_STYLES = ("llava", "vlmevalkit")

#: `build_prompt` of VLMEvalKit's multiple_choice.py, byte for byte (the "Your should" is official)
MATCHER_TEMPLATE = (
    "You are an AI assistant who will help me to match "
    "an answer with several options of a single-choice question. "
    "You are provided with a question, several options, and an answer, "
    "and you need to find which option is most similar to the answer. "
    "If the meaning of all options are significantly different from the answer, output Z. "
    "Your should output a single uppercase character in A, B, C, D (if they are valid options), and Z. \n"
    "Example 1: \n"
    "Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
    "Answer: a cute teddy bear\nYour output: A\n"
    "Example 2: \n"
    "Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
    "Answer: Spider\nYour output: Z\n"
    "Example 3: \n"
    "Question: {}?\nOptions: {}\nAnswer: {}\nYour output: "
)
OPTION_HEADER = "There are several options: \n"

#: answers `can_infer_option` reads as a refusal ("Z")
REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
API_FAILURE = "Failed to obtain answer via API"
PUNCTUATION = ".()[],:;!*#{}"
#: "The correct answer is **B**": only the phrase is case-insensitive, the letter must stand alone
VERBOSE_ANSWER = re.compile(r"(?i:(?:correct\s+)?answer\s+is)\s+\**([ABCD])\**(?![A-Za-z0-9])")

#: cells pandas (>= 2.0, `read_csv` defaults) reads as NaN: such an option does not exist
NA_VALUES = frozenset(
    {
        "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
        "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
    }
)  # fmt: skip


def is_na(value: str | None) -> bool:
    return value is None or value in NA_VALUES


def llava_is_none(value: str | None) -> bool:
    """LLaVA's `is_none`: NaN, or the strings 'nan' / 'none' in any case."""
    return is_na(value) or value.lower() in ("nan", "none")


# ------------------------------------------------------------------------------------------ rules


def can_infer_option(answer: str, choices: dict[str, str]) -> str | None:
    """The option letter the answer names, "Z" for a refusal, or None.

    Punctuation `.()[],:;!*#{}` becomes spaces and the answer is split on whitespace. Exactly one option
    letter among the words, and its first occurrence among the last four words (`index > len - 5`): that
    letter. No option letter but a lone "Z": "Z". Otherwise "answer is X" anywhere (X an option)."""
    if API_FAILURE in answer:
        return None
    for refusal in REFUSALS:
        if refusal in answer:
            return Z
    spaced = answer
    for ch in PUNCTUATION:
        spaced = spaced.replace(ch, " ")
    words = spaced.split()
    count = sum(1 for c in choices if c in words)
    if count == 1:
        for c in choices:
            if c in words and words.index(c) > len(words) - 5:
                return c
    elif count == 0 and Z in words:
        return Z
    m = VERBOSE_ANSWER.search(answer)
    if m and m.group(1).upper() in choices:
        return m.group(1).upper()
    return None


def can_infer_text(answer: str, choices: dict[str, str]) -> str | None:
    """The one option whose text (lower-cased) occurs in the lower-cased answer; None when none or several
    do, or when the answer is longer than twice the options' total length."""
    answer = answer.lower()
    if len(answer) > 2 * sum(len(v) for v in choices.values()):
        return None
    found = [k for k, v in choices.items() if v.lower() in answer]
    return found[0] if len(found) == 1 else None


def can_infer(answer: str, choices: dict[str, str]) -> str | None:
    return can_infer_option(answer, choices) or can_infer_text(answer, choices)


# ---------------------------------------------------------------------------------------- prompts


def option_str(choices: dict[str, str]) -> str:
    """VLMEvalKit's `build_option_str`."""
    return OPTION_HEADER + "".join(f"{k}. {v}\n" for k, v in choices.items())


def matcher_prompt(question: str, choices: dict[str, str], prediction: str) -> str:
    """The matcher's prompt: the question without its hint, the options, the model's raw answer."""
    return MATCHER_TEMPLATE.format(question, option_str(choices), prediction)


def llava_prompt(question: str, hint: str | None, options: dict[str, str]) -> str:
    """LLaVA-1.5 `model_vqa_mmbench.py --single-pred-prompt` (the image goes before the text): the hint on
    its own line, the question, the options up to the first missing one, the instruction."""
    text = question if hint is None or llava_is_none(hint) else hint + "\n" + question
    for letter in "ABCD":
        value = options.get(letter)
        if value is None or llava_is_none(value):
            break
        text += "\n" + letter + ". " + value
    return text + "\n" + LLAVA_SUFFIX


def vlmevalkit_prompt(question: str, hint: str | None, options: dict[str, str]) -> str:
    """VLMEvalKit's default `ImageMCQDataset.build_prompt`."""
    text = f"Hint: {hint}\n" if hint is not None else ""
    text += f"Question: {question}\n"
    if options:
        text += "Options:\n" + "".join(f"{k}. {v}\n" for k, v in options.items())
        text += "Please select the correct answer from the options above. \n"
    return text


PROMPTS = {"llava": llava_prompt, "vlmevalkit": vlmevalkit_prompt}


# ----------------------------------------------------------------------------------------- circular


def rotate(options: dict[str, str], answer: str | None, k: int) -> tuple[dict[str, str], str | None]:
    """Pass k of circular evaluation: the options shifted k places (new A = old option k), the answer's
    letter moved with its text (as LLaVA's `--all-rounds` and the legacy circular TSV rows do)."""
    letters = list(options)
    values = [options[c] for c in letters]
    n = len(letters)
    shifted = {letters[j]: values[(j + k) % n] for j in range(n)}
    if answer is None or answer not in options:
        return shifted, answer
    return shifted, letters[(letters.index(answer) - k) % n]


# ----------------------------------------------------------------------------------- one pass, judged


@dataclass(frozen=True)
class PassResult:
    """How one pass's answer was read: `method` is "rule", "llm" or "random"; `tries` the matcher calls
    made; `parsed` what the rules read from each matcher output (None: unreadable)."""

    pred: str
    method: str
    tries: int
    parsed: tuple[str | None, ...] = ()


def fallback_seed(pass_id: str, run: int) -> str:
    return f"mmbench:{FALLBACK_SEED}:{pass_id}:{run}"


def fallback_choice(choices: dict[str, str], pass_id: str, run: int) -> str:
    """The official random fallback (uniform over the options and "Z"), seeded per pass and run."""
    return random.Random(fallback_seed(pass_id, run)).choice([*choices, Z])


def needs_matcher(outputs: list[str], choices: dict[str, str]) -> bool:
    """True while the matcher should be asked again: no output read yet and tries left."""
    return len(outputs) < MAX_TRIES and all(can_infer(o, choices) is None for o in outputs)


def resolve_pass(
    response: str, choices: dict[str, str], outputs: list[str], pass_id: str, run: int
) -> PassResult:
    """The pass's letter from the answer, else the first readable matcher output, else the fallback."""
    rule = can_infer(response, choices)
    if rule is not None:
        return PassResult(rule, "rule", 0)
    parsed = tuple(can_infer(o, choices) for o in outputs)
    for i, p in enumerate(parsed):
        if p is not None:
            return PassResult(p, "llm", i + 1, parsed[: i + 1])
    return PassResult(fallback_choice(choices, pass_id, run), "random", len(outputs), parsed)
