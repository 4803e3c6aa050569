"""Object HalBench protocol: the synonym vocabulary, CHAIR word matching, the LLM object-extraction prompt and
its parser, the refinement of extracted phrases, and the CHAIR counts of one response.

Source: RLHF-V `eval/eval_gpt_obj_halbench.py` (class `CHAIR`, `parse_object_list`, `prompt_template`) and
`eval/summarize_gpt_obj_halbench_review.py`; the classic matching descends from CHAIR (Rohrbach et al. 2018,
LisaAnne/Hallucination `utils/chair.py`).

- Vocabulary: each line of `synonyms_refine.txt` is `class, synonym, ...` split on ", "; every entry maps to
  the line's first entry (a word listed twice maps to its last line's class). Double words: every entry of
  two or more words, plus 'home plate' and 'train track' (mapped to themselves: they are not in the
  vocabulary, so "train track" hides "train"), 'baby X' / 'adult X' → X for the animal words, 'passenger
  jet' / 'passenger train' → jet / train, 'bow tie' → tie, 'toilet seat' → toilet, 'wine glas' → 'wine glass'.
- Classic matching of a text: lower-case, `word_tokenize`, WordNet-lemmatize each token, replace double words
  (a pair in the table becomes its value, other tokens stay), drop 'seat' when 'toilet' is there, keep the
  words in the vocabulary. Every occurrence is a mention.
- LLM matching: each phrase p the judge listed is analysed as "a p"; if its lemmas contain double words,
  those are the objects, else each run of NN/NNS/NNP/NNPS tokens (their lemmas joined by spaces) is one;
  duplicates are dropped, then the toilet/seat rule and the vocabulary filter apply. So a class is mentioned
  once per distinct phrase.
- Per response: hallucinated when a mention's class is not in the image's ground truth. CHAIRs = hallucinated
  responses / responses; CHAIRs_refine = hallucinated / responses with at least one mention; CHAIRi =
  hallucinated mentions / mentions; object recall = Σ distinct correct classes / Σ ground-truth classes.
  Reported (summarize script): Response Hall = CHAIRs_refine × 100, Object Hall = CHAIRi × 100.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from evalkit.judges.judge import JudgeSpec
from evalkit.tasks.objhal.nouns import Nlp
from evalkit.types import GenerationConfig, Message, UserError

#: LLaVA-style reimplementations answer greedily with up to 1,024 new tokens (spec §8)
GENERATION = GenerationConfig(max_new_tokens=1024, temperature=0.0)
JUDGE_MODEL = "gpt-3.5-turbo-0613"
#: `gpt4_grpc.Chat.chat_completion` defaults: temperature 0.2, top_p 1, max_tokens 512
JUDGE_SPEC = JudgeSpec(JUDGE_MODEL, temperature=0.2, max_tokens=512, n_runs=1, parser_version="1")
JUDGE_GENERATION = GenerationConfig(max_new_tokens=512, temperature=0.2, top_p=1.0)
#: the official loop asks again after an unparseable reply, up to `fail_limit = 100` failures
MAX_TRIES = 100
#: answers of at most this many words get an empty object list without a call
SHORT_ANSWER_WORDS = 3
#: a re-ask repeats the same request; its run index (cache key and seed) is run + RETRY_STRIDE × attempt, so
#: it is a fresh draw rather than the cached reply it re-asks
RETRY_STRIDE = 1000
NOUN_TAGS = ("NNP", "NNPS", "NN", "NNS")
ANIMAL_WORDS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe")
ANIMAL_WORDS += ("animal", "cub")
VEHICLE_WORDS = ("jet", "train")

#: The official extraction prompt (`prompt_template`), verbatim, typos included; sent as the only message,
#: with role "system". "{question}" and then "{answer}" are replaced by plain string replacement.
PROMPT_TEMPLATE = """You are an expert in image objects extraction according to a question answer pair. We asked an examiner to answer a question about a picture.

[Start of Question]

<image> {question}

[End of Question]

[Start of Examiner's Answer]

{answer}

[End of Examiner's Answer]


Assume that the answer is correct, please identify all visible objects that are directly shown in the image. Please following the instructions in below:

1. You should only mention objects that are explicitly mentioned in the examiner's answer.
2. You should only extract the object names without the attributes of the objects.
3. You should not include the properties of the object, like the color, material, etc. as part of the object name in your result.
4. Make your answer precise. Present the results in a JSON list format: ["object_1", ..., "object_n"].
5. You should return an empty JSON list () if no visible objects can be found.
"""  # noqa: E501


# ------------------------------------------------------------------------------------------ vocabulary


@dataclass(frozen=True)
class Vocabulary:
    """The synonym list: `canonical` maps each entry to its class; `double_words` is the double-word table."""

    classes: tuple[str, ...]
    canonical: dict[str, str]
    double_words: dict[str, str]

    @classmethod
    def parse(cls, text: str, source: str = "synonyms") -> Vocabulary:
        classes: list[str] = []
        canonical: dict[str, str] = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            entries = [s.strip() for s in line.strip().split(", ")]
            classes.append(entries[0])
            for entry in entries:
                canonical[entry] = entries[0]
        if not classes:
            raise UserError(f"{source}: no synonym lines (expected 'class, synonym, ...' per line)")
        double = {w: w for w in canonical if len(w.strip().split(" ")) >= 2}
        double |= {"home plate": "home plate", "train track": "train track"}
        for animal in ANIMAL_WORDS:
            double[f"baby {animal}"] = animal
            double[f"adult {animal}"] = animal
        for vehicle in VEHICLE_WORDS:
            double[f"passenger {vehicle}"] = vehicle
        double |= {"bow tie": "tie", "toilet seat": "toilet", "wine glas": "wine glass"}
        return cls(tuple(classes), canonical, double)

    def lexicon(self) -> frozenset[str]:
        """Every single word of the vocabulary and of the double-word table (what a lemma must become to
        matter)."""
        phrases = [*self.canonical, *self.double_words, *self.double_words.values()]
        # 'wine glas' serves singularisers that turn "glass" into "glas"; WordNet keeps "glass"
        return frozenset(w for p in phrases for w in p.split(" ")) - {"glas"}


def replace_double_words(words: list[str], vocab: Vocabulary, keep_others: bool = True) -> list[str]:
    """Left to right, a pair of adjacent words in the double-word table becomes its value; other words stay
    (`keep_others`) or are dropped (the LLM path keeps only the double words)."""
    out, i = [], 0
    while i < len(words):
        pair = " ".join(words[i : i + 2])
        if pair in vocab.double_words:
            out.append(vocab.double_words[pair])
            i += 2
        else:
            if keep_others:
                out.append(words[i])
            i += 1
    return out


def coco_words(words: list[str], vocab: Vocabulary) -> list[str]:
    """The toilet/seat rule ("the seat of the toilet" is no chair), then the words in the vocabulary."""
    if "toilet" in words and "seat" in words:
        words = [w for w in words if w != "seat"]
    return [w for w in words if w in vocab.canonical]


def caption_words(text: str, vocab: Vocabulary, nlp: Nlp) -> list[str]:
    """Classic CHAIR matching: the vocabulary words mentioned in `text`, one per occurrence."""
    lemmas = [nlp.lemmatize(w) for w in nlp.tokenize(text.lower())]
    return coco_words(replace_double_words(lemmas, vocab), vocab)


def refine_phrases(phrases: list[Any], vocab: Vocabulary, nlp: Nlp) -> list[str]:
    """The objects of the LLM's phrases (official `get_pred_objs_match`), distinct, in first-seen order."""
    refined: list[str] = []
    for phrase in phrases:
        tokens = nlp.analyse(f"a {phrase}")
        doubles = replace_double_words([lemma for lemma, _ in tokens], vocab, keep_others=False)
        if doubles:
            refined += doubles
            continue
        chunk: list[str] = []
        for lemma, tag in [*tokens, ("", "")]:
            if tag in NOUN_TAGS:
                chunk.append(lemma)
            elif chunk:
                refined.append(" ".join(chunk).strip())
                chunk = []
    return list(dict.fromkeys(refined))


# ------------------------------------------------------------------------------------------ the judge


def clean_answer(text: str) -> str:
    """The answer as the official loader reads it from an answer file."""
    return text.replace("Assistant:", "").strip()


def is_short(answer: str) -> bool:
    return len(answer.strip().split()) <= SHORT_ANSWER_WORDS


def render_extraction(question: str, answer: str) -> tuple[Message, ...]:
    text = PROMPT_TEMPLATE.replace("{question}", question).replace("{answer}", answer)
    return (Message("system", text),)


def parse_object_list(content: str | None) -> tuple[list[Any] | None, str]:
    """(phrases, status): the reply as JSON, else (when it contains '["') its last line as JSON; status
    'parsed', 'last_line' or 'unparsed'. A reply that decodes to something other than a list counts as
    unparsed (officially it would be iterated as it is, or crash the script)."""
    if content is None:
        return None, "unparsed"
    try:
        value, status = json.loads(content), "parsed"
    except RecursionError:  # a reply nested thousands deep is no object list
        return None, "unparsed"
    except ValueError:
        if '["' not in content:
            return None, "unparsed"
        try:
            value, status = json.loads(content.strip().split("\n")[-1]), "last_line"
        except (ValueError, RecursionError):
            return None, "unparsed"
    return (value, status) if isinstance(value, list) else (None, "unparsed")


# ------------------------------------------------------------------------------------------ scores


def score_mentions(words: list[str], vocab: Vocabulary, gt: set[str]) -> dict[str, Any]:
    """One response's CHAIR record from its matched vocabulary words."""
    mentions = [[w, vocab.canonical[w]] for w in words]
    hallucinated = [m for m in mentions if m[1] not in gt]
    return {
        "mentions": mentions,
        "hallucinated": hallucinated,
        "n_correct_classes": len({c for _, c in mentions if c in gt}),
    }


#: per response and run: responses, hallucinated responses, responses with a mention, hallucinated
#: mentions, mentions, distinct correct classes, ground-truth classes
COUNT_FIELDS = ("responses", "hallucinated", "with_mentions", "hall_mentions", "mentions", "correct", "gt")


#: metric → (numerator, denominator) in COUNT_FIELDS, as percentages
RATES = {
    "CHAIRs_refine": ("hallucinated", "with_mentions"),
    "CHAIRs": ("hallucinated", "responses"),
    "CHAIRi": ("hall_mentions", "mentions"),
    "obj_recall": ("correct", "gt"),
}
