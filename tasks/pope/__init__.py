"""POPE: yes/no object-existence questions over COCO val2014, three splits (random, popular, adversarial).

Protocol (LLaVA-1.5 `eval_pope.py` == POPE `evaluate.py`): the prompt appends "Answer the question using a
single word or phrase."; an answer is cut at its first '.', commas removed, split on spaces, and counts as
"no" when a word is exactly 'No', 'not' or 'no' (case-sensitive), else "yes" — empty or garbage answers count
as yes. Per split: precision / recall / F1 with "yes" positive, accuracy and yes-ratio; the headline is the
mean F1 over the three splits, in percent. Beside it, so every published column can be matched: the mean over
the splits of the other metrics (`acc_mean`, ...; LLaVA-style tables) and the metrics of all rows pooled
(`pooled/*`; lmms-eval's `pope` task), when the run holds more than one split. Intervals resample whole
images (an image's questions are correlated, and the same image appears in every split).

Data: by default lmms-lab/POPE from the hub (`hub`: 3 × 3,000 questions, images embedded), else the
official split files from --data-dir, or the toy set (--data toy).

Modules: `protocol` (prompt suffix, parser, metrics; no I/O), `data` (the official split files and images),
`hub` (the hub copy read as the official files),
`importing` (official answer files), `lmms_eval` (lmms-eval logs), `toy` (the toy set, whose questions the
toy model is also warmed up on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from evalkit.stats import Statistic, per_cluster, unit_index
from evalkit.task import PERCENT, DataSpec, Imported, LoadedData, MetricInfo, Task
from evalkit.tasks.pope.data import data_label, find_images, read_label_files
from evalkit.tasks.pope.hub import SOURCE as HUB_SOURCE
from evalkit.tasks.pope.hub import read_hub
from evalkit.tasks.pope.protocol import (
    CELL,
    METRICS,
    PROMPT_SUFFIX,
    SPLITS,
    metrics_from_counts,
    parse_answer,
)
from evalkit.types import GenerationConfig, Message, Sample, UserError
from evalkit.util.datafiles import sha256_file


class Pope(Task):
    name = "pope"
    version = "1"
    description = "POPE object hallucination (COCO val2014; random / popular / adversarial)"
    data_needs = (
        "none by default: read from the hub (lmms-lab/POPE, Full config, 3 × 3,000 questions with their "
        "images; `evalkit data fetch pope` fetches it ahead). For the official files: --data-dir DIR with "
        "coco_pope_{random,popular,adversarial}.json (AoiDragon/POPE output/coco; LLaVA-1.5 used the "
        "2023-08-10 files, 8,910 questions) and the COCO val2014 images in DIR/val2014 (or --image-dir); "
        "--data toy builds a toy set offline"
    )
    headline = "f1_mean"
    group = "hallucination"
    # the yes-ratio is a bias indicator: neither better nor worse
    metric_info = {"*/yes_ratio": MetricInfo(0, "%"), "yes_ratio_mean": MetricInfo(0, "%")}
    default_metric = PERCENT
    tax_metrics = ("adversarial/f1",)
    generation = GenerationConfig(max_new_tokens=128, temperature=0.0)
    supports_toy = True
    hub_sources = (HUB_SOURCE,)
    lmms_eval_names = ("pope", "pope_random", "pope_pop", "pope_adv")
    lmms_eval_fields = (
        "a pope_accuracy object (question_id, a yes/no ground_truth) or a doc with question_id, question "
        "and a yes/no answer"
    )

    def load(self, spec: DataSpec) -> LoadedData:
        per_split = None if spec.limit is None else -(-spec.limit // len(SPLITS))
        if spec.toy or spec.data_dir is not None:
            splits, images, info = self._load_files(spec)
        else:
            splits, images, info = read_hub(per_split)
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
        return LoadedData(samples, info)

    def _load_files(self, spec: DataSpec) -> tuple[dict[str, list[dict[str, Any]]], Path, dict[str, Any]]:
        """The official split files (or the toy set written as them), their image folder and data info."""
        if spec.toy:
            from evalkit.tasks.pope.toy import default_toy_dir, write_pope

            data_dir = write_pope(default_toy_dir(spec.seed, 100), seed=spec.seed, n_images=100)
            image_dir: Path | None = data_dir / "images"
        else:
            data_dir, image_dir = Path(spec.data_dir), spec.image_dir
        splits, paths = read_label_files(data_dir)
        empty = next((s for s in SPLITS if not splits[s]), None)
        if empty is not None:
            raise UserError(
                f"{paths[empty]}: no questions; expected one JSON object a line (the official file)"
            )
        images = find_images(data_dir, image_dir, splits[SPLITS[0]][0]["image"])
        counts = tuple(len(splits[s]) for s in SPLITS)
        info = {
            "source": "toy" if spec.toy else str(data_dir),
            "image_dir": str(images),
            "version": data_label(data_dir, counts),
            "files": {p.name: sha256_file(p) for p in paths.values()},
        }
        return splits, images, info

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

        def split_mean(name: str):
            return lambda w: np.mean([split_metric(j, name)(w) for j in range(len(split_names))], axis=0)

        pooled = counts.sum(axis=1)

        def pooled_metric(name: str):
            return lambda w: 100 * metrics_from_counts(*np.moveaxis(w @ pooled, -1, 0))[name]

        out: dict[str, Statistic] = {}
        if split_names:
            out["f1_mean"] = Statistic(split_mean("f1"), units, len(rows))
        for j, split in enumerate(split_names):
            n_split = int(onehot[:, j].sum())
            for name in METRICS:
                out[f"{split}/{name}"] = Statistic(split_metric(j, name), units, n_split)
        if len(split_names) > 1:
            # the other published readings (with one split they are that split's): the other metrics'
            # means over the splits, and all rows pooled (lmms-eval)
            for name in ("acc", "precision", "recall", "yes_ratio"):
                out[f"{name}_mean"] = Statistic(split_mean(name), units, len(rows))
            for name in METRICS:
                out[f"pooled/{name}"] = Statistic(pooled_metric(name), units, len(rows))
        return out

    def import_answers(
        self, answers: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
    ) -> tuple[list[Imported], dict[str, Any]]:
        """Pair an official answer file with the labels (`importing.import_answers`)."""
        from evalkit.tasks.pope.importing import import_answers

        return import_answers(answers, questions, data_dir, judgments)

    def write_answers(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
        """The answer and question files `import_answers` pairs (`importing.write_answers`)."""
        from evalkit.tasks.pope.importing import write_answers

        return write_answers(rows, folder)

    def lmms_eval_matches(self, record: Any) -> bool:
        from evalkit.tasks.pope.lmms_eval import matches

        return matches(record)

    def lmms_eval_convert(
        self, records: list[Any], lmms_task: str | None, tmp: Path, data_dir: Path | None, path: Path
    ) -> tuple[list[Imported], dict[str, Any], dict[str, Any]]:
        from evalkit.tasks.pope.lmms_eval import convert

        return convert(records, lmms_task, tmp, data_dir, path)
