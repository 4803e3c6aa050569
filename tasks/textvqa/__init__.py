"""TextVQA (val, 5,000 questions about text in images), scored as LLaVA-1.5 scores it.

Protocol (`scripts/v1_5/eval/textvqa.sh`: `model_vqa_loader.py`, then `eval_textvqa.py` with EvalAI's answer
processor): the prompt is the question and "\\nAnswer the question using a single word or phrase."; with
`--task-option textvqa.ocr=true` the line "\\nReference OCR token: a, b, c" comes between them, as in LLaVA's
`llava_textvqa_val_v051_ocr.jsonl`, which the LLaVA-1.5 numbers used (recorded in the run: the option is
part of its identity and `data.ocr` says where the tokens came from). Each answer is normalised as EvalAI
does and scored with the VQA soft accuracy against the 10 human answers (`protocol`); the headline is the
mean, in percent. lmms-eval's `textvqa_val` scores the same way but capitalises the question's first letter
and takes the OCR tokens from the hub copy. Intervals resample whole images.

Data: by default lmms-lab/textvqa from the hub (`hub`), else `TextVQA_0.5.1_val.json` and the images from
--data-dir (`data`), or the toy set (--data toy, `toy`). `importing`: LLaVA's answer files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.stats import Statistic, mean_statistic
from evalkit.task import PERCENT, DataSpec, Imported, LoadedData, Task, TaskOption
from evalkit.tasks.textvqa.data import attach_llava_ocr, data_label, find_images, read_annotations
from evalkit.tasks.textvqa.hub import SOURCE as HUB_SOURCE
from evalkit.tasks.textvqa.hub import read_hub
from evalkit.tasks.textvqa.importing import sample_of
from evalkit.tasks.textvqa.protocol import build_prompt, normalize, soft_accuracy
from evalkit.types import GenerationConfig
from evalkit.util.datafiles import sha256_file


class TextVQA(Task):
    name = "textvqa"
    version = "1"
    description = "TextVQA val: VQA soft accuracy after EvalAI's answer normalisation (LLaVA-1.5 protocol)"
    data_needs = (
        "none by default: read from the hub (lmms-lab/textvqa, validation, 5,000 questions with their "
        "images and OCR tokens; `evalkit data fetch textvqa` fetches it ahead). For the official files: "
        "--data-dir DIR with TextVQA_0.5.1_val.json and the images in DIR/train_images (or --image-dir); "
        "with textvqa.ocr=true also LLaVA's llava_textvqa_val_v051_ocr.jsonl there (the OCR tokens); "
        "--data toy builds a toy set offline"
    )
    headline = "accuracy"
    group = "visual knowledge"
    default_metric = PERCENT
    generation = GenerationConfig(max_new_tokens=128, temperature=0.0)
    supports_toy = True
    hub_sources = (HUB_SOURCE,)
    lmms_eval_names = ("textvqa_val",)
    task_options = {
        "ocr": TaskOption(
            "add LLaVA's 'Reference OCR token: ...' line to the prompt (LLaVA-1.5's published numbers)",
            ("true", "false"),
            "false",
        )
    }

    def load(self, spec: DataSpec) -> LoadedData:
        ocr = self.read_options(spec)["ocr"] == "true"
        if spec.toy or spec.data_dir is not None:
            records, images, info = self._load_files(spec, ocr)
        else:
            records, images, info = read_hub(spec.limit, ocr)
        if spec.limit is not None:
            records = records[: spec.limit]
        samples = [
            sample_of(
                r, build_prompt(r["question"], r["ocr_tokens"] if ocr else None), str(images / r["image"])
            )
            for r in records
        ]
        info["ocr"] = info.pop("ocr_source", "hub ocr_tokens") if ocr else "off"
        return LoadedData(samples, info)

    def _load_files(self, spec: DataSpec, ocr: bool) -> tuple[list[dict[str, Any]], Path, dict[str, Any]]:
        if spec.toy:
            from evalkit.tasks.textvqa.toy import default_toy_dir, write_toy_textvqa

            data_dir, image_dir = write_toy_textvqa(default_toy_dir(spec.seed), seed=spec.seed), None
        else:
            data_dir, image_dir = Path(spec.data_dir), spec.image_dir
        records, path = read_annotations(data_dir)
        files = {path.name: sha256_file(path)}
        ocr_source = None
        if ocr:
            llava = attach_llava_ocr(records, data_dir)
            if llava is not None:
                files[llava.name] = sha256_file(llava)
            ocr_source = llava.name if llava is not None else f"{path.name} ocr_tokens"
        images = find_images(data_dir, image_dir, records)
        info = {
            "source": "toy" if spec.toy else str(data_dir),
            "image_dir": str(images),
            "version": data_label(data_dir, len(records)),
            "files": files,
        }
        if ocr_source is not None:
            info["ocr_source"] = ocr_source
        return records, images, info

    def score(self, response: str, target: Any, meta: dict[str, Any]) -> dict[str, Any]:
        return {"parsed": normalize(response), "accuracy": soft_accuracy(response, target)}

    def statistics(self, rows: list[dict[str, Any]]) -> dict[str, Statistic]:
        """The mean soft accuracy in percent, resampling images (a row's cluster)."""
        if not rows:
            return {}
        keys = [("cluster", r["cluster"]) for r in rows]
        return {"accuracy": mean_statistic([r["accuracy"] for r in rows], keys, scale=100.0)}

    def import_answers(
        self, answers: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
    ) -> tuple[list[Imported], dict[str, Any]]:
        """LLaVA's answer file paired with the annotations (`importing.import_answers`)."""
        from evalkit.tasks.textvqa.importing import import_answers

        return import_answers(answers, questions, data_dir, judgments)

    def write_answers(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
        """The answer file `import_answers` pairs (`importing.write_answers`)."""
        from evalkit.tasks.textvqa.importing import write_answers

        return write_answers(rows, folder)

    def lmms_eval_matches(self, record: Any) -> bool:
        doc = record.doc or {}
        return {"question_id", "answers", "ocr_tokens"} <= doc.keys() or (
            "exact_match" in record.fields and "question_id" in record.metric("submission")
        )

    def lmms_eval_convert(
        self, records: list[Any], lmms_task: str | None, tmp: Path, data_dir: Path | None, path: Path
    ) -> tuple[list[Imported], dict[str, Any], dict[str, Any]]:
        from evalkit.tasks.textvqa.lmms_eval import convert

        return convert(records, lmms_task, tmp, data_dir, path)
