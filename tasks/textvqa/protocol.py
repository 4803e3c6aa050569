"""TextVQA's official protocol as LLaVA-1.5 scores it (`llava/eval/eval_textvqa.py` with `m4c_evaluator.py`,
whose answer processor is EvalAI's): the prompt, the answer normalisation and the VQA soft accuracy. No I/O.

Normalisation (EvalAI's `EvalAIAnswerProcessor`, applied alike to the prediction and to each human answer):
1. lower-case; delete every "," and "?"; put a space before "'s"; trim;
2. newlines and tabs become spaces, trim;
3. each of ``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !``: deleted when the text (as it was before this
   step) holds it followed or preceded by a space, else replaced by a space (EvalAI also deletes them when
   a comma sits between two digits, which step 1 makes impossible); then every "." not followed by a digit
   is deleted (the first 32 of them: EvalAI passes `re.UNICODE` as the count);
4. split on whitespace; number words "none", "zero" … "ten" become digits; the articles "a", "an", "the"
   are dropped; contractions written without their apostrophe get it back ("dont" → "don't", EvalAI's
   table); words joined by single spaces.

Soft accuracy of a prediction against the human answers (10 per question): for each of the leave-one-out
subsets (the answers with answer i left out), min(1, #answers equal to the prediction / 3); the mean of
those. With k of 10 answers matching this gives 0.3, 0.6, 0.9 for k = 1, 2, 3 and 1 from k = 4. A
question's accuracy is per item, so intervals, `compare` and the tax table work on it; the benchmark
number is the mean in percent. lmms-eval's `textvqa_val` scores the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

PROMPT_SUFFIX = "\nAnswer the question using a single word or phrase."
OCR_PREFIX = "\nReference OCR token: "
#: the number of human answers per question the official evaluator asserts
N_ANSWERS = 10

_PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`")
_PUNCTUATION += (",", "?", "!")
_DIGIT_COMMA = re.compile(r"(?<=\d)(,)+(?=\d)")
_PERIOD = re.compile(r"\.(?!\d)")
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5"}
_NUMBERS |= {"six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = frozenset({"a", "an", "the"})
#: EvalAI's table: a contraction as people type it without the apostrophe → its spelling
_CONTRACTIONS = {
    form: spelling
    for spelling, forms in {
        "ain't": ("aint",), "aren't": ("arent",), "can't": ("cant",), "could've": ("couldve",),
        "couldn't": ("couldnt",), "couldn't've": ("couldn'tve", "couldnt've"), "didn't": ("didnt",),
        "doesn't": ("doesnt",), "don't": ("dont",), "hadn't": ("hadnt",),
        "hadn't've": ("hadnt've", "hadn'tve"), "hasn't": ("hasnt",), "haven't": ("havent",),
        "he'd": ("hed",), "he'd've": ("hed've", "he'dve"), "he's": ("hes",), "how'd": ("howd",),
        "how'll": ("howll",), "how's": ("hows",), "I'd've": ("Id've", "I'dve"), "I'm": ("Im",),
        "I've": ("Ive",), "isn't": ("isnt",), "it'd": ("itd",), "it'd've": ("itd've", "it'dve"),
        "it'll": ("itll",), "let's": ("let's",), "ma'am": ("maam",), "mightn't": ("mightnt",),
        "mightn't've": ("mightnt've", "mightn'tve"), "might've": ("mightve",), "mustn't": ("mustnt",),
        "must've": ("mustve",), "needn't": ("neednt",), "not've": ("notve",), "o'clock": ("oclock",),
        "oughtn't": ("oughtnt",), "'ow's'at": ("ow's'at", "'ows'at", "'ow'sat"), "shan't": ("shant",),
        "she'd've": ("shed've", "she'dve"), "she's": ("she's",), "should've": ("shouldve",),
        "shouldn't": ("shouldnt",), "shouldn't've": ("shouldnt've", "shouldn'tve"),
        "somebodyd": ("somebody'd",), "somebody'd've": ("somebodyd've", "somebody'dve"),
        "somebody'll": ("somebodyll",), "somebody's": ("somebodys",), "someone'd": ("someoned",),
        "someone'd've": ("someoned've", "someone'dve"), "someone'll": ("someonell",),
        "someone's": ("someones",), "something'd": ("somethingd",),
        "something'd've": ("somethingd've", "something'dve"), "something'll": ("somethingll",),
        "that's": ("thats",), "there'd": ("thered",), "there'd've": ("thered've", "there'dve"),
        "there're": ("therere",), "there's": ("theres",), "they'd": ("theyd",),
        "they'd've": ("theyd've", "they'dve"), "they'll": ("theyll",), "they're": ("theyre",),
        "they've": ("theyve",), "'twas": ("twas",), "wasn't": ("wasnt",), "we'd've": ("wed've", "we'dve"),
        "we've": ("weve",), "weren't": ("werent",), "what'll": ("whatll",), "what're": ("whatre",),
        "what's": ("whats",), "what've": ("whatve",), "when's": ("whens",), "where'd": ("whered",),
        "where's": ("wheres",), "where've": ("whereve",), "who'd": ("whod",),
        "who'd've": ("whod've", "who'dve"), "who'll": ("wholl",), "who's": ("whos",), "who've": ("whove",),
        "why'll": ("whyll",), "why're": ("whyre",), "why's": ("whys",), "won't": ("wont",),
        "would've": ("wouldve",), "wouldn't": ("wouldnt",), "wouldn't've": ("wouldnt've", "wouldn'tve"),
        "y'all": ("yall",), "y'all'll": ("yall'll", "y'allll"),
        "y'all'd've": ("yall'd've", "y'alld've", "y'all'dve"),
        "you'd": ("youd",), "you'd've": ("youd've", "you'dve"), "you'll": ("youll",), "you're": ("youre",),
        "you've": ("youve",),
    }.items()
    for form in forms
}  # fmt: skip


def build_prompt(question: str, ocr_tokens: Sequence[str] | None) -> str:
    """The question, the OCR line when `ocr_tokens` is given (LLaVA's v051_ocr question file: "Reference
    OCR token: a, b, c" between the question and the instruction), then the instruction."""
    ocr = "" if ocr_tokens is None else OCR_PREFIX + ", ".join(ocr_tokens)
    return question + ocr + PROMPT_SUFFIX


def question_from_prompt(prompt: str) -> str | None:
    """The question of a prompt, lower-cased, as `eval_textvqa.py` reads it to pair an answer with its
    annotation: the first line of a two-line prompt, or of a three-line one holding the OCR line (the second
    line when the OCR line comes first; BLIP's "OCR tokens: ... Question: Q Short answer:" form too); None
    for any other prompt (the official script stops there)."""
    if prompt.startswith("OCR tokens: "):
        m = re.search(r"Question: (.*?) Short answer:", prompt, re.DOTALL)
        return m.group(1).lower() if m else None
    lines = prompt.split("\n")
    if OCR_PREFIX[1:] in prompt and len(lines) == 3:
        return (lines[1] if prompt.startswith(OCR_PREFIX[1:].rstrip()) else lines[0]).lower()
    return lines[0].lower() if len(lines) == 2 else None


def _punctuation(text: str) -> str:
    out = text
    digit_comma = _DIGIT_COMMA.search(text) is not None
    for p in _PUNCTUATION:
        spaced = p + " " in text or " " + p in text
        out = out.replace(p, "" if spaced or digit_comma else " ")
    return _PERIOD.sub("", out, count=32)


def normalize(answer: str) -> str:
    """EvalAI's answer normalisation (the module docstring's steps)."""
    text = answer.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    text = _punctuation(text)
    words = [_NUMBERS.get(w, w) for w in text.lower().split()]
    words = [_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES]
    return " ".join(words)


def soft_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """The VQA accuracy of `prediction` against the human `answers`: the mean over the leave-one-out
    subsets of min(1, matches / 3), both sides normalised."""
    pred = normalize(prediction)
    gold = [normalize(a) for a in answers]
    hits = sum(g == pred for g in gold)
    if not hits:
        return 0.0
    # leaving out a matching answer leaves hits - 1 matches, leaving out any other leaves hits
    total = hits * min(1.0, (hits - 1) / 3) + (len(gold) - hits) * min(1.0, hits / 3)
    return total / len(gold)
