"""`evalkit import --task amber`: an official responses file (`[{"id": int, "response": str}]`, any subset
of the query ids) scored with the official data files, as `inference.py --evaluation_type a` scores it; and
its inverse, a run's answers written as that file (`write_answers`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.task import DataSpec, Imported
from evalkit.tasks.amber.data import read_data
from evalkit.tasks.amber.protocol import typed_options
from evalkit.types import UserError
from evalkit.util.datafiles import mark_partial, read_json, sha256_file, write_json

if TYPE_CHECKING:
    from evalkit.tasks.amber import Amber


def import_responses(
    task: Amber, answers: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
) -> tuple[list[Imported], dict[str, Any]]:
    """One imported row per response, with the default options (see `Amber.import_answers`)."""
    if judgments:
        raise UserError("amber is scored by rule; --judgments does not apply")
    if questions is not None:
        raise UserError(
            "amber import takes no --questions: the prompts come from DATA_DIR/query/query_all.json"
        )
    if data_dir is None:
        raise UserError(
            "amber import needs --data-dir: the official AMBER data/ folder (annotations.json, "
            "relation.json, safe_words.txt, query/query_all.json)"
        )
    data = read_data(Path(data_dir))
    records = read_json(Path(answers), list)
    by_id = {q["id"]: q for q in data.queries}
    seen: set[int] = set()
    for i, rec in enumerate(records, 1):
        if not isinstance(rec, dict) or not isinstance(rec.get("id"), int) or isinstance(rec.get("id"), bool):
            raise UserError(f"{answers}: record {i} needs an integer 'id'")
        if not isinstance(rec.get("response"), str):
            raise UserError(f"{answers}: record {i} (id {rec['id']}) needs a string 'response'")
        if rec["id"] not in by_id:
            raise UserError(f"{answers}: record {i}: id {rec['id']} is not an AMBER query id")
        if rec["id"] in seen:
            raise UserError(f"{answers}: id {rec['id']} answered twice")
        seen.add(rec["id"])
    opts = typed_options(task.read_options(DataSpec()))
    items = [by_id[rec["id"]] for rec in records]
    nlp = task.backend(opts, data, items)
    pairs = [
        Imported(task.sample(by_id[r["id"]], data, opts, nlp, by_id[r["id"]]["image"]), r["response"])
        for r in records
    ]
    info = task.data_info(data, opts, nlp, str(data.root), None)
    info["inputs"] = {Path(answers).name: sha256_file(Path(answers))}
    # the official script scores any subset of the ids; a subset is its own data version
    return pairs, mark_partial(info, len(pairs), len(data.queries), "queries")


def write_answers(rows: list[dict[str, Any]], folder: Path) -> dict[str, Path]:
    """A run's answers as AMBER's responses file (`[{"id": int, "response": str}]`); `--data-dir` is the
    folder of official data files the run read."""
    rows = [r for r in rows if r.get("error") is None]  # a failed request has no answer
    answers = [{"id": int(r["id"]), "response": r["response"]} for r in rows]
    return {"answers": write_json(folder / "answers.json", answers)}
