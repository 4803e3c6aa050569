"""MT-Bench protocol (FastChat `fastchat/llm_judge/`), no file access: the per-category decoding, the
conversation each turn is asked in, the rendering of the single-answer judge prompts, the rating parser and
`show_result`'s aggregation, plus the optional pairwise rules. The official files are read by `data.py`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from evalkit.stats import Estimate, Statistic, mean_statistic
from evalkit.types import GenerationConfig, Message, UserError

CATEGORIES = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")
#: Categories graded against reference answers (FastChat `common.py NEED_REF_CATS`).
NEED_REF_CATS = ("math", "reasoning", "coding", "arena-hard-200")
#: Sampling temperature per category (`common.py temperature_config`); other categories get 0.7.
TEMPERATURE = {
    "writing": 0.7,
    "roleplay": 0.7,
    "extraction": 0.0,
    "math": 0.0,
    "coding": 0.0,
    "reasoning": 0.0,
    "stem": 0.1,
    "humanities": 0.1,
}
DEFAULT_TEMPERATURE = 0.7
MAX_NEW_TOKENS = 1024
JUDGE_MODEL = "gpt-4"
#: The official judge call: temperature 0, at most 2,048 tokens.
JUDGE_GENERATION = GenerationConfig(max_new_tokens=2048, temperature=0.0)
INVALID = -1

_ONE_SCORE = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_ONE_SCORE_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")

Verdict = Literal["A", "B", "tie", "error"]
ParseStatus = Literal["parsed", "fallback", "unparsed"]


@dataclass(frozen=True)
class Question:
    question_id: int
    category: str
    turns: tuple[str, ...]


@dataclass(frozen=True)
class JudgePrompt:
    """One line of judge_prompts.jsonl."""

    name: str
    type: str  # "single" | "pairwise"
    system_prompt: str
    prompt_template: str
    category: str  # "general" | "math"
    output_format: str  # "[[rating]]" | "[[A]]"


@dataclass(frozen=True)
class JudgeConversation:
    """The judge conversation for one (question, turn): which official prompt, and the exact messages."""

    prompt_name: str
    messages: tuple[Message, ...]


@dataclass(frozen=True)
class Judgment:
    """One single-answer grade; `score == -1` means the judgment had no parsable rating."""

    question_id: int
    turn: int
    score: float
    model: str = ""
    judgment: str = ""
    prompt_name: str = ""


# --- generation -------------------------------------------------------------------------------------------


def generation_config(category: str) -> GenerationConfig:
    """Decoding for a category: its official temperature (< 1e-4 is greedy) and 1,024 new tokens."""
    return GenerationConfig(
        max_new_tokens=MAX_NEW_TOKENS, temperature=TEMPERATURE.get(category, DEFAULT_TEMPERATURE)
    )


def clean_answer(text: str) -> str:
    """What gen_model_answer stores and reuses of a generation. FastChat cuts at the template's stop
    tokens and stop string, removes special-token strings and strips; the backends already cut at EOS
    and stop strings and decode without special tokens, so `.strip()` is what is left."""
    return text.strip()


def conversation(question: Question, turn: int, previous_answers: Sequence[str] = ()) -> tuple[Message, ...]:
    """The chat the model answers at `turn` (1-based): every earlier question followed by the model's own
    earlier answer, then this turn's question."""
    if not 1 <= turn <= len(question.turns):
        raise ValueError(f"question {question.question_id} has no turn {turn}")
    if len(previous_answers) < turn - 1:
        raise ValueError(f"turn {turn} needs the model's answers to the {turn - 1} earlier turn(s)")
    messages: list[Message] = []
    for k in range(turn - 1):
        messages += [
            Message("user", question.turns[k]),
            Message("assistant", clean_answer(previous_answers[k])),
        ]
    messages.append(Message("user", question.turns[turn - 1]))
    return tuple(messages)


# --- single-answer grading --------------------------------------------------------------------------------


def needs_reference(category: str) -> bool:
    return category in NEED_REF_CATS


def judge_prompt_name(category: str, turn: int, mode: Literal["single", "pair"] = "single") -> str:
    """The official prompt for a category and turn, e.g. `single-math-v1-multi-turn` for math turn 2."""
    if turn not in (1, 2):
        raise ValueError(f"MT-Bench judges turn 1 or 2, not {turn}")
    if mode == "single":
        base = "single-math-v1" if needs_reference(category) else "single-v1"
    else:
        base = "pair-math-v1" if needs_reference(category) else "pair-v2"
    return base + ("-multi-turn" if turn == 2 else "")


def _reference_kwargs(question: Question, references: Mapping[int, Sequence[str]] | None) -> dict[str, str]:
    if not needs_reference(question.category):
        return {}
    ref = (references or {}).get(question.question_id)
    if ref is None or len(ref) < 2:
        raise UserError(
            f"MT-Bench question {question.question_id} ({question.category}) is graded against a reference "
            "answer, but none with two turns is in the reference answers (reference_answer/gpt-4.jsonl, "
            "or the file of --task-option mt_bench.reference)"
        )
    return {"ref_answer_1": ref[0], "ref_answer_2": ref[1]}


def _judge_messages(prompt: JudgePrompt, user_prompt: str) -> tuple[Message, ...]:
    # FastChat's "gpt-4" conversation template sends the system prompt then the user prompt.
    return (Message("system", prompt.system_prompt), Message("user", user_prompt))


def render_single(
    question: Question,
    answers: Sequence[str],
    turn: int,
    prompts: Mapping[str, JudgePrompt],
    references: Mapping[int, Sequence[str]] | None = None,
) -> JudgeConversation:
    """The judge conversation grading the model's answer to `turn` (`answers` = the model's turns)."""
    prompt = prompts[judge_prompt_name(question.category, turn)]
    kwargs = _reference_kwargs(question, references)
    a = [clean_answer(x) for x in answers]
    if turn == 1:
        text = prompt.prompt_template.format(question=question.turns[0], answer=a[0], **kwargs)
    else:
        text = prompt.prompt_template.format(
            question_1=question.turns[0], question_2=question.turns[1], answer_1=a[0], answer_2=a[1], **kwargs
        )
    return JudgeConversation(prompt.name, _judge_messages(prompt, text))


def parse_rating(judgment: str) -> float:
    """The first `[[x]]`, else the first `[x]` (x digits with an optional decimal part), else -1.

    FastChat evaluates the match with `ast.literal_eval`; a match it cannot evaluate ("[[07]]") would crash
    the official run, and counts as -1 here."""
    return parse_rating_status(judgment)[0]


def parse_rating_status(judgment: str) -> tuple[float, ParseStatus]:
    """`parse_rating` and how it got there: `[[x]]` found ("parsed"), only the official `[x]` fallback
    found ("fallback"), or no rating ("unparsed", score -1)."""
    match = _ONE_SCORE.search(judgment)
    status: ParseStatus = "parsed"
    if match is None:
        match, status = _ONE_SCORE_BACKUP.search(judgment), "fallback"
    if match is None:
        return INVALID, "unparsed"
    try:
        value = ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError):
        return INVALID, "unparsed"
    return float(value), status


@dataclass(frozen=True)
class SingleSummary:
    """`show_result.py --mode single` for one model, plus per-category means and intervals."""

    score: Estimate  # mean over all valid (question, turn) judgments: the MT-Bench score
    turns: dict[int, Estimate]  # mean per turn
    categories: dict[str, Estimate]  # mean over a category's valid judgments, both turns
    n_judgments: int
    n_dropped: int  # judgments with score -1, left out as show_result does

    def metrics(self) -> dict[str, dict[str, Any]]:
        out = {"score": self.score.to_dict()}
        out |= {f"turn{t}": e.to_dict() for t, e in self.turns.items()}
        out |= {f"category/{c}": e.to_dict() for c, e in self.categories.items()}
        n = self.n_judgments
        out["dropped"] = Estimate(float(self.n_dropped), float("nan"), float("nan"), n).to_dict()
        return out


def single_statistics(
    judgments: Sequence[Judgment],
    categories: Mapping[int, str] | None = None,
    keys: Sequence[Hashable] | None = None,
) -> dict[str, Statistic]:
    """`score`, `turn{t}` and `category/{c}` over the valid judgments (score -1 dropped) as functions of
    weights over units: `keys[i]` names judgment i's unit (default: its question, so a question's turns
    are resampled together)."""
    keys = [j.question_id for j in judgments] if keys is None else keys
    valid = [(k, j) for k, j in zip(keys, judgments, strict=True) if j.score != INVALID]

    def stat(kjs: Sequence[tuple[Hashable, Judgment]]) -> Statistic:
        return mean_statistic([j.score for _, j in kjs], [k for k, _ in kjs])

    out = {"score": stat(valid)}
    for t in sorted({j.turn for _, j in valid}):
        out[f"turn{t}"] = stat([(k, j) for k, j in valid if j.turn == t])
    if categories is not None:
        order = [c for c in CATEGORIES if c in categories.values()]
        order += sorted(set(categories.values()) - set(order))
        for c in order:
            kjs = [(k, j) for k, j in valid if categories.get(j.question_id) == c]
            if kjs:
                out[f"category/{c}"] = stat(kjs)
    return out


def summarize_single(
    judgments: Sequence[Judgment], categories: Mapping[int, str] | None = None
) -> SingleSummary:
    """Aggregate one model's judgments: drop -1, then plain means (each kept judgment weighs the same)."""
    est = {name: s.estimate() for name, s in single_statistics(judgments, categories).items()}
    turns = {int(name[4:]): e for name, e in est.items() if name.startswith("turn")}
    cats = {name.split("/", 1)[1]: e for name, e in est.items() if name.startswith("category/")}
    n_dropped = sum(j.score == INVALID for j in judgments)
    return SingleSummary(est["score"], turns, cats, len(judgments), n_dropped)


# --- pairwise (optional mode) -----------------------------------------------------------------------------


def render_pair(
    question: Question,
    answers_a: Sequence[str],
    answers_b: Sequence[str],
    turn: int,
    prompts: Mapping[str, JudgePrompt],
    references: Mapping[int, Sequence[str]] | None = None,
) -> JudgeConversation:
    """The pairwise judge conversation with A's answers first (the official run judges both orders)."""
    prompt = prompts[judge_prompt_name(question.category, turn, "pair")]
    kwargs = _reference_kwargs(question, references)
    a, b = [clean_answer(x) for x in answers_a], [clean_answer(x) for x in answers_b]
    if turn == 1:
        text = prompt.prompt_template.format(
            question=question.turns[0], answer_a=a[0], answer_b=b[0], **kwargs
        )
    else:
        text = prompt.prompt_template.format(
            question_1=question.turns[0],
            question_2=question.turns[1],
            answer_a_1=a[0],
            answer_a_2=a[1],
            answer_b_1=b[0],
            answer_b_2=b[1],
            **kwargs,
        )
    return JudgeConversation(prompt.name, _judge_messages(prompt, text))


def parse_verdict(judgment: str) -> Verdict:
    """`[[A]]` anywhere wins over `[[B]]`, which wins over `[[C]]` (a tie); none of them is an error."""
    for tag, verdict in (("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "tie")):
        if tag in judgment:
            return verdict  # type: ignore[return-value]
    return "error"


def pair_outcome(g1: Verdict, g2: Verdict) -> Literal["model_1", "model_2", "tie", "error"]:
    """Combine the two orders (g1: model 1 shown as A; g2: model 2 shown as A) as show_result does: an error
    in either drops the game; a tie in g1 or disagreeing orders is a tie."""
    w1 = {"A": "model_1", "B": "model_2"}.get(g1, g1)
    w2 = {"A": "model_2", "B": "model_1"}.get(g2, g2)
    if w1 == "error" or w2 == "error":
        return "error"
    if w1 == "tie" or w1 != w2:
        return "tie"
    return w1  # type: ignore[return-value]


def win_rates(outcomes: Sequence[str]) -> dict[str, float]:
    """Model 1's win, loss and adjusted win rate (a tie counts half) over games without errors."""
    games = [o for o in outcomes if o != "error"]
    if not games:
        return {"win_rate": float("nan"), "loss_rate": float("nan"), "win_rate_adjusted": float("nan")}
    n, win, loss = len(games), games.count("model_1"), games.count("model_2")
    return {
        "win_rate": win / n,
        "loss_rate": loss / n,
        "win_rate_adjusted": (win + 0.5 * (n - win - loss)) / n,
    }
