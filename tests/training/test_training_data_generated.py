"""Generated bad input for the training-data readers (training/data*.py): every file either loads, with
each kept example well-formed and every drop counted, or is refused with a one-line `UserError`; never a
traceback. Records are drawn from the keys every format reads, with values of any JSON shape (strings
holding lone surrogates, NUL, conversations as JSON or Python repr, numbers as strings), images that are
fine, corrupt, missing, lists, dicts or not strings; files are then damaged (invalid UTF-8, UTF-16, a
BOM, a cut line, a non-object line, JSON nested 100k deep) or replaced by random bytes."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.toy.world import render, sample_scenes
from evalkit.training.data import PREFERENCE_FORMATS, SFT_FORMATS, load_preferences, load_prompts, load_sft
from evalkit.training.data_hub import looks_like_hub_id
from evalkit.training.data_records import PreferencePair, SFTExample
from evalkit.types import UserError
from evalkit.util.images import load_image

KEYS = [
    "id", "idx", "image", "images", "image_path", "img_path", "prompt", "question", "chosen", "rejected",
    "response", "text", "scores", "attributes", "completions", "annotations", "Rating", "conversations",
    "rejected_conversations", "preference_values", "output_1", "output_2", "preference", "from", "value",
    "role", "content", "type", "path", "bytes", "Helpfulness", "Correctness", "Coherence", "Complexity",
    "Verbosity", "helpfulness", "Helpfulness_gpt4v", "Helpfulness_candidate", "completion", "answer", "model",
]  # fmt: skip
SPECIAL_TEXT = [
    "", " ", "\ud800", "a\x00b", "<image>", "<image>\nWhat is this?", "a kite.", "yes", "4", "nan", "2.5",
    "human", "gpt", "user", "assistant", "ok.png", "corrupt.png", "missing.png", "/nonexistent/x.png",
    '[{"from": "human", "value": "hi"}, {"from": "gpt", "value": "a dog."}]',
    "{'from': 'gpt', 'value': 'a dog.'}", '{"question": "q", "chosen": "a", "rejected": "b"}',
    "[" * 500, "line\nbreak\r\u2028",
]  # fmt: skip
TAINT = ["\ud800", "\udcff", "\x00", "\n", "\u2028", "<image>", " " * 3, "\ufffd", "\U0001f600"]
IMAGES = ["ok.png", "corrupt.png", "missing.png", "a\x00.png", "\ud800.png", "ok.png\n", ""]

text = st.one_of(st.sampled_from(SPECIAL_TEXT), st.text(st.characters(codec=None), max_size=12))
leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10), st.floats(allow_nan=True, allow_infinity=True), text,
    st.sampled_from(IMAGES),
)  # fmt: skip
value = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), text), inner, max_size=4),
    ),
    max_leaves=10,
)
HUMAN, GPT = {"from": "human", "value": "<image>\nwhat is it?"}, {"from": "gpt", "value": "a kite."}
SEED_GOOD = {
    "response": "a kite.",
    "Helpfulness": 4,
    "Correctness": 4,
    "Coherence": 4,
    "Complexity": 1,
    "Verbosity": 1,
}
SEED_BAD = {**SEED_GOOD, "response": "a dog.", "Helpfulness": 0, "Correctness": 1, "Coherence": 1}
#: one valid record of every format, which the generator then damages
TEMPLATES = [
    {"image": "ok.png", "prompt": "what is it?", "chosen": "a kite.", "rejected": "a dog."},
    {"image": "ok.png", "prompt": "what is it?", "response": "a kite.", "attributes": {"helpfulness": 4}},
    {"image": "ok.png", "conversations": [HUMAN, GPT]},
    {
        "image": "ok.png",
        "idx": 3,
        "text": json.dumps({"question": "q", "chosen": "a kite.", "rejected": "a dog."}),
    },
    {"image_path": "ok.png", "question": "q", "chosen": "a kite.", "rejected": "a dog.", "idx": "7"},
    {
        "img_path": "ok.png",
        "prompt": "q",
        "completions": [
            {
                "annotations": {"Helpfulness": {"Rating": "4", "Rationale": "r"}},
                "response": "a kite.",
                "model": "m",
            },
            {
                "annotations": {"Helpfulness": {"Rating": "2", "Rationale": "r"}},
                "response": "a dog.",
                "model": "n",
            },
        ],
    },
    {"image": "ok.png", "question": "q", "completions": [SEED_GOOD, SEED_BAD]},
    {
        "image": "ok.png",
        "question": "q",
        "chosen": "a kite.",
        "rejected": "a dog.",
        "Helpfulness_gpt4v": 4,
        "Helpfulness_candidate": 1,
    },
    {
        "image": "ok.png",
        "conversations": [HUMAN, GPT],
        "rejected_conversations": [HUMAN, {**GPT, "value": "a dog."}],
    },
    {
        "image": "ok.png",
        "conversations": [HUMAN, {"from": "gpt", "preference_values": ["a kite.", "a dog."]}],
    },
    {
        "image": "ok.png",
        "conversations": [HUMAN],
        "output_1": {"value": "a kite."},
        "output_2": {"value": "a dog."},
        "preference": 1,
    },
]


def _containers(obj, out):
    if isinstance(obj, dict | list):
        out.append(obj)
        for v in obj.values() if isinstance(obj, dict) else obj:
            _containers(v, out)
    return out


@st.composite
def record(draw):
    """A valid record of some format with up to three random edits (set, delete or add a value
    anywhere in it), or a record of random keys."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.dictionaries(st.sampled_from(KEYS), value, max_size=7))
    rec = copy.deepcopy(draw(st.sampled_from(TEMPLATES)))
    for _ in range(draw(st.integers(0, 3))):
        box = draw(st.sampled_from(_containers(rec, [])))
        keys = list(box) if isinstance(box, dict) else list(range(len(box)))
        op = draw(st.sampled_from(["set", "delete", "taint"]))
        if isinstance(box, dict) and (op == "set" or not keys):
            box[draw(st.sampled_from([*keys, *KEYS]))] = draw(value)
        elif isinstance(box, list) and not keys:
            box.append(draw(value))
        else:
            key = draw(st.sampled_from(keys))
            if op == "delete":
                del box[key]
            elif op == "set" or not isinstance(box[key], str):
                box[key] = draw(value)
            else:  # keep the text, add a character that breaks something downstream
                box[key] = box[key] + draw(st.sampled_from(TAINT))
    return rec


DAMAGE = ["none", "bad-utf8", "utf16", "bom", "cut", "not-object", "deep", "blank-lines"]

LOADERS = [
    *[(load_preferences, f) for f in ("auto", *PREFERENCE_FORMATS)],
    *[(load_sft, f) for f in ("auto", *SFT_FORMATS)],
    (load_prompts, "auto"),
    (load_prompts, "generic"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("generated-data")
    render(sample_scenes(1, seed=1)[0]).save(d / "ok.png")
    (d / "corrupt.png").write_bytes((d / "ok.png").read_bytes()[:60])
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _write(path: Path, rows: list[dict], as_list: bool, damage: str) -> None:
    if as_list:
        body = ("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n").encode()
    else:
        body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    if damage == "bad-utf8":
        body = body[: len(body) // 2] + b"\xff\xfe\x80" + body[len(body) // 2 :]
    elif damage == "utf16":
        body = body.decode().encode("utf-16")
    elif damage == "bom":
        body = b"\xef\xbb\xbf" + body
    elif damage == "cut":
        body = body[: max(1, len(body) * 2 // 3)]
    elif damage == "not-object":
        body += b'["a", "list"]\n'
    elif damage == "deep":
        body += b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    elif damage == "blank-lines":
        body = b"\n \n" + body.replace(b"\n", b"\n\n")
    path.write_bytes(body)


def _check(fn) -> None:
    """The one allowed failure is a one-line UserError; what loads is well-formed."""
    try:
        loaded = fn()
    except UserError as exc:
        message = str(exc)
        assert message.strip() and message.splitlines() == [message], repr(message)
        return
    assert loaded.items, "a load with no examples must be an error"
    assert all(isinstance(n, int) and n > 0 for n in loaded.skipped.values())
    for item in loaded.items:
        assert isinstance(item, PreferencePair | SFTExample)
        texts = [item.prompt, item.chosen, item.rejected] if isinstance(item, PreferencePair) else [
            item.prompt, item.response]  # fmt: skip
        for t in texts:
            assert isinstance(t, str)
            t.encode("utf-8")  # no lone surrogate reaches the tokenizer
        if item.image is not None:
            load_image(item.image)  # a kept image decodes
        assert ":" in item.source


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(record(), max_size=4), as_list=st.booleans(), damage=st.sampled_from(DAMAGE))
def test_generated_records_load_or_fail_in_one_line(folder, rows, as_list, damage):
    path = folder / "data.jsonl"
    _write(path, rows, as_list, damage)
    for loader, fmt in LOADERS:
        _check(lambda: loader(path, fmt))  # noqa: B023 (called at once)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300))
def test_random_bytes_load_or_fail_in_one_line(folder, body):
    path = folder / "bytes.jsonl"
    path.write_bytes(body)
    for loader, fmt in LOADERS[:: len(LOADERS) // 4]:
        _check(lambda: loader(path, fmt))  # noqa: B023


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=text)
def test_any_data_name_is_a_file_a_hub_id_or_a_one_line_error(folder, name):
    looks_like_hub_id(name)
    for loader in (load_preferences, load_sft):
        _check(lambda: loader(folder / "absent" / name if name else name))  # noqa: B023


def test_the_known_cases_fail_as_described(folder):
    """Hand-made examples of what the generator looks for, with the exact outcome each must have."""
    for template in TEMPLATES:  # the generator starts from records that load
        _write(folder / "one.jsonl", [template], False, "none")
        assert len(load_prompts(folder / "one.jsonl")) == 1
    ok = {"image": "ok.png", "prompt": "what is it?", "chosen": "a kite.", "rejected": "a dog."}
    cases = {
        "bad-utf8": "data.jsonl:1: not UTF-8 text (byte 0xff",
        "utf16": "UTF-16 text; save it as UTF-8",
        "deep": "data.jsonl:2: JSON nested too deeply",
        "not-object": "data.jsonl:2: expected a JSON object, got list",
        "cut": "data.jsonl:1: malformed JSON line",
    }
    for damage, expected in cases.items():
        path = folder / "data.jsonl"
        _write(path, [ok], False, damage)
        with pytest.raises(UserError, match=expected.replace("(", r"\(")):
            load_preferences(path)
    path = folder / "data.jsonl"
    _write(path, [{**ok, "chosen": "\ud800"}], False, "none")
    with pytest.raises(UserError, match=r"data.jsonl:1: a string holds a lone surrogate \(U\+D800\)"):
        load_preferences(path)
    _write(
        path,
        [ok, {**ok, "image": "corrupt.png"}, {**ok, "image": "ok.png", "chosen": "a cat."}],
        False,
        "none",
    )
    loaded = load_preferences(path)
    assert len(loaded) == 2 and loaded.skipped == {"image unreadable": 1}
    assert loaded.info["unreadable_images"][0].startswith(f"{path}:2: cannot read image")
    _write(path, [{**ok, "image": "missing.png"}], False, "none")
    with pytest.raises(UserError, match=r"data.jsonl:1: image not found"):
        load_preferences(path)
