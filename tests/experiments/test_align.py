"""`evalkit align CONFIG.yaml`: train checkpoints from a base, evaluate them all, write the alignment-tax
table; every stage resumes instead of redoing finished work. Base: the random toy LLaVA saved to a temp
folder; tiny step counts and a POPE limit keep it fast (the numbers mean nothing, the plumbing is tested)."""

from __future__ import annotations

import json
import random

import pytest
from support.training import save_toy_base
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.experiments.align import read_plan, run_align
from evalkit.toy.world import STYLE, render, sample_scenes
from evalkit.types import UserError

CONFIG = """
base: base
output: out
evaluate:
  tasks: pope
  data: toy
  limit: 24
checkpoints:
  sft: {method: sft, data: sft.jsonl, max_steps: 2, batch_size: 4, lora_rank: 4, save_every: 0}
  dpo: {method: dpo, from: sft, data: pairs.jsonl, max_steps: 2, batch_size: 4, lora_rank: 4, save_every: 0}
reference: sft
min_common: 2
"""


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def folder(tmp_path):
    save_toy_base(tmp_path)
    rng = random.Random(0)
    sft, pairs = [], []
    for s in sample_scenes(8, seed=21):
        render(s).save(tmp_path / f"{s.image_id}.png")
        absent = rng.choice(sorted(set(STYLE) - set(s.objects)))
        common = {"id": s.image_id, "image": f"{s.image_id}.png", "prompt": "describe the image."}
        sft.append({**common, "response": f"{s.objects[0]}."})
        pairs.append({**common, "chosen": f"{s.objects[0]}.", "rejected": f"{absent}."})
    (tmp_path / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
    (tmp_path / "align.yaml").write_text(CONFIG)
    return tmp_path


def test_align_trains_evaluates_and_writes_the_table_then_resumes(folder):
    result = run_align(folder / "align.yaml")
    out = folder / "out"
    for name in ("sft", "dpo"):
        info = json.loads((out / "checkpoints" / name / "train_config.json").read_text())
        assert info["completed"]
    dpo_info = json.loads((out / "checkpoints" / "dpo" / "train_config.json").read_text())
    assert dpo_info["model_source"] == str(out / "checkpoints" / "sft")  # dpo starts from the sft checkpoint
    for name in ("base", "sft", "dpo"):
        assert (out / "eval" / name / "metrics.json").is_file()
    assert {p.name for p in result["paths"]} >= {"tax.md", "tax.csv", "tax.html", "tax.json"}
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "tax." not in p.name}
    run_align(folder / "align.yaml")  # everything finished: nothing is trained or generated again
    changed = [p for p, t in stamps.items() if p.exists() and p.stat().st_mtime_ns != t]
    assert not [p for p in changed if p.suffix in (".safetensors", ".jsonl")], changed


def test_plan_errors(folder):
    bad = folder / "bad.yaml"
    for text, fragment in [
        (CONFIG.replace("reference: sft", "reference: nope"), "reference 'nope'"),
        (CONFIG.replace("from: sft", "from: later"), "starts from 'later'"),
        (
            CONFIG.replace("max_steps: 2, batch_size", "max_stepz: 2, batch_size"),
            "unknown setting 'max_stepz'",
        ),
        (CONFIG.replace("  tasks: pope\n", ""), "evaluate.tasks is required"),
        (CONFIG + "extra: 1\n", "unknown key 'extra'"),
        (CONFIG.replace("min_common: 2", "min_common: 1"), "min_common must be a whole number of at least 2"),
        (CONFIG.replace("min_common: 2", "min_common: many"), "min_common must be"),
    ]:
        bad.write_text(text)
        with pytest.raises(UserError, match=fragment):
            read_plan(bad)
    plan = read_plan(folder / "align.yaml")
    assert plan.models == ["base", "sft", "dpo"] and plan.base == str(folder / "base")
    assert plan.checkpoints["dpo"]["data"] == str(folder / "pairs.jsonl")
    assert plan.min_common == 2
    bad.write_text(CONFIG.replace("min_common: 2\n", ""))
    assert read_plan(bad).min_common == 20  # as `evalkit compare`


def test_cli_align_usage_error_is_one_line(folder):
    (folder / "bad.yaml").write_text(CONFIG.replace("reference: sft", "reference: nope"))
    result = CliRunner().invoke(app, ["align", str(folder / "bad.yaml")])
    assert result.exit_code == 2 and "reference 'nope'" in result.stderr


def _grade(prediction: str) -> str:
    """The judge's grade of an answer: a function of the answer alone, so the test can recompute it."""
    return ("0.0", "0.5", "1.0")[len(prediction) % 3]


def _judge(body):
    item = body["messages"][0]["content"].rsplit("\n", 1)[-1]  # "question | truth | prediction | "
    return _grade(item.split(" | ")[2])


@pytest.mark.slow
def test_align_with_a_judged_task(folder, openai_server):
    """POPE and MM-Vet (judged by a real OpenAI-compatible server on 127.0.0.1): the table's MM-Vet values
    are the judge's grades of the stored answers, recomputed here; a re-run asks the judge nothing."""
    srv = openai_server(responder=_judge)
    config = CONFIG.replace("base: base", "base: toy").replace(
        "  tasks: pope\n  data: toy\n  limit: 24\n",
        f"  tasks: pope,mmvet\n  data: toy\n  limit: 20\n  judge: {{base_url: '{srv.base_url}'}}\n",
    )
    (folder / "judged.yaml").write_text(config.replace("output: out", "output: judged"))
    result = run_align(folder / "judged.yaml")
    asked = len(srv.requests)
    run_align(folder / "judged.yaml")
    assert len(srv.requests) == asked > 0
    out = folder / "judged" / "eval"
    means = {}
    for name in ("base", "sft", "dpo"):
        rows = [json.loads(x) for x in (out / name / "samples" / "mmvet.jsonl").read_text().splitlines()]
        assert len(rows) == 20
        means[name] = 100 * sum(float(_grade(r["response"])) for r in rows) / len(rows)
    table = result["table"]  # reference: sft
    for name in ("base", "dpo"):
        row = table.get(name, "mmvet", "total")
        assert row.base == pytest.approx(means["sft"]) and row.aligned == pytest.approx(means[name])
        assert row.group == "visual instruction-following"
    assert table.get("dpo", "pope", "f1_mean").group == "hallucination"
