"""MMBench (English) with circular evaluation, VLMEvalKit's answer matching and ChatGPT matcher.

Data: by default lmms-lab/MMBench (`en`) from the hub (`hub`: the dev split, or the test split with
mmbench.split=test, read as the TSV), else the official TSV from --data-dir, or the toy set (--data toy).

Modules: `protocol` (matching, prompts, rotation, fallback; no I/O), `data` (reading the official TSV,
images, circular passes), `hub` (the hub copy read as the TSV), `toy`, `export` (the test-split submission
.xlsx), `lmms_eval` (lmms-eval logs).
MMBench has no official answer-file importer: its answers come from a run or an lmms-eval log.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.judges.judge import JudgeCall, prompt_sha256
from evalkit.stats import Statistic, per_cluster, unit_index
from evalkit.task import COUNT, FAILURES, PERCENT, DataSpec, Imported, JudgedTask, LoadedData, TaskOption
from evalkit.tasks.mmbench.data import Pass, find_tsv, load_passes
from evalkit.tasks.mmbench.hub import SOURCES as HUB_SOURCES
from evalkit.tasks.mmbench.hub import read_hub
from evalkit.tasks.mmbench.protocol import (
    GENERATION,
    JUDGE_SPEC,
    MATCHER_TEMPLATE,
    MAX_TRIES,
    OPTION_HEADER,
    PROMPT_STYLES,
    PROMPTS,
    can_infer,
    fallback_seed,
    matcher_prompt,
    needs_matcher,
    resolve_pass,
)
from evalkit.types import GenerationConfig, Message, Sample, UserError
from evalkit.util.datafiles import toy_label

OPTIONS = {
    "split": TaskOption("which TSV to read from --data-dir", ("dev", "test"), "dev"),
    "file": TaskOption("an explicit TSV file name in --data-dir"),
    "prompt": TaskOption("prompt style", PROMPT_STYLES, "llava"),
    "circular": TaskOption("CircularEval: every rotation of the options", ("on", "off"), "on"),
    "matcher": TaskOption("unread answers: the LLM matcher, or none (toy default)", ("llm", "none"), "llm"),
}
METHODS = ("rule", "llm", "random")


def pass_meta(p: Pass) -> dict[str, Any]:
    """The stored `meta` of a pass's row (what scoring, export and rescore read)."""
    return {
        "index": p.index,
        "g_index": p.g_index,
        "pass": p.k,
        "question": p.question,
        "hint": p.hint,
        "options": p.options,
        "category": p.category,
        "l2_category": p.l2_category,
        "split": p.split,
        "built": p.built,
    }


def _outputs_by_run(done: list[dict[str, Any]], n_runs: int) -> list[list[str]]:
    """Matcher outputs per judge run, in try order (a call's run index is run * MAX_TRIES + try)."""
    out: list[list[str]] = [[] for _ in range(n_runs)]
    for d in done:
        out[d["run"] // MAX_TRIES].append(d["output"])
    return out


def _count(value: float, n: int) -> dict[str, Any]:
    return {"value": value, "ci_low": None, "ci_high": None, "n": n}


def _unit(row: dict[str, Any]) -> tuple[str, Any]:
    """A question's unit key: its cluster (the question), as `evalkit.stats.unit_index` keys rows."""
    return ("cluster", row["cluster"]) if row.get("cluster") is not None else ("id", row["id"])


def _mean(items: list[tuple[Any, float]]) -> Statistic:
    """The mean of one value per unit, in percent, as a function of unit weights."""
    values = np.array([v for _, v in items], dtype=float)
    ones = np.ones(len(values))

    def stat(w: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return 100.0 * (w @ values) / (w @ ones)

    return Statistic(stat, tuple(u for u, _ in items), len(values))


def _total(rows: list[dict[str, Any]], count, n: int) -> Statistic:
    """A count summed over rows, as a function of unit weights."""
    idx, units = unit_index(rows)
    per_unit = per_cluster(np.array([count(r) for r in rows], dtype=float), idx, len(units))
    return Statistic(lambda w: w @ per_unit, units, n)


def question_units(rows: list[dict[str, Any]]) -> list[tuple[Any, dict[str, Any], float]]:
    """(unit key, first pass's meta, hit) per question, in order (see `question_hits`)."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["meta"]["g_index"], []).append(r)
    out = []
    for passes in groups.values():
        first = min(passes, key=lambda r: r["meta"]["pass"])
        runs = np.array([r["correct"] for r in passes], dtype=bool)  # (passes, runs)
        out.append((_unit(first), first["meta"], float(runs.all(axis=0).mean())))
    return out


def question_hits(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], float]]:
    """(first pass's meta, hit) per question, in order: per judge run the question is right only if every
    pass is; the hit is the mean over runs (0 or 1 with one run)."""
    return [(meta, hit) for _, meta, hit in question_units(rows)]


class MMBench(JudgedTask):
    """MMBench. One row per pass: id = the pass's TSV index (`g_index + k·1e6`), `target` its answer letter
    (None on the test split), `cluster` the question. The model sees the image and LLaVA-1.5's prompt
    (hint, question, options, "Answer with the option's letter from the given choices directly."; greedy,
    1,024 new tokens), as LLaVA-1.5's reported numbers were made; `mmbench.prompt=vlmevalkit` sends
    VLMEvalKit's default prompt instead. `--limit N` keeps the first N passes in question order (a question
    cut short is scored on the passes it has, as the official scorer scores a partial prediction file).

    Scoring, per pass and judge run: VLMEvalKit's rules (`can_infer_option`, then `can_infer_text`) read the
    answer; when they cannot, `judge_calls` asks the matcher (gpt-3.5-turbo-0613, the official
    `build_prompt`, one user message) and asks again while the rules cannot read its output, at most 3
    tries (call run index = run × 3 + try, so each try is a fresh call with its own cache entry); then the
    official random fallback, seeded per pass. The official scorer stops asking once a question has a wrong
    pass; here every unread pass is matched (same hits, a few more calls). The judge record keeps the
    matcher outputs per run; `score_row` re-derives everything from it and the stored answer, so `rescore`
    needs no call. A question is a hit only if all its passes are right (with `--judge-runs N`, the mean
    over runs). Metrics (percent, intervals resample questions): overall, vanilla (first pass only),
    category/*, l2/*, split/*, and beside them the pass counts passes/rule, passes/llm, passes/random and
    matcher_unparsed (matcher outputs the rules could not read).

    Options (`--task-option mmbench.KEY=VALUE`): split=dev|test (the split's first file present among
    `CANDIDATES`), file=NAME|PATH, prompt=llava|vlmevalkit, circular=on|off (off: first passes only, the
    "vanilla" protocol), matcher=llm|none (none: no matcher, unread passes take the random fallback; the
    default for --data toy, which has no LLM offline, recorded in the rows and run.json). On the test split
    answers are hidden: no matcher call, no score; `evalkit export RUN_DIR` writes the submission .xlsx."""

    name = "mmbench"
    version = "1"
    description = "MMBench-EN: multiple choice, circular evaluation, ChatGPT answer matcher"
    data_needs = (
        "none by default: read from the hub (lmms-lab/MMBench, config en, the split of mmbench.split; "
        "`evalkit data fetch mmbench` fetches dev and test ahead). For the official files: "
        "--data-dir DIR with MMBench_DEV_EN.tsv (VLMEvalKit) or LLaVA's mmbench_dev_20230712.tsv "
        "(images are inside, base64; decoded once into the cache or --image-dir); "
        "--task-option mmbench.split=test for MMBench_TEST_EN.tsv (answers hidden: export with "
        "evalkit export RUN_DIR); --data toy builds a toy set; "
        "matcher gpt-3.5-turbo-0613"
    )
    headline = "overall"
    group = "visual knowledge"
    metric_info = {"passes/*": COUNT, "matcher_unparsed": FAILURES}
    default_metric = PERCENT
    generation = GENERATION
    supports_toy = True
    judge_spec = JUDGE_SPEC
    task_options = OPTIONS
    lmms_eval_names = ("mmbench_en_dev", "mmbench_en_test")
    lmms_eval_fields = "a gpt_eval_score or submission object with index, question and L2-category"
    hub_sources = tuple(HUB_SOURCES.values())
    export_file = "mmbench_submission.xlsx"

    def load(self, spec: DataSpec) -> LoadedData:
        # the toy world has no LLM matcher offline: unread passes go straight to the official random fallback
        opts = self.read_options(spec, **({"matcher": "none"} if spec.toy else {}))
        path: Path | None = None
        if spec.toy:
            from evalkit.tasks.mmbench.toy import TOY_FILE, default_toy_dir, write_toy_mmbench

            data_dir = write_toy_mmbench(default_toy_dir(spec.seed), seed=spec.seed)
            path = data_dir / TOY_FILE
        elif spec.data_dir is not None:
            path = find_tsv(Path(spec.data_dir), opts["split"], opts["file"])
        elif opts["file"]:
            raise UserError(
                f"mmbench.file={opts['file']} names a TSV in --data-dir: pass --data-dir DIR (without it "
                "mmbench reads lmms-lab/MMBench from the hub)"
            )
        if path is not None:
            passes, info = load_passes(path, spec.image_dir, circular=opts["circular"] == "on")
            info.update(version=toy_label(path.parent) or info["version"])
            info.update(source="toy" if spec.toy else str(path.parent))
        else:
            passes, info = read_hub(opts["split"], circular=opts["circular"] == "on")
        if spec.limit is not None:
            passes = passes[: spec.limit]
        prompt = PROMPTS[opts["prompt"]]
        samples = [
            Sample(
                id=str(p.index),
                messages=(Message("user", prompt(p.question, p.hint, p.options), (p.image,)),),
                target=p.answer,
                cluster=str(p.g_index),
                meta={**pass_meta(p), "matcher": opts["matcher"]},
            )
            for p in passes
        ]
        info.update(
            prompt=opts["prompt"],
            matcher=opts["matcher"],
            answers="hidden" if all(p.answer is None for p in passes) else "given",
        )
        return LoadedData(samples, info)

    def score(self, response: str, target: Any, meta: dict[str, Any]) -> dict[str, Any]:
        raise UserError(f"{self.name} rows are scored from their stored judge record")

    # ---------------------------------------------------------------------------------------- judge

    def judge_prompt_hash(self) -> str:
        return prompt_sha256(MATCHER_TEMPLATE, OPTION_HEADER)

    def judge_calls(self, row: dict[str, Any], done: list[dict[str, Any]], n_runs: int) -> list[JudgeCall]:
        """The next matcher try of every run the rules and earlier tries left unread; none on the test
        split or when the rules read the answer."""
        choices = row["meta"]["options"]
        if row["target"] is None or row["meta"].get("matcher") == "none":
            return []
        if can_infer(row["response"], choices) is not None:
            return []
        spec = self.judge_spec
        gen = GenerationConfig(max_new_tokens=spec.max_tokens, temperature=spec.temperature)
        messages = (Message("user", matcher_prompt(row["meta"]["question"], choices, row["response"])),)
        calls = []
        for run, outputs in enumerate(_outputs_by_run(done, n_runs)):
            if needs_matcher(outputs, choices):
                tries = len(outputs)
                calls.append(JudgeCall(f"run{run}/try{tries + 1}", messages, gen, run * MAX_TRIES + tries))
        return calls

    def judge_record(self, row: dict[str, Any], done: list[dict[str, Any]], n_runs: int) -> dict[str, Any]:
        return {"outputs": _outputs_by_run(done, n_runs)}

    def score_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """Per judge run: the pass's letter, how it was read (rule / llm / random), the matcher tries,
        what the rules read from each matcher output, the seed of a random fallback, whether it is right."""
        if row["target"] is None:
            return {"preds": None, "methods": None, "correct": None}
        choices = row["meta"]["options"]
        results = [
            resolve_pass(row["response"], choices, outputs, row["id"], run)
            for run, outputs in enumerate(row["judge"]["outputs"])
        ]
        return {
            "preds": [r.pred for r in results],
            "methods": [r.method for r in results],
            "matcher_tries": [r.tries for r in results],
            "matcher_parsed": [list(r.parsed) for r in results],
            "fallback_seeds": [
                fallback_seed(row["id"], run) if r.method == "random" else None
                for run, r in enumerate(results)
            ],
            "correct": [r.pred == row["target"] for r in results],
        }

    def unparsed_judgments(self, row: dict[str, Any]) -> int:
        """Passes where the matcher was asked but no output could be read, so the official random
        fallback chose the letter (with `matcher=none` the fallback is the protocol, not a failure)."""
        if row.get("methods") is None:
            return 0
        return sum(m == "random" and t > 0 for m, t in zip(row["methods"], row["matcher_tries"], strict=True))

    # -------------------------------------------------------------------------------------- metrics

    def statistics(self, rows: list[dict[str, Any]]) -> dict[str, Statistic]:
        """Every metric as a function of question weights (a question's passes form one unit, keyed by
        its cluster); each accuracy is over the questions it covers, counts are summed over passes."""
        scored = [r for r in rows if r["target"] is not None]
        out: dict[str, Statistic] = {}
        if scored:
            hits = question_units(scored)
            out["overall"] = _mean([(u, h) for u, _, h in hits])
            first = [r for r in scored if r["meta"]["pass"] == 0]
            if first:
                out["vanilla"] = _mean([(_unit(r), float(np.mean(r["correct"]))) for r in first])
            for key, prefix in (("category", "category"), ("l2_category", "l2"), ("split", "split")):
                names = sorted({m[key] for _, m, _ in hits if m[key] is not None})
                for name in names:
                    out[f"{prefix}/{name}"] = _mean([(u, h) for u, m, h in hits if m[key] == name])
            n_judged = sum(len(r["methods"]) for r in scored)
            for method in METHODS:
                out[f"passes/{method}"] = _total(scored, lambda r, m=method: r["methods"].count(m), n_judged)
            n_out = sum(len(parsed) for r in scored for parsed in r["matcher_parsed"])
            unparsed = lambda r: sum(p is None for parsed in r["matcher_parsed"] for p in parsed)  # noqa: E731
            out["matcher_unparsed"] = _total(scored, unparsed, n_out)
        hidden = [r for r in rows if r["target"] is None]
        if hidden:
            out["passes/unscored"] = _total(hidden, lambda r: 1, len(rows))
        return out

    def aggregate(self, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, stat in self.statistics(rows).items():
            if name.startswith("passes/") or name == "matcher_unparsed":
                out[name] = _count(float(stat.stat(np.ones((1, len(stat.units))))[0]), stat.n)
            else:
                est = stat.estimate().to_dict()
                out[name] = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in est.items()}
        return out

    # ------------------------------------------------------------------------------ lmms-eval, export

    def lmms_eval_matches(self, record: Any) -> bool:
        return "L2-category" in record.metric("gpt_eval_score", "submission") or "L2-category" in (
            record.doc or {}
        )

    def lmms_eval_convert(
        self, records: list[Any], lmms_task: str | None, tmp: Path, data_dir: Path | None, path: Path
    ) -> tuple[list[Imported], dict[str, Any], dict[str, Any]]:
        from evalkit.tasks.mmbench.lmms_eval import convert

        return convert(records, lmms_task, tmp, data_dir, path)

    def export_submission(self, rows: list[dict[str, Any]], path: Path) -> tuple[int, int]:
        """The official submission .xlsx of the rows (`export.write_submission`)."""
        from evalkit.tasks.mmbench.export import write_submission

        return write_submission(rows, path)
