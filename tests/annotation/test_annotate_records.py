"""Prompt records for `evalkit annotate`: image paths, SFT records, and the one-line errors."""

from __future__ import annotations

import json

import pytest

from evalkit.annotation.records import load_prompts
from evalkit.types import UserError


def write(path, *rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_images_resolve_against_the_file_or_image_dir(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(b"y")
    f = write(tmp_path / "p.jsonl", {"id": 1, "question": "q?", "image": "a.png", "reference": "r"}, "",
              {"id": "t", "question": "t?", "image": None})  # fmt: skip
    one, two = load_prompts(f)
    assert (one.id, one.image, one.reference) == ("1", str((tmp_path / "a.png").resolve()), "r")
    assert (two.image, two.reference) == (None, None)
    assert load_prompts(f, image_dir=tmp_path / "imgs")[0].image == str(
        (tmp_path / "imgs" / "a.png").resolve()
    )


def test_sft_records_give_their_response_as_reference_only_when_asked(tmp_path):
    f = write(tmp_path / "s.jsonl", {"id": "a", "prompt": "q?", "response": "the answer", "image": None})
    assert load_prompts(f)[0].reference is None
    assert load_prompts(f, response_as_reference=True)[0].reference == "the answer"


@pytest.mark.parametrize(
    "rows, message",
    [
        (['{"id": "a", '], "p.jsonl:1: malformed JSON line"),
        ([{"id": "a"}], "p.jsonl:1: needs a non-empty 'question'"),
        ([{"question": "q"}], "p.jsonl:1: needs an 'id'"),
        ([{"id": "a", "question": "q"}, {"id": "a", "question": "r"}], "p.jsonl:2: id 'a' appears twice"),
        ([{"id": "a", "question": "q", "image": "gone.png"}], "p.jsonl:1: image not found"),
        ([], "no prompt records"),
    ],
)
def test_bad_records_are_one_line_errors(tmp_path, rows, message):
    f = write(tmp_path / "p.jsonl", *rows) if rows else (tmp_path / "p.jsonl")
    if not rows:
        f.write_text("")
    with pytest.raises(UserError) as err:
        load_prompts(f)
    assert message in str(err.value) and "\n" not in str(err.value)
