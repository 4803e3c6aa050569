"""The toy-world alignment experiment, in full: language stage (the base), SFT stage, DPO, BDHS, evaluation,
paired comparison.

    python benchmarks/toy_alignment.py [--work DIR] [--seed N]

Prints, per checkpoint and metric, the value, the difference to the SFT checkpoint with its 95% paired
bootstrap interval (images or prompts resampled) and the verdict, the same for the SFT checkpoint against
the base (what the visual stage did); the DPO train-log trends; the time of each stage
(wall and CPU seconds: on a shared machine CPU time is the steadier number). Stages whose output is in
the work folder already are skipped, so a second run only prints (pass a fresh --work to re-measure).
See `evalkit.experiments.toy_alignment` for the stages and `evalkit.toy.alignment_data` for the data.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from evalkit.experiments.toy_alignment import CLAIMED, METRICS, Result, Settings, run_experiment


def _row(r: dict, mark: str) -> str:
    return (
        f"{mark}{r['metric']:24s} {r['reference']:6.1f} → {r['value']:6.1f}  {r['diff']:+6.1f} "
        f"[{r['ci_low']:+6.1f}, {r['ci_high']:+6.1f}]  {r['verdict']}"
    )


def format_table(result: Result) -> str:
    lines = []
    names = list(result.metrics)
    lines.append(f"{'metric':25s} {'better':>6s} " + " ".join(f"{n:>8s}" for n in names))
    for key, direction in METRICS:
        better = "higher" if direction > 0 else "lower"
        values = " ".join(f"{result.metrics[n].get(key, {}).get('value', float('nan')):8.1f}" for n in names)
        lines.append(f"{key:25s} {better:>6s} {values}")
    lines += ["", "sft − base: the visual stage (95% paired bootstrap interval)"]
    lines += [_row(r, " ") for r in result.visual_stage]
    for name, rows in result.comparisons.items():
        lines += ["", f"{name} − sft (95% paired bootstrap interval over images / prompts)"]
        lines += [_row(r, "*" if r["metric"] in CLAIMED else " ") for r in rows]
        t = result.trends[name]
        lines.append(
            f" train log ({t['steps']} steps, first → last tenth): loss {t['loss']['first']:.3f} → "
            f"{t['loss']['last']:.3f}, margin {t['margin']['first']:+.3f} → {t['margin']['last']:+.3f}, "
            f"accuracy {t['accuracy']['first']:.2f} → {t['accuracy']['last']:.2f}"
        )
        misses = result.claim_misses(name)
        verdict = f"does NOT hold ({'; '.join(misses)})" if misses else "HOLDS"
        lines.append(f" claim (* metrics better beyond the interval, loss falls, margin rises): {verdict}")
    if result.bdhs_stats:
        b = result.bdhs_stats
        lines += [
            "",
            f"BDHS: {b['pairs_written']} pairs from {b['examples']} examples; tries {b['tries']}; "
            f"{b['fallbacks']} fallbacks; {b['identical_to_chosen']} dropped (same answer as the chosen one)",
        ]
        d = b.get("descriptions")
        if d and d["n"]:
            share, chance = d["absent_cooccurring_share"], d["absent_cooccurring_chance"]
            lines.append(
                f" rejected descriptions ({d['n']}): {d['share_naming_absent']:.0%} name an absent object "
                f"({d['absent_per_answer']:.2f} per answer), "
                + (f"{share:.0%} of them co-occurring (chance {chance:.0%}); " if share is not None else "")
                + f"{d['present_missed_share']:.0%} of present objects left out"
            )
    lines += ["", f"{'stage':14s} {'wall s':>8s} {'cpu s':>8s}"]
    for stage, t in result.timings.items():
        note = "  (skipped: done already)" if t["skipped"] else ""
        lines.append(f"{stage:14s} {t['wall_s']:8.1f} {t['cpu_s']:8.1f}{note}")
    total = sum(t["wall_s"] for t in result.timings.values())
    cpu = sum(t["cpu_s"] for t in result.timings.values())
    lines.append(f"{'total':14s} {total:8.1f} {cpu:8.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a new temp folder)")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--no-bdhs", action="store_true", help="skip the BDHS arm")
    parser.add_argument(
        "--n-text", type=int, default=Settings.n_text, help="text-only SFT conversations (0: none)"
    )
    parser.add_argument(
        "--bdhs-temperature", type=float, default=Settings.bdhs_temperature, help="BDHS sampling temperature"
    )
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="toy-alignment-"))
    print(f"work folder: {work}", file=sys.stderr)
    settings = Settings(
        seed=args.seed,
        threads=args.threads,
        bdhs=not args.no_bdhs,
        n_text=args.n_text,
        bdhs_temperature=args.bdhs_temperature,
    )
    result = run_experiment(work, settings, say=lambda m: print(m, file=sys.stderr, flush=True))
    print(format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
