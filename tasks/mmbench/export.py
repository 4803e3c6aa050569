"""The MMBench submission file: a run's answers as the .xlsx the evaluation server takes.

MMBench's test answers are hidden; the server (mmbench.opencompass.org.cn) scores an Excel file with one
row per pass (circular rows included) holding the raw `prediction`. LLaVA's
`scripts/convert_mmbench_for_submission.py` writes the TSV's columns minus hint, category, source, image,
comment and l2-category, with `prediction` after the options; the open-compass/MMBench README lists
question, A-D, prediction, category, l2 category and index. This file has the union, in that order: index,
question, A, B, C, D, prediction, answer (only when the TSV had answers), category, l2-category, split.
Rows are sorted by index; a pass whose generation failed gets an empty prediction (counted on stdout).

The .xlsx is written with the standard library (a minimal SpreadsheetML workbook with inline strings), so no
openpyxl is needed:

    evalkit export RUN_DIR [--output FILE.xlsx]   # default RUN_DIR/mmbench_submission.xlsx

(`MMBench.export_file` and `MMBench.export_submission`, called by `evalkit.interop.exporting`.)
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

#: characters XML 1.0 cannot hold (Excel would refuse the file): dropped from cell text
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" '
    'Target="styles.xml"/></Relationships>'
)
_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="1"><fill><patternFill patternType="none"/></fill></fills>'
    '<borders count="1"><border/></borders>'
    '<cellStyleXfs count="1"><xf/></cellStyleXfs>'
    '<cellXfs count="1"><xf xfId="0"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


def column_letter(i: int) -> str:
    """0 → A, 25 → Z, 26 → AA."""
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(65 + r) + out
    return out


def _cell(ref: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = escape(_ILLEGAL.sub("", str(value)))
        return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'
    return f'<c r="{ref}"><v>{value}</v></c>'


def write_xlsx(path: Path, columns: list[str], rows: list[list[Any]]) -> None:
    """One sheet: a header row, then `rows`; ints and floats as numbers, everything else as text, None and
    "" as empty cells."""
    lines = []
    for r, values in enumerate([columns, *rows], 1):
        cells = "".join(_cell(f"{column_letter(c)}{r}", v) for c, v in enumerate(values))
        lines.append(f'<row r="{r}">{cells}</row>')
    sheet = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"<sheetData>{''.join(lines)}</sheetData></worksheet>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", _CONTENT_TYPES)
        z.writestr("_rels/.rels", _ROOT_RELS)
        z.writestr("xl/workbook.xml", _WORKBOOK)
        z.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        z.writestr("xl/styles.xml", _STYLES)
        z.writestr("xl/worksheets/sheet1.xml", sheet)
    tmp.replace(path)


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
