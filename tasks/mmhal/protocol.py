"""MMHal-Bench protocol: the template records, the model and judge prompts, the rating parser and the
official summary (no I/O: `data` reads the files).

Protocol (LLaVA-RLHF `Eval/model_vqa_mmhal.py`, `eval_gpt_mmhal.py`, `summarize_gpt_mmhal.py`; RLHF-V's copy
uses the same prompt and parser): the model answers the bare question (no suffix) greedily with up to 1,024
new tokens. GPT-4 (`gpt-4-0314`, temperature 0) gets one user message — the template below filled with the
image's content labels joined by ", ", the question, the human answer and the model's answer. The rating is s
when exactly one of 'rating: 0' … 'rating: 6' occurs in the lower-cased judgment, else 0. Reported: the mean
rating, the hallucination rate (fraction of ratings < 3) and the mean per question type, where the type is the
record's index modulo 8 (the 96 records cycle through the 8 types in a fixed order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from evalkit.judges.judge import JudgeSpec
from evalkit.stats import Estimate, mean_estimate
from evalkit.types import GenerationConfig, Message

N_ITEMS = 96
#: The type of record i is QUESTION_TYPES[i % 8].
QUESTION_TYPES = (
    "attribute",
    "adversarial",
    "comparison",
    "counting",
    "relation",
    "environment",
    "holistic",
    "other",
)
GENERATION = GenerationConfig(max_new_tokens=1024, temperature=0.0)
JUDGE_MODEL = "gpt-4-0314"
#: The official call sets temperature 0 and no token limit (the API default: the rest of the context); a
#: token limit is always sent here, and 1,024 leaves ample room for a review.
JUDGE_GENERATION = GenerationConfig(max_new_tokens=1024, temperature=0.0)
JUDGE_SPEC = JudgeSpec(JUDGE_MODEL, temperature=0.0, max_tokens=JUDGE_GENERATION.max_new_tokens, n_runs=1)
HALLUCINATION_BELOW = 3  # a rating < 3 means the judge found a hallucination

#: The official judge prompt (`Eval/eval_gpt_mmhal.py` `template`), verbatim, typos included; the four `{}`
#: are the image contents, the question, the standard human-generated answer and the model's response.
JUDGE_TEMPLATE = """Please act as an impartial and objective judge and evaluate the quality of the response provided by a Large Multimodal Model (LMM) to the user question. Your evaluation should be mainly based on whether the response is informative, and whether the response contains any hallucination. Hallucination, in this context, refers to a situation where the LMM generates a response that includes information not present or implied in the image or previous conversation. A hallucination could be a false claim about an object, action, emotion, or any other detail that is not grounded in the image.

For clarity, consider these examples:

### Example 1:
- Image Contents: Lynx, Cat
- Question: How many cats can you see in this image?
- Standard Human-Generated Answer: There are two cats visible in the image.
- LMM Response to Evaluate: There is one cat in the image.
- Analysis: The LMM's response is false because it claims there is only one cat in the image, when in fact there are two.
- Hallucination: Yes.

### Example 2:
- Image Contents: Tree, Plant, Panda, Animal
- Question: What can you see from this photo?
- Standard Human-Generated Answer: In this photo we can see branches. We can see a panda on a branch. The background is blurry.
- LMM Response to Evaluate: In the photo, I can see a large black and white panda sitting on a tree branch. The image captures the panda's unique appearance and its natural habitat, showcasing the beauty and rarity of these animals.
- Analysis: The LMM's response is not false because it does not make any false claims about the image contents. For example, it does not claim that the panda is eating bamboo.
- Hallucination: No.

### Example 3:
- Image Contents: Fashion accessory, Mammal, Dog, Umbrella
- Question: Describe this image in details.
- Standard Human-Generated Answer: In this picture I can see a dog laying under a yellow umbrella on a beach, and there is a rope on the right side. In the background I can see few persons talking or lying. At the top of the image, I can see the blue and clear sky.
- LMM Response to Evaluate: The image features a brown dog laying on the sand at the beach, underneath a yellow umbrella. The dog is positioned near the water, and there are people in the background. The beach is sandy, and the sun is shining, creating a pleasant atmosphere. The dog is enjoying the shade provided by the umbrella, which is a common way to protect pets from the sun's harmful rays. The presence of people in the background suggests that the beach is a popular spot for leisure activities, such as sunbathing, swimming, and relaxing.
- Analysis: The LMM's response is false because it claims that the dog is positioned near the water, but there is no water in the image.
- Hallucination: Yes.

### Example 4:
- Image Contents: Clothing, Luggage and bags, Man, Building, Woman, Person
- Question: Where is this photo taken?
- Standard Human-Generated Answer: From the slogan "Welcome to Houston, Texas", we can infer that this photo is taken at an airport in Houston, Texas.
- LMM Response to Evaluate: This photo is taken at an airport, specifically at the entrance of a terminal. However, the specific location of this airport cannot be determined from the image.
- Analysis: Although the LMM's response does not explicitly mention the location "Houston, Texas" and does not perfectly answer the question, it makes no false claims about the image contents. Therefore, this response is not considered hallucination. It is OK if the LMM fails to directly answer the question, expresses uncertainty, or cannot include all the objects or details in the human-generated answer.
- Hallucination: No.

### Example 5:
- Image Contents: Tree, Tower
- Question: What environmental concerns are involved in this photo?
- Standard Human-Generated Answer: This photo shows a smokestack emitting smoke. It may cause severe air pollution which threatens human health.
- LMM Response to Evaluate: In the photo, there are several environmental concerns related to the smokestack emitting smoke. The smoke from the smokestack is a byproduct of industrial processes, which can contribute to air pollution, climate change, and negative impacts on human health. The smoke contains harmful pollutants, such as particulate matter, sulfur dioxide, nitrogen oxides, and carbon monoxide, which can lead to respiratory problems, heart disease, and other health issues. Additionally, the smoke contributes to the greenhouse effect, which can lead to global warming and climate change. The smokestack's emissions also affect the environment, as they can harm wildlife, vegetation, and ecosystems. Therefore, it is essential to address these environmental concerns by implementing measures to reduce emissions and promote sustainable practices in industrial processes.
- Analysis: Although the LMM's response is significantly longer than the standard human-generated answer, it does not contain any false claims about the image contents. Instead, it provides additional general information about the environmental concerns, which can be inferred from the smoke emission. Such detailed analysis or reasoning should be considered as a positive aspect, as long as it contains no false claims.
- Hallucination: No.

With these examples in mind, please help me evaluate whether the response by the LMM is informative, and whether hallucination exists in it, based on the comparison between the LMM's response and the factual information provided in the image contents, question, and the standard human-generated answer below.

Please note that the standard human-generated answer may only contain factual information but may not give a detailed analysis. Also, the standard human-generated answer may not be completely comprehensive in describing all the objects and their attributes, so please be a bit more cautious during evalutation. LMM's detailed analysis or reasoning should be encouraged.

To evaluate the LMM responses, first, begin your evaluation by providing a short explanation. Second, after providing your explanation, you must rate the response by choosing from the following options:
- Rating: 6, very informative with good analysis or reasoning, no hallucination
- Rating: 5, very informative, no hallucination
- Rating: 4, somewhat informative, no hallucination
- Rating: 3, not informative, no hallucination
- Rating: 2, very informative, with hallucination
- Rating: 1, somewhat informative, with hallucination
- Rating: 0, not informative, with hallucination

### Image Contents
{}

### Question
{}

### Standard Human-Generated Answer
{}

### LMM Response to Evaluate
{}
"""  # noqa: E501


@dataclass(frozen=True)
class Item:
    """One template record; `index` (0–95) fixes its question type."""

    index: int
    question_type: str
    question_topic: str
    image_id: str
    image_src: str
    image_content: tuple[str, ...]
    question: str
    gt_answer: str
    model_answer: str = ""


@dataclass(frozen=True)
class Judged:
    """An item with the model's answer, the judge's review and the parsed rating."""

    item: Item
    review: str
    rating: int
    ratings_found: tuple[int, ...]


# --- records ----------------------------------------------------------------------------------------------


def question_type(index: int) -> str:
    """The official type of record `index` (`i % 8`), as summarize_gpt_mmhal groups scores."""
    return QUESTION_TYPES[index % len(QUESTION_TYPES)]


# --- prompts ----------------------------------------------------------------------------------------------


def user_message(item: Item, image: str) -> Message:
    """The model's prompt: the question as is (the official script passes `--test-prompt ''`)."""
    return Message("user", item.question, (image,))


def render_judge(item: Item, model_answer: str) -> tuple[Message, ...]:
    """The official judge request: one user message, no system prompt."""
    text = JUDGE_TEMPLATE.format(", ".join(item.image_content), item.question, item.gt_answer, model_answer)
    return (Message("user", text),)


def ratings_found(review: str) -> tuple[int, ...]:
    """Every s in 0..6 whose 'rating: s' occurs in the lower-cased review."""
    low = review.lower()
    return tuple(s for s in range(7) if f"rating: {s}" in low)


def parse_rating(review: str) -> int:
    """The rating when exactly one 'rating: s' occurs; zero or several occurrences score 0 (official)."""
    found = ratings_found(review)
    return found[0] if len(found) == 1 else 0


# --- scores -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """What summarize_gpt_mmhal prints (unrounded), with intervals; `n_unparsed` counts reviews with zero or
    several ratings, which the official rule scores 0."""

    score: Estimate
    hallucination_rate: Estimate  # a fraction, as printed officially
    informativeness: (
        Estimate  # RLHF-V `summarize_gpt_mmhal_review.py`: mean of (s - 3 if s >= 3 else s) / 3, in %
    )
    types: dict[str, Estimate]
    n_unparsed: int

    def metrics(self) -> dict[str, dict[str, Any]]:
        out = {
            "score": self.score.to_dict(),
            "hallucination_rate": self.hallucination_rate.to_dict(),
            "informativeness": self.informativeness.to_dict(),
        }
        out |= {f"type/{t}": e.to_dict() for t, e in self.types.items()}
        n = self.score.n
        out["unparsed"] = Estimate(float(self.n_unparsed), float("nan"), float("nan"), n).to_dict()
        return out


def _informativeness(s: int) -> float:
    return (s - 3 if s >= 3 else s) / 3


def record_values(
    runs: Sequence[Sequence[int]], indices: Sequence[int] | None = None
) -> tuple[dict[str, list[float]], list[int]]:
    """Each record's value per metric (`score`, `hallucination_rate`, `informativeness` as a fraction)
    averaged over its judge runs, and the records' template indices (which give the question type)."""
    idx = list(range(len(runs))) if indices is None else list(indices)
    if len(idx) != len(runs):
        raise ValueError("ratings and indices differ in length")
    if any(not r for r in runs):
        raise ValueError("every record needs at least one rating")

    def mean(values: Sequence[float]) -> float:
        return sum(values) / len(values)

    values = {
        "score": [mean(r) for r in runs],
        "hallucination_rate": [mean([1.0 if s < HALLUCINATION_BELOW else 0.0 for s in r]) for r in runs],
        "informativeness": [mean([_informativeness(s) for s in r]) for r in runs],
    }
    return values, idx


def summarize_runs(
    runs: Sequence[Sequence[int]], indices: Sequence[int] | None = None, n_unparsed: int = 0
) -> Summary:
    """Aggregate the per-run ratings of each record (`runs[k]`: record `indices[k]`'s rating in every judge
    run). Each record contributes its mean over runs (for the hallucination rate: the fraction of its runs
    rated < 3), so every metric is also the mean over runs of that run's official number."""
    values, idx = record_values(runs, indices)
    scores = values["score"]
    types = {}
    for t, name in enumerate(QUESTION_TYPES):
        vals = [s for s, i in zip(scores, idx, strict=True) if i % len(QUESTION_TYPES) == t]
        if vals:
            types[name] = mean_estimate(vals)
    return Summary(
        mean_estimate(scores),
        mean_estimate(values["hallucination_rate"]),
        mean_estimate(values["informativeness"], scale=100.0),
        types,
        n_unparsed,
    )


def summarize(ratings: Sequence[int], indices: Sequence[int] | None = None, n_unparsed: int = 0) -> Summary:
    """Aggregate ratings of records `indices` (default 0..n-1, i.e. the full template in order)."""
    return summarize_runs([[s] for s in ratings], indices, n_unparsed)


def score_reviews(reviews: Sequence[str]) -> dict[str, Any]:
    """A row's score fields from its judge reviews, one per run: the official rating of each run
    (`ratings`), whether its review held exactly one rating (`parsed`; else the official rule gives 0), the
    number of reviews that did not (`unparsed`), every rating found (`ratings_found`, all reviews in run
    order) and the row's values averaged over runs (`rating`, `hallucination`)."""
    if not reviews:
        raise ValueError("no judge review to score")
    found = [ratings_found(r) for r in reviews]
    ratings = [f[0] if len(f) == 1 else 0 for f in found]
    return {
        "rating": sum(ratings) / len(ratings),
        "ratings": ratings,
        "parsed": [len(f) == 1 for f in found],
        "unparsed": sum(len(f) != 1 for f in found),
        "ratings_found": [s for f in found for s in f],
        "hallucination": sum(s < HALLUCINATION_BELOW for s in ratings) / len(ratings),
    }


def summarize_judged(judged: Sequence[Judged]) -> Summary:
    return summarize(
        [j.rating for j in judged],
        [j.item.index for j in judged],
        sum(len(j.ratings_found) != 1 for j in judged),
    )


def with_answer(item: Item, answer: str) -> Item:
    return replace(item, model_answer=answer)


def item_meta(it: Item) -> dict[str, Any]:
    """What a row stores of its record beside the prompt (the question) and the target (the human answer)."""
    return {
        "index": it.index,
        "question_type": it.question_type,
        "question_topic": it.question_topic,
        "image_id": it.image_id,
        "image_content": list(it.image_content),
    }
