"""GQA (testdev-balanced, 12,578 compositional questions about scenes), scored as LLaVA-1.5 scores it.

Protocol (`protocol`): the question and "\\nAnswer the question using a single word or phrase."; the
answer stripped, its trailing periods removed and lower-cased (`convert_gqa_for_eval.py`), right when it
equals the question's answer (GQA's `eval.py`). The headline is the accuracy in percent; beside it the
accuracy per structural and per semantic question type, as `eval.py` reports them, when the data carries
the types (the official file and the hub copy do). GQA's other metrics (consistency, validity,
plausibility, distribution) need the scene graphs and choices files and are not computed. lmms-eval's
`gqa` deletes all punctuation from both sides instead (see `protocol`). Intervals resample whole images.

Data: by default lmms-lab/GQA from the hub (`hub`), else `testdev_balanced_questions.json` and the
images from --data-dir (`data`), or the toy set (--data toy, `toy`). `importing`: LLaVA's answer and
prediction files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.stats import Statistic, mean_statistic
from evalkit.task import PERCENT, DataSpec, Imported, LoadedData, Task
from evalkit.tasks.gqa.data import data_label, find_images, read_questions
from evalkit.tasks.gqa.hub import SOURCE as HUB_SOURCE
from evalkit.tasks.gqa.hub import read_hub
from evalkit.tasks.gqa.importing import sample_of
from evalkit.tasks.gqa.protocol import SEMANTIC, STRUCTURAL, is_correct, prediction
from evalkit.types import GenerationConfig
from evalkit.util.datafiles import sha256_file


class GQA(Task):
    name = "gqa"
    version = "1"
    description = "GQA testdev-balanced: exact-match accuracy, per structural and semantic type (LLaVA-1.5)"
    data_needs = (
        "none by default: read from the hub (lmms-lab/GQA, testdev_balanced_instructions and "
        "testdev_balanced_images, 12,578 questions on 398 images; `evalkit data fetch gqa` fetches it "
        "ahead). For the official files: --data-dir DIR with testdev_balanced_questions.json "
        "(gqadataset.org questions1.2) and the images in DIR/images (or --image-dir); --data toy builds a "
        "toy set offline"
    )
    headline = "accuracy"
    group = "visual knowledge"
    default_metric = PERCENT
    # LLaVA's loader's default; lmms-eval asks for 16 tokens
    generation = GenerationConfig(max_new_tokens=128, temperature=0.0)
    supports_toy = True
    hub_sources = (HUB_SOURCE,)
    lmms_eval_names = ("gqa",)

    def load(self, spec: DataSpec) -> LoadedData:
        if spec.toy or spec.data_dir is not None:
            if spec.toy:
                from evalkit.tasks.gqa.toy import default_toy_dir, write_toy_gqa

                data_dir, image_dir = write_toy_gqa(default_toy_dir(spec.seed), seed=spec.seed), None
            else:
                data_dir, image_dir = Path(spec.data_dir), spec.image_dir
            records, path = read_questions(data_dir)
            images = find_images(data_dir, image_dir, records)
            info = {
                "source": "toy" if spec.toy else str(data_dir),
                "image_dir": str(images),
                "version": data_label(data_dir, len(records)),
                "files": {path.name: sha256_file(path)},
            }
        else:
            records, images, info = read_hub(spec.limit)
        if spec.limit is not None:
            records = records[: spec.limit]
        return LoadedData([sample_of(r, str(images / r["image"])) for r in records], info)

    def score(self, response: str, target: Any, meta: dict[str, Any]) -> dict[str, Any]:
        return {"parsed": prediction(response), "correct": is_correct(response, target)}

    def statistics(self, rows: list[dict[str, Any]]) -> dict[str, Statistic]:
        """Accuracy in percent overall and per question type, resampling images (a row's cluster)."""

        def accuracy(selected: list[dict[str, Any]]) -> Statistic:
            keys = [("cluster", r["cluster"]) for r in selected]
            return mean_statistic([float(r["correct"]) for r in selected], keys, scale=100.0)

        if not rows:
            return {}
        out = {"accuracy": accuracy(rows)}
        for field, known in (("structural", STRUCTURAL), ("semantic", SEMANTIC)):
            present = {r["meta"].get(field) for r in rows} - {None}
            for name in [t for t in known if t in present] + sorted(present - set(known)):
                out[f"{field}/{name}"] = accuracy([r for r in rows if r["meta"].get(field) == name])
        return out

    def import_answers(
        self, answers: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
    ) -> tuple[list[Imported], dict[str, Any]]:
        """LLaVA's answer or prediction file paired with the questions (`importing.import_answers`)."""
        from evalkit.tasks.gqa.importing import import_answers

        return import_answers(answers, questions, data_dir, judgments)

    def write_answers(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
        """The answer file `import_answers` pairs (`importing.write_answers`)."""
        from evalkit.tasks.gqa.importing import write_answers

        return write_answers(rows, folder)

    def lmms_eval_matches(self, record: Any) -> bool:
        doc = record.doc or {}
        return {"id", "imageId", "question", "answer"} <= doc.keys()

    def lmms_eval_convert(
        self, records: list[Any], lmms_task: str | None, tmp: Path, data_dir: Path | None, path: Path
    ) -> tuple[list[Imported], dict[str, Any], dict[str, Any]]:
        from evalkit.tasks.gqa.lmms_eval import convert

        return convert(records, lmms_task, tmp, data_dir, path)
