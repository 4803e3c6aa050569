"""`evalkit import` on a damaged answer file ends in one line naming the file (and line) and what was
expected, exit 2, never a traceback: bytes that are not UTF-8, UTF-16, binary, a lone surrogate, JSON
nested 200k deep, a JSON list where an object is expected, a missing key, a value of the wrong type."""

import json
import re
import subprocess
import sys

import pytest
from support.import_cases import BUILDERS

ROW = {"question_id": "random-1", "text": "Yes"}
CASES = {
    "0xff": (b"\xff" + json.dumps(ROW).encode() + b"\n", r"answers\.jsonl:1: not UTF-8 text \(byte 0xff"),
    "utf-16": (
        json.dumps(ROW).encode("utf-16"),
        r"answers\.jsonl: the file is UTF-16 text; save it as UTF-8",
    ),
    "binary": (bytes(range(256)) * 4, r"answers\.jsonl:\d+: binary data"),
    "lone surrogate": (
        b'{"question_id": "random-1", "text": "\\ud800"}\n',
        r"answers\.jsonl:1: a string holds a lone surrogate \(U\+D800\)",
    ),
    "200k deep": (b"[" * 200_000 + b"]" * 200_000 + b"\n", r"answers\.jsonl:1: JSON nested too deeply"),
    "list for object": (
        b'[{"question_id": "random-1", "text": "Yes"}]\n',
        r"answers\.jsonl:1: expected a JSON object, got list",
    ),
    "missing key": (b'{"question_id": "random-1"}\n', r"answers\.jsonl:1: missing field 'text'"),
    "wrong type": (
        b'{"question_id": "random-1", "text": 7}\n',
        r"answers\.jsonl:1: field 'text' has the wrong type \(int; expected str\)",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_damaged_answer_file_is_one_line_exit_2(name, tmp_path):
    case = BUILDERS["pope"](tmp_path)
    data, message = CASES[name]
    case["answers"].write_bytes(data)
    args = ["import", "--task", "pope", "--answers", str(case["answers"]), "--output", str(tmp_path / "run")]
    args += ["--questions", str(case["questions"]), "--data-dir", str(case["data_dir"])]
    proc = subprocess.run(
        [sys.executable, "-m", "evalkit", *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert re.search(message, proc.stderr), proc.stderr
    assert not (tmp_path / "run").exists()  # nothing half-written
