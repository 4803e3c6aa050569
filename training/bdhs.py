"""Bias-Driven Hallucination Sampling (BDHS; training.md §1b, Algorithm 1 of arXiv 2407.02477).

BDHS turns SFT data (prompt, image, answer y+) into preference pairs whose rejected answer y− is written
by the policy itself while it barely sees the image, so y− carries the model's own language-prior
hallucinations rather than a stranger's mistakes. One try for one example:

1. a fresh attention mask over the image tokens keeps each with probability `keep` (= 1 − ρ_th; 0.01);
   all sentences of the try share it;
2. y+ is split into sentences; a sentence starting with Yes/yes/No/no is flipped to the opposite answer
   with probability `flip_prob`; each sentence is cut at a random word end (the prefix is never empty and
   never reaches the sentence's last word's end unless the sentence is a single bare word with nothing
   after it) and the masked model completes it up to the first sentence end, conditioned on the TRUE
   earlier sentences of y+ plus the prefix; the sentences are independent, so all of them (of all
   examples) are sampled in one batch;
3. y− = the concatenation of prefix + completion over the sentences (whitespace between sentences kept);
   if cos(e(y−), e(y+)) ≥ `similarity_threshold` (sentence embeddings), the example is tried again with a
   new mask and new split points. The last try (when `max_tries` > 1) is a full answer from the masked
   model with no guidance at all, accepted whatever its similarity (a "fallback"); with `max_tries` = 1
   the single guided try is accepted.

BDHS_noise (`image="noise"`): each try sees the image diffusion-noised for `noise_steps` of 1000 steps
(`training.image_noise`) instead of masked, with a fresh ε per try (drawn from the try's mask seed); the
rest (guidance, similarity check, tries) is the same.

A y− identical to y+ (the same answer tokens, or the same text) or empty is no preference and never becomes
a pair: it is counted and skipped.
Each example draws everything (flips, split points, masks, sampling seeds) from its own RNG seeded by
(seed, example id), so the pairs do not depend on which other examples are processed with it.

`temperature` 1.0 is a choice: the paper does not state one; 1.0 samples the policy's own distribution,
which is what "bias-driven" asks for (the same paper samples at T = 1.0 for RLOO).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from evalkit.training.data_records import PreferencePair
from evalkit.training.sampling import SampleRequest, derive_seed, sample

_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)\s*")
_YES_NO = re.compile(r"^(\s*)(Yes|yes|No|no)\b")
_SWAP = {"Yes": "No", "yes": "no", "No": "Yes", "no": "yes"}
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class BdhsConfig:
    keep: float = 0.01  # 1 − ρ_th with ρ_th = 0.99
    similarity_threshold: float = 0.97
    max_tries: int = 5  # N_BDHS; the last try is a full unguided masked response, accepted regardless
    flip_prob: float = 0.5  # yes/no swap probability
    temperature: float = 1.0  # not stated by the paper (see the module docstring)
    top_p: float = 1.0
    max_new_tokens: int = 64  # per sentence completion
    max_new_tokens_full: int = 256  # the final unguided try
    seed: int = 0
    batch_size: int = 16  # sampler batch (results do not depend on it)
    image: str = (
        "mask"  # "mask": attention masking (BDHS_attn); "noise": a diffusion-noised image (BDHS_noise)
    )
    noise_steps: int = 500  # BDHS_noise: N of the 1000 diffusion steps

    def view(self, mask_seed: int) -> dict:
        """How one try sees the image: its image-token mask, or its noised pixel values (the try's seed)."""
        if self.image == "noise":
            return {"noise": (self.noise_steps, mask_seed)}
        return {"image_keep": self.keep, "mask_seed": mask_seed}


def split_sentences(text: str) -> list[str]:
    """Sentences ending at '.', '!' or '?' (runs of them) followed by whitespace or the end; each keeps
    its trailing whitespace, so `"".join(split_sentences(t)) == t`. Abbreviations and decimals ("e.g. ",
    "3. ") are not recognised: they end a sentence."""
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        out.append(text[start : m.end()])
        start = m.end()
    if start < len(text):
        out.append(text[start:])
    return out


def flip_yes_no(sentence: str, rng: random.Random, prob: float = 0.5) -> str:
    """Swap a leading Yes/yes/No/no (a whole word) to the opposite answer with probability `prob`,
    keeping its case and the text around it. The RNG is drawn only for sentences that match."""
    m = _YES_NO.match(sentence)
    if not m or rng.random() >= prob:
        return sentence
    return sentence[: m.start(2)] + _SWAP[m.group(2)] + sentence[m.end(2) :]


def split_point(sentence: str, rng: random.Random) -> int:
    """A random word end inside the sentence with text still after it: the prefix `sentence[:cut]` holds
    at least one word and leaves at least the closing punctuation (or a word) to the model. A sentence
    that is one bare word is kept whole as the prefix."""
    body = sentence.rstrip()
    ends = [m.end() for m in _WORD.finditer(body) if m.end() < len(body)]
    return rng.choice(ends) if ends else len(body)


@dataclass
class _State:
    example: Any
    rng: random.Random
    sentences: list[str]
    tries: int = 0
    done: bool = False
    rejected: str = ""
    similarity: float = float("nan")
    fallback: bool = False
    image_positions: int = 0
    image_kept: int = 0
    history: list[float] = field(default_factory=list)


@dataclass
class _Plan:
    """One try of one example: y− pieces, with `None` where a request's sample goes."""

    state: _State
    pieces: list[str | None]
    first_request: int  # index of its first request in the round's request list


def bdhs_pairs(
    model,
    encoder,
    examples: Sequence[Any],
    embed: Callable[[list[str]], Any],
    config: BdhsConfig = BdhsConfig(),
    progress: Any = None,
) -> tuple[list[PreferencePair], dict]:
    """BDHS preference pairs for SFT `examples` (prompt, response, image, source, id), and statistics.
    `embed(texts)` returns one vector per text (e.g. `embedding.load_embedder()`). `progress`: a rich
    `Progress` (a task counts finished examples) or a callable `progress(done, total)`; updated after
    every round of tries."""
    import numpy as np

    if config.max_tries < 1:
        raise ValueError("max_tries must be at least 1")
    states, skipped = [], Counter()
    for ex in examples:
        sentences = split_sentences(ex.response)
        if not any(_WORD.search(s) for s in sentences):
            skipped["no_text"] += 1
            continue
        states.append(_State(ex, random.Random(derive_seed("bdhs", config.seed, ex.id)), sentences))
    chosen_vecs = _unit(np.asarray(embed([s.example.response for s in states]))) if states else None
    index = {id(s): i for i, s in enumerate(states)}
    report = _reporter(progress, len(states))
    for t in range(1, config.max_tries + 1):
        pending = [s for s in states if not s.done]
        if not pending:
            break
        final = t == config.max_tries and config.max_tries > 1
        requests: list[SampleRequest] = []
        plans = [_plan(s, config, final, requests) for s in pending]
        samples = sample(
            model,
            encoder,
            requests,
            max_new_tokens=config.max_new_tokens_full if final else config.max_new_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
            seed=config.seed,
            stop_at_sentence_end=not final,
            batch_size=config.batch_size,
        )
        rejected = [_assemble(p, samples) for p in plans]
        vecs = _unit(np.asarray(embed(rejected)))
        for plan, text, vec in zip(plans, rejected, vecs, strict=True):
            s = plan.state
            sim = float(vec @ chosen_vecs[index[id(s)]])
            first = samples[plan.first_request] if plan.first_request < len(samples) else None
            s.tries, s.rejected, s.similarity, s.fallback = t, text, sim, final
            s.image_positions = first.image_positions if first else 0
            s.image_kept = first.image_kept if first else 0
            s.history.append(sim)
            if final or config.max_tries == 1 or sim < config.similarity_threshold:
                s.done = True
        report(sum(s.done for s in states))
    return _finish(states, skipped, config, embed, len(examples), encoder)


def _reporter(progress: Any, total: int) -> Callable[[int], None]:
    if progress is None:
        return lambda done: None
    if hasattr(progress, "add_task"):  # rich.progress.Progress
        task = progress.add_task("BDHS", total=total)
        return lambda done: progress.update(task, completed=done)
    return lambda done: progress(done, total)


def _plan(state: _State, config: BdhsConfig, final: bool, requests: list[SampleRequest]) -> _Plan:
    ex, rng = state.example, state.rng
    mask_seed = rng.getrandbits(63)
    first = len(requests)
    if final:  # no guidance: a whole answer from the masked model
        requests.append(
            SampleRequest(ex.prompt, ex.image, "", seed=rng.getrandbits(63), **config.view(mask_seed))
        )
        return _Plan(state, [None], first)
    pieces: list[str | None] = []
    for k, sentence in enumerate(state.sentences):
        if not _WORD.search(sentence):  # punctuation or whitespace only: kept as it is
            pieces.append(sentence)
            continue
        flipped = flip_yes_no(sentence, rng, config.flip_prob)
        body = flipped.rstrip()
        cut = split_point(body, rng)
        head = "".join(state.sentences[:k]) + body[:cut]
        requests.append(
            SampleRequest(ex.prompt, ex.image, head, seed=rng.getrandbits(63), **config.view(mask_seed))
        )
        pieces += [body[:cut], None, flipped[len(body) :]]
    return _Plan(state, pieces, first)


def _assemble(plan: _Plan, samples) -> str:
    out, i = [], plan.first_request
    for piece in plan.pieces:
        if piece is None:
            out.append(samples[i].text)
            i += 1
        else:
            out.append(piece)
    return "".join(out)


def _unit(x):
    import numpy as np

    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _same_answer(encoder, a: str, b: str) -> bool:
    """The two answers are the same tokens to the model (a lower-casing tokenizer makes "Yes" == "yes")."""
    answer_ids = getattr(encoder, "answer_ids", None)
    return a.strip() == b.strip() or (
        answer_ids is not None and answer_ids(a.strip()) == answer_ids(b.strip())
    )


def _finish(states: list[_State], skipped: Counter, config: BdhsConfig, embed, n_examples: int, encoder=None):
    pairs, sims, kept_fraction = [], [], []
    tries = Counter()
    for s in states:
        ex = s.example
        tries[s.tries] += 1
        if not s.rejected.strip():
            skipped["empty_rejected"] += 1
            continue
        if _same_answer(encoder, s.rejected, ex.response):
            skipped["identical_to_chosen"] += 1
            continue
        record = {
            "tries": s.tries,
            "similarity": round(s.similarity, 6),
            "similarities": [round(x, 6) for x in s.history],
            "fallback": s.fallback,
            "keep": config.keep,
            "image_positions": s.image_positions,
            "image_kept": s.image_kept,
        }
        pairs.append(
            PreferencePair(ex.prompt, ex.response, s.rejected, ex.image, ex.source, ex.id, {"bdhs": record})
        )
        sims.append(s.similarity)
        if s.image_positions:
            kept_fraction.append(s.image_kept / s.image_positions)
    stats = {
        "examples": n_examples,
        "pairs": len(pairs),
        "tries": {str(k): tries[k] for k in sorted(tries)},
        "fallbacks": sum(s.fallback for s in states),
        "mean_similarity": sum(sims) / len(sims) if sims else None,
        "identical_to_chosen": skipped["identical_to_chosen"],
        "skipped": dict(skipped),
        "mean_image_kept_fraction": sum(kept_fraction) / len(kept_fraction) if kept_fraction else None,
        "config": asdict(config),
        "embedder": getattr(embed, "fingerprint", None),
    }
    return pairs, stats
