"""A run scored with a non-official AMBER NLP backend says so: a line in `evalkit run`'s summary, a † on its
leaderboard cells and its tax-table lines, and a footnote naming the backend. Real toy runs (the `basic`
backend, through `evaluate` against a local OpenAI-compatible server); the official-backend runs are the same
folders with run.json's backend record replaced by the official backend's, which this machine cannot load."""

import json
import shutil

import pytest
from support.openai_server import FakeOpenAIServer, last_user_text

from evalkit.analysis.leaderboard import build_leaderboard, rich_table, to_html, to_json, to_markdown
from evalkit.analysis.tax import tax_table
from evalkit.analysis.tax_render import print_table
from evalkit.analysis.tax_render import to_markdown as tax_markdown
from evalkit.cli.run_display import show
from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import evaluate

pytestmark = pytest.mark.usefixtures("fast_retries")
OFFICIAL = {"id": "official", "tokenizer": "nltk", "similarity": "en_core_web_lg", "official": True}


def toy_run(tmp_path, name, reply):
    def play(body):
        return reply if last_user_text(body) == "Describe this image." else "No"

    with FakeOpenAIServer(responder=play) as server:
        backend = OpenAIBackend("cand", BackendOptions(base_url=server.base_url, max_retries=2, timeout_s=5))
        return evaluate(
            backend,
            ["amber"],
            data="toy",
            limit=12,
            output=tmp_path / name,
            task_options={"amber.nlp": "basic"},
            progress=False,
        )


def as_official(run_dir, target):
    shutil.copytree(run_dir, target)
    header = json.loads((target / "run.json").read_text())
    header["tasks"]["amber"]["data"]["nlp"] = OFFICIAL
    (target / "run.json").write_text(json.dumps(header))
    return target


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nlp")
    base = toy_run(tmp, "base", "There is a dog.")
    aligned = toy_run(tmp, "aligned", "There is a cat and a car.")
    return {
        "base": base,
        "aligned": aligned.run_dir,
        "base_official": as_official(base.run_dir, tmp / "official" / "base"),
        "aligned_official": as_official(aligned.run_dir, tmp / "official" / "aligned"),
    }


def test_run_summary_names_a_non_official_backend(runs, capsys):
    show(runs["base"], as_json=False, title="t")
    text = " ".join(capsys.readouterr().out.split())
    assert "amber: NLP backend 'basic', not the official one" in text
    assert "en_core_web_lg" in text and "averaged_perceptron_tagger_eng" in text
    official = json.loads((runs["base_official"] / "run.json").read_text())
    show(type(runs["base"])(runs["base_official"], runs["base"].metrics, official), as_json=False, title="t")
    assert "NLP backend" not in capsys.readouterr().out


def test_leaderboard_marks_basic_cells_only(runs, capsys):
    basic = build_leaderboard([runs["base"].run_dir])
    md = to_markdown(basic)
    value = json.loads(to_json(basic))["runs"][0]["values"]["amber.amber_score"]
    assert value["nlp"] == "basic"
    assert f"{value['value']:.2f}† [" in md
    assert "† AMBER scored with a non-official NLP backend (basic)" in md and "en_core_web_lg" in md
    assert "non-official NLP backend (basic)" in to_html(basic)
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(rich_table(basic))
    shown = console.export_text()
    assert "52" in shown and "†" in shown and "(basic)" in shown
    official = build_leaderboard([runs["base_official"]])
    cell = json.loads(to_json(official))["runs"][0]["values"]["amber.amber_score"]
    assert "†" not in to_markdown(official) and "nlp" not in cell
    assert "non-official" not in to_html(official)


def test_tax_table_marks_amber_lines_scored_with_basic(runs, capsys):
    table = tax_table(runs["base"].run_dir, {"dpo": runs["aligned"]}, n_resamples=200, min_common=3)
    assert table.tasks["amber"]["nlp"] == ["basic"]
    md = tax_markdown(table)
    assert "| amber† |" in md and "† AMBER scored with a non-official NLP backend (basic)" in md
    print_table(table)
    assert "†" in capsys.readouterr().out
    aligned = {"dpo": runs["aligned_official"]}
    official = tax_table(runs["base_official"], aligned, n_resamples=200, min_common=3)
    assert "nlp" not in official.tasks["amber"]
    assert "†" not in tax_markdown(official) and "non-official" not in tax_markdown(official)
