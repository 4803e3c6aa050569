"""MMBench from the hub: lmms-lab/MMBench's `en` parquet files in a Hugging Face cache laid out on disk
(support/hub_cache.py), read offline, give the samples (every circular pass) and metrics the same rows
give as the official MMBench_DEV_EN.tsv through --data-dir (candidate played by a local server); the test
split gives answer-less rows, as MMBench_TEST_EN.tsv does; run.json records what was read, and `evalkit
data list` shows both splits."""

import base64
import hashlib
import json
import re

import pytest
from support.cli import error_line, run_cli
from support.hub_cache import HubCache, parquet_bytes, png_bytes
from support.mmbench import write_tsv
from support.openai_server import last_user_text

pytestmark = pytest.mark.usefixtures("fast_retries")

#: the cache's main (the sources are not pinned to a commit)
MAIN = "7" * 40
COLUMNS = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source"]
COLUMNS += ["L2-category", "comment", "split"]
FEATURES = {c: "Image" if c == "image" else "string" for c in COLUMNS}
COLORS = [(220, 20, 20), (20, 220, 20), (20, 20, 220)]
#: index → (image, question, hint, options, answer, category, l2-category)
QUESTIONS = {
    0: (0, "What colour is the square?", "Look at the centre.", ["red", "green", "blue", "black"], "A"),
    1: (1, "Is it day or night?", None, ["day", "night"], "A"),
    2: (2, "Which shape is shown?", None, ["circle", "square", "star"], "B"),
}
CATEGORIES = {0: ("color", "attribute"), 1: ("scene", "coarse"), 2: ("shape", "attribute")}
#: what the candidate picks, by option text, for each question ("A" for question 1: always the letter A)
PICKS = {0: "red", 1: None, 2: "star"}


def rows(with_answers: bool = True) -> list[dict]:
    out = []
    for idx, (image, question, hint, options, answer) in QUESTIONS.items():
        row = {
            "index": str(idx),
            "question": question,
            "hint": hint,
            "answer": answer if with_answers else None,
        }
        row |= dict(zip("ABCD", options + [None] * (4 - len(options)), strict=True))
        row |= {"category": CATEGORIES[idx][0], "L2-category": CATEGORIES[idx][1], "split": "dev"}
        row |= {"source": "test", "comment": None, "image": png_bytes(COLORS[image])}
        out.append(row)
    return out


def hub_file(with_answers: bool = True) -> bytes:
    """The hub's parquet file: missing cells null, or the text "nan" (pandas-converted rows), both missing
    in the TSV's reading."""
    cells = [r | {"image": {"bytes": r["image"], "path": None}} for r in rows(with_answers)]
    cells[1] |= {"hint": "nan", "comment": "nan"}
    return parquet_bytes(cells, FEATURES)


def write_official(path, with_answers: bool = True) -> None:
    """The same rows as VLMEvalKit's TSV: base64 images, empty cells where the hub has nulls."""
    tsv = []
    for r in rows(with_answers):
        row = {k: ("" if v is None else v) for k, v in r.items() if k != "L2-category"}
        row |= {"l2-category": r["L2-category"], "image": base64.b64encode(r["image"]).decode()}
        tsv.append(row)
    write_tsv(path, tsv)


def play(body):
    """The candidate picks the letter of its chosen option text (question 1: always "A")."""
    text = last_user_text(body)
    options = dict(re.findall(r"^([A-D])\. (.*)$", text, re.M))
    qidx = next(i for i, q in QUESTIONS.items() if q[1] in text)
    pick = PICKS[qidx]
    return "A" if pick is None else next(letter for letter, value in options.items() if value == pick)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "evalkit"))
    return HubCache.install(tmp_path / "hf", monkeypatch)


def test_hub_run_scores_as_the_official_tsv(tmp_path, cache, openai_server):
    files = {"en/dev-00000-of-00001.parquet": hub_file(), "en/test-00000-of-00001.parquet": hub_file(False)}
    snapshot = cache.add("lmms-lab/MMBench", MAIN, files)
    write_official(tmp_path / "official" / "MMBench_DEV_EN.tsv")
    server = openai_server(responder=play)
    common = ["--model", "openai:candidate", "--base-url", server.base_url, "--tasks", "mmbench", "--json"]
    common += ["--judge", "openai:judge", "--judge-base-url", server.base_url]
    from_hub = run_cli("run", *common, "--output", str(tmp_path / "hub-run"))
    assert from_hub.returncode == 0, from_hub.stderr
    official = ["--data-dir", str(tmp_path / "official")]
    from_dir = run_cli("run", *common, *official, "--output", str(tmp_path / "dir-run"))
    assert from_dir.returncode == 0, from_dir.stderr
    a = json.loads(from_hub.stdout)["metrics"]["mmbench"]["metrics"]
    b = json.loads(from_dir.stdout)["metrics"]["mmbench"]["metrics"]
    assert {k: v["value"] for k, v in a.items()} == {k: v["value"] for k, v in b.items()}
    # question 0: right in every pass; 1: "A" is right only in the first pass; 2: always the wrong text
    assert a["overall"]["value"] == pytest.approx(100 / 3)
    assert a["vanilla"]["value"] == pytest.approx(200 / 3)
    assert server.count == 2 * (4 + 2 + 3)  # two runs, one generation per pass, no matcher call

    stored = {}
    for name in ("hub-run", "dir-run"):
        lines = [json.loads(line) for line in open(tmp_path / name / "samples" / "mmbench.jsonl")]
        stored[name] = {r["id"]: r for r in lines}
    want_ids = {str(i + k * 1_000_000) for i, q in QUESTIONS.items() for k in range(len(q[3]))}
    assert stored["hub-run"].keys() == stored["dir-run"].keys() == want_ids
    for sid, r in stored["hub-run"].items():
        d = stored["dir-run"][sid]
        same = ("prompt", "target", "meta", "cluster", "response", "correct")
        assert {f: r.get(f) for f in same} == {f: d.get(f) for f in same}
    assert stored["hub-run"]["0"]["prompt"].startswith(
        "Look at the centre.\nWhat colour is the square?\nA. red"
    )

    data = json.loads((tmp_path / "hub-run" / "run.json").read_text())["tasks"]["mmbench"]["data"]
    hub = data["hub"]
    assert (hub["repo"], hub["revision"], hub["pinned"], hub["config"]) == (
        "lmms-lab/MMBench",
        MAIN,
        False,
        "en",
    )
    assert hub["split"] == {"dev": 3} and hub["rows"] == 3
    name = "en/dev-00000-of-00001.parquet"
    assert hub["files"] == {name: hashlib.sha256((snapshot / name).read_bytes()).hexdigest()}
    assert (data["questions"], data["passes"], data["circular"]) == (3, 9, "built (options rotated)")
    assert data["version"].startswith("hub MMBench en dev (3 rows) #")

    listed = {e["task"]: e for e in json.loads(run_cli("data", "list", "--json").stdout)}
    sources = listed["mmbench"]["hub"]
    assert [(s["repo_id"], s["split"], s["pinned"]) for s in sources] == [
        ("lmms-lab/MMBench", "dev", False),
        ("lmms-lab/MMBench", "test", False),
    ]
    assert [s["files"] for s in sources] == [["en/dev-*.parquet"], ["en/test-*.parquet"]]
    assert sources[0]["cached"] == {"repo": "lmms-lab/MMBench", "revision": MAIN}


def test_the_test_split_has_no_answers_and_circular_rows_in_the_file_are_kept(tmp_path, cache):
    from evalkit.runner import load_tasks

    official = tmp_path / "official"
    write_official(official / "MMBench_TEST_EN.tsv", with_answers=False)
    cache.add("lmms-lab-encoder/MMBench", MAIN, {"en/test-00000-of-00001.parquet": hub_file(False)})
    options = {"mmbench.split": "test"}
    _, from_hub = load_tasks("mmbench", task_options=options)
    _, from_dir = load_tasks("mmbench", data_dir=official, task_options=options)
    hub, local = from_hub["mmbench"], from_dir["mmbench"]
    assert hub.info["answers"] == "hidden" and all(s.target is None for s in hub.samples)
    assert hub.info["hub"]["repo"] == "lmms-lab-encoder/MMBench"
    assert [(s.id, s.messages[0].text, s.meta) for s in hub.samples] == [
        (s.id, s.messages[0].text, s.meta) for s in local.samples
    ]

    # a file holding the circular rows (index + k·1,000,000): read as they are, not rotated again
    circular = rows()[:1]
    circular.append(circular[0] | {"index": "1000000", "A": "green", "B": "blue", "C": "black", "D": "red"})
    circular[1]["answer"] = "D"
    cells = [r | {"image": {"bytes": r["image"], "path": None}} for r in circular]
    cache.add("lmms-lab/MMBench", "8" * 40, {"en/dev-00000-of-00001.parquet": parquet_bytes(cells, FEATURES)})
    _, loaded = load_tasks("mmbench")
    samples = loaded["mmbench"].samples
    assert [(s.id, s.target) for s in samples] == [("0", "A"), ("1000000", "D")]
    assert loaded["mmbench"].info["circular"] == "from the file"


def test_an_empty_cache_offline_names_the_fetch_command_and_the_tsv(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    line = error_line(
        run_cli("run", "--model", "toy", "--tasks", "mmbench", "--output", str(tmp_path / "run"))
    )
    assert line.startswith("error: mmbench needs data: lmms-lab/MMBench (en")
    assert "`evalkit data fetch mmbench`" in line and "MMBench_DEV_EN.tsv" in line
