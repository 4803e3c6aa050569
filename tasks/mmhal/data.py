"""MMHal-Bench files: the 96-record template (HF Shengcao1006/MMHal-Bench or RLHF-V's copy), its images, and
the official judged results (RLHF-V's merged review file or LLaVA-RLHF's `--evaluation` file), read and
checked against the type cycle."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from evalkit.tasks.mmhal.protocol import N_ITEMS, Item, Judged, question_type, ratings_found
from evalkit.types import UserError
from evalkit.util.datafiles import read_json

_FIELDS = {
    "question_type": str,
    "question_topic": str,
    "image_id": str,
    "image_src": str,
    "image_content": list,
    "question": str,
    "gt_answer": str,
}


def read_json_list(path: Path) -> list[Any]:
    return read_json(path, list)


def _items(path: Path, records: list[Any]) -> list[Item]:
    if len(records) != N_ITEMS:
        raise UserError(f"{path}: MMHal-Bench has {N_ITEMS} records, this file has {len(records)}")
    items = []
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise UserError(f"{path}: record {i} is not a JSON object")
        for name, kind in _FIELDS.items():
            if not isinstance(r.get(name), kind):
                raise UserError(f"{path}: record {i} lacks field {name!r} or has the wrong type")
        if r["question_type"] != question_type(i):
            raise UserError(
                f"{path}: record {i} is a {r['question_type']!r} question where the official order has "
                f"{question_type(i)!r}; the records must stay in the template's order (type = index % 8)"
            )
        answer = r.get("model_answer", "")
        items.append(
            Item(
                index=i,
                question_type=r["question_type"],
                question_topic=r["question_topic"],
                image_id=r["image_id"],
                image_src=r["image_src"],
                image_content=tuple(r["image_content"]),
                question=r["question"],
                gt_answer=r["gt_answer"],
                model_answer=answer if isinstance(answer, str) else "",
            )
        )
    return items


def load_template(path: Path) -> list[Item]:
    """The 96 records of `response_template.json` (HF Shengcao1006/MMHal-Bench) or RLHF-V's
    `mmhal-bench_answer_template.json`, in file order, checked against the type cycle."""
    return _items(Path(path), read_json_list(Path(path)))


def _judged(item: Item, review: str) -> Judged:
    found = ratings_found(review)
    return Judged(item, review, found[0] if len(found) == 1 else 0, found)


def _review_text(path: Path, i: int, r: Any) -> str:
    if isinstance(r, str):
        return r
    try:
        content = r["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        content = None
    if not isinstance(content, str):
        raise UserError(f"{path}: review {i} has no choices[0].message.content string")
    return content


def load_judged(path: Path, reviews: Path | None = None) -> list[Judged]:
    """Official judged results, paired by order as the official scripts do.

    Either `path` alone: RLHF-V's merged file (`merge_mmhal_review_with_predict.py`: the template with
    `model_answer` and `gpt4_review` per record); or `path` = the answered template and `reviews` =
    LLaVA-RLHF's `--evaluation` file (a list of 96 chat-completion responses)."""
    path = Path(path)
    records = read_json_list(path)
    items = _items(path, records)
    if reviews is None:
        texts = []
        for i, r in enumerate(records):
            if not isinstance(r.get("gpt4_review"), str):
                raise UserError(
                    f"{path}: record {i} has no 'gpt4_review'; pass the judge's evaluation file as well"
                )
            texts.append(r["gpt4_review"])
    else:
        raw = read_json_list(Path(reviews))
        if len(raw) != N_ITEMS:
            raise UserError(f"{reviews}: expected {N_ITEMS} judge responses, found {len(raw)}")
        texts = [_review_text(Path(reviews), i, r) for i, r in enumerate(raw)]
    return [_judged(item, text) for item, text in zip(items, texts, strict=True)]


#: the template's names: HF Shengcao1006/MMHal-Bench, then RLHF-V eval/data (same 96 records)
TEMPLATE_NAMES = ("response_template.json", "mmhal-bench_answer_template.json")


IMAGE_SUBDIR = "images"


FETCH_IMAGES = (
    "the HF dataset Shengcao1006/MMHal-Bench ships them in its images/ folder; or download each record's "
    "image_src (OpenImages) keeping the URL's file name"
)


def image_file_name(item: Item) -> str:
    """The local file of a record's image: the last path part of its `image_src` URL (as the HF dataset's
    images/ folder names them)."""
    return posixpath.basename(item.image_src.split("?", 1)[0])


def find_template(data_dir: Path) -> Path:
    for name in TEMPLATE_NAMES:
        if (data_dir / name).is_file():
            return data_dir / name
    raise UserError(
        f"MMHal-Bench template not found in {data_dir}: expected {TEMPLATE_NAMES[0]} (HF dataset "
        f"Shengcao1006/MMHal-Bench) or {TEMPLATE_NAMES[1]} (github.com/RLHF-V/RLHF-V eval/data)"
    )


def check_images(items: list[Item], images: Path, given: bool) -> None:
    missing = [it for it in items if not (images / image_file_name(it)).is_file()]
    if missing:
        first = missing[0]
        more = f" and {len(missing) - 1} more of {len(items)}" if len(missing) > 1 else ""
        hint = "" if given else " or pass --image-dir DIR"
        raise UserError(
            f"MMHal-Bench images missing in {images}: {image_file_name(first)} (record {first.index}, "
            f"{first.image_src}){more}; {FETCH_IMAGES}{hint}"
        )


def is_template(records: list[Any]) -> bool:
    """Template records (RLHF-V's merged file has them, each with its `gpt4_review`), not judge responses."""
    return bool(records) and isinstance(records[0], dict) and "question_type" in records[0]
