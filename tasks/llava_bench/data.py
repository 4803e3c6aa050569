"""LLaVA-Bench official files: the rule file (bundled in `assets/`), questions, answers, judge contexts and
review files, read and checked field by field (file order kept: the official scripts pair files by line)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from evalkit.tasks.llava_bench.protocol import Review, Rule, context_text, rule_key
from evalkit.types import UserError
from evalkit.util.datafiles import read_json, read_jsonl, require_fields

#: `llava/eval/table/rule.json` of haotian-liu/LLaVA, bundled (see assets/SOURCE.md)
RULE_FILE = Path(__file__).with_name("assets") / "rule.json"


def read_rules(path: Path) -> dict[str, Rule]:
    """`rule.json` (or RLHF-V's `rule.jsonfile`): key → Rule."""
    data = read_json(Path(path), dict)
    rules = {}
    for key, rule in data.items():
        if not (
            isinstance(rule, dict)
            and isinstance(rule.get("role"), str)
            and isinstance(rule.get("prompt"), str)
        ):
            raise UserError(f"{path}: rule {key!r} needs string fields 'role' and 'prompt'")
        rules[key] = Rule(rule["role"], rule["prompt"])
    return rules


def read_questions(path: Path) -> list[dict[str, Any]]:
    """`questions.jsonl` / `qa90_questions.jsonl`, file order kept (the official pairing is by line)."""
    rows = read_jsonl(path)
    for i, row in enumerate(rows, 1):
        require_fields(path, i, row, {"question_id": int, "image": str, "text": str, "category": str})
    return rows


def read_answers(path: Path) -> list[dict[str, Any]]:
    """An answer JSONL (model answers, `answers_gpt4.jsonl`, `qa90_gpt4_answer.jsonl`), file order kept."""
    rows = read_jsonl(path)
    for i, row in enumerate(rows, 1):
        require_fields(path, i, row, {"question_id": int, "text": str})
    return rows


def read_contexts(path: Path) -> dict[str, str]:
    """Image → judge context text, from `context.jsonl` (`caption`) or `caps_boxes_coco2014_val_80.jsonl`
    (`captions` + `instances`)."""
    out = {}
    for i, row in enumerate(read_jsonl(path), 1):
        require_fields(path, i, row, {"image": str})
        if "instances" in row or "captions" in row:
            require_fields(path, i, row, {"captions": list, "instances": list})
            for inst in row["instances"]:
                if not (
                    isinstance(inst, dict)
                    and isinstance(inst.get("category"), str)
                    and isinstance(inst.get("bbox"), list)
                ):
                    raise UserError(f"{path}:{i}: each instance needs 'category' (string) and 'bbox' (list)")
            out[row["image"]] = context_text(row["captions"], row["instances"])
        else:
            require_fields(path, i, row, {"caption": (str, list)})
            out[row["image"]] = context_text(row["caption"])
    return out


def read_reviews(path: Path) -> list[Review]:
    """An official review JSONL (`{id, question_id, answer1_id, answer2_id, category, content, tuple}`)."""
    reviews = []
    for i, row in enumerate(read_jsonl(path), 1):
        require_fields(path, i, row, {"question_id": int})
        pair = row.get("tuple", row.get("score"))
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, int | float) for x in pair)):
            raise UserError(f"{path}:{i}: 'tuple' must be a list of two numbers, got {pair!r}")
        category = row.get("category")
        if category is not None and not isinstance(category, str):
            raise UserError(f"{path}:{i}: 'category' must be a string")
        reviews.append(
            Review(
                row["question_id"],
                category,
                str(row.get("content", "")),
                (float(pair[0]), float(pair[1])),
                row.get("answer1_id"),
                row.get("answer2_id"),
                row["model"] if isinstance(row.get("model"), str) else None,
            )
        )
    return reviews


@cache
def bundled_rules() -> dict[str, Rule]:
    """The official rule file shipped with evalkit."""
    return read_rules(RULE_FILE)


def pair_references(
    questions: list[dict[str, Any]],
    references: list[dict[str, Any]],
    paths: dict[str, Path],
    *,
    in_the_wild: bool,
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Questions with their GPT-4 answers, paired by line as the official script does (and checked)."""
    q_path, r_path = paths["questions"], paths["references"]
    if len(questions) != len(references):
        raise UserError(
            f"{q_path} has {len(questions)} questions but {r_path} has {len(references)} answers; "
            "the official files are paired line by line"
        )
    seen: set[int] = set()
    for i, (q, ref) in enumerate(zip(questions, references, strict=True), 1):
        qid = q["question_id"]
        if qid in seen:
            raise UserError(f"{q_path}:{i}: question {qid} appears twice")
        seen.add(qid)
        if ref["question_id"] != qid:
            raise UserError(
                f"{r_path}:{i}: answers question {ref['question_id']}, but line {i} of {q_path} is "
                f"question {qid}; keep both files in question order"
            )
        key = rule_key(q["category"], in_the_wild=in_the_wild)
        if key not in bundled_rules():
            raise UserError(
                f"{q_path}:{i}: category {q['category']!r} has no judge rule ({key!r} is not in rule.json)"
            )
    return list(zip(questions, references, strict=True))


def find_images(
    task: str, image_dir: Path, names: list[str], *, in_the_wild: bool, source: str
) -> dict[str, Path]:
    """Image name → file in `image_dir` (COCO files also under their val2014.zip name); `source` says where
    missing images come from."""
    found: dict[str, Path] = {}
    missing = []
    for name in names:
        candidates = [image_dir / name]
        if not in_the_wild:  # val2014.zip names them COCO_val2014_<id>.jpg
            candidates.append(image_dir / f"COCO_val2014_{name}")
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    if missing:
        raise UserError(
            f"{task}: {len(missing)} of {len(names)} images not found in {image_dir} (first: "
            f"{missing[0]}); they come from {source}; put them there or pass --image-dir DIR"
        )
    return found
