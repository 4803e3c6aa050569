"""The MMBench submission workbook: openpyxl (what `tasks/mmbench/export.py` uses) against the hand-written
SpreadsheetML writer it replaced, in one process, on a submission-shaped table (default 4,377 rows: index,
question, A-D, prediction, category, l2-category, split).

The hand-written writer is read from git (`--baseline-ref`, the last commit that had it), so it is measured
as it was, not kept in the package. Prints, per writer, the best of `--repeats` wall times and the file size,
and their ratios; both files are read back with openpyxl and must hold the same cells.
Usage: python benchmarks/xlsx_writer.py [--rows 4377] [--repeats 5] [--baseline-ref c5aabad]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REF = "c5aabadadf9a25316b5437e527f6bf4ae3e9f83a"


def baseline_writer(ref: str):
    """`write_xlsx` of tasks/mmbench/export.py at `ref` (the hand-written writer)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:tasks/mmbench/export.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("export_baseline")
    exec(compile(source, f"{ref}:tasks/mmbench/export.py", "exec"), module.__dict__)
    return module.write_xlsx


def table(n: int, seed: int = 0) -> tuple[list[str], list[list]]:
    """Submission-shaped rows: circular passes (index g + k·1e6), 2-4 options, short and long predictions."""
    rng = random.Random(seed)
    words = "the a which of is what shown image color left right most likely person object scene".split()

    def text(k: int) -> str:
        return " ".join(rng.choice(words) for _ in range(k))

    columns = ["index", "question", "A", "B", "C", "D", "prediction", "category", "l2-category", "split"]
    rows = []
    for i in range(n):
        options = [text(rng.randint(1, 6)) for _ in range(rng.randint(2, 4))] + [None] * 2
        prediction = rng.choice("ABCD") if rng.random() < 0.7 else text(rng.randint(5, 40))
        g, k = i // 4, i % 4
        category = rng.choice(["image_scene", "ocr", "attribute_recognition"])
        rows.append([g + k * 1_000_000, text(18) + "?", *options[:4], prediction, category, "l2", "dev"])
    return columns, rows


def best(write, path: Path, columns, rows, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        write(path, columns, rows)
        times.append(time.perf_counter() - t0)
    return min(times)


def cells(path: Path) -> list[tuple]:
    import openpyxl

    return list(openpyxl.load_workbook(path, read_only=True).active.iter_rows(values_only=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4377)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-ref", default=BASELINE_REF)
    args = parser.parse_args()

    from evalkit.tasks.mmbench.export import write_xlsx

    hand = baseline_writer(args.baseline_ref)
    columns, rows = table(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "openpyxl.xlsx", Path(tmp) / "hand.xlsx"
        t_new = best(write_xlsx, a, columns, rows, args.repeats)
        t_old = best(hand, b, columns, rows, args.repeats)
        assert cells(a) == cells(b), "the two writers' workbooks hold different cells"
        s_new, s_old = a.stat().st_size, b.stat().st_size
    print(f"{args.rows} rows × {len(columns)} columns, best of {args.repeats}")
    print(f"  openpyxl      {t_new * 1000:8.1f} ms  {s_new / 1024:8.1f} KiB")
    print(f"  hand-written  {t_old * 1000:8.1f} ms  {s_old / 1024:8.1f} KiB")
    print(f"  ratio (openpyxl / hand-written): time {t_new / t_old:.2f}, size {s_new / s_old:.2f}")


if __name__ == "__main__":
    main()
