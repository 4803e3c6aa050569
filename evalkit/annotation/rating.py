"""The attribute judge: evalkit's restatement of the first study's HelpSteer rating prompt, and its parser.

The study's judge (Gemini Pro Vision) rated each sampled answer on Helpfulness, Correctness, Coherence,
Complexity and Verbosity, 0-4 each, reasoning first; its exact prompt is not public, so `ATTRIBUTE_PROMPT`
is evalkit's own wording of that task (its sha256 and `PARSER_VERSION` are in the judge's fingerprint).
The parser reads the last `Attribute: N` line of each attribute; a missing or out-of-range value leaves
the whole rating unparsed (counted, never read as 0). quality = Helpfulness + Correctness + Coherence.
"""

from __future__ import annotations

import re

from evalkit.types import Message

ATTRIBUTES = ("Helpfulness", "Correctness", "Coherence", "Complexity", "Verbosity")
QUALITY_ATTRIBUTES = ATTRIBUTES[:3]
PARSER_VERSION = "helpsteer-1"

ATTRIBUTE_PROMPT = (
    "Please act as an impartial judge and rate the response of an AI assistant to the user's question "
    "below{image_note}. Rate it on five attributes, each an integer from 0 to 4 on a 5-point Likert "
    "scale (0 = very poor, 4 = excellent; for Complexity and Verbosity, 0 = very simple or very terse and "
    "4 = very sophisticated or very long):\n"
    "- Helpfulness: how well the response answers the question and satisfies the user's need.\n"
    "- Correctness: whether every fact it states is true{image_fact}, with no hallucinated details.\n"
    "- Coherence: how clear, consistent and well organised it is.\n"
    "- Complexity: the intellectual depth needed to write it.\n"
    "- Verbosity: how much detail it gives relative to what the question asks.\n"
    "Begin with your reasoning, step by step, before any rating.\n\n"
    "{sections}\n\n"
    "After your reasoning, end your answer with exactly these five lines, each N a single integer from 0 "
    "to 4:\nHelpfulness: N\nCorrectness: N\nCoherence: N\nComplexity: N\nVerbosity: N"
)
IMAGE_NOTE = ", which is about the attached image"
IMAGE_FACT = " of the image"
REFERENCE_SECTION = "[Reference answer]\n{reference}\n\n"
SECTIONS = (
    "[Question]\n{question}\n\n{reference_section}[The Start of Response]\n{response}\n[The End of Response]"
)

_LINE = {
    a: re.compile(rf"^\W*{a}\W*:\s*\**\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE | re.MULTILINE) for a in ATTRIBUTES
}


def render(question: str, response: str, reference: str | None, image: str | None) -> tuple[Message, ...]:
    """The judge's one user message; with `image`, the image is attached and the prompt says so."""
    sections = SECTIONS.format(
        question=question,
        reference_section=REFERENCE_SECTION.format(reference=reference) if reference else "",
        response=response,
    )
    text = ATTRIBUTE_PROMPT.format(
        image_note=IMAGE_NOTE if image else "", image_fact=IMAGE_FACT if image else "", sections=sections
    )
    return (Message("user", text, (image,) if image else ()),)


def parse_ratings(text: str | None) -> tuple[dict[str, int] | None, str | None]:
    """(the five ratings by lower-case name, None) or (None, why unparsed). Each attribute's last line
    counts; it must be an integer from 0 to 4."""
    if not text:
        return None, "empty judge answer"
    scores: dict[str, int] = {}
    for attribute in ATTRIBUTES:
        found = _LINE[attribute].findall(text)
        if not found:
            return None, f"no '{attribute}: N' line"
        value = found[-1]
        if not re.fullmatch(r"[0-4]", value):
            return None, f"{attribute} {value} is not an integer from 0 to 4"
        scores[attribute.lower()] = int(value)
    return scores, None


def quality(scores: dict[str, int]) -> int:
    """Helpfulness + Correctness + Coherence (Complexity and Verbosity are not in the sum)."""
    return sum(scores[a.lower()] for a in QUALITY_ATTRIBUTES)
