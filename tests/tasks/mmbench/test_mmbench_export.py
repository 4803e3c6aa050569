"""The MMBench submission workbook written by openpyxl, read back as the evaluation server reads it
(pandas.read_excel) and cell by cell with openpyxl, against the rows written here."""

import sys

import pytest

from evalkit.tasks.mmbench.export import write_submission
from evalkit.types import UserError

HEADER = ["index", "question", "A", "B", "C", "D", "E", "prediction", "category", "l2-category", "split"]


def row(index, question, options, response, *, error=None, category="ocr", target=None):
    meta = {"index": index, "question": question, "options": options, "category": category}
    meta.update(l2_category="perception", split="test")
    return {"id": str(index), "meta": meta, "response": response, "error": error, "target": target}


ROWS = [
    row(1_000_007, "Which one? ", {"A": "dog", "B": "cat"}, "=1+1"),  # text that looks like a formula
    row(7, "Which one?", {"A": "cat", "B": "dog"}, " B \n"),
    row(12, "Olá — 色は?", {"A": "x", "B": "y", "C": "z", "D": "w", "E": "v"}, "E\x07"),  # control char
    row(9, "Failed?", {"A": "yes", "B": "no"}, None, error="generation failed: CUDA OOM"),
]
#: the rows as the server must read them: sorted by index, empty cells None, the control character dropped
EXPECTED = [
    (7, "Which one?", "cat", "dog", None, None, None, " B \n", "ocr", "perception", "test"),
    (9, "Failed?", "yes", "no", None, None, None, None, "ocr", "perception", "test"),
    (12, "Olá — 色は?", "x", "y", "z", "w", "v", "E", "ocr", "perception", "test"),
    (1_000_007, "Which one? ", "dog", "cat", None, None, None, "=1+1", "ocr", "perception", "test"),
]


def test_workbook_cells_read_back_with_openpyxl(tmp_path):
    import openpyxl

    path = tmp_path / "out" / "sub.xlsx"
    assert write_submission(ROWS, path) == (4, 1)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Sheet1"]
    sheet = book["Sheet1"]
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == HEADER
    assert values[1:] == EXPECTED
    assert all(c.data_type == "n" for c in sheet["A"][1:])  # indices are numbers, as in the TSV
    assert sheet["H5"].data_type == "s" and sheet["H5"].value == "=1+1"  # text, never a formula
    assert not list(tmp_path.glob("out/*.part"))


def test_workbook_reads_as_the_server_reads_it(tmp_path):
    pd = pytest.importorskip("pandas")
    path = tmp_path / "sub.xlsx"
    write_submission(ROWS, path)
    frame = pd.read_excel(path)  # what the MMBench server and VLMEvalKit's load() call
    assert list(frame.columns) == HEADER
    assert frame["index"].tolist() == [7, 9, 12, 1_000_007] and frame["index"].dtype.kind == "i"
    got = [tuple(None if pd.isna(v) else v for v in r) for r in frame.itertuples(index=False)]
    assert got == EXPECTED


def test_answers_column_only_when_the_rows_have_answers(tmp_path):
    import openpyxl

    rows = [row(3, "Q?", {"A": "a", "B": "b"}, "A", target="B")]
    write_submission(rows, tmp_path / "dev.xlsx")
    header, first = openpyxl.load_workbook(tmp_path / "dev.xlsx").active.iter_rows(values_only=True)
    assert header == ("index", "question", "A", "B", "C", "D", "prediction", "answer", "category") + (
        "l2-category",
        "split",
    )
    assert first == (3, "Q?", "a", "b", None, None, "A", "B", "ocr", "perception", "test")


def test_missing_openpyxl_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # import openpyxl raises ImportError
    with pytest.raises(UserError) as err:
        write_submission(ROWS, tmp_path / "sub.xlsx")
    assert "\n" not in str(err.value) and "pip install openpyxl" in str(err.value)
    assert not (tmp_path / "sub.xlsx").exists()
