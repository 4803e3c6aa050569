"""The MMBench submission file: a run's answers as the .xlsx the evaluation server takes.

MMBench's test answers are hidden; the server (mmbench.opencompass.org.cn) scores an Excel file with one
row per pass (circular rows included) holding the raw `prediction`. LLaVA's
`scripts/convert_mmbench_for_submission.py` writes the TSV's columns minus hint, category, source, image,
comment and l2-category, with `prediction` after the options; the open-compass/MMBench README lists
question, A-D, prediction, category, l2 category and index. This file has the union, in that order: index,
question, A, B, C, D, prediction, answer (only when the TSV had answers), category, l2-category, split.
Rows are sorted by index; a pass whose generation failed gets an empty prediction (counted on stdout).

The .xlsx is written by openpyxl (a dependency of evalkit; the server reads the file with pandas'
`read_excel`, which uses openpyxl too): one sheet named Sheet1, a header row, integers and floats as numbers,
other values as text (never as formulas, even when they start with "="), None and "" as empty cells. It
replaced a hand-written SpreadsheetML writer: `benchmarks/xlsx_writer.py` measures both.

    evalkit export RUN_DIR [--output FILE.xlsx]   # default RUN_DIR/mmbench_submission.xlsx

(`MMBench.export_file` and `MMBench.export_submission`, called by `evalkit.interop.exporting`.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from evalkit.types import UserError

#: characters XML 1.0 cannot hold (Excel and openpyxl refuse them): dropped from cell text
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _openpyxl() -> Any:
    try:
        import openpyxl
    except ImportError:
        raise UserError(
            "writing the MMBench submission .xlsx needs openpyxl, a dependency of evalkit that is missing "
            "here: pip install openpyxl"
        ) from None
    return openpyxl


def write_xlsx(path: Path, columns: list[str], rows: list[list[Any]]) -> None:
    """One sheet, Sheet1: a header row, then `rows`; ints and floats as numbers, everything else as text,
    None and "" as empty cells. Written to a temporary file first, so a failed write leaves no file."""
    openpyxl = _openpyxl()
    from openpyxl.cell import WriteOnlyCell

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Sheet1")

    def cell(value: Any) -> Any:
        if value is None or value == "":
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        text = _ILLEGAL.sub("", str(value))
        if not text.startswith("="):
            return text
        literal = WriteOnlyCell(sheet, value=text)
        literal.data_type = "s"  # text, not a formula
        return literal

    sheet.append(list(columns))
    for values in rows:
        sheet.append([cell(v) for v in values])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        book.save(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def submission_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]], int]:
    """(columns, values, passes without a prediction) of the submission for stored mmbench rows."""
    letters = sorted({c for r in rows for c in r["meta"]["options"]} | set("ABCD"))
    with_answer = any(r.get("target") is not None for r in rows)
    columns = ["index", "question", *letters, "prediction"]
    columns += ["answer"] if with_answer else []
    columns += ["category", "l2-category", "split"]
    values, missing = [], 0
    for r in sorted(rows, key=lambda r: r["meta"]["index"]):
        meta = r["meta"]
        prediction = r.get("response") if r.get("error") is None else None
        missing += prediction is None
        line = [meta["index"], meta["question"], *(meta["options"].get(c) for c in letters), prediction]
        line += [r.get("target")] if with_answer else []
        line += [meta.get("category"), meta.get("l2_category"), meta.get("split")]
        values.append(line)
    return columns, values, missing


def write_submission(rows: list[dict[str, Any]], path: Path) -> tuple[int, int]:
    """Write stored mmbench rows as the submission .xlsx at `path`; returns (rows written, predictions
    missing)."""
    columns, values, missing = submission_table(rows)
    write_xlsx(path, columns, values)
    return len(values), missing
