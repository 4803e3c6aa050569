"""POPE: yes/no object-existence questions over COCO val2014, three splits (random, popular, adversarial).

Protocol (LLaVA-1.5 `eval_pope.py` == POPE `evaluate.py`): the prompt appends "Answer the question using a
single word or phrase."; an answer is cut at its first '.', commas removed, split on spaces, and counts as
"no" when a word is exactly 'No', 'not' or 'no' (case-sensitive), else "yes" — empty or garbage answers count
as yes. Per split: precision / recall / F1 with "yes" positive, accuracy and yes-ratio; the headline is the
mean F1 over the three splits, in percent. Intervals resample whole images (an image's questions are
correlated, and the same image appears in every split).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from evalkit.datafiles import read_jsonl, require_fields, sha256_file, toy_label
from evalkit.stats import Statistic, per_cluster, unit_index
from evalkit.task import PERCENT, DataSpec, Imported, LoadedData, MetricInfo, Task
from evalkit.types import GenerationConfig, Message, Sample, UserError

SPLITS = ("random", "popular", "adversarial")
#: (predicted yes, labelled yes) → index in (tp, fp, tn, fn), the argument order of `metrics_from_counts`
CELL = {(True, True): 0, (True, False): 1, (False, False): 2, (False, True): 3}
PROMPT_SUFFIX = "\nAnswer the question using a single word or phrase."
IMAGE_DIR_CANDIDATES = ("val2014", "images", "coco/val2014", "COCO/val2014")
FILE_DIR_CANDIDATES = (".", "output/coco", "pope", "coco")
#: Question counts that identify the two public versions of the files.
VERSIONS = {
    (2910, 3000, 3000): "2023-08-10 (8,910 questions; LLaVA-1.5 / LLaVA-RLHF)",
    (3000, 3000, 3000): "current",
}


def parse_answer(text: str) -> str:
    """The official rule, kept byte-for-byte: 'no' iff a word is 'No', 'not' or 'no', else 'yes'."""
    if text.find(".") != -1:
        text = text.split(".")[0]
    text = text.replace(",", "")
    words = text.split(" ")
    return "no" if any(w in ("No", "not", "no") for w in words) else "yes"


def confusion(preds: list[str], labels: list[str]) -> dict[str, int]:
    """TP/FP/TN/FN with "yes" as the positive class."""
    c = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    for p, y in zip(preds, labels, strict=True):
        if p == "yes":
            c["tp" if y == "yes" else "fp"] += 1
        else:
            c["tn" if y == "no" else "fn"] += 1
    return c


def metrics_from_counts(tp, fp, tn, fn):
    """Accuracy, precision, recall, F1 and yes-ratio (fractions) from counts; works on numpy arrays."""
    tp, fp, tn, fn = (np.asarray(x, dtype=float) for x in (tp, fp, tn, fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        n = tp + fp + tn + fn
        precision = tp / (tp + fp)
        recall = tp / (tp + fn)
        f1 = 2 * precision * recall / (precision + recall)
        return {
            "acc": (tp + tn) / n,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "yes_ratio": (tp + fp) / n,
        }


def _find_files(data_dir: Path) -> dict[str, Path]:
    for sub in FILE_DIR_CANDIDATES:
        paths = {s: data_dir / sub / f"coco_pope_{s}.json" for s in SPLITS}
        if all(p.is_file() for p in paths.values()):
            return paths
    raise UserError(
        f"POPE question files not found in {data_dir}: expected coco_pope_random.json, "
        "coco_pope_popular.json and coco_pope_adversarial.json there (from github.com/AoiDragon/POPE "
        "output/coco/; the 2023-08-10 version with 8,910 questions matches the LLaVA papers)"
    )


def _find_images(data_dir: Path, image_dir: Path | None, first_image: str) -> Path:
    candidates = [image_dir] if image_dir else [data_dir / c for c in IMAGE_DIR_CANDIDATES]
    for c in candidates:
        if c is not None and (c / first_image).is_file():
            return c
    where = str(image_dir) if image_dir else " or ".join(str(data_dir / c) for c in IMAGE_DIR_CANDIDATES[:2])
    raise UserError(
        f"POPE images not found: {first_image} is not in {where}; put the COCO val2014 images there "
        "(cocodataset.org, val2014.zip) or pass --image-dir DIR"
    )


def data_label(data_dir: Path, counts: tuple[int, ...]) -> str:
    """The label of a set of split files, from their content: the toy world's (its toy_meta.json), a
    public version's (question counts), else the counts."""
    unknown = f"unknown ({counts[0]}/{counts[1]}/{counts[2]} questions)"
    return toy_label(data_dir) or VERSIONS.get(counts, unknown)


def read_label_files(data_dir: Path) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Path]]:
    """The three official split files, validated; rows keep file order (the official alignment key)."""
    paths = _find_files(data_dir)
    splits = {}
    for split, path in paths.items():
        rows = read_jsonl(path)
        for i, row in enumerate(rows, 1):
            require_fields(path, i, row, {"question_id": int, "image": str, "text": str, "label": str})
            if row["label"] not in ("yes", "no"):
                raise UserError(f"{path}:{i}: label must be 'yes' or 'no', got {row['label']!r}")
        splits[split] = rows
    return splits, paths


class Pope(Task):
    name = "pope"
    version = "1"
    description = "POPE object hallucination (COCO val2014; random / popular / adversarial)"
    data_needs = (
        "--data-dir DIR with coco_pope_{random,popular,adversarial}.json (AoiDragon/POPE output/coco) "
        "and the COCO val2014 images in DIR/val2014 (or --image-dir); --data toy builds a toy set offline"
    )
    headline = "f1_mean"
    group = "hallucination"
    metric_info = {"*/yes_ratio": MetricInfo(0, "%")}  # a bias indicator: neither better nor worse
    default_metric = PERCENT
    tax_metrics = ("adversarial/f1",)
    generation = GenerationConfig(max_new_tokens=128, temperature=0.0)
    supports_toy = True

    def load(self, spec: DataSpec) -> LoadedData:
        if spec.toy:
            from evalkit.toy.pope_data import default_toy_dir, write_pope

            data_dir = write_pope(default_toy_dir(spec.seed, 100), seed=spec.seed, n_images=100)
            image_dir: Path | None = data_dir / "images"
        elif spec.data_dir is not None:
            data_dir, image_dir = Path(spec.data_dir), spec.image_dir
        else:
            raise UserError(
                "pope needs data: pass --data toy, or --data-dir DIR with the official POPE files"
            )
        splits, paths = read_label_files(data_dir)
        empty = next((s for s in SPLITS if not splits[s]), None)
        if empty is not None:
            raise UserError(
                f"{paths[empty]}: no questions; expected one JSON object a line (the official file)"
            )
        images = _find_images(data_dir, image_dir, splits[SPLITS[0]][0]["image"])
        counts = tuple(len(splits[s]) for s in SPLITS)
        per_split = None if spec.limit is None else -(-spec.limit // len(SPLITS))
        samples = []
        for split in SPLITS:
            for row in splits[split][:per_split]:
                text = row["text"] + PROMPT_SUFFIX
                samples.append(
                    Sample(
                        id=f"{split}-{row['question_id']}",
                        messages=(Message("user", text, (str(images / row["image"]),)),),
                        target=row["label"],
                        cluster=row["image"],
                        meta={"split": split, "question_id": row["question_id"], "image": row["image"]},
                    )
                )
        if spec.limit is not None:
            samples = samples[: spec.limit]
        info = {
            "source": "toy" if spec.toy else str(data_dir),
            "image_dir": str(images),
            "version": data_label(data_dir, counts),
            "files": {p.name: sha256_file(p) for p in paths.values()},
        }
        return LoadedData(samples, info)

    def score(self, response: str, target: Any, meta: dict[str, Any]) -> dict[str, Any]:
        parsed = parse_answer(response)
        return {"parsed": parsed, "correct": parsed == target}

    def statistics(self, rows: list[dict[str, Any]]) -> dict[str, Statistic]:
        """Every metric as a function of image weights: ratios of one-hot (split, cell) counts per image."""
        clusters, units = unit_index(rows)
        k = len(units)
        split_names = [s for s in SPLITS if any(r["meta"]["split"] == s for r in rows)]
        # one-hot (sample, split, {tp, fp, tn, fn}) summed per image: metrics are ratios of weighted counts
        onehot = np.zeros((len(rows), len(split_names), 4))
        for i, r in enumerate(rows):
            cell = CELL[(r["parsed"] == "yes", r["target"] == "yes")]
            onehot[i, split_names.index(r["meta"]["split"]), cell] = 1
        counts = per_cluster(onehot.reshape(len(rows), -1), clusters, k).reshape(k, len(split_names), 4)

        def split_metric(j: int, name: str):
            return lambda w: 100 * metrics_from_counts(*np.moveaxis(w @ counts[:, j, :], -1, 0))[name]

        out: dict[str, Statistic] = {}
        if split_names:

            def f1_mean(w: np.ndarray) -> np.ndarray:
                return np.mean([split_metric(j, "f1")(w) for j in range(len(split_names))], axis=0)

            out["f1_mean"] = Statistic(f1_mean, units, len(rows))
        for j, split in enumerate(split_names):
            n_split = int(onehot[:, j].sum())
            for name in ("acc", "precision", "recall", "f1", "yes_ratio"):
                out[f"{split}/{name}"] = Statistic(split_metric(j, name), units, n_split)
        return out

    def aggregate(self, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {name: s.estimate().to_dict() for name, s in self.statistics(rows).items()}

    def import_answers(
        self, answers: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
    ) -> tuple[list[Imported], dict[str, Any]]:
        """Pair an answer file with the labels as the official script does: answers whose question (by
        `question_id` in the question file) has category S, in file order, zipped with coco_pope_S.json."""
        if judgments:
            raise UserError("pope is scored by rule; --judgments does not apply")
        if questions is None or data_dir is None:
            raise UserError(
                "pope import needs --questions (gives each answer's split) and --data-dir (labels)"
            )
        splits, paths = read_label_files(Path(data_dir))
        qrows = read_jsonl(Path(questions))
        category = {}
        for i, q in enumerate(qrows, 1):
            require_fields(Path(questions), i, q, {"question_id": (int, str), "category": str})
            category[q["question_id"]] = q["category"]
        arows = read_jsonl(Path(answers))
        by_split: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
        for i, a in enumerate(arows, 1):
            require_fields(Path(answers), i, a, {"question_id": (int, str), "text": str})
            cat = category.get(a["question_id"])
            if cat is None:
                raise UserError(f"{answers}:{i}: question_id {a['question_id']!r} is not in {questions}")
            if cat not in by_split:
                raise UserError(f"{questions}: unknown POPE category {cat!r} (expected one of {SPLITS})")
            by_split[cat].append(a)
        pairs = []
        for split in SPLITS:
            labels, got = splits[split], by_split[split]
            if len(got) != len(labels):
                raise UserError(
                    f"{answers}: {len(got)} answers for split {split!r} but {paths[split]} has {len(labels)} "
                    "questions; answers are matched to labels by order, so the counts must agree"
                )
            for row, ans in zip(labels, got, strict=True):
                sample = Sample(
                    id=f"{split}-{row['question_id']}",
                    messages=(Message("user", row["text"] + PROMPT_SUFFIX, (row["image"],)),),
                    target=row["label"],
                    cluster=row["image"],
                    meta={
                        "split": split,
                        "question_id": row["question_id"],
                        "image": row["image"],
                        "answer_question_id": ans["question_id"],
                    },
                )
                pairs.append(Imported(sample, ans["text"]))
        counts = tuple(len(splits[s]) for s in SPLITS)
        info = {
            "source": str(data_dir),
            "version": data_label(Path(data_dir), counts),
            "files": {p.name: sha256_file(p) for p in paths.values()},
            "inputs": {p.name: sha256_file(p) for p in (Path(questions), Path(answers))},
        }
        return pairs, info
