"""MMHal-Bench as a judged task: 96 questions about OpenImages pictures, rated 0–6 by GPT-4 for
informativeness and hallucination.

Modules: this one holds the Task class; `protocol` the template records, the official prompts, the rating
parser and the summary (no I/O); `data` the template, image and judged-result files; `hub` the official
files fetched from the hub (the default without --data-dir); `importing` `evalkit import` of official
answers and reviews; `toy` the toy set over the toy world; `vision` MMHal-Bench-V, the same task judged by
GPT-4o seeing the image.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from evalkit.judges.judge import JudgeCall, prompt_sha256
from evalkit.stats import Estimate, Statistic, mean_statistic
from evalkit.task import FAILURES, PERCENT, DataSpec, Imported, JudgedTask, LoadedData, MetricInfo
from evalkit.tasks.mmhal.data import IMAGE_SUBDIR, check_images, find_template, image_file_name, load_template
from evalkit.tasks.mmhal.hub import SOURCE as HUB_SOURCE
from evalkit.tasks.mmhal.hub import locate_files
from evalkit.tasks.mmhal.importing import import_judged, write_answers
from evalkit.tasks.mmhal.protocol import (
    GENERATION,
    JUDGE_SPEC,
    JUDGE_TEMPLATE,
    QUESTION_TYPES,
    Item,
    item_meta,
    record_values,
    render_judge,
    score_reviews,
    user_message,
)
from evalkit.types import GenerationConfig, Sample, UserError
from evalkit.util.datafiles import sha256_file, toy_label


def _row_item(row: dict[str, Any]) -> Item:
    """The template record a stored row answers: the question is the row's prompt, the human answer its
    target, the rest its meta (as `load` and `import` write them)."""
    meta = row["meta"]
    return Item(
        index=meta["index"],
        question_type=meta["question_type"],
        question_topic=meta["question_topic"],
        image_id=meta["image_id"],
        image_src="",
        image_content=tuple(meta["image_content"]),
        question=row["prompt"],
        gt_answer=row["target"],
    )


def _json_metrics(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """NaN (no interval, or no value) → None, so metrics.json is plain JSON and compares equal after a
    round trip."""
    return {
        name: {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in m.items()}
        for name, m in metrics.items()
    }


#: the other ways to give MMHal-Bench data (said when the hub cache lacks it)
INSTEAD = (
    "pass --data toy, or --data-dir DIR with response_template.json (or RLHF-V's "
    "mmhal-bench_answer_template.json) and the images in DIR/images (or --image-dir); to score answers and "
    "reviews made elsewhere "
    "use `evalkit import --task mmhal --answers ANSWERED.json --judgments REVIEWS.json`"
)


class MMHalBench(JudgedTask):
    """MMHal-Bench. One row per template record, id = its index (0–95, which fixes the question type),
    `target` the human answer, `cluster` the image id. The model sees its image and the bare question
    (greedy, 1,024 new tokens); GPT-4 (`gpt-4-0314`, temperature 0) gets the official template once per
    judge run (`--judge-runs N`: N independent calls, run index in the cache key). The `judge` record keeps
    the raw reviews (`outputs`, one per run), whether produced here or imported; `score_row` re-parses them:
    per run the rating when exactly one 'rating: s' occurs, else 0 (official), with the parse status per run
    and the row's rating and hallucination rate averaged over runs. Metrics: score, hallucination_rate,
    informativeness, type/<question type>, and `unparsed` (reviews the official rule scored 0). All but
    `unparsed` are also `statistics` (over sample ids) for `evalkit compare`; `hallucination_rate` is the
    one where lower is better.

    Data: by default the official files from the hub (`hub`: Shengcao1006/MMHal-Bench's template and
    images/, read as --data-dir reads them); `--data-dir DIR` with the template (`response_template.json`
    from HF Shengcao1006/MMHal-Bench, or RLHF-V's `mmhal-bench_answer_template.json`) and the images in
    DIR/images (or `--image-dir`), each named as the last part of its record's `image_src` URL; `--data toy`
    builds a toy set offline."""

    name = "mmhal"
    version = "1"
    description = "MMHal-Bench: 96 image questions, GPT-4 rates 0-6 (informativeness, hallucination)"
    hub_sources = (HUB_SOURCE,)
    data_needs = (
        "none by default: read from the hub (Shengcao1006/MMHal-Bench, response_template.json and images/; "
        "`evalkit data fetch mmhal` fetches them ahead). For local files: "
        "--data-dir DIR with response_template.json (HF Shengcao1006/MMHal-Bench) or "
        "mmhal-bench_answer_template.json (RLHF-V eval/data), and the 96 OpenImages pictures in DIR/images "
        "(or --image-dir) named as the last part of each record's image_src URL (the HF dataset's images/); "
        "--data toy builds a toy set offline; judged by gpt-4-0314"
    )
    headline = "score"
    group = "hallucination"
    metric_info = {
        "score": MetricInfo(1, "score 0–6"),
        "type/*": MetricInfo(1, "score 0–6"),
        "hallucination_rate": MetricInfo(-1, "fraction"),
        "unparsed": FAILURES,
    }
    default_metric = PERCENT
    tax_metrics = ("hallucination_rate",)
    generation = GENERATION
    supports_toy = True
    judge_spec = JUDGE_SPEC
    #: the other ways to give the data, said when the hub cache lacks it
    instead = INSTEAD

    def load(self, spec: DataSpec) -> LoadedData:
        hub: dict[str, Any] | None = None
        if spec.toy:
            from evalkit.tasks.mmhal.toy import default_toy_dir, write_toy_mmhal

            data_dir = write_toy_mmhal(default_toy_dir(spec.seed), seed=spec.seed)
        elif spec.data_dir is not None:
            data_dir = Path(spec.data_dir)
        else:
            data_dir, hub = locate_files(self.name, self.instead)
        path = find_template(data_dir)
        every = load_template(path)
        items = every[: spec.limit]
        given = spec.image_dir is not None and not spec.toy and hub is None
        images = Path(spec.image_dir) if given else data_dir / IMAGE_SUBDIR
        check_images(items, images, given=given)
        samples = [
            Sample(
                id=str(it.index),
                messages=(user_message(it, str(images / image_file_name(it))),),
                target=it.gt_answer,
                cluster=it.image_id,
                meta=item_meta(it),
            )
            for it in items
        ]
        info = {
            "source": "toy" if spec.toy else str(data_dir),
            "image_dir": str(images),
            "version": toy_label(data_dir) or f"MMHal-Bench ({len(every)} records)",
            "files": {path.name: sha256_file(path)},
        }
        if hub is not None:
            info.update(hub, version=f"hub {hub['hub']['repo']} (official files, {len(every)} records)")
            info["hub"]["rows"] = len(every)
        return LoadedData(samples, info)

    def score(self, response: str, target: Any, meta: dict[str, Any]) -> dict[str, Any]:
        raise UserError(f"{self.name} rows are scored from their stored judge outputs")

    def judge_prompt_hash(self) -> str:
        return prompt_sha256(JUDGE_TEMPLATE)

    def judge_calls(self, row: dict[str, Any], done: list[dict[str, Any]], n_runs: int) -> list[JudgeCall]:
        """One call per run not answered yet; no re-ask (an unparsed review scores 0, officially)."""
        answered = {d["run"] for d in done}
        spec = self.judge_spec
        gen = GenerationConfig(max_new_tokens=spec.max_tokens, temperature=spec.temperature)
        messages = render_judge(_row_item(row), row["response"])
        return [JudgeCall(f"run{r}", messages, gen, r) for r in range(n_runs) if r not in answered]

    def judge_record(self, row: dict[str, Any], done: list[dict[str, Any]], n_runs: int) -> dict[str, Any]:
        """The reviews in run order, as `import` stores the official one."""
        by_run = {d["run"]: d["output"] for d in done}
        return {"outputs": [by_run[r] for r in range(n_runs)]}

    def score_row(self, row: dict[str, Any]) -> dict[str, Any]:
        return score_reviews(row["judge"]["outputs"])

    def unparsed_judgments(self, row: dict[str, Any]) -> int:
        """Reviews without exactly one rating, which the official rule rates 0."""
        return int(row["unparsed"])

    def statistics(self, rows: list[dict[str, Any]]) -> dict[str, Statistic]:
        """`score`, `hallucination_rate`, `informativeness` and `type/*` as functions of weights over the
        records, keyed by sample id: each record is resampled on its own, as the intervals always were
        (the official records each show a different image)."""
        values, idx = record_values([r["ratings"] for r in rows], [r["meta"]["index"] for r in rows])
        keys = [("id", r["id"]) for r in rows]
        out = {
            name: mean_statistic(v, keys, scale=100.0 if name == "informativeness" else 1.0)
            for name, v in values.items()
        }
        for t, name in enumerate(QUESTION_TYPES):
            sel = [k for k, i in enumerate(idx) if i % len(QUESTION_TYPES) == t]
            if sel:
                out[f"type/{name}"] = mean_statistic(
                    [values["score"][k] for k in sel], [keys[k] for k in sel]
                )
        return out

    def aggregate(self, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        metrics = {name: stat.estimate().to_dict() for name, stat in self.statistics(rows).items()}
        n_unparsed = sum(r["unparsed"] for r in rows)
        metrics["unparsed"] = Estimate(float(n_unparsed), math.nan, math.nan, len(rows)).to_dict()
        return _json_metrics(metrics)


class MMHal(MMHalBench):
    """MMHal-Bench with `evalkit import` of the official answered template and GPT-4 reviews.

    `--answers` is the answered template (the 96 records with `model_answer` filled in, LLaVA-RLHF
    `model_vqa_mmhal.py` output); `--judgments` (exactly one) is either RLHF-V's merged judged file (records
    with `gpt4_review`; its model answers must match `--answers`) or LLaVA-RLHF's `eval_gpt_mmhal.py
    --evaluation` file (a list of 96 chat-completion responses, or of review strings), paired by order."""

    import_usage = "--answers ANSWERED.json --judgments REVIEWS.json"

    def import_answers(
        self, answers: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
    ) -> tuple[list[Imported], dict[str, Any]]:
        return import_judged(answers, judgments)

    def write_answers(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
        """The answered template and the review file (`importing.write_answers`)."""
        return write_answers(rows, folder)
