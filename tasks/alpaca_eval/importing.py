"""`evalkit import --task alpaca_eval|alpaca_eval_v1`: a model's model_outputs.json and the official
annotations.json that judged it as rows of a run (the raw judge completion where the file keeps one, the
official preference beside it), with the length-controlled win rate from published GLM weights or a refit;
and its inverse, a run's outputs and judgments written as those two files (`write_answers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.task import Imported
from evalkit.tasks.alpaca_eval import length_controlled as lc
from evalkit.tasks.alpaca_eval.data import (
    GAMED_FILE,
    N_INSTRUCTIONS,
    Annotations,
    read_annotations,
    read_outputs,
)
from evalkit.tasks.alpaca_eval.protocol import finite_or_none, get_version, is_switched
from evalkit.types import Message, Sample, UserError
from evalkit.util.datafiles import mark_partial, read_json, sha256_file, write_json

if TYPE_CHECKING:
    from evalkit.tasks.alpaca_eval import AlpacaEvalTask

#: What the fingerprint of an imported row says (a run's judge fingerprint has no `source`).
IMPORT_SOURCE = "official annotations.json"


def _read_annotations(task: AlpacaEvalTask, names: Mapping[str, str], judgments: list[Path]) -> Annotations:
    """The one annotations.json of `task`'s judge and reference (`names`: AlpacaEval version → task name,
    to point at the other task when the file is the other version's)."""
    if len(judgments) != 1:
        raise UserError(
            f"{task.name} import needs exactly one --judgments file (the official annotations.json of "
            f"the {task.protocol.annotator} judge), got {len(judgments)}"
        )
    ann = read_annotations(judgments[0])
    v = task.protocol
    if ann.version != v.name:
        raise UserError(
            f"{judgments[0]} holds AlpacaEval {ann.version} judgements (annotator "
            f"{get_version(ann.version).annotator}); import it with --task {names[ann.version]}, or pass the "
            f"{v.annotator} annotations.json for --task {task.name}"
        )
    if ann.reference != v.reference:
        raise UserError(
            f"{judgments[0]}: the reference model (generator_1) is {ann.reference!r}; "
            f"AlpacaEval {v.name} compares against {v.reference!r}"
        )
    return ann


def import_answers(
    task: AlpacaEvalTask,
    names: Mapping[str, str],
    answers: Path,
    questions: Path | None,
    data_dir: Path | None,
    judgments: list[Path],
) -> tuple[list[Imported], dict[str, Any]]:
    """Rows from a model_outputs.json and the official annotations.json that judged it (`evalkit import`):
    the raw judge completion where the file keeps one, the official preference beside it."""
    if questions is not None:
        raise UserError(
            f"{task.name} import takes no --questions: the instructions come from annotations.json"
        )
    if data_dir is not None and not data_dir.is_dir():
        raise UserError(f"--data-dir {data_dir}: not a folder")
    ann = _read_annotations(task, names, judgments)
    outputs = {r["instruction"]: r["output"] for r in read_outputs(answers)}
    instructions = [a.instruction for a in ann.items]
    missing = [i for i in instructions if i not in outputs]
    extra = len(outputs) - (len(instructions) - len(missing))
    if missing or extra:
        first = f"; first missing: {missing[0][:80]!r}" if missing else ""
        raise UserError(
            f"{answers}: {len(missing)} of the {len(instructions)} judged instructions have no output "
            f"and {extra} outputs answer an instruction not in {judgments[0].name}{first}"
        )
    differ = [i for i, a in enumerate(ann.items) if outputs[a.instruction] != a.output_2]
    if differ:
        raise UserError(
            f"{answers}: {len(differ)} outputs differ from the ones judged in {judgments[0]} (output_2; "
            f"first: record {differ[0]}); the judgements must be of these outputs"
        )
    if len(set(instructions)) != len(instructions):
        raise UserError(f"{judgments[0]}: an instruction is judged more than once")
    refit = None
    if task.version_name == "2.0":
        glm, difficulty, lc_note, lc_files = lc.for_import(ann.model, data_dir, len(ann.items))
        gamed = data_dir / GAMED_FILE if data_dir is not None else None
        if glm is None and gamed is not None and gamed.is_file():
            refit = lc.refit_record(gamed)
            lc_note, lc_files = {"computed": True, "note": f"GLM refitted with {gamed.name}"}, [gamed]
    else:
        glm, difficulty, lc_note, lc_files = None, [], dict(lc.V1_LC_NOTE), []
    v = task.protocol
    fingerprint = {
        "annotator": v.annotator,
        "model": v.judge_model,
        "alpaca_eval_version": v.name,
        "source": IMPORT_SOURCE,
    }
    # `dataset` is not kept by read_annotations (which checked every record is an object)
    datasets = [r.get("dataset") for r in read_json(judgments[0], list)]
    items = []
    for i, a in enumerate(ann.items):
        meta: dict[str, Any] = {
            "index": i,
            "dataset": datasets[i],
            "model": ann.model,
            "reference": ann.reference,
        }
        if glm is not None:
            meta["lc"] = {**glm, "instruction_difficulty": difficulty[i]}
        if refit is not None:
            meta["lc_refit"] = refit
        sample = Sample(id=str(i), messages=(Message("user", a.instruction),), target=a.output_1, meta=meta)
        judge = {
            "fingerprint": fingerprint,
            "outputs": [] if a.raw_completion is None else [a.raw_completion],
            "switched": is_switched(a.instruction),
            "official_preference": finite_or_none(a.preference),
        }
        items.append(Imported(sample, outputs[a.instruction], judge))
    info = {
        "source": "import",
        "version": f"AlpacaEval {v.name} ({N_INSTRUCTIONS} instructions)",
        "files": {p.name: sha256_file(p) for p in lc_files},
        "inputs": {p.name: sha256_file(p) for p in (answers, judgments[0])},
        "alpaca_eval_version": v.name,
        "model": ann.model,
        "reference": ann.reference,
        "judge": fingerprint,
        "length_controlled": lc_note,
    }
    return items, mark_partial(info, len(items), N_INSTRUCTIONS, "instructions")


#: the generator name `write_answers` gives the outputs (a run's rows do not name their model)
WRITTEN_GENERATOR = "model"


def write_answers(task: AlpacaEvalTask, rows: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
    """A run's outputs as model_outputs.json and its judgments as the annotator's annotations.json
    (output_1 the reference, output_2 the model's, the final preference, and the judge's raw completion
    where the run kept one)."""
    rows = [r for r in rows if r.get("error") is None]  # a failed request has no answer
    outputs = [
        {"instruction": r["prompt"], "output": r["response"], "generator": WRITTEN_GENERATOR} for r in rows
    ]
    annotations = [
        {
            "instruction": r["prompt"],
            "output_1": r["target"],
            "output_2": r["response"],
            "generator_1": r["meta"]["reference"],
            "generator_2": WRITTEN_GENERATOR,
            "annotator": task.protocol.annotator,
            "preference": r["preference"],
            "raw_completion": (r["judge"]["outputs"] or [None])[0],
        }
        for r in rows
    ]
    return {
        "answers": write_json(folder / "model_outputs.json", outputs),
        "judgments": [write_json(folder / "annotations.json", annotations)],
    }
