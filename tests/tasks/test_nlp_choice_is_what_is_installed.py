"""AMBER's and Object HalBench's automatic NLP choice is a function of what is installed only (tasks/nlp.py).

NLTK and spaCy are not installed in the test environment, so the discovery is run in fresh processes over a
package layout on disk: an `nltk` package whose data path is a test folder, a `spacy` package and an
installed `en_core_web_md` distribution (dist-info), Debian-style WordNet files and NLTK data folders. The
expected names are derived by hand from each task's documented order of preference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest

from evalkit.tasks import nlp as tools
from evalkit.tasks.amber import nouns as amber_nouns
from evalkit.tasks.nlp import PUNKT_TAB, WORDNET, WORDNET_FILES, Installed, copy_debian_wordnet, find_resource
from evalkit.tasks.objhal import nouns as objhal_nouns
from evalkit.types import UserError

SCRIPT = """
import json, sys
from pathlib import Path
from evalkit.tasks import nlp
from evalkit.tasks.amber import nouns as amber_nouns
from evalkit.tasks.objhal import nouns as objhal_nouns
nlp.DEBIAN_WORDNET = Path(sys.argv[1])
out = []
for step in sys.argv[2].split(","):
    if step == "amber":
        out.append(["amber", amber_nouns.resolve("auto")])
    elif step == "objhal":
        out.append(["objhal", objhal_nouns.auto_name()])
    elif step == "wordnet":  # what loading either task's lemmatizer does first: the cache copy
        out.append(["wordnet", nlp.wordnet_root()])
    elif step == "refresh":  # read what is installed again, with the copy on NLTK's data path
        out.append(["wordnet source", nlp.refresh().wordnet])
print(json.dumps(out))
"""
MD = "spacy:en_core_web_md"


def make_site(root: Path) -> tuple[Path, Path]:
    """An installed NLTK (data path: root/nltk_data), spaCy and en_core_web_md; returns (site, nltk_data)."""
    site, data = root / "site", root / "nltk_data"
    (site / "nltk").mkdir(parents=True)
    data.mkdir()
    (site / "nltk" / "__init__.py").write_text('from nltk import data\n__version__ = "3.9.1"\n')
    (site / "nltk" / "data.py").write_text(f"path = [{str(data)!r}]\n")
    (site / "spacy").mkdir()
    (site / "spacy" / "__init__.py").write_text('__version__ = "3.8.0"\n')
    dist = site / "en_core_web_md-3.8.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: en_core_web_md\nVersion: 3.8.0\n")
    return site, data


def make_debian(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in WORDNET_FILES:
        (folder / name).write_text(f"WordNet 3.0 {name}\n")
    return folder


def choose(site: Path, debian: Path, cache: Path, steps: str) -> list[list[str]]:
    env = {**os.environ, "PYTHONPATH": str(site), "EVALKIT_CACHE": str(cache)}
    env.pop("NLTK_DATA", None)
    command = [sys.executable, "-c", SCRIPT, str(debian), steps]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_choices_are_the_same_with_and_without_a_prior_run_of_the_other_task(tmp_path):
    site, _ = make_site(tmp_path)
    debian = make_debian(tmp_path / "debian")
    objhal_name = f"nltk-treebank+wordnet+{MD}"  # no Punkt data; WordNet from Debian; the one model
    label = f"Debian wordnet-base ({debian})"
    # an AMBER run in cache A (its lemmatizer copies WordNet), then Object HalBench in the same process
    first = choose(site, debian, tmp_path / "A", "amber,wordnet,refresh,objhal,amber")
    assert first == [
        ["amber", MD],
        ["wordnet", label],
        ["wordnet source", label],
        ["objhal", objhal_name],
    ] + [["amber", MD]]
    copy = tmp_path / "A" / "nltk_data" / "corpora" / "wordnet"
    assert (copy / "index.noun").read_text() == "WordNet 3.0 index.noun\n"
    # Object HalBench later on a machine where AMBER ran, and on a fresh cache: the same choice
    assert choose(site, debian, tmp_path / "A", "objhal,amber") == [["objhal", objhal_name], ["amber", MD]]
    assert choose(site, debian, tmp_path / "B", "objhal,amber") == [["objhal", objhal_name], ["amber", MD]]
    # and the other way round: an Object HalBench run first in cache C
    assert choose(site, debian, tmp_path / "C", "objhal,wordnet,amber") == [
        ["objhal", objhal_name],
        ["wordnet", label],
        ["amber", MD],
    ]
    assert choose(site, debian, tmp_path / "C", "amber,objhal") == [["amber", MD], ["objhal", objhal_name]]
    # the cache copy is never a source: without Debian's files WordNet is missing, copy or not
    for name in WORDNET_FILES:
        (debian / name).unlink()
    without = [["objhal", f"nltk-treebank+{MD}"], ["amber", "basic"]]  # AMBER's spaCy backend needs WordNet
    assert choose(site, debian, tmp_path / "A", "objhal,amber") == without
    assert choose(site, debian, tmp_path / "D", "objhal,amber") == without


def test_nltk_data_in_folders_and_zip_files_is_found(tmp_path):
    site, data = make_site(tmp_path)
    (data / "corpora").mkdir()
    with zipfile.ZipFile(data / "corpora" / "wordnet.zip", "w") as z:  # the layout nltk.download leaves
        z.writestr("wordnet/index.noun", "x")
    (data / PUNKT_TAB).mkdir(parents=True)
    missing = tmp_path / "no-debian"
    got = choose(site, missing, tmp_path / "cache", "objhal,amber,wordnet")
    assert got == [["objhal", f"nltk-punkt+wordnet+{MD}"], ["amber", MD], ["wordnet", "nltk_data"]]
    assert not (tmp_path / "cache" / "nltk_data").exists()  # NLTK's own WordNet: nothing copied


def test_find_resource_reads_folders_and_zip_members(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "tokenizers" / "punkt_tab" / "english").mkdir(parents=True)
    (b / "corpora").mkdir(parents=True)
    with zipfile.ZipFile(b / "corpora" / "wordnet.zip", "w") as z:
        z.writestr("other/index.noun", "x")  # a zip without the resource
    assert find_resource([b, a], PUNKT_TAB) == a
    assert find_resource([a, b], WORDNET) is None
    (b / "corpora" / "wordnet.zip").write_bytes(b"not a zip")
    assert find_resource([b], WORDNET) is None
    with zipfile.ZipFile(a / "tokenizers" / "punkt_tab.zip", "w") as z:
        z.writestr("punkt_tab/english/collocations.tab", "x")
    (a / "tokenizers" / "punkt_tab" / "english").rmdir()
    assert find_resource([b, a], PUNKT_TAB) == a


def test_debian_wordnet_copy_is_whole_with_lexnames(tmp_path):
    source = make_debian(tmp_path / "debian")
    target = tmp_path / "cache" / "corpora" / "wordnet"
    target.mkdir(parents=True)
    (target / "index.noun").write_text("left over from an interrupted copy")
    copy_debian_wordnet(source, target)
    for name in WORDNET_FILES:
        assert (target / name).read_bytes() == (source / name).read_bytes()
    lexnames = (target / "lexnames").read_text().splitlines()
    # lexnames(5WN): 45 files, number <TAB> name <TAB> syntactic category (1 noun, 2 verb, 3 adj, 4 adv)
    assert len(lexnames) == 45
    assert lexnames[:4] == ["00\tadj.all\t3", "01\tadj.pert\t3", "02\tadv.all\t4", "03\tnoun.Tops\t1"]
    assert lexnames[29] == "29\tverb.body\t2" and lexnames[44] == "44\tadj.ppl\t3"
    stamp = (target / "lexnames").stat().st_mtime_ns
    copy_debian_wordnet(source, target)  # a whole copy is left as it is
    assert (target / "lexnames").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in target.parent.iterdir()) == ["wordnet"]  # no temporary folder left


# --- each task's order of preference, over given installations (no process needed) ----------------------


@pytest.fixture
def here(monkeypatch):
    state = {"value": Installed()}
    monkeypatch.setattr(tools, "installed", lambda: state["value"])
    monkeypatch.setattr(objhal_nouns, "_LOADED", {})  # tools loaded by other tests of this process
    return state


def test_objhal_auto_takes_each_installed_tool():
    assert objhal_nouns.auto_name(Installed()) == "builtin"
    full = Installed(
        nltk="3.9.1",
        nltk_data=frozenset({PUNKT_TAB, WORDNET}),
        wordnet="nltk_data",
        spacy=True,
        spacy_models=frozenset({"en_core_web_sm", "en_core_web_lg"}),
    )
    assert objhal_nouns.auto_name(full) == "nltk-punkt+wordnet+spacy:en_core_web_lg"
    vendored = Installed(spacy=True, mooring_md=True, spacy_models=frozenset({"en_core_web_sm"}))
    assert objhal_nouns.auto_name(vendored) == "spacy:mooring-en_core_web_md"
    no_spacy = Installed(spacy_models=frozenset({"en_core_web_md"}))  # a model package without spaCy
    assert objhal_nouns.auto_name(no_spacy) == "builtin"
    assert objhal_nouns.auto_name(Installed(nltk="3.9.1")) == "nltk-treebank"


def test_amber_auto_takes_the_most_official_installed_backend(here):
    lg = {"spacy": True, "spacy_models": frozenset({"en_core_web_lg", "en_core_web_sm"})}
    here["value"] = Installed(nltk="3.9.1", wordnet="nltk_data", nltk_tagger=True, **lg)
    assert amber_nouns.resolve("auto") == "official"
    here["value"] = Installed(nltk="3.9.1", wordnet="nltk_data", **lg)  # no tagger data
    assert amber_nouns.resolve("auto") == "spacy:en_core_web_lg"
    here["value"] = Installed(nltk="3.9.1", wordnet="nltk_data", spacy=True, mooring_md=True)
    assert amber_nouns.resolve("auto") == amber_nouns.resolve("spacy") == "spacy:en_core_web_md"
    here["value"] = Installed(nltk_tagger=True, **lg)  # spaCy backends need WordNet too
    assert amber_nouns.resolve("auto") == "basic"


def test_missing_tools_are_named(here):
    with pytest.raises(UserError, match="tokenized with nltk-treebank"):
        objhal_nouns.resolve("nltk-treebank+wordnet")
    with pytest.raises(UserError, match="tagged with spaCy mooring-en_core_web_md"):
        objhal_nouns.resolve("spacy:mooring-en_core_web_md")
    here["value"] = Installed(spacy=True, mooring_md=True)  # the vendored md is not the md package
    with pytest.raises(UserError, match="tagged with spaCy en_core_web_md, not installed here"):
        objhal_nouns.resolve("spacy:en_core_web_md")
    with pytest.raises(UserError, match="spaCy model en_core_web_lg is not installed"):
        tools.spacy_pipeline("en_core_web_lg")
    with pytest.raises(UserError, match="WordNet is not installed"):
        tools.wordnet_root()


def test_a_tool_that_is_installed_but_fails_to_load_is_an_error_not_a_fallback(here, monkeypatch):
    def load(path, exclude=()):
        raise OSError(f"[E050] Can't find model '{path}'")

    monkeypatch.setitem(sys.modules, "spacy", types.SimpleNamespace(load=load))
    here["value"] = Installed(spacy=True, spacy_models=frozenset({"en_core_web_sm"}))
    assert objhal_nouns.auto_name() == "spacy:en_core_web_sm"
    with pytest.raises(
        UserError,
        match=r"en_core_web_sm \(package en_core_web_sm\) is installed but fails.*"
        r"E050.*objhal.nlp=builtin",
    ):
        objhal_nouns.resolve("auto")
    with pytest.raises(UserError, match="fails to load.*amber.nlp=basic"):
        amber_nouns.SpacyBackend("en_core_web_sm")


def test_nothing_installed_here_means_the_builtin_tools():
    if tools.refresh() != Installed():
        pytest.skip("NLTK or spaCy is installed here")
    assert objhal_nouns.auto_name() == "builtin" and objhal_nouns.resolve("auto").name == "builtin"
    assert amber_nouns.resolve("auto") == "basic"
