"""MT-Bench's official files: the bundled FastChat copies in `assets/` (question.jsonl, judge_prompts.jsonl,
reference_answer/gpt-4.jsonl, with their SOURCE note in assets/README.md) and the readers that check
FastChat's question, answer, reference and judgment JSONL files.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from evalkit.tasks.mt_bench.protocol import JudgePrompt, Judgment, Question
from evalkit.types import UserError
from evalkit.util.datafiles import read_jsonl, require_fields

DATA_DIR = Path(__file__).resolve().parent / "assets"
QUESTION_FILE = DATA_DIR / "question.jsonl"
JUDGE_PROMPT_FILE = DATA_DIR / "judge_prompts.jsonl"
#: gen_judgment reads `reference_answer/<judge model name>.jsonl`; the official judge is "gpt-4".
REFERENCE_FILE = DATA_DIR / "reference_answer" / "gpt-4.jsonl"


def load_questions(path: Path | None = None) -> list[Question]:
    """The questions in file order (default: the shipped official file)."""
    path = Path(path) if path is not None else QUESTION_FILE
    out = []
    for i, row in enumerate(read_jsonl(path), 1):
        require_fields(path, i, row, {"question_id": int, "category": str, "turns": list})
        out.append(Question(row["question_id"], row["category"], tuple(row["turns"])))
    return out


def load_judge_prompts(path: Path | None = None) -> dict[str, JudgePrompt]:
    """Judge prompts by name (default: the shipped official file)."""
    path = Path(path) if path is not None else JUDGE_PROMPT_FILE
    prompts = {}
    for i, row in enumerate(read_jsonl(path), 1):
        fields = ("name", "type", "system_prompt", "prompt_template", "category", "output_format")
        require_fields(path, i, row, dict.fromkeys(fields, str))
        prompts[row["name"]] = JudgePrompt(**{f: row[f] for f in fields})
    return prompts


@lru_cache(maxsize=1)
def official_judge_prompts() -> dict[str, JudgePrompt]:
    """The shipped judge_prompts.jsonl, read once (the judge phase renders every row with it)."""
    return load_judge_prompts()


def load_answers(path: Path) -> dict[int, tuple[str, ...]]:
    """FastChat answer JSONL (`model_answer/<model>.jsonl` or a reference file): question_id → turns of
    `choices[0]`. A later line for the same question replaces an earlier one, as FastChat's loader does."""
    path = Path(path)
    out = {}
    for i, row in enumerate(read_jsonl(path), 1):
        require_fields(path, i, row, {"question_id": int, "choices": list})
        choices = row["choices"]
        if not choices or not isinstance(choices[0], dict) or not isinstance(choices[0].get("turns"), list):
            raise UserError(f"{path}:{i}: expected choices[0].turns to be a list of strings")
        out[row["question_id"]] = tuple(choices[0]["turns"])
    return out


def load_reference_answers(path: Path | None = None) -> dict[int, tuple[str, ...]]:
    """Reference answers by question id. The file must be named after the judge model, as gen_judgment
    looks it up (`reference_answer/gpt-4.jsonl` for the official judge, the default)."""
    return load_answers(Path(path) if path is not None else REFERENCE_FILE)


def load_judgments(path: Path, model: str | None = None) -> dict[str, list[Judgment]]:
    """FastChat `model_judgment/<judge>_single.jsonl` → judgments per model (file order; every row kept, as
    show_result reads them). The stored `score` is used, not re-parsed."""
    path = Path(path)
    out: dict[str, list[Judgment]] = {}
    for i, row in enumerate(read_jsonl(path), 1):
        require_fields(path, i, row, {"question_id": int, "model": str, "score": (int, float), "turn": int})
        if model is not None and row["model"] != model:
            continue
        judge = row.get("judge")
        name = judge[1] if isinstance(judge, list) and len(judge) == 2 else ""
        out.setdefault(row["model"], []).append(
            Judgment(
                row["question_id"], row["turn"], row["score"], row["model"], row.get("judgment", ""), name
            )
        )
    if model is not None and model not in out:
        raise UserError(f"{path}: no judgments for model {model!r}")
    return out


def answer_model_id(path: Path) -> str | None:
    """The `model_id` of a FastChat answer file when every line names the same one."""
    ids = {row.get("model_id") for row in read_jsonl(path)}
    return ids.pop() if len(ids) == 1 and isinstance(next(iter(ids)), str) else None


def judgment_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) of a FastChat single-grading file, each checked to carry what import keeps: the
    raw judgment text (re-parsed by rescore), the stored score and `judge = [judge model, prompt name]`."""
    out = []
    for i, row in enumerate(read_jsonl(path), 1):
        require_fields(path, i, row, {"question_id": int, "model": str, "turn": int, "judgment": str})
        if not isinstance(row.get("score"), int | float) or isinstance(row["score"], bool):
            raise UserError(f"{path}:{i}: missing or non-numeric 'score' (not a single-grading file?)")
        judge = row.get("judge")
        if not (isinstance(judge, list) and len(judge) == 2 and all(isinstance(x, str) for x in judge)):
            raise UserError(f"{path}:{i}: 'judge' must be [judge model, prompt name]")
        out.append((i, row))
    return out
