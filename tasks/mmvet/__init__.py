"""MM-Vet: 218 open-ended questions on 200 images, graded 0–1 by GPT-4 against a ground truth.

Protocol (yuweihao/MM-Vet `mm-vet_evaluator.py`; LLaVA-1.5 `scripts/v1_5/eval/mmvet.sh`): the model answers
the bare question greedily (up to 1,024 new tokens). The judge (`gpt-4-0613`, max 3 tokens, temperature 0)
gets one user message: the few-shot table prompt (`assets/mmvet_grader_prompt.txt`, verbatim) + "\\n" +
"question | ground truth | prediction | ", with " <AND> " / " <OR> " spaced out in the ground truth. The
score is the judge's first space-separated token as a float in [0, 1]. When that fails the judge is asked
again with a suffix and a rising temperature; after 5 unparseable outputs the item scores 0.0.
Reported: 100 × mean score overall, per capability (an item counts for each of its capabilities) and per
capability integration (the exact set of capabilities), each averaged over the N judge runs and rounded to
1 decimal with numpy's rounding; `std` is the population std of the run totals and `runs` the rounded run
totals. The evaluator's default is 1 run (`--num_run 1`; the paper used 5, LLaVA's 3-run files exist too).
LLaVA-1.5's published numbers mix the two: 13B 36.1 is a single run (its 3-run file averages 36.3),
7B 31.1 is the mean of 3 runs (31.2, 30.8, 31.2) — see `tests/tasks/mmvet/test_mmvet.py`.

Data: by default lmms-lab/MMVet from the hub (`hub`: the 218 items with their images, read as mm-vet.json),
else mm-vet.json and images/ from --data-dir, or the toy set (--data toy).

Modules: `protocol` (grading request, score parser, official tables; no I/O), `data` (mm-vet.json, images,
answer, grade and score files), `hub` (the hub copy read as mm-vet.json), `toy`, `importing` (official
answer + grade files), `lmms_eval` (lmms-eval logs), `assets/` (the grader prompt, verbatim, with its
SOURCE note).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from evalkit.judges.judge import JudgeCall, JudgeSpec, prompt_sha256
from evalkit.stats import Statistic, per_cluster, unit_index
from evalkit.task import FAILURES, PERCENT, DataSpec, Imported, JudgedTask, LoadedData, MetricInfo
from evalkit.tasks.mmvet.data import (
    METADATA,
    OFFICIAL_ITEMS,
    RELEASE_ZIP,
    check_images,
    find_metadata,
    read_metadata,
)
from evalkit.tasks.mmvet.hub import SOURCE as HUB_SOURCE
from evalkit.tasks.mmvet.hub import read_hub
from evalkit.tasks.mmvet.protocol import (
    GENERATION,
    GRADER_PROMPT,
    JUDGE_GENERATION,
    JUDGE_MODEL,
    MAX_TRIES,
    RETRY_SUFFIX,
    Grade,
    _runs_matrix,
    grader_request,
    integration_key,
    resolve_grade,
    summarize,
)
from evalkit.types import Message, Sample, UserError
from evalkit.util.datafiles import sha256_file, toy_label

#: the evaluator's `--num_run` default (the paper used 5; LLaVA-1.5 published 1-run and 3-run grades)
DEFAULT_RUNS = 1


def run_outputs(done: list[dict[str, Any]], n_runs: int) -> list[list[Any]]:
    """The judge outputs of each run, in the order they were asked (try 1, 2, ...)."""
    return [[d["output"] for d in done if d["run"] == r] for r in range(n_runs)]


def _capabilities(rows: list[dict[str, Any]]) -> dict[str, list[str]] | None:
    """Item id → capabilities, when every row carries them (imports without mm-vet.json do not)."""
    caps = {r["id"]: r["meta"]["capability"] for r in rows if "capability" in r["meta"]}
    return caps if len(caps) == len(rows) else None


def _mean_score(rows: list[dict[str, Any]]) -> Statistic:
    """100 × mean over `rows` of each item's mean score over the judge runs, over the rows' units."""
    scores = {r["id"]: r["judge_scores"] for r in rows}
    ids, num_runs = _runs_matrix(scores, None)
    per_item = np.array([float(np.mean(scores[k][:num_runs])) for k in ids])
    idx, units = unit_index(rows)
    sums = per_cluster(per_item, idx, len(units))
    counts = per_cluster(np.ones_like(per_item), idx, len(units))

    def stat(w: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return 100.0 * (w @ sums) / (w @ counts)

    return Statistic(stat, units, len(rows))


class MMVet(JudgedTask):
    """MM-Vet, generated and judged (`evalkit run`) or imported from the official grade files.

    A run row's judge record keeps per run the deciding output (`outputs`: the first parseable one, or the
    last of 5 unparseable ones, which scores 0.0) and every try (`attempts`); an imported row has only the
    official deciding output per run. Scores are re-parsed from that record, so `rescore` needs no judge.
    Values are the official rounded numbers (1 decimal, numpy rounding); intervals come from the unrounded
    per-item scores and resample whole images. `statistics` gives `total`, `cap/*` and `capint/*`
    (unrounded) over those units for `evalkit compare`; the per-run totals and `std` have no interval."""

    name = "mmvet"
    version = "1"
    description = "MM-Vet integrated capabilities (GPT-4 grader, 0-1 per item, N runs)"
    data_needs = (
        "none by default: read from the hub (lmms-lab/MMVet, 218 questions with their images; `evalkit "
        "data fetch mmvet` fetches it ahead). For the official files: "
        f"--data-dir DIR with {METADATA} and images/ from the MM-Vet release zip ({RELEASE_ZIP}; "
        "images may also come from --image-dir); --data toy builds a toy set offline. Judged by "
        "gpt-4-0613 (1 run by default as in the official evaluator; --judge-runs N, the paper used 5). "
        "`evalkit import` takes --answers (LLaVA answer JSONL or the {v1_N: answer} JSON), --judgments "
        f"(official *_gpt-4-grade-Nruns.json) and --questions {METADATA} for the capability tables"
    )
    headline = "total"
    group = "visual instruction-following"
    metric_info = {"std": MetricInfo(0, "%"), "judge_fallbacks": FAILURES, "judge_reasks": FAILURES}
    default_metric = PERCENT
    generation = GENERATION
    supports_toy = True
    lmms_eval_names = ("mmvet",)
    lmms_eval_fields = "a gpt_eval_score object with question_id, capabilities and score"
    hub_sources = (HUB_SOURCE,)
    judge_spec = JudgeSpec(
        JUDGE_MODEL,
        temperature=JUDGE_GENERATION.temperature,
        max_tokens=JUDGE_GENERATION.max_new_tokens,
        n_runs=DEFAULT_RUNS,
        parser_version="1",
    )

    # ------------------------------------------------------------------------------------------ data

    def load(self, spec: DataSpec) -> LoadedData:
        if not spec.toy and spec.data_dir is None:
            metadata, image_dir, info = read_hub(spec.limit)
            keys = list(metadata)[: spec.limit]
        else:
            if spec.toy:
                from evalkit.tasks.mmvet.toy import default_toy_dir, write_mmvet

                data_dir = write_mmvet(default_toy_dir(spec.seed), seed=spec.seed)
            else:
                data_dir = Path(spec.data_dir)
            path = find_metadata(data_dir)
            metadata = read_metadata(path)
            keys = list(metadata)[: spec.limit]
            custom = spec.image_dir is not None and not spec.toy
            image_dir = spec.image_dir if custom else path.parent / "images"
            n = len(metadata)
            version = "MM-Vet v1 (218 items)" if n == OFFICIAL_ITEMS else f"unknown ({n} items)"
            info = {
                "source": "toy" if spec.toy else str(path.parent),
                "image_dir": str(image_dir),
                "version": toy_label(path.parent) or version,
                "files": {METADATA: sha256_file(path)},
            }
        check_images(metadata, keys, image_dir)
        samples = []
        for key in keys:
            item = metadata[key]
            image = str(image_dir / item["imagename"])
            samples.append(
                Sample(
                    id=key,
                    messages=(Message("user", item["question"], (image,)),),
                    target=item["answer"],
                    cluster=item["imagename"],
                    meta={"capability": list(item["capability"]), "image": item["imagename"]},
                )
            )
        return LoadedData(samples, info)

    def score(self, response: str, target: Any, meta: dict[str, Any]) -> dict[str, Any]:
        raise UserError(f"{self.name} rows are scored from their stored judge outputs")

    # ----------------------------------------------------------------------------------------- judge

    def judge_prompt_hash(self) -> str:
        return prompt_sha256(GRADER_PROMPT, RETRY_SUFFIX)

    def judge_calls(self, row: dict[str, Any], done: list[dict[str, Any]], n_runs: int) -> list[JudgeCall]:
        """Per run, the next try of the official loop until an output parses or `MAX_TRIES` failed. The
        question is the row's prompt (the model was asked the bare question)."""
        calls = []
        for run, outputs in enumerate(run_outputs(done, n_runs)):
            if resolve_grade(outputs) is not None:
                continue
            attempt = len(outputs)
            messages, generation = grader_request(row["prompt"], row["target"], row["response"], attempt)
            calls.append(JudgeCall(f"run{run}/try{attempt + 1}", messages, generation, run))
        return calls

    def judge_record(self, row: dict[str, Any], done: list[dict[str, Any]], n_runs: int) -> dict[str, Any]:
        attempts = run_outputs(done, n_runs)
        outputs = []
        for run, tries in enumerate(attempts):
            grade = resolve_grade(tries)
            if grade is None:
                raise RuntimeError(f"mmvet: run {run} of {row['id']} is not graded yet ({len(tries)} tries)")
            outputs.append(tries[grade.tries - 1])
        return {"outputs": outputs, "attempts": attempts}

    def score_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """Per run: score, tries used and whether the 0.0 fallback applied. Imported rows carry only the
        deciding output, so their tries read 1 (parsed) or `MAX_TRIES` (fell back)."""
        judge = row["judge"]
        attempts = judge.get("attempts") or [[output] for output in judge["outputs"]]
        grades = [resolve_grade(tries) or Grade(0.0, MAX_TRIES, True) for tries in attempts]
        return {
            "judge_scores": [g.score for g in grades],
            "judge_tries": [g.tries for g in grades],
            "judge_fell_back": [g.fell_back for g in grades],
            "judge_fallbacks": sum(g.fell_back for g in grades),
            "judge_reasks": sum(g.tries - 1 for g in grades),
        }

    def unparsed_judgments(self, row: dict[str, Any]) -> int:
        """Runs where no grade parsed in `MAX_TRIES` tries and the official 0.0 applies."""
        return int(row["judge_fallbacks"])

    # ------------------------------------------------------------------------------------- metrics

    def statistics(self, rows: list[dict[str, Any]]) -> dict[str, Statistic]:
        """`total`, `cap/*` and `capint/*` as functions of weights over images (or item ids where a row
        has no image): 100 × the mean over the group's items of each item's mean over runs. The point value
        is the unrounded number that `aggregate` prints rounded to 1 decimal."""
        scores = {r["id"]: r["judge_scores"] for r in rows}
        caps = _capabilities(rows)
        summary = summarize(scores, caps)
        out = {"total": _mean_score(rows)}
        if caps is None:
            return out
        for cap in summary.capabilities:
            out[f"cap/{cap}"] = _mean_score([r for r in rows if cap in caps[r["id"]]])
        for name in summary.integrations:
            members = integration_key(name)
            out[f"capint/{name}"] = _mean_score([r for r in rows if set(caps[r["id"]]) == members])
        return out

    def aggregate(self, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        scores = {r["id"]: r["judge_scores"] for r in rows}
        summary = summarize(scores, _capabilities(rows))
        official = {"total": summary.total}
        official |= {f"cap/{c}": v for c, v in summary.capabilities.items()}
        official |= {f"capint/{c}": v for c, v in summary.integrations.items()}

        def count(value: float) -> dict[str, Any]:
            return {"value": value, "ci_low": None, "ci_high": None, "n": len(rows)}

        out = {
            name: {**stat.estimate().to_dict(), "value": official[name]}
            for name, stat in self.statistics(rows).items()
        }
        for i, run_total in enumerate(summary.runs):
            out[f"run{i + 1}/total"] = count(run_total)
        out["std"] = count(summary.std)
        out["judge_fallbacks"] = count(float(sum(r["judge_fallbacks"] for r in rows)))
        out["judge_reasks"] = count(float(sum(r.get("judge_reasks", 0) for r in rows)))
        return out

    # ------------------------------------------------------------------------------ import, lmms-eval

    def import_answers(
        self, answers: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
    ) -> tuple[list[Imported], dict[str, Any]]:
        """Official answers with their official grade file (`importing.import_answers`)."""
        from evalkit.tasks.mmvet.importing import import_answers

        return import_answers(answers, questions, data_dir, judgments)

    def write_answers(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
        """The submission JSON, grade file and question file (`importing.write_answers`)."""
        from evalkit.tasks.mmvet.importing import write_answers

        return write_answers(rows, folder)

    def lmms_eval_matches(self, record: Any) -> bool:
        return "capabilities" in record.metric("gpt_eval_score", "submission") or "capability" in (
            record.doc or {}
        )

    def lmms_eval_convert(
        self, records: list[Any], lmms_task: str | None, tmp: Path, data_dir: Path | None, path: Path
    ) -> tuple[list[Imported], dict[str, Any], dict[str, Any]]:
        from evalkit.tasks.mmvet.lmms_eval import convert

        return convert(records, lmms_task, tmp, data_dir, path)
