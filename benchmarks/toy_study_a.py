"""The first study's pipeline in the toy world (`evalkit.experiments.toy_study_a`): language stage (the
base), visual SFT without text-only data (the degraded checkpoint), 4 samples per image question at
temperature 0.7 rated by the toy judge (`evalkit annotate`), best-vs-worst pairs (gap >= 2), DPO, evaluation,
paired comparison.

    python benchmarks/toy_study_a.py [--work DIR] [--seed N]

Prints per metric base, SFT and DPO, then SFT − base (what the visual stage did) and DPO − SFT with 95%
paired bootstrap intervals, the annotation counts and the stage times. Finished stages in the work folder
are kept (pass a fresh --work to re-measure).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from evalkit.experiments.toy_study_a import STUDY_METRICS, StudyResult, StudySettings, run_study


def _row(r: dict) -> str:
    return (
        f" {r['metric']:26s} {r['reference']:6.1f} → {r['value']:6.1f}  {r['diff']:+6.1f} "
        f"[{r['ci_low']:+6.1f}, {r['ci_high']:+6.1f}]  {r['verdict']}"
    )


def format_study(result: StudyResult) -> str:
    lines = []
    names = list(result.runs)
    lines.append(f"{'metric':27s} {'better':>6s} " + " ".join(f"{n:>8s}" for n in names))
    for key, direction in STUDY_METRICS:
        values = []
        for n in names:
            row = {r["metric"]: r for r in result.comparisons["sft"]}.get(key)
            if n == "base":
                v = row["reference"] if row else float("nan")
            elif n == "sft":
                v = row["value"] if row else float("nan")
            else:
                v = {r["metric"]: r for r in result.comparisons[n]}.get(key, {}).get("value", float("nan"))
            values.append(f"{v:8.1f}")
        lines.append(f"{key:27s} {'higher' if direction > 0 else 'lower':>6s} " + " ".join(values))
    lines += ["", "sft − base: the visual stage without text-only data (95% paired bootstrap interval)"]
    lines += [_row(r) for r in result.comparisons["sft"]]
    lines += ["", "dpo − sft: DPO on the judged pairs"]
    lines += [_row(r) for r in result.comparisons["dpo"]]
    t = result.trend
    lines.append(
        f" train log ({t['steps']} steps, first → last tenth): loss {t['loss']['first']:.3f} → "
        f"{t['loss']['last']:.3f}, margin {t['margin']['first']:+.3f} → {t['margin']['last']:+.3f}"
    )
    a, g = result.annotation, result.signal
    lines += [
        "",
        f"evalkit annotate: {a['prompts']} prompts, {a['samples']} samples, {a['rated']} rated, "
        f"{a['unparsed']} unparsed, {a['pairs']} pairs; skipped groups: {a['skipped']['dpo'] or 'none'}",
        f"pairs by question kind: {g['pairs_by_kind']}; pairs whose answers differ in "
        + ", ".join(f"{k} {v}" for k, v in g["pairs_differing_in"].items())
        + f"; samples not fully coherent: {g['samples_not_fully_coherent']:.1%}",
        "text-only questions answered yes/no: "
        + ", ".join(f"{k} {v:.0%}" for k, v in g["language_answers_yes_no"].items()),
        f"DPO restores the language side beyond its intervals: {'yes' if result.restores() else 'no'}",
        "",
        f"{'stage':14s} {'wall s':>8s} {'cpu s':>8s}",
    ]
    for stage, t in result.timings.items():
        note = "  (skipped: done already)" if t["skipped"] else ""
        lines.append(f"{stage:14s} {t['wall_s']:8.1f} {t['cpu_s']:8.1f}{note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a new temp folder)")
    parser.add_argument("--seed", type=int, default=0, help="data, sampling and training seed (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="toy-study-a-"))
    print(f"work folder: {work}", file=sys.stderr)
    settings = StudySettings(seed=args.seed, threads=args.threads)
    result = run_study(work, settings, say=lambda m: print(m, file=sys.stderr, flush=True))
    print(format_study(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
