"""The toy-world alignment experiment: SFT stage, then DPO and BDHS, each checkpoint evaluated and compared.

    from evalkit.experiments.toy_alignment import Settings, run_experiment
    result = run_experiment("work/", Settings())
    result.claim_holds("dpo"), result.comparisons["dpo"]

Stages (each writes into the work folder, and is skipped when its output is complete, so a re-run after a
crash redoes no finished work; training stages resume from their last save). Stages 2-5 are an align plan
(`toy_plan`: checkpoints base, sft, dpo, bdhs trained from the toy model into the work folder) run by
`evalkit.experiments.align.run_stages`, as `evalkit align` runs a YAML plan; writing the BDHS pairs is a
step the plan runs before `bdhs/` trains:

1. `data/`: the training files of `evalkit.toy.alignment_data` (text-only conversations for the language
   stage, biased visual instructions mixed with more of them, pairs whose rejected answer names an absent
   co-occurring object, BDHS source answers);
2. `base/`: the language stage, `evalkit train --method sft` from the toy model on text-only conversations
   about which objects go together: the base model, with a language side (scored by `toy_language`) that
   the visual stage can cost, as a visual-instruction stage starts from a language model;
   `sft/`: `evalkit train --method sft` from `base/` on the biased instructions (full fine-tuning, vision
   tower included: it has to learn to see as well as to follow the bias);
3. `dpo/`: DPO from `sft/` on the pairs (full fine-tuning, frozen reference = the SFT model);
4. `bdhs_pairs.jsonl`: BDHS (`evalkit.training.bdhs`) with the SFT model writing the rejected answers for
   the same prompts and chosen answers as the pairs; `bdhs/`: DPO from `sft/` on them. The similarity
   check uses the `bag-of-words` embedder (`evalkit.training.embedding`: the sentence-embedding models are
   optional packages, and the toy answers are lists of object names, for which word overlap is what
   similarity means);
5. `eval/<name>/`: `evalkit run` of every checkpoint on toy POPE, AMBER, Object HalBench and toy_language
   (`evalkit.runner.evaluate`, the AMBER `basic` NLP backend so numbers do not depend on which optional NLP
   packages are installed);
6. `alignment.json`: per aligned checkpoint and metric, value, difference to the SFT checkpoint with a 95%
   paired bootstrap interval over the same units (`evalkit compare`'s), verdict; the same for the SFT
   checkpoint against the base (`visual_stage`); the train-log trends.

BDHS needs a model that answers from its language prior when it cannot see: its rejected answers are
meant to be the hallucinations that prior produces. A model fine-tuned only on prompts with images writes
run-on lists when the image is masked ("tree cake, car car car ..."), naming absent objects no more often
co-occurring than chance, and DPO on those pairs does not lower the description metrics. The SFT data
therefore mixes in text-only conversations about which objects go together, as LLaVA-1.5's SFT mix holds
ShareGPT conversations (`evalkit.toy.alignment_data`); with them the masked model writes fluent, typical
scenes. The rejected answers are sampled at `bdhs_temperature` 0.5: the paper leaves the temperature open,
and the benchmarks decode greedily, so the hallucinations they count are the mode of the policy's prior,
not its tail. `bdhs_stats["descriptions"]` says how many of the rejected descriptions' absent objects are
the scene's co-occurring ones, against chance.

Torch runs on `Settings.threads` threads (1 by default) during the experiment: a model this small gains
little from more, and a shared machine's other load makes several threads spin and slow down many-fold.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.experiments.align import AlignPlan, model_path, run_stages
from evalkit.store import RunStore
from evalkit.util.environment import torch_threads

TASKS = "pope,amber,objhal,toy_language"
TASK_OPTIONS = {"amber.nlp": "basic"}

# ------------------------------------------------------------------------------------- paired comparison
# `evalkit compare`'s paired bootstrap (`evalkit.analysis.compare.compare_runs`): each task's own
# statistics, one resample matrix over the images both runs answered, applied to both arms. The
# experiment's verdict is the 95% interval of the difference excluding 0 in the metric's better direction.

#: (metric key, +1 higher is better / -1 lower is better)
METRICS: tuple[tuple[str, int], ...] = (
    ("pope.f1_mean", +1),
    ("pope.adversarial/f1", +1),
    ("amber.chair", -1),
    ("amber.hal", -1),
    ("amber.cover", +1),
    ("amber.existence/f1", +1),
    ("objhal.CHAIRs", -1),
    ("objhal.CHAIRi", -1),
    ("objhal.obj_recall", +1),
    ("toy_language.precision", +1),
    ("toy_language.well_formed", +1),
)
#: the metrics the claim is checked on ("lowers the toy hallucination metrics and raises the toy POPE F1")
CLAIMED = ("pope.f1_mean", "amber.chair", "amber.hal", "objhal.CHAIRs", "objhal.CHAIRi")


def interval_verdict(diff: float, low: float, high: float, better: int) -> str:
    if low > 0 or high < 0:
        return "better" if (diff > 0) == (better > 0) else "worse"
    return "no significant change"


def compare_runs(
    run_dir: Path, reference_dir: Path, metrics=METRICS, min_common: int = 20
) -> list[dict[str, Any]]:
    """Every metric of `metrics`: `run_dir` against `reference_dir` on their common answered samples
    (`min_common`: compare's fewest common samples and units; lower only for the tests' tiny runs)."""
    from evalkit.analysis.compare import compare_runs as paired

    # every toy set has far more than compare's 20 common units; a metric without an interval (AMBER's F1
    # against a base that never answers yes/no: 0/0 in every resample) is reported as n/a, not refused
    keys = [k for k, _ in metrics]
    result = paired(reference_dir, run_dir, metrics=keys, refuse_nan=False, min_common=min_common)
    found = {f"{m.task}.{m.metric}": m for m in result.metrics}
    out = []
    for key, better in metrics:
        m = found.get(key)
        if m is None:
            continue
        out.append(
            {
                "metric": key,
                "better": "higher" if better > 0 else "lower",
                "value": m.new,
                "reference": m.base,
                "diff": m.diff,
                "ci_low": m.ci_low,
                "ci_high": m.ci_high,
                "verdict": interval_verdict(m.diff, m.ci_low, m.ci_high, better),
                "n_samples": m.n_samples,
                "n_clusters": m.n_units,
            }
        )
    return out


# ------------------------------------------------------------------------------------------- experiment


@dataclass
class Settings:
    """Sizes and hyper-parameters; the defaults are the full experiment (`benchmarks/toy_alignment.py`)."""

    seed: int = 0
    n_language: int = 1200  # text-only conversations of the language stage (`base/`)
    base_steps: int = 150
    n_sft: int = 600  # SFT scenes (3 examples each)
    n_pairs: int = 300  # preference scenes (3 pairs each; the BDHS source has the same prompts)
    n_text: int = 300  # text-only SFT conversations (`alignment_data`: LLaVA-1.5's SFT mixes them too)
    sft_steps: int = 300
    sft_lr: float = 1e-3
    sft_batch: int = 32
    dpo_steps: int = 60
    dpo_lr: float = 5e-5
    dpo_batch: int = 16
    beta: float = 0.1
    bdhs: bool = True
    #: BDHS: the share of the 9 image positions left visible (the paper's 1 − ρ_th = 0.01 keeps none of 9;
    #: 0.11, about one of 9, moved the metrics no differently)
    bdhs_keep: float = 0.01
    #: the BDHS sampling temperature: the benchmarks decode greedily (see the module docstring)
    bdhs_temperature: float = 0.5
    eval_limit: int | None = None  # per task (None: the whole toy sets)
    threads: int | None = 1  # torch threads during the experiment (None: leave as is)
    save_every: int = 50


@dataclass
class Result:
    work: Path
    settings: Settings
    checkpoints: dict[str, str]
    runs: dict[str, str]
    metrics: dict[str, dict[str, Any]]  # checkpoint -> metric key -> value
    comparisons: dict[str, list[dict[str, Any]]]  # aligned checkpoint -> compare_runs rows (against SFT)
    visual_stage: list[dict[str, Any]]  # compare_runs rows of the SFT checkpoint against the base
    trends: dict[str, dict[str, Any]]  # aligned checkpoint -> train-log trends
    timings: dict[str, dict[str, Any]]  # stage -> {wall_s, cpu_s, skipped}
    bdhs_stats: dict[str, Any] | None = None

    def claim_holds(self, name: str) -> bool:
        """Every `CLAIMED` metric moved the right way beyond its interval, the loss fell, the margin rose."""
        return name in self.comparisons and not self.claim_misses(name)

    def claim_misses(self, name: str) -> list[str]:
        """The parts of `claim_holds` that `name` misses, as "metric: verdict" (or "loss does not fall")."""
        rows = {r["metric"]: r for r in self.comparisons.get(name, [])}
        trend = self.trends.get(name, {})
        misses = [
            f"{k}: {rows.get(k, {}).get('verdict', 'not measured')}"
            for k in CLAIMED
            if rows.get(k, {}).get("verdict") != "better"
        ]
        misses += ["loss does not fall"] * (not trend.get("loss_falls"))
        return misses + ["margin does not rise"] * (not trend.get("margin_rises"))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["work"] = str(self.work)
        out["claim"] = {name: self.claim_holds(name) for name in self.comparisons}
        return out


def train_log_trends(log_path: Path) -> dict[str, Any]:
    """Loss and reward margin over the first and the last tenth of the steps."""
    rows = [json.loads(x) for x in Path(log_path).read_text().splitlines() if x.strip()]
    n = max(1, len(rows) // 10)

    def mean(key: str, part: list[dict[str, Any]]) -> float:
        return float(np.mean([r[key] for r in part]))

    out: dict[str, Any] = {"steps": len(rows)}
    for key, name in (("loss", "loss"), ("rewards/margins", "margin"), ("rewards/accuracies", "accuracy")):
        if rows and key in rows[0]:
            out[name] = {"first": mean(key, rows[:n]), "last": mean(key, rows[-n:])}
    out["loss_falls"] = "loss" in out and out["loss"]["last"] < out["loss"]["first"]
    out["margin_rises"] = "margin" in out and out["margin"]["last"] > out["margin"]["first"]
    return out


class _Clock:
    def __init__(self, say: Callable[[str], None]):
        self.timings: dict[str, dict[str, Any]] = {}
        self.say = say

    @contextmanager
    def stage(self, name: str, skipped: bool):
        self.say(f"[{name}] {'done already, skipped' if skipped else 'running'}")
        t0, c0 = time.perf_counter(), time.process_time()
        yield
        self.timings[name] = {
            "wall_s": round(time.perf_counter() - t0, 2),
            "cpu_s": round(time.process_time() - c0, 2),
            "skipped": skipped,
        }


def _write_bdhs_pairs(sft_dir: Path, source: Path, out: Path, s: Settings) -> dict[str, Any]:
    from evalkit.toy.alignment_data import rejected_description_stats
    from evalkit.training.batching import Encoder
    from evalkit.training.bdhs import BdhsConfig, bdhs_pairs
    from evalkit.training.data import load_sft
    from evalkit.training.embedding import BagOfWords
    from evalkit.training.model_setup import load_model

    model, processor = load_model(str(sft_dir))
    model.eval()
    examples = load_sft(source).items
    config = BdhsConfig(seed=s.seed, keep=s.bdhs_keep, temperature=s.bdhs_temperature)
    pairs, stats = bdhs_pairs(model, Encoder(processor), examples, BagOfWords(), config)
    rows = [
        {"id": p.id, "image": p.image, "prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
        for p in pairs
    ]
    tmp = out.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stats = {
        **stats,
        "embedder": BagOfWords.fingerprint,
        "pairs_written": len(rows),
        "descriptions": rejected_description_stats(rows, source.parent),
    }
    out.with_name(out.stem + "_stats.json").write_text(json.dumps(stats, indent=1, default=str))
    os.replace(tmp, out)
    return stats


def _headline(run_dir: Path) -> dict[str, Any]:
    metrics = RunStore(run_dir).read_metrics()
    out = {}
    for key, _ in METRICS:
        name, metric = key.split(".", 1)
        task = metrics.get(name, {})
        entry = task.get("metrics", task).get(metric)
        if entry is not None:
            out[key] = entry
    return out


def _check_settings(path: Path, s: Settings) -> None:
    """Finished stages are reused only by a run with the same settings (the thread count aside)."""
    from evalkit.types import UserError

    mine = {k: v for k, v in asdict(s).items() if k != "threads"}
    if path.is_file():
        old = {k: v for k, v in json.loads(path.read_text()).items() if k != "threads"}
        if old != mine:
            diff = ", ".join(sorted(k for k in mine if old.get(k) != mine[k]))
            raise UserError(
                f"{path.parent} holds an experiment with other settings ({diff}); use another folder"
            )
    else:
        path.write_text(json.dumps(asdict(s), indent=1) + "\n")


def toy_plan(work: Path, data: Path, toy: str, s: Settings, progress: bool = False) -> AlignPlan:
    """The experiment's checkpoints and evaluation as an align plan: the toy model (`toy`) trained into
    WORK/base, WORK/sft, WORK/dpo and WORK/bdhs (its pairs: `bdhs_step`), each evaluated into WORK/eval."""
    common = {"lora_rank": 0, "seed": s.seed, "save_every": s.save_every, "progress": progress}
    sft = {"method": "sft", "lr": s.sft_lr, "batch_size": s.sft_batch, **common}
    dpo = {
        "method": "dpo",
        "max_steps": s.dpo_steps,
        "lr": s.dpo_lr,
        "batch_size": s.dpo_batch,
        "beta": s.beta,
    }
    checkpoints: dict[str, dict[str, Any]] = {
        "base": {"from": "toy", "data": str(data / "language.jsonl"), "max_steps": s.base_steps, **sft},
        "sft": {
            "from": "base",
            "data": str(data / "sft.jsonl"),
            "max_steps": s.sft_steps,
            "train_vision": True,
            **sft,
        },
        "dpo": {"from": "sft", "data": str(data / "pairs.jsonl"), **dpo, **common},
    }
    if s.bdhs:
        checkpoints["bdhs"] = {"from": "sft", "data": str(work / "bdhs_pairs.jsonl"), **dpo, **common}
    evaluate = {
        "tasks": TASKS,
        "data": "toy",
        "limit": s.eval_limit,
        "seed": s.seed,
        "task_options": TASK_OPTIONS,
    }
    return AlignPlan(
        base=toy,
        output=work,
        evaluate=evaluate,
        checkpoints=checkpoints,
        reference="sft",
        base_name="toy",
        evaluate_base=False,
        checkpoint_dir=work,
    )


def run_experiment(
    work: str | Path,
    settings: Settings | None = None,
    *,
    say: Callable[[str], None] | None = None,
    progress: bool = False,
) -> Result:
    """Run (or finish) every stage in `work`; see the module docstring. `progress`: progress bars for the
    training and evaluation stages (on standard error)."""
    from evalkit.toy.alignment_data import write_alignment_data
    from evalkit.toy.model import ensure_toy_model

    s = settings or Settings()
    work = Path(work).expanduser()
    work.mkdir(parents=True, exist_ok=True)
    _check_settings(work / "settings.json", s)
    clock = _Clock(say or (lambda m: None))
    bdhs_file = work / "bdhs_pairs.jsonl"
    with torch_threads(s.threads):
        with clock.stage("data", skipped=False):
            sizes = {"n_sft": s.n_sft, "n_pairs": s.n_pairs, "n_text": s.n_text, "n_language": s.n_language}
            data = write_alignment_data(work / "data", seed=s.seed, **sizes)
            toy = str(ensure_toy_model())
        plan = toy_plan(work, data, toy, s, progress)

        def bdhs_step() -> None:
            with clock.stage("bdhs_pairs", skipped=bdhs_file.is_file()):
                if not bdhs_file.is_file():
                    _write_bdhs_pairs(work / "sft", data / "bdhs_source.jsonl", bdhs_file, s)

        before = {"bdhs": bdhs_step} if s.bdhs else {}
        runs = run_stages(plan, progress=progress, say=lambda m: None, stage=clock.stage, before=before)
    ckpt = {name: Path(model_path(plan, name)) for name in plan.checkpoints}
    aligned = [n for n in ckpt if n not in ("base", "sft")]
    result = Result(
        work=work,
        settings=s,
        checkpoints={k: str(v) for k, v in ckpt.items()},
        runs={k: str(v) for k, v in runs.items()},
        metrics={name: _headline(run) for name, run in runs.items()},
        comparisons={n: compare_runs(runs[n], runs["sft"]) for n in aligned},
        visual_stage=compare_runs(runs["sft"], runs["base"]),
        trends={n: train_log_trends(ckpt[n] / "train_log.jsonl") for n in aligned},
        timings=clock.timings,
        bdhs_stats=json.loads((work / "bdhs_pairs_stats.json").read_text()) if s.bdhs else None,
    )
    (work / "alignment.json").write_text(json.dumps(result.to_dict(), indent=1, default=str) + "\n")
    return result
