"""AlpacaEval 1.0 (`alpaca_eval_v1`) and 2.0 (`alpaca_eval`): how often the official GPT-4 judge prefers the
model's answer to a reference model's, generated and judged by `evalkit run` or imported from official files.

The package: `protocol.py` (versions, output-order switch, judge prompt filling, parsers, win rate; no file
access), `data.py` (the judge prompts in `assets/`, readers of model_outputs.json and annotations.json, where
a run finds its reference outputs), `hub.py` (the tatsu-lab/alpaca_eval files a run reads by default,
without --data-dir), `length_controlled.py` (the length-controlled win rate: published GLM weights and the
refit), `importing.py` (`evalkit import` of official annotations); the tasks are here.

A run: each of the 805 instructions of the reference model's model_outputs.json is one sample, asked as one
user turn; greedy decoding with at most 2048 new tokens (AlpacaEval mandates no decoding config: each model's
`models_configs/` sets its own, commonly 2048 or 4096 tokens, greedy or temperature 0.7). The judge compares
the answer (`response`) with the reference output (`target`) in the official prompt and order; identical
outputs are not judged (1.5, as official).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.judges.judge import JudgeCall, JudgeSpec, prompt_sha256
from evalkit.stats import Statistic, unit_index
from evalkit.task import (
    COUNT,
    FAILURES,
    PERCENT,
    DataSpec,
    Imported,
    JudgedTask,
    LoadedData,
    MetricInfo,
    TaskOption,
)
from evalkit.tasks.alpaca_eval import length_controlled as lc
from evalkit.tasks.alpaca_eval.data import GlmWeights, load_template, read_reference, reference_file
from evalkit.tasks.alpaca_eval.hub import SOURCES as HUB_SOURCES
from evalkit.tasks.alpaca_eval.hub import locate_files
from evalkit.tasks.alpaca_eval.importing import IMPORT_SOURCE, import_answers, write_answers
from evalkit.tasks.alpaca_eval.protocol import (
    DRAW,
    Version,
    avg_length,
    finite_or_none,
    get_version,
    is_switched,
    judge_messages,
    preference,
    win_rate,
    win_rate_statistic,
)
from evalkit.types import GenerationConfig, Message, Sample, UserError
from evalkit.util.datafiles import sha256_file

#: A re-derived preference and the stored official one agree within this (official files keep 10 decimals).
AGREE_TOL = 1e-6


def _plain(value: float | int | None, n: int) -> dict[str, Any]:
    """A metric with no interval (the report prints an empty CI cell)."""
    return {"value": value, "ci_low": None, "ci_high": None, "n": n}


def _imported(row: dict[str, Any]) -> bool:
    return row["judge"].get("fingerprint", {}).get("source") == IMPORT_SOURCE


def official_judge(version: str) -> JudgeSpec:
    """The version's official judge (evaluators_configs/<annotator>/configs.yaml), one run."""
    v = get_version(version)
    return JudgeSpec(f"openai:{v.judge_model}", v.temperature, v.max_tokens, n_runs=1, parser_version="1")


class AlpacaEvalTask(JudgedTask):
    """AlpacaEval as a task: one row per instruction, the model's answer as the response, the reference
    answer as the target, and the judge's record in `judge` (a run and an import write the same one):

        {"fingerprint": {...}, "outputs": [raw judge output per run] (or [] when there is none: identical
         outputs, or an official file without raw completions), "switched": bool,
         "official_preference": float | None (None in a run)}

    A raw output is the ranking text (1.0) or the OpenAI choice with the first token's top-5 logprobs
    (2.0, `JudgeAnswer.output`). `score_row` parses every output (`run_preferences`, `parse_status`:
    "parsed" or "unparsable", dropped as the official code drops it) and takes their mean as `preference`
    (one run officially); without outputs identical answers get 1.5 and imported 1.0 rows the stored
    official preference. `preference_source` says which; `rescore` reproduces run and import alike.

    Metrics: `win_rate` (percent; value = the official mean) with a 95% percentile-bootstrap interval over
    the validly judged instructions (evalkit's usual interval, 1000 resamples), and beside it the official
    `standard_error` (100 * sem, ddof 1); the official counts, `discrete_win_rate` and `avg_length` as plain
    values; `n_invalid` (instructions without a valid preference, which the official code drops silently),
    `n_unparsable_outputs` (judge outputs that did not parse); `n_from_official_preference` and
    `n_preference_mismatch` (imports: re-derived vs stored official preference). 2.0 imports add
    `length_controlled_win_rate` and `lc_standard_error` (plain values, from the published GLM weights,
    see length_controlled.py) when the import found the weights and the hub-only difficulties; a 2.0 run
    refits the GLM on its judgements when df_gamed.csv is found, else reports `length_controlled_win_rate`
    with value None and a `note` saying what is missing.

    `statistics` (for `evalkit compare`) holds `win_rate` only: the length-controlled win rate is a GLM
    fitted to all rows (or published weights fitted on them), not a function of resampling weights
    without a refit per resample; the other fields are counts or plain values."""

    version_name: str
    headline = "win_rate"
    group = "language instruction-following"
    metric_info = {
        "avg_length": MetricInfo(0, "characters"),
        "standard_error": MetricInfo(0, "%"),
        "lc_standard_error": MetricInfo(0, "%"),
        "n_invalid": FAILURES,
        "n_unparsable_outputs": FAILURES,
        "n_*": COUNT,
    }
    default_metric = PERCENT
    tax_metrics = ("length_controlled_win_rate",)
    import_usage = "--answers model_outputs.json --judgments annotations.json"
    generation = GenerationConfig(max_new_tokens=2048, temperature=0.0)

    @property
    def protocol(self) -> Version:
        return get_version(self.version_name)

    def info(self) -> dict[str, Any]:
        v = self.protocol
        return {
            **super().info(),
            "alpaca_eval_version": v.name,
            "annotator": v.annotator,
            "judge_model": v.judge_model,
            "reference": v.reference,
        }

    # --------------------------------------------------------------------------------------------- data

    def load(self, spec: DataSpec) -> LoadedData:
        v = self.protocol
        options = self.read_options(spec)
        data_dir, hub = spec.data_dir, None
        if data_dir is None and not options["reference"] and not spec.toy:  # no toy set: --data toy says so
            data_dir, hub = locate_files(self.name, v.name, self._instead())
        path = reference_file(self.name, v, data_dir, options["reference"], self.import_usage)
        rows = read_reference(path, v.name)
        samples = [
            Sample(
                id=str(i),
                messages=(Message("user", row["instruction"]),),
                target=row["output"],
                meta={"index": i, "dataset": row.get("dataset"), "reference": v.reference},
            )
            for i, row in enumerate(rows)
        ]
        if spec.limit is not None:
            samples = samples[: spec.limit]
        info: dict[str, Any] = {
            "version": f"AlpacaEval {v.name} ({len(rows)} instructions)",
            "files": {path.name: sha256_file(path)},
            "alpaca_eval_version": v.name,
            "reference": v.reference,
            "n_instructions": len(rows),
            "length_controlled": dict(lc.V1_LC_NOTE),
        }
        if v.name == "2.0":
            gamed = lc.gamed_file(self.name, data_dir, options["df_gamed"])
            if gamed is None:
                info["length_controlled"] = {"computed": False, "note": lc.REFIT_NOTE}
            else:
                refit = lc.refit_record(gamed)
                if hub is not None:  # the snapshot's file name, not the blob it links to
                    refit["df_gamed"] = str(gamed.absolute())
                for sample in samples:
                    sample.meta["lc_refit"] = refit
                info["files"][gamed.name] = refit["sha256"]
                info["length_controlled"] = {"computed": True, "note": f"GLM refitted with {gamed.name}"}
        if hub is not None:
            info.update(hub, version=f"hub {hub['hub']['repo']} ({path.name}, {len(rows)} instructions)")
            info["hub"]["rows"] = len(rows)
        return LoadedData(samples, info)

    def _instead(self) -> str:
        """The other ways to give a run its reference outputs (said when the hub cache lacks them)."""
        v = self.protocol
        return (
            f"pass --data-dir DIR holding results/{v.reference}/model_outputs.json (a checkout of "
            f"github.com/tatsu-lab/alpaca_eval) or {v.hub_file}, "
            f"or --task-option {self.name}.reference=PATH; "
            f"to score outputs the official judge already judged use "
            f"`evalkit import --task {self.name} {self.import_usage}`"
        )

    def score(self, response: str, target: Any, meta: dict[str, Any]) -> dict[str, Any]:
        raise UserError(f"{self.name} rows are scored from their stored judge outputs")

    # -------------------------------------------------------------------------------------------- judge

    def judge_prompt_hash(self) -> str:
        return prompt_sha256(load_template(self.version_name))

    def judge_generation(self) -> GenerationConfig:
        v = self.protocol
        return GenerationConfig(
            max_new_tokens=v.max_tokens, temperature=v.temperature, top_logprobs=v.top_logprobs or 0
        )

    def judge_calls(self, row: dict[str, Any], done: list[dict[str, Any]], n_runs: int) -> list[JudgeCall]:
        """One call per run (slot `run<k>`, no re-ask: an unparsable answer is dropped, as official);
        none when the two outputs are identical."""
        if row["response"] == row["target"]:
            return []
        answered = {d["slot"] for d in done}
        template = load_template(self.version_name)
        messages, _ = judge_messages(template, row["prompt"], row["target"], row["response"])
        gen = self.judge_generation()
        return [JudgeCall(f"run{k}", messages, gen, k) for k in range(n_runs) if f"run{k}" not in answered]

    def judge_record(self, row: dict[str, Any], done: list[dict[str, Any]], n_runs: int) -> dict[str, Any]:
        by_run = {d["run"]: d["output"] for d in done}
        return {
            "outputs": [by_run[k] for k in range(n_runs) if k in by_run],
            "switched": is_switched(row["prompt"]),
            "official_preference": None,
        }

    # ------------------------------------------------------------------------------------------ scoring

    def score_row(self, row: dict[str, Any]) -> dict[str, Any]:
        judge = row["judge"]
        official = judge.get("official_preference")
        official = math.nan if official is None else float(official)
        official = DRAW if official == 0 else official  # the legacy draw, as win_rate reads it
        outputs = judge.get("outputs") or []
        runs = [preference(self.version_name, o, bool(judge["switched"])) for o in outputs]
        parsed = [p for p in runs if not math.isnan(p)]
        if outputs:
            p = math.fsum(parsed) / len(parsed) if parsed else math.nan
            source = "judge_output"
        elif row["response"] == row["target"]:
            p, source = DRAW, "identical_outputs"
        else:
            p, source = official, "official_preference"
        agrees = None
        if _imported(row):
            agrees = bool((math.isnan(p) and math.isnan(official)) or abs(p - official) <= AGREE_TOL)
        return {
            "preference": finite_or_none(p),
            "preference_source": source,
            "run_preferences": [finite_or_none(x) for x in runs],
            "parse_status": ["unparsable" if math.isnan(x) else "parsed" for x in runs],
            "agrees_with_official": agrees,
        }

    def unparsed_judgments(self, row: dict[str, Any]) -> int:
        """Judge runs whose output gave no preference (dropped, as the official code drops them)."""
        return sum(status == "unparsable" for status in row["parse_status"])

    def statistics(self, rows: list[dict[str, Any]]) -> dict[str, Statistic]:
        """`win_rate` over the validly judged instructions (units: instruction ids). The length-controlled
        win rate is left out: it comes from a GLM fitted to all the rows (or from published weights), so
        a resample would need its own refit; it has no interval either."""
        idx, units = unit_index(rows)
        prefs = [math.nan if r["preference"] is None else r["preference"] for r in rows]
        return {"win_rate": win_rate_statistic(prefs, [units[i] for i in idx])}

    def aggregate(self, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        n = len(rows)
        prefs = [math.nan if r["preference"] is None else r["preference"] for r in rows]
        w = win_rate(prefs)
        est = self.statistics(rows)["win_rate"].estimate()
        out: dict[str, dict[str, Any]] = {
            "win_rate": {**est.to_dict(), "value": w.win_rate, "n": w.n_total},
            "standard_error": _plain(w.standard_error, w.n_total),
            "discrete_win_rate": _plain(w.discrete_win_rate, w.n_total),
            "n_wins": _plain(w.n_wins, n),
            "n_wins_base": _plain(w.n_wins_base, n),
            "n_draws": _plain(w.n_draws, n),
            "n_total": _plain(w.n_total, n),
            "n_invalid": _plain(w.n_invalid, n),
            "n_unparsable_outputs": _plain(
                sum(r.get("parse_status", []).count("unparsable") for r in rows), n
            ),
            "avg_length": _plain(avg_length([r["response"] for r in rows]), n),
            "n_from_official_preference": _plain(
                sum(r["preference_source"] == "official_preference" for r in rows), n
            ),
            "n_preference_mismatch": _plain(sum(r["agrees_with_official"] is False for r in rows), n),
        }
        glm = [r["meta"].get("lc") for r in rows]
        if glm and all(g is not None for g in glm):
            first = glm[0]
            difficulty = [g["instruction_difficulty"] for g in glm]
            value, se = lc.lc_from_weights(
                GlmWeights(**first["model_weights"]),
                GlmWeights(**first["baseline_weights"]),
                None if any(d is None for d in difficulty) else np.asarray(difficulty, dtype=float),
            )
            out["length_controlled_win_rate"] = _plain(value, n)
            out["lc_standard_error"] = _plain(se, n)
        elif rows and all(r["meta"].get("lc_refit") for r in rows):
            fit, note = lc.refit_rows(rows)
            out["length_controlled_win_rate"] = {**_plain(fit and fit.value, n), "note": note}
            out["lc_standard_error"] = _plain(fit and fit.standard_error, n)
        elif self.version_name == "2.0" and not all(_imported(r) for r in rows):
            out["length_controlled_win_rate"] = {**_plain(None, n), "note": lc.REFIT_NOTE}
        return out

    # ------------------------------------------------------------------------------------------- import

    def import_answers(
        self, answers: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
    ) -> tuple[list[Imported], dict[str, Any]]:
        names = {t.version_name: t.name for t in (AlpacaEval2, AlpacaEval1)}
        return import_answers(self, names, answers, questions, data_dir, judgments)

    def write_answers(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
        """model_outputs.json and the annotator's annotations.json (`importing.write_answers`)."""
        return write_answers(self, rows, folder)


class AlpacaEval2(AlpacaEvalTask):
    name = "alpaca_eval"
    version = "2.0"
    version_name = "2.0"
    judge_spec = official_judge("2.0")
    task_options = {
        "reference": TaskOption("the reference outputs (gpt4_1106_preview model_outputs.json)"),
        "df_gamed": TaskOption("df_gamed.csv, for the length-controlled win rate's GLM refit"),
    }
    description = "AlpacaEval 2.0 win rate against gpt4_1106_preview (GPT-4 Turbo logprob judge)"
    hub_sources = (HUB_SOURCES["2.0"],)
    data_needs = (
        "run: none by default: read from the hub (tatsu-lab/alpaca_eval, alpaca_eval_gpt4_baseline.json and "
        "df_gamed.csv; `evalkit data fetch alpaca_eval` fetches them ahead); for local files "
        "--data-dir holding results/gpt4_1106_preview/model_outputs.json (a checkout of "
        "github.com/tatsu-lab/alpaca_eval) or alpaca_eval_gpt4_baseline.json (Hugging Face dataset "
        "tatsu-lab/alpaca_eval), or --task-option alpaca_eval.reference=PATH; judged by gpt-4-1106-preview "
        "(top-5 logprobs); the length-controlled win rate needs df_gamed.csv (Hugging Face dataset "
        "tatsu-lab/alpaca_eval) in --data-dir or --task-option alpaca_eval.df_gamed=PATH. "
        "import: --answers the model_outputs.json, --judgments the official "
        "annotations.json (weighted_alpaca_eval_gpt4_turbo); for the length-controlled win rate of a "
        f"published model, --data-dir holding {lc.DIFFICULTY_FILE} "
        "(Hugging Face dataset tatsu-lab/alpaca_eval) "
        f"and the published GLM weights {lc.WEIGHTS_FILE} (alpaca_eval repository, or the checkout itself)"
    )


class AlpacaEval1(AlpacaEvalTask):
    name = "alpaca_eval_v1"
    version = "1.0"
    version_name = "1.0"
    judge_spec = official_judge("1.0")
    task_options = {"reference": TaskOption("the reference outputs (text_davinci_003 model_outputs.json)")}
    description = "AlpacaEval 1.0 win rate against text_davinci_003 (GPT-4 ranking judge)"
    hub_sources = (HUB_SOURCES["1.0"],)
    data_needs = (
        "run: none by default: read from the hub (tatsu-lab/alpaca_eval, alpaca_eval.json; `evalkit data "
        "fetch alpaca_eval_v1` fetches it ahead); for local files "
        "--data-dir holding results/text_davinci_003/model_outputs.json (a checkout of "
        "github.com/tatsu-lab/alpaca_eval) or alpaca_eval.json (Hugging Face dataset tatsu-lab/alpaca_eval), "
        "or --task-option alpaca_eval_v1.reference=PATH; judged by gpt-4 (ranking text). import: --answers "
        "the model_outputs.json, --judgments the official annotations.json (alpaca_eval_gpt4)"
    )
