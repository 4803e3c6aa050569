"""The toy judge: a judge model for the toy world that rates answers on the five HelpSteer attributes.

`--judge toy-judge` (any model spec `toy-judge`, through `evalkit.models.base.load_backend`) is a `Backend`
like any judge's, so the judge layer caches, fingerprints and counts its answers as it does a served
model's. It reads evalkit's attribute prompt (one user message; an attached image is not looked at):

    ...instructions...
    [Question]
    {question}

    [Reference answer]          (optional)
    {reference}

    [The Start of Response]
    {response}
    [The End of Response]
    ...answer format...

and answers with one sentence of reasoning, then the five lines `Helpfulness: N`, `Correctness: N`,
`Coherence: N`, `Complexity: N`, `Verbosity: N` (0-4), rating from the toy world's own truth, never from
a model. Which truth depends on the question:

- a language question (a `evalkit.toy.language` prompt: "Name things that go with a kite.", "Describe a
  scene with a kite and a dog."; the reference is not needed): `toy_language`'s scoring
  (`score_answer`, reference statistics `companions(seed)`). Correctness = round(4 × precision) (the mean
  share of the world's scenes with the named objects that also hold each other object the answer names;
  0 when it names none);
- an image question with a yes/no reference answer: Correctness = 4 when the response's first word is the
  reference's (yes or no), else 0;
- an image question with a reference that names toy objects (a description): with F the response's objects
  that the reference names and W those it does not (`objects_named`), Correctness = round(4 × max(0, |F| −
  2·|W|) / |reference objects|): the `toy-objects` reward (`evalkit.training.rewards`) scaled to the
  reference's size, a hallucinated object costing twice what an omitted one does.

For every question:
- Coherence: yes/no questions 4 for a bare "Yes"/"No" (a period allowed), 2 for yes/no followed by more
  words, 0 without one; otherwise 4 for `toy_language`'s well-formed list ("a, b and c." of known classes,
  none repeated), 2 when only the list punctuation or the connectives are off (every word a class name or
  "and", none repeated), 0 otherwise (repeats, other words);
- Helpfulness: 0 when the response gives no answer (no yes/no; no object besides the question's named
  ones), else the mean of Correctness and Coherence rounded half up: an answer helps as far as it is right
  and readable;
- Complexity: the number of distinct classes named, at most 4; Verbosity: the number of words // 3, at
  most 4 (neither enters the quality sum Helpfulness + Correctness + Coherence).

Rounding is half up. A prompt this judge cannot rate (no attribute sections; an image question without a
reference, or with one that neither answers yes/no nor names an object) gets a one-line reason and no
rating lines, so the caller counts it unparsed rather than reading a score into it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from evalkit.models.base import Backend
from evalkit.toy.language import FORMS, article, companions, objects_named, score_answer, well_formed
from evalkit.toy.world import OBJECTS
from evalkit.types import Request, Response, UserError

NAME = "toy-judge"
#: the rating rules' version: part of the fingerprint, so ratings under other rules are never mixed
VERSION = "1"
ATTRIBUTES = ("Helpfulness", "Correctness", "Coherence", "Complexity", "Verbosity")
QUESTION, REFERENCE = "[Question]", "[Reference answer]"
START, END = "[The Start of Response]", "[The End of Response]"
_YES_NO = re.compile(r"\s*(yes|no)\b", re.IGNORECASE)
_BARE_YES_NO = re.compile(r"\s*(yes|no)\.?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Sections:
    question: str
    reference: str | None
    response: str


def sections(text: str) -> Sections | None:
    """The question, optional reference and response of an attribute prompt (None when it is not one)."""
    q, s, e = text.find(QUESTION), text.find(START), text.rfind(END)
    if q < 0 or s < q or e < s:
        return None
    head = text[q + len(QUESTION) : s]
    r = head.find(REFERENCE)
    question = head[:r] if r >= 0 else head
    reference = head[r + len(REFERENCE) :].strip() if r >= 0 else None
    return Sections(question.strip(), reference, text[s + len(START) : e].strip("\n"))


def language_named(question: str) -> tuple[str, ...] | None:
    """The objects a `evalkit.toy.language` prompt names ("a kite and a dog" -> ("dog", "kite"), in
    `OBJECTS` order; one or two, in either order), or None when the question is not one of its forms."""
    for text in FORMS.values():
        head, tail = text.split("{}")
        if question.startswith(head) and question.endswith(tail):
            said = objects_named(question[len(head) : len(question) - len(tail)])
            if 0 < len(said) <= 2 and text.format(" and ".join(article(o) for o in said)) == question:
                return tuple(sorted(said, key=OBJECTS.index))
    return None


def _half_up(x: float) -> int:
    return int(x + 0.5)


def list_coherence(text: str) -> int:
    """4 well-formed list, 2 when only punctuation or connectives are off, 0 otherwise (see above)."""
    if well_formed(text):
        return 4
    words = re.findall(r"[a-z]+", text.lower())
    items = [w for w in words if w != "and"]
    ok = bool(items) and all(w in OBJECTS for w in items) and len(set(items)) == len(items)
    return 2 if ok else 0


def rate(question: str, reference: str | None, response: str, seed: int = 0) -> tuple[dict[str, int], str]:
    """The five attributes and the reasoning for one response; `UserError` when it cannot be rated."""
    words = re.findall(r"\w+", response)
    named_all = objects_named(response)
    extra = {"Complexity": min(4, len(named_all)), "Verbosity": min(4, len(words) // 3)}
    coherence = list_coherence(response)
    language = language_named(question)
    if language is not None:
        scored = score_answer(response, list(language), companions(seed)[language])
        correctness = _half_up(4 * scored["precision"])
        answered = scored["answered"]
        form = "a well-formed" if scored["well_formed"] else "not a well-formed"
        why = (
            f"A language question about {', '.join(language)}; the response names "
            f"{', '.join(scored['others']) or 'no other object'} (precision {scored['precision']:.2f} "
            f"against the world's scenes), {form} list."
        )
    elif reference is None:
        raise UserError("an image question without a reference answer: the toy judge rates against one")
    elif _YES_NO.match(reference):
        truth = _YES_NO.match(reference).group(1).lower()
        said = _YES_NO.match(response)
        answered = said is not None
        correctness = 4 if answered and said.group(1).lower() == truth else 0
        coherence = 4 if _BARE_YES_NO.match(response) else 2 if answered else 0
        why = (
            f"A yes/no image question whose reference answer is {truth}; the response "
            + (f"answers {said.group(1).lower()}" if answered else "gives no yes or no")
            + ("." if coherence != 2 else " and goes on.")
        )
    else:
        truth_objects = objects_named(reference)
        if not truth_objects:
            raise UserError("the reference answer neither answers yes/no nor names a toy object")
        found = [o for o in named_all if o in truth_objects]
        wrong = [o for o in named_all if o not in truth_objects]
        correctness = _half_up(4 * max(0, len(found) - 2 * len(wrong)) / len(truth_objects))
        answered = bool(named_all)
        why = (
            f"The reference names {', '.join(truth_objects)}; the response names "
            f"{', '.join(found) or 'none of them'}"
            + (f" and also {', '.join(wrong)}, which the reference does not" if wrong else "")
            + f", {'a well-formed' if coherence == 4 else 'not a well-formed'} list."
        )
    ratings = {
        "Helpfulness": (correctness + coherence + 1) // 2 if answered else 0,
        "Correctness": correctness,
        "Coherence": coherence,
        **extra,
    }
    return ratings, why


def judge_text(prompt: str, seed: int = 0) -> str:
    """The toy judge's answer to one attribute prompt: reasoning, then the five lines (or only a reason
    why it cannot rate)."""
    parts = sections(prompt)
    if parts is None:
        return "The toy judge cannot rate this: the prompt has no [Question] and response sections."
    try:
        ratings, why = rate(parts.question, parts.reference, parts.response, seed)
    except UserError as exc:
        return f"The toy judge cannot rate this: {exc}."
    return why + "\n\n" + "\n".join(f"{k}: {ratings[k]}" for k in ATTRIBUTES)


class ToyJudge(Backend):
    """The toy judge as a backend: answers each request's last user message with `judge_text`."""

    name = NAME
    default_batch_size = 64

    def __init__(self, seed: int = 0):
        self.seed = seed

    @classmethod
    def from_spec(cls, model: str) -> ToyJudge:
        """`toy-judge` (reference statistics of seed 0) or `toy-judge:SEED`."""
        _, _, seed = model.partition(":")
        if seed and not seed.isdigit():
            raise UserError(f"--judge {model!r}: write toy-judge or toy-judge:SEED (a whole number)")
        return cls(int(seed or 0))

    def generate(self, requests: list[Request]) -> list[Response]:
        out = []
        for r in requests:
            users = [m for m in r.messages if m.role == "user"]
            text = judge_text(users[-1].text if users else "", self.seed)
            out.append(Response(r.id, text, completion_tokens=len(text.split())))
        return out

    def fingerprint(self) -> dict[str, Any]:
        return {"model": NAME, "rules_version": VERSION, "reference_seed": self.seed}
