"""The first study's pipeline (Li et al. 2024) in the toy world: does DPO on judged pairs restore the
language side that visual instruction tuning cost?

    from evalkit.experiments.toy_study_a import StudySettings, run_study
    result = run_study("work/", StudySettings(seed=0))
    result.comparisons["dpo"], result.visual_stage

Stages, each kept when finished (a re-run redoes no finished work):

1. `data/`: `evalkit.toy.alignment_data` with NO text-only conversations in the SFT mix (`n_text=0`): the
   visual stage that degrades the language side;
2. `base/` (the language stage, as in `toy_alignment`) and `sft/` (the biased visual instructions,
   without text-only data): the degraded checkpoint;
3. `annotate/`: the study's data side, `evalkit annotate` (`evalkit.annotation`). Prompts: the toy
   preference set's image questions (per scene of `alignment_data`'s pair scenes, disjoint from the
   evaluation images: one description and two existence questions; `data/bdhs_source.jsonl`), each with
   its faithful answer as the reference, as the study's prompts (LRV-Instruct and SciGraphQA image
   questions) came with dataset answers. The SFT checkpoint samples 4 answers per prompt at temperature
   0.7, the toy judge (`evalkit.toy.judge`, through the judge layer, shown the image as the study's judge
   was, though it reads only the text) rates each on the five attributes, and the pairs are best vs worst
   quality with groups of gap < 2 dropped;
4. `dpo/`: DPO from `sft/` on those pairs (the settings of `toy_alignment`'s DPO arm);
5. `eval/<name>/`: base, sft and dpo on toy POPE, AMBER, Object HalBench and toy_language;
6. `study_a.json`: per checkpoint and metric the value, and the paired comparisons DPO − SFT and SFT −
   base (95% bootstrap intervals, `toy_alignment.compare_runs`), plus the annotation counts and where the
   pairs' signal lies (`signal`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evalkit.annotation.pipeline import ANNOTATIONS
from evalkit.experiments.toy_alignment import (
    METRICS,
    Settings,
    _check_settings,
    _Clock,
    _headline,
    compare_runs,
    toy_plan,
    train_log_trends,
)
from evalkit.util.environment import torch_threads

#: the comparison's metrics: toy_alignment's, and how often a language prompt gets an answer at all
STUDY_METRICS = (*METRICS, ("toy_language.answered", +1))
#: the quality attributes, as `evalkit annotate` names them in its files
QUALITY = ("helpfulness", "correctness", "coherence")
LANGUAGE = ("toy_language.precision", "toy_language.well_formed", "toy_language.answered")


@dataclass
class StudySettings:
    """The toy_alignment sizes (without text-only SFT data) plus the annotation rules."""

    seed: int = 0
    n_language: int = 1200
    base_steps: int = 150
    n_sft: int = 600
    n_prompts: int = 300  # prompt scenes (3 image questions each)
    sft_steps: int = 300
    dpo_steps: int = 60
    dpo_batch: int = 16
    samples: int = 4
    temperature: float = 0.7
    max_new_tokens: int = 32
    min_gap: int = 2
    judge: str = "toy-judge"
    eval_limit: int | None = None
    #: compare's fewest common samples and units (20; the tests' tiny runs lower it)
    min_common: int = 20
    threads: int | None = 1
    save_every: int = 50

    def alignment(self) -> Settings:
        return Settings(
            seed=self.seed,
            n_language=self.n_language,
            base_steps=self.base_steps,
            n_sft=self.n_sft,
            n_pairs=self.n_prompts,
            n_text=0,
            sft_steps=self.sft_steps,
            dpo_steps=self.dpo_steps,
            dpo_batch=self.dpo_batch,
            bdhs=False,
            eval_limit=self.eval_limit,
            threads=self.threads,
            save_every=self.save_every,
        )


@dataclass
class StudyResult:
    work: Path
    settings: StudySettings
    runs: dict[str, str]
    metrics: dict[str, dict[str, Any]]
    #: "dpo": DPO − SFT rows; "sft": SFT − base rows (the visual stage)
    comparisons: dict[str, list[dict[str, Any]]]
    annotation: dict[str, Any]
    trend: dict[str, Any]
    #: what the pairs and the answers hold (`signal`): pairs by question kind, which attributes tell the
    #: pair's answers apart, and per checkpoint the share of text-only questions answered yes/no
    signal: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def restores(self) -> bool:
        """DPO raises every language metric the visual stage lowered beyond its interval, beyond its own."""
        lost = [
            r["metric"]
            for r in self.comparisons["sft"]
            if r["metric"] in LANGUAGE and r["verdict"] == "worse"
        ]
        gained = {r["metric"] for r in self.comparisons["dpo"] if r["verdict"] == "better"}
        return bool(lost) and all(m in gained for m in lost)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["work"] = str(self.work)
        out["restores"] = self.restores()
        return out


def signal(annotate_dir: Path, runs: dict[str, Path]) -> dict[str, Any]:
    """Where the preference signal lies: the pairs by question kind (the prompt id's suffix: describe, yes,
    no), how many pairs differ in each quality attribute, the share of samples not rated fully coherent,
    and per checkpoint the share of `toy_language` answers that begin with yes or no (the visual stage's
    existence-question habit on a text-only question)."""
    from evalkit.store import RunStore

    rows = [json.loads(x) for x in (annotate_dir / "dpo.jsonl").read_text().splitlines() if x.strip()]
    samples = [json.loads(x) for x in (annotate_dir / ANNOTATIONS).read_text().splitlines() if x.strip()]
    rated = [r["ratings"] for r in samples if r.get("ratings")]
    yes_no = {}
    for name, run in runs.items():
        answers = [r.get("response") or "" for r in RunStore(run).read_samples("toy_language")]
        first = [a.strip().split()[0].strip(".,").lower() if a.strip() else "" for a in answers]
        yes_no[name] = sum(w in ("yes", "no") for w in first) / len(first) if first else None
    return {
        "pairs_by_kind": dict(Counter(r["id"].rsplit("-", 1)[-1] for r in rows)),
        "pairs_differing_in": {
            a: sum(r["scores"]["chosen"][a] != r["scores"]["rejected"][a] for r in rows) for a in QUALITY
        },
        "samples_not_fully_coherent": sum(r["coherence"] < 4 for r in rated) / len(rated) if rated else None,
        "language_answers_yes_no": yes_no,
    }


def annotate_stage(data: Path, work: Path, s: StudySettings) -> None:
    """`evalkit annotate` (`evalkit.annotation.pipeline.annotate`) into WORK/annotate, unless finished: the
    pair scenes' image questions (`bdhs_source.jsonl`, their faithful answers as the references), sampled
    from WORK/sft, rated by the toy judge through the judge layer (its cache in WORK/judge_cache.sqlite)."""
    from evalkit.annotation.pipeline import annotate, attribute_judge
    from evalkit.judges.cache import JudgeCache
    from evalkit.models.base import load_backend

    if (work / "annotate" / "summary.json").is_file():
        return
    cache = JudgeCache(work / "judge_cache.sqlite")
    judge = attribute_judge(load_backend(s.judge), max_tokens=256, cache=cache)
    try:
        annotate(
            data / "bdhs_source.jsonl",
            str(work / "sft"),
            work / "annotate",
            judge=judge,
            samples=s.samples,
            temperature=s.temperature,
            max_new_tokens=s.max_new_tokens,
            seed=s.seed,
            min_gap=s.min_gap,
            response_as_reference=True,
        )
    finally:
        cache.close()


def run_study(
    work: str | Path, settings: StudySettings | None = None, *, say=None, progress=False
) -> StudyResult:
    """Run (or finish) every stage in `work`; see the module docstring."""
    from evalkit.experiments.align import model_path, run_stages
    from evalkit.toy.alignment_data import write_alignment_data
    from evalkit.toy.model import ensure_toy_model

    s = settings or StudySettings()
    a = s.alignment()
    work = Path(work).expanduser()
    work.mkdir(parents=True, exist_ok=True)
    _check_settings(work / "settings.json", s)  # type: ignore[arg-type]
    clock = _Clock(say or (lambda m: None))
    with torch_threads(s.threads):
        with clock.stage("data", skipped=False):
            sizes = {"n_sft": a.n_sft, "n_pairs": a.n_pairs, "n_text": 0, "n_language": a.n_language}
            data = write_alignment_data(work / "data", seed=s.seed, **sizes)
            toy = str(ensure_toy_model())
        plan = toy_plan(work, data, toy, a, progress)
        plan.checkpoints["dpo"]["data"] = str(work / "annotate" / "dpo.jsonl")

        def annotate_step() -> None:
            with clock.stage("annotate", skipped=(work / "annotate" / "summary.json").is_file()):
                annotate_stage(data, work, s)

        runs = run_stages(
            plan, progress=progress, say=lambda m: None, stage=clock.stage, before={"dpo": annotate_step}
        )
    dpo_dir = Path(model_path(plan, "dpo"))
    result = StudyResult(
        work=work,
        settings=s,
        runs={k: str(v) for k, v in runs.items()},
        metrics={name: _headline(run) for name, run in runs.items()},
        comparisons={
            "dpo": compare_runs(runs["dpo"], runs["sft"], STUDY_METRICS, s.min_common),
            "sft": compare_runs(runs["sft"], runs["base"], STUDY_METRICS, s.min_common),
        },
        annotation=json.loads((work / "annotate" / "summary.json").read_text()),
        trend=train_log_trends(dpo_dir / "train_log.jsonl"),
        signal=signal(work / "annotate", runs),
        timings=clock.timings,
    )
    (work / "study_a.json").write_text(json.dumps(result.to_dict(), indent=1, default=str) + "\n")
    return result
