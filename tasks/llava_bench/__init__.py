"""LLaVA-Bench (In-the-Wild: 60 questions on 24 images; COCO: 90 questions on 30 val2014 images).

Generation (LLaVA `scripts/v1_5/eval/llavabench.sh` → `llava.eval.model_vqa`, `--temperature 0`): the model
sees the image and the bare question text (no suffix, no system prompt of the benchmark's own; the chat
template is the model's) and answers greedily, up to 1,024 new tokens. Judging, parsing and aggregation
follow `eval_gpt_review_bench.py` / `eval_gpt_review_visual.py` and `summarize_gpt_review.py`.

Modules: this one holds the Task classes; `protocol` the review prompt, the official review parser and the
relative-score arithmetic (no I/O); `data` the official files and the bundled judge rules (`assets/rule.json`,
provenance in `assets/SOURCE.md`); `hub` the data without --data-dir (In-the-Wild: the official files
from the hub; COCO: the hub copy's images with the official files from GitHub, pinned by sha256);
`importing` `evalkit import` of answer and review files; `toy` the toy set.

Judge runs: the official scripts write one review per question per invocation, and LLaVA publishes the
mean of three invocations' relative scores (LLaVA-1.5-13B: 72.8, 72.7, 72.1 → 72.5 in MODEL_ZOO). So a
run makes `n_runs` = 3 reviews per question by default, each its own call tagged with its run index: the
judge samples at temperature 0.2, so runs differ, and the judge cache keeps each run's review apart.
`--judge-runs 1` gives what a single invocation of the official script prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from evalkit.judges.judge import JudgeCall, JudgeSpec, prompt_sha256
from evalkit.stats import Statistic
from evalkit.task import FAILURES, PERCENT, DataSpec, Imported, JudgedTask, LoadedData, MetricInfo
from evalkit.tasks.llava_bench.data import (
    RULE_FILE,
    bundled_rules,
    find_images,
    pair_references,
    read_answers,
    read_contexts,
    read_questions,
)
from evalkit.tasks.llava_bench.hub import COCO_OFFICIAL, coco_files, locate_files
from evalkit.tasks.llava_bench.hub import COCO_SOURCE as COCO_HUB_SOURCE
from evalkit.tasks.llava_bench.hub import SOURCE as WILD_HUB_SOURCE
from evalkit.tasks.llava_bench.importing import import_reviews, write_answers
from evalkit.tasks.llava_bench.protocol import (
    CATEGORIES,
    FAILED,
    GENERATION,
    JUDGE_GENERATION,
    JUDGE_MODEL,
    SYSTEM_PROMPT,
    Rule,
    mean_over_runs,
    metric,
    parse_review,
    review_content,
    review_messages,
    rule_key,
    runs_relative_statistic,
    summarize,
)
from evalkit.types import Message, Sample, UserError
from evalkit.util.datafiles import sha256_file, toy_label

#: per-run parse status stored in `judge_parse`
PARSED, FALLBACK = "ok", "fallback"


def parse_status(pair: tuple[float, float]) -> str:
    """'fallback' for the official failure pair (-1, -1), which the summary cannot tell apart from a
    review that failed the parse; 'ok' otherwise."""
    return FALLBACK if pair == FAILED else PARSED


def _category_order(categories: list[str | None]) -> list[str]:
    """The categories present: the official ones in their order, then any other, sorted."""
    present = {c for c in categories if c is not None}
    return [c for c in CATEGORIES if c in present] + sorted(present - set(CATEGORIES))


class LlavaBench(JudgedTask):
    """LLaVA-Bench: the model answers each question about its image; GPT-4 reviews the answer against the
    GPT-4 reference answer in each of `n_runs` runs. Values are the official printed numbers: per run the
    ratio of means rounded to 1 decimal, reported as the mean over runs of the unrounded run scores;
    intervals resample whole images with all their runs. Each row keeps the judge's raw review per run
    (`judge.outputs`, the same record `evalkit import` writes from official review files) and
    `score_row` re-parses them with the official parser, so `rescore` reproduces the numbers. Unparseable
    reviews score (-1, -1) and stay in the means, as official; `judge_fallbacks` counts them.
    `statistics` gives `relative` and `cat/*` (unrounded) over the same units for `evalkit compare`; the
    per-run values and mean judge scores are plain numbers without an interval."""

    version = "1"
    headline = "relative"
    group = "visual instruction-following"
    metric_info = {
        "model_score": MetricInfo(1, "score ×10"),
        "reference_score": MetricInfo(0, "score ×10"),  # the reference answers' own score
        "judge_fallbacks": FAILURES,
    }
    default_metric = PERCENT
    generation = GENERATION
    supports_toy = True
    judge_spec = JudgeSpec(JUDGE_MODEL, temperature=0.2, max_tokens=1024, n_runs=3, parser_version="1")
    in_the_wild: bool
    #: role → (file name in --data-dir, where it comes from)
    files: dict[str, tuple[str, str]]
    #: where the images come from (for the error when one is missing)
    image_source: str
    #: looked for in --data-dir by `import` when --questions is not given
    question_file: str
    import_usage = "--answers FILE --judgments REVIEWS.jsonl (repeat --judgments for each judge run)"

    # ---------------------------------------------------------------------------------------- data

    def load(self, spec: DataSpec) -> LoadedData:
        hub: dict[str, Any] | None = None
        names = ", ".join(name for name, _ in self.files.values())
        instead = (
            f"pass --data-dir DIR with {names} and the images in DIR/images (or --image-dir), or --data toy; "
            f"to score answers and official reviews made elsewhere use "
            f"`evalkit import --task {self.name} {self.import_usage}`"
        )
        if spec.toy:
            from evalkit.tasks.llava_bench.toy import default_toy_dir, write_toy

            data_dir = write_toy(default_toy_dir(spec.seed), seed=spec.seed)
            image_dir = data_dir / "images"
        elif spec.data_dir is not None:
            data_dir = Path(spec.data_dir)
            image_dir = Path(spec.image_dir) if spec.image_dir else data_dir / "images"
        elif self.hub_sources:
            data_dir, hub = self.hub_files(instead)
            image_dir = data_dir / "images"
        else:
            raise UserError(f"{self.name} needs data: {instead}")
        paths = {}
        for role, (name, source) in self.files.items():
            paths[role] = data_dir / name
            if not paths[role].is_file():
                raise UserError(f"{self.name}: {paths[role]} not found; {name} comes from {source}")
        questions = read_questions(paths["questions"])
        references = read_answers(paths["references"])
        contexts = read_contexts(paths["context"])
        pairs = pair_references(questions, references, paths, in_the_wild=self.in_the_wild)
        total = len(pairs)
        if spec.limit is not None:
            pairs = pairs[: spec.limit]
        names = sorted({q["image"] for q, _ in pairs})
        images = find_images(
            self.name, image_dir, names, in_the_wild=self.in_the_wild, source=self.image_source
        )
        samples = []
        for q, ref in pairs:
            if q["image"] not in contexts:
                raise UserError(f"{paths['context']}: no context for image {q['image']!r}")
            samples.append(
                Sample(
                    id=str(q["question_id"]),
                    messages=(Message("user", q["text"], (str(images[q["image"]]),)),),
                    target=ref["text"],
                    cluster=q["image"],
                    meta={
                        "question_id": q["question_id"],
                        "category": q["category"],
                        "image": q["image"],
                        "context": contexts[q["image"]],
                    },
                )
            )
        info = {
            "source": "toy" if spec.toy else str(data_dir),
            "version": toy_label(data_dir) or "official",
            "image_dir": str(image_dir),
            "n_questions": total,
            "files": {p.name: sha256_file(p) for p in paths.values()},
            "rule_json_sha256": sha256_file(RULE_FILE),
        }
        if hub is not None:
            info.update(hub, version=self.hub_label(hub, total), image_dir=str(image_dir))
            info["hub"].setdefault("rows", total)
        return LoadedData(samples, info)

    def hub_files(self, instead: str) -> tuple[Path, dict[str, Any]]:
        """The folder laid out as --data-dir (files and images/) read without --data-dir, and the data
        info a run records of where it came from."""
        return locate_files(self.name, instead)

    def hub_label(self, hub: dict[str, Any], total: int) -> str:
        """The data version a run without --data-dir records."""
        return f"hub {hub['hub']['repo']} (official files, {total} questions)"

    # --------------------------------------------------------------------------------------- judge

    def rule(self, category: str) -> Rule:
        key = rule_key(category, in_the_wild=self.in_the_wild)
        if key not in bundled_rules():
            raise UserError(f"{self.name}: no judge rule {key!r} for category {category!r}")
        return bundled_rules()[key]

    def judge_prompt_hash(self) -> str:
        rules = [self.rule(c) for c in CATEGORIES]
        template = review_content(
            "{question}", "{reference}", "{answer}", Rule("{role}", "{rule}"), "{context}"
        )
        return prompt_sha256(SYSTEM_PROMPT, template, *(f"{r.role}\n{r.prompt}" for r in rules))

    def review_request(self, row: dict[str, Any]) -> tuple[Message, ...]:
        """The official review request of a row: the GPT-4 reference is Assistant 1, the model Assistant 2."""
        meta = row["meta"]
        rule = self.rule(meta["category"])
        return review_messages(row["prompt"], row["target"], row["response"], rule, meta["context"])

    def judge_calls(self, row: dict[str, Any], done: list[dict[str, Any]], n_runs: int) -> list[JudgeCall]:
        """One review per run; an unparseable review is kept (the official script does not ask again)."""
        answered = {d["run"] for d in done}
        todo = [r for r in range(n_runs) if r not in answered]
        if not todo:
            return []
        messages = self.review_request(row)
        return [JudgeCall(f"run{r}", messages, JUDGE_GENERATION, r) for r in todo]

    def judge_record(self, row: dict[str, Any], done: list[dict[str, Any]], n_runs: int) -> dict[str, Any]:
        """`outputs`: the review of each run in run order; `official_scores`: the pair the official script
        writes to its `tuple` field (as `import` stores it from the review files)."""
        by_run = {d["run"]: d["output"] for d in done}
        outputs = [by_run[r] for r in range(n_runs)]
        return {"outputs": outputs, "official_scores": [list(parse_review(o)) for o in outputs]}

    # ------------------------------------------------------------------------------------- scoring

    def score(self, response: str, target: Any, meta: dict[str, Any]) -> dict[str, Any]:
        raise UserError(f"{self.name} rows are scored from their stored judge outputs")

    def score_row(self, row: dict[str, Any]) -> dict[str, Any]:
        pairs = [parse_review(text) for text in row["judge"]["outputs"]]
        return {
            "judge_scores": [list(p) for p in pairs],
            "judge_parse": [parse_status(p) for p in pairs],
            "judge_fallbacks": sum(p == FAILED for p in pairs),
        }

    def unparsed_judgments(self, row: dict[str, Any]) -> int:
        """Reviews scored (-1, -1), kept in the means as LLaVA keeps them."""
        return int(row["judge_fallbacks"])

    def _runs(self, rows: list[dict[str, Any]]) -> list[list[list[float]]]:
        """`runs[r][i]`: the (reference, model) score pair of row i in judge run r."""
        num_runs = {len(r["judge_scores"]) for r in rows}
        if len(num_runs) != 1:
            raise UserError(
                f"{self.name}: the rows hold different numbers of judge runs ({sorted(num_runs)})"
            )
        return [[r["judge_scores"][i] for r in rows] for i in range(num_runs.pop())]

    def statistics(self, rows: list[dict[str, Any]]) -> dict[str, Statistic]:
        """`relative` and `cat/*` as functions of weights over images (question ids for rows without
        one): the mean over judge runs of each run's relative score. The point value is the unrounded
        number that `aggregate` prints rounded to 1 decimal."""
        runs = self._runs(rows)
        categories = [r["meta"].get("category") for r in rows]
        out = {"relative": runs_relative_statistic(runs, rows)}
        for cat in _category_order(categories):
            sel = [i for i, c in enumerate(categories) if c == cat]
            out[f"cat/{cat}"] = runs_relative_statistic(
                [[pairs[i] for i in sel] for pairs in runs], [rows[i] for i in sel]
            )
        return out

    def aggregate(self, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        runs = self._runs(rows)
        categories = [r["meta"].get("category") for r in rows]
        per_run = [summarize(pairs, categories) for pairs in runs]
        means = mean_over_runs(per_run)
        n = len(rows)
        stats = self.statistics(rows)
        out = {"relative": metric(means["all"], n, stats["relative"].estimate())}
        for cat in _category_order(categories):
            sel = [i for i, c in enumerate(categories) if c == cat]
            out[f"cat/{cat}"] = metric(means[cat], len(sel), stats[f"cat/{cat}"].estimate())
        for i, s in enumerate(per_run):
            out[f"run{i + 1}/relative"] = metric(s["all"].relative, n)
        # the mean judge scores as `summarize_gpt_review.py` prints them (× 10), averaged over runs
        out["model_score"] = metric(round(float(np.mean([s["all"].model for s in per_run])) * 10, 1), n)
        out["reference_score"] = metric(
            round(float(np.mean([s["all"].reference for s in per_run])) * 10, 1), n
        )
        out["judge_fallbacks"] = metric(float(sum(r["judge_fallbacks"] for r in rows)), n)
        return out

    # -------------------------------------------------------------------------------------- import

    def import_answers(
        self, answers: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
    ) -> tuple[list[Imported], dict[str, Any]]:
        return import_reviews(self, answers, questions, data_dir, judgments)

    def write_answers(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
        """The answer file and one review file per judge run (`importing.write_answers`)."""
        return write_answers(self, rows, folder)


WILD_SOURCE = "the Hugging Face dataset liuhaotian/llava-bench-in-the-wild"
COCO_SOURCE = "haotian-liu/LLaVA playground/data/coco2014_val_qa_eval/"


class LlavaBenchWild(LlavaBench):
    name = "llava_bench"
    description = (
        "LLaVA-Bench (In-the-Wild): 60 questions on 24 images, GPT-4 (0314) score relative to GPT-4's "
        "reference answers, mean of 3 judge runs"
    )
    data_needs = (
        "none by default: read from the hub (liuhaotian/llava-bench-in-the-wild, the official files; "
        "`evalkit data fetch llava_bench` fetches them ahead). For local files: "
        "--data-dir DIR with questions.jsonl, context.jsonl, answers_gpt4.jsonl and images/ (HF dataset "
        "liuhaotian/llava-bench-in-the-wild; or --image-dir); judged by gpt-4-0314 (--judge to swap); "
        "--data toy builds a toy set offline. `evalkit import` scores an answer JSONL with the official "
        "review JSONL of each GPT-4 run (--judgments, repeated)"
    )
    in_the_wild = True
    hub_sources = (WILD_HUB_SOURCE,)
    files = {
        "questions": ("questions.jsonl", WILD_SOURCE),
        "context": ("context.jsonl", WILD_SOURCE),
        "references": ("answers_gpt4.jsonl", WILD_SOURCE),
    }
    image_source = f"{WILD_SOURCE} (images/)"
    question_file = "questions.jsonl"
    lmms_eval_unsupported = (
        "lmms-eval's llava_in_the_wild records carry no question_id (its gpt_eval_llava_* fields hold the "
        "question text, which repeats across images, and a review by lmms-eval's own judge set-up); import "
        "a LLaVA-format answer file with the official review files instead"
    )

    def lmms_eval_matches(self, record: Any) -> bool:
        """lmms-eval's `llava_in_the_wild` records (their `gpt_eval_llava_*` reviews)."""
        return any(k.startswith("gpt_eval_llava") for k in record.fields)


class LlavaBenchCoco(LlavaBench):
    name = "llava_bench_coco"
    description = (
        "LLaVA-Bench (COCO): 90 questions on 30 COCO val2014 images, GPT-4 (0314) relative score, mean of "
        "3 judge runs"
    )
    data_needs = (
        "none by default: the 30 images from the hub (lmms-lab/llava-bench-coco) and the official "
        "qa90_questions.jsonl, qa90_gpt4_answer.jsonl and caps_boxes_coco2014_val_80.jsonl from "
        "github.com/haotian-liu/LLaVA at a pinned commit (sha256-checked; `evalkit data fetch "
        "llava_bench_coco` fetches both ahead). For local files: "
        "--data-dir DIR with qa90_questions.jsonl, qa90_gpt4_answer.jsonl (LLaVA "
        "playground/data/coco2014_val_qa_eval) and caps_boxes_coco2014_val_80.jsonl (LLaVA "
        "llava/eval/table), "
        "and the 30 COCO val2014 images in DIR/images (or --image-dir); judged by gpt-4-0314 (--judge to "
        "swap); --data toy builds a toy set offline. `evalkit import` scores an answer JSONL with the "
        "official review JSONL of each GPT-4 run (--judgments, repeated)"
    )
    in_the_wild = False
    hub_sources = (COCO_HUB_SOURCE,)
    official_files = tuple(COCO_OFFICIAL.values())
    files = {
        "questions": ("qa90_questions.jsonl", COCO_SOURCE),
        "references": ("qa90_gpt4_answer.jsonl", COCO_SOURCE),
        "context": ("caps_boxes_coco2014_val_80.jsonl", "haotian-liu/LLaVA llava/eval/table/"),
    }
    image_source = "COCO val2014 (cocodataset.org, val2014.zip), named as qa90_questions.jsonl names them"
    question_file = "qa90_questions.jsonl"

    def hub_files(self, instead: str) -> tuple[Path, dict[str, Any]]:
        """The official files (GitHub, pinned by sha256) with the images of the hub copy, whose own
        context lacks the boxes the official judge context holds."""
        return coco_files(self.name, instead)

    def hub_label(self, hub: dict[str, Any], total: int) -> str:
        return f"hub {hub['hub']['repo']} images + official files ({total} questions)"
