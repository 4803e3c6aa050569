"""MT-Bench: 80 two-turn questions in 8 categories, graded 1–10 per turn by a GPT-4 judge.

Protocol (FastChat `fastchat/llm_judge/`, `gen_model_answer.py`, `gen_judgment.py --mode single`,
`show_result.py`): each question is asked in one conversation, turn 2 following turn 1's question and the
model's (stripped) answer, with a per-category temperature and at most 1,024 new tokens. Each turn is graded
on its own: turn 1 with `single-v1`, turn 2 with `single-v1-multi-turn` (the whole conversation, judged on
the second answer); math, reasoning and coding use the `single-math-v1*` prompts with GPT-4's reference
answers from `reference_answer/gpt-4.jsonl` (the inline `reference` field of question.jsonl is not used).
The judge (gpt-4, temperature 0, at most 2,048 tokens) gets the prompt's system message and the rendered
user prompt. The rating is the first `[[x]]` in the judgment, else the first `[x]`, else -1; -1 judgments
are dropped, and the MT-Bench score is the mean of the remaining (question, turn) judgments — not the mean
of the turn means. Intervals resample whole questions (a question's two turns share a topic and a
conversation).

The package: `protocol.py` (decoding, conversations, judge prompt rendering, rating parser, aggregation; no
file access), `data.py` (the bundled FastChat files in `assets/` and the readers of FastChat's JSONL files),
`importing.py` (`evalkit import` of FastChat answer and judgment files), `images.py` (the irrelevant-image
options of the first study's Table 7); the task is here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from evalkit.judges.judge import JudgeCall, JudgeSpec, prompt_sha256
from evalkit.stats import Estimate, Statistic, unit_index
from evalkit.task import FAILURES, DataSpec, Imported, JudgedTask, LoadedData, MetricInfo, TaskOption
from evalkit.tasks.mt_bench.data import (
    JUDGE_PROMPT_FILE,
    QUESTION_FILE,
    REFERENCE_FILE,
    load_questions,
    load_reference_answers,
    official_judge_prompts,
)
from evalkit.tasks.mt_bench.images import MODES, draw_images, read_image_options, with_image
from evalkit.tasks.mt_bench.importing import import_answers, write_answers
from evalkit.tasks.mt_bench.protocol import (
    DEFAULT_TEMPERATURE,
    INVALID,
    JUDGE_GENERATION,
    JUDGE_MODEL,
    MAX_NEW_TOKENS,
    TEMPERATURE,
    Judgment,
    Question,
    clean_answer,
    conversation,
    generation_config,
    judge_prompt_name,
    needs_reference,
    parse_rating_status,
    render_single,
    single_statistics,
)
from evalkit.types import GenerationConfig, Request, Sample, UserError
from evalkit.util.datafiles import sha256_file

#: `--task-option mt_bench.reference=PATH`: another FastChat reference-answer file
REFERENCE_OPTION = "mt_bench.reference"
#: the judge prompts single-answer grading may use, in a fixed order (the judge prompt hash)
SINGLE_PROMPTS = ("single-v1", "single-v1-multi-turn", "single-math-v1", "single-math-v1-multi-turn")
TURNS = (1, 2)


# --- rows -------------------------------------------------------------------------------------------------


def question_of(meta: dict[str, Any]) -> Question:
    return Question(meta["question_id"], meta["category"], tuple(meta["questions"]))


def row_answers(row: dict[str, Any]) -> list[str]:
    """Every turn's answer of a stored row (run or import), cleaned as FastChat stores them."""
    answers = row.get("responses") or [row["response"]]
    return [clean_answer(a) for a in answers]


def _slot(run: int, turn: int) -> str:
    return f"run{run}/turn{turn}"


def _json_metrics(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """NaN (no interval, or no value) → None, so metrics.json is plain JSON and compares equal after a
    round trip."""
    return {
        name: {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in m.items()}
        for name, m in metrics.items()
    }


class MTBench(JudgedTask):
    """MT-Bench single-answer grading, generated and judged by `evalkit run` or imported from FastChat files.

    One row per question (id = question_id, meta: question_id, category, questions): `response` is the
    model's turn-1 answer and every turn's answer is in `responses` (run and imported rows alike). The row's
    `judge` record keeps one judgment per (run, turn):
    `outputs` (raw judgment text), `turns` and `prompts` (judge prompt name) side by side — plus `runs` when
    the judge ran more than once, and `official_scores` as gen_judgment stored them for imported rows.
    `score_row` re-parses the texts with `parse_rating` (`judge_parse` says per output whether `[[x]]`
    parsed, the official `[x]` fallback was used, or nothing parsed); -1 ratings are dropped from every
    mean and counted (`judge_dropped`, metric `dropped`), as show_result does. With several judge runs every
    run's judgments are pooled, each kept judgment weighing the same (the mean of the runs' scores when
    nothing is dropped). `statistics` gives every mean (not the `dropped` count) over whole questions."""

    name = "mt_bench"
    version = "2"
    description = "MT-Bench: 80 two-turn questions, GPT-4 single-answer grading 1-10 per turn"
    data_source = "bundled"
    data_needs = (
        "none: runs with the official FastChat files bundled with evalkit (question.jsonl, "
        "judge_prompts.jsonl, reference_answer/gpt-4.jsonl); --data toy uses them too. Optional: --data-dir "
        "DIR holding a question.jsonl in FastChat's format in place of the bundled questions; "
        "--task-option mt_bench.reference=PATH for another reference-answer file (FastChat reads "
        "reference_answer/<judge model>.jsonl; the gpt-4 file is kept when --judge changes the judge). "
        "--task-option mt_bench.image_dir=FOLDER (and image_seed=N) puts one seeded image from FOLDER in "
        "every turn, mt_bench.image_mode=text-token the literal '<image>\\n' text instead (the first study's "
        "Table 7). Judge: gpt-4 over the OpenAI API. Import instead: --answers FastChat "
        "model_answer/<model>.jsonl, "
        "--judgments model_judgment/gpt-4_single.jsonl (repeatable; rows of the answers' model are used), "
        "--questions question.jsonl (default: the bundled file)"
    )
    headline = "score"
    group = "language instruction-following"
    metric_info = {"dropped": FAILURES}
    default_metric = MetricInfo(1, "score 1–10")
    tax_metrics = ("turn1", "turn2")
    #: the runner asks each request's own settings (`generation_config`); this is the default category's
    generation = GenerationConfig(max_new_tokens=MAX_NEW_TOKENS, temperature=DEFAULT_TEMPERATURE)
    #: MT-Bench has no toy version: --data toy runs the bundled official questions (offline, text only)
    supports_toy = True
    judge_spec = JudgeSpec(f"openai:{JUDGE_MODEL}", temperature=0.0, max_tokens=2048, n_runs=1)
    task_options = {
        "reference": TaskOption("reference answers for math/reasoning/coding (FastChat gpt-4.jsonl format)"),
        "image_dir": TaskOption("a folder of images: each question gets one (by the seed) in every turn"),
        "image_seed": TaskOption("the seed of the image draw (an integer; default 0)"),
        "image_mode": TaskOption(
            "image: the drawn image in every turn; text-token: the literal '<image>\\n' before the first "
            "question and no image, as the first study's LLaVA code sent it",
            choices=MODES,
        ),
    }

    def info(self) -> dict[str, Any]:
        generation = {**self.generation.__dict__, "temperature_by_category": dict(TEMPERATURE)}
        return {**super().info(), "generation": generation}

    # --- data and generation ------------------------------------------------------------------------------

    def load(self, spec: DataSpec) -> LoadedData:
        options = self.read_options(spec)
        if spec.toy or spec.data_dir is None:
            question_path = QUESTION_FILE
        else:
            question_path = spec.data_dir / "question.jsonl"
            if not question_path.is_file():
                raise UserError(
                    f"{question_path} not found: --data-dir must hold MT-Bench's question.jsonl (FastChat "
                    "fastchat/llm_judge/data/mt_bench/question.jsonl); leave --data-dir out to use the "
                    "bundled official copy"
                )
        questions = load_questions(question_path)
        ids = [q.question_id for q in questions]
        if len(set(ids)) != len(ids):
            raise UserError(f"{question_path}: duplicate question_id")
        bad = next((q for q in questions if len(q.turns) != len(TURNS)), None)
        if bad is not None:
            raise UserError(f"{question_path}: question {bad.question_id} has {len(bad.turns)} turns, not 2")
        version = f"MT-Bench ({len(questions)} questions)"
        if spec.limit is not None:
            questions = questions[: spec.limit]
        reference_path = Path(options["reference"] or REFERENCE_FILE).expanduser()
        if not reference_path.is_file():
            raise UserError(
                f"--task-option {REFERENCE_OPTION}={reference_path}: file not found (expected a FastChat "
                "reference-answer JSONL such as data/mt_bench/reference_answer/gpt-4.jsonl)"
            )
        references = load_reference_answers(reference_path)
        image_setting = read_image_options(options)
        drawn, image_info = (
            draw_images(image_setting, [q.question_id for q in questions]) if image_setting else ({}, None)
        )
        samples = []
        for q in questions:
            ref = references.get(q.question_id) if needs_reference(q.category) else None
            if needs_reference(q.category) and (ref is None or len(ref) < len(TURNS)):
                raise UserError(
                    f"{reference_path}: no two-turn reference answer for question {q.question_id} "
                    f"({q.category}), which is graded against one"
                )
            meta = {"question_id": q.question_id, "category": q.category, "questions": list(q.turns)}
            target = list(ref) if ref is not None else None
            messages = conversation(q, 1)
            if image_setting is not None:
                image = drawn.get(q.question_id)
                meta["image_mode"] = image_setting["mode"]
                if image is not None:
                    meta["image"] = image.name
                messages = with_image(messages, image_setting["mode"], str(image) if image else None)
            samples.append(Sample(id=str(q.question_id), messages=messages, target=target, meta=meta))
        info = {
            "version": version,
            "questions": {"file": question_path.name, "sha256": sha256_file(question_path)},
            "questions_bundled": question_path == QUESTION_FILE,
            "reference": {"file": reference_path.name, "sha256": sha256_file(reference_path)},
            "judge_prompts_sha256": sha256_file(JUDGE_PROMPT_FILE),
            "n_questions": len(samples),
        }
        if image_info is not None:  # absent by default, so a run without images keeps its identity
            info["irrelevant_image"] = image_info
        return LoadedData(samples, info)

    def request(self, sample: Sample, seed: int = 0) -> Request:
        return Request(sample.id, sample.messages, generation_config(sample.meta["category"]), seed)

    def n_turns(self, sample: Sample) -> int:
        return len(sample.meta["questions"])

    def turn_request(self, sample: Sample, turn: int, previous: list[str], seed: int = 0) -> Request:
        q = question_of(sample.meta)
        messages = conversation(q, turn, previous)
        if "image_mode" in sample.meta:  # the turn-1 request carries the drawn image, if any
            image = sample.messages[0].images[0] if sample.messages[0].images else None
            messages = with_image(messages, sample.meta["image_mode"], image)
        return Request(sample.id, messages, generation_config(q.category), seed)

    # --- judging ------------------------------------------------------------------------------------------

    def judge_prompt_hash(self) -> str:
        prompts = official_judge_prompts()
        return prompt_sha256(
            *(t for n in SINGLE_PROMPTS for t in (prompts[n].system_prompt, prompts[n].prompt_template))
        )

    def judge_calls(self, row: dict[str, Any], done: list[dict[str, Any]], n_runs: int) -> list[JudgeCall]:
        """One call per (run, turn), each asked once: FastChat never re-asks after an unparseable grade."""
        answered = {d["slot"] for d in done}
        q = question_of(row["meta"])
        answers = row_answers(row)
        references = {q.question_id: row["target"]} if row.get("target") else None
        calls = []
        for run in range(n_runs):
            for turn in TURNS:
                if _slot(run, turn) in answered:
                    continue
                rendered = render_single(q, answers, turn, official_judge_prompts(), references)
                calls.append(JudgeCall(_slot(run, turn), rendered.messages, JUDGE_GENERATION, run))
        return calls

    def judge_record(self, row: dict[str, Any], done: list[dict[str, Any]], n_runs: int) -> dict[str, Any]:
        output = {d["slot"]: d["output"] for d in done}
        category = row["meta"]["category"]
        keys = [(run, turn) for run in range(n_runs) for turn in TURNS]
        record: dict[str, Any] = {
            "outputs": [output[_slot(run, turn)] for run, turn in keys],
            "turns": [turn for _, turn in keys],
            "prompts": [judge_prompt_name(category, turn) for _, turn in keys],
        }
        if n_runs > 1:
            record["runs"] = [run for run, _ in keys]
        return record

    # --- scoring ------------------------------------------------------------------------------------------

    def score(self, response: str, target: Any, meta: dict[str, Any]) -> dict[str, Any]:
        raise UserError("mt_bench rows are scored from their stored judge outputs")

    def score_row(self, row: dict[str, Any]) -> dict[str, Any]:
        parsed = [parse_rating_status(text) for text in row["judge"]["outputs"]]
        scores = [score for score, _ in parsed]
        return {
            "judge_scores": scores,
            "judge_parse": [status for _, status in parsed],
            "judge_dropped": sum(s == INVALID for s in scores),
        }

    def unparsed_judgments(self, row: dict[str, Any]) -> int:
        """Judgments with no rating (score -1), dropped from the means as show_result drops them."""
        return int(row["judge_dropped"])

    def statistics(self, rows: list[dict[str, Any]]) -> dict[str, Statistic]:
        """`score`, `turn1`, `turn2` and `category/*` as functions of weights over questions (a row's
        unit, `unit_index`), each valid judgment of every turn and judge run weighing the same."""
        idx, units = unit_index(rows)
        pairs = [
            (units[u], Judgment(r["meta"]["question_id"], turn, score))
            for r, u in zip(rows, idx, strict=True)
            for turn, score in zip(r["judge"]["turns"], r["judge_scores"], strict=True)
        ]
        categories = {r["meta"]["question_id"]: r["meta"]["category"] for r in rows}
        return single_statistics([j for _, j in pairs], categories, [k for k, _ in pairs])

    def aggregate(self, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        metrics = {name: stat.estimate().to_dict() for name, stat in self.statistics(rows).items()}
        scores = [s for r in rows for s in r["judge_scores"]]
        n_dropped = sum(s == INVALID for s in scores)
        metrics["dropped"] = Estimate(float(n_dropped), math.nan, math.nan, len(scores)).to_dict()
        return _json_metrics(metrics)

    # --- import -------------------------------------------------------------------------------------------

    def import_answers(
        self, answers: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
    ) -> tuple[list[Imported], dict[str, Any]]:
        return import_answers(answers, questions, judgments)

    def write_answers(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
        """FastChat's answer file and single-grading judgment file (`importing.write_answers`)."""
        return write_answers(rows, folder)
