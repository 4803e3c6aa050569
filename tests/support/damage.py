"""Generated damage to input files (hypothesis strategies): truncation, byte flips, invalid UTF-8, UTF-16,
lone surrogates, deep nesting, records of the wrong type, fields dropped or retyped. `damaged(data, damage)`
applies one drawn `DAMAGE` to a file's bytes."""

import json

from hypothesis import strategies as st

BAD_BYTES = [b"\xff", b"\xfe\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\x80\x80", b'"', b"}", b"\n"]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just("\ud800"),
)
DAMAGE = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.sampled_from(BAD_BYTES)),
    st.tuples(st.just("utf16"), st.sampled_from(["utf-16", "utf-16-le"])),
    st.tuples(st.just("deep"), st.sampled_from([200_000, 70])),
    st.tuples(st.just("retype"), st.integers(0, 10**6), st.integers(0, 10**6), VALUES),
    st.tuples(st.just("drop"), st.integers(0, 10**6), st.integers(0, 10**6)),
    st.tuples(st.just("replace"), VALUES),
)


def _records(doc):
    """The records of a parsed file: list items, or the values of a top-level object."""
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        return list(doc.values())
    return []


def _retype(data: bytes, damage) -> bytes:
    """Change one field of one record (or drop it); JSON-lines files line by line."""
    text = data.decode("utf-8")
    lines = text.splitlines()
    jsonl = len(lines) > 1 and all(line.strip().startswith("{") for line in lines if line.strip())
    try:
        docs = [json.loads(line) for line in lines if line.strip()] if jsonl else [json.loads(text)]
    except json.JSONDecodeError:  # a text or TSV file: drop one line, or put the value in one cell
        if not lines:
            return data
        i = damage[1] % len(lines)
        if damage[0] == "drop":
            del lines[i]
        else:
            cells = lines[i].split("\t")
            cells[damage[2] % len(cells)] = str(damage[3])
            lines[i] = "\t".join(cells)
        return "\n".join(lines).encode("utf-8", "surrogatepass")
    records = [r for d in docs for r in ([d] if jsonl else _records(d))]
    records = [r for r in records if isinstance(r, dict) and r]
    if records:
        rec = records[damage[1] % len(records)]
        key = sorted(rec)[damage[2] % len(rec)]
        if damage[0] == "drop":
            del rec[key]
        else:
            rec[key] = damage[3]
    out = "".join(json.dumps(d) + "\n" for d in docs) if jsonl else json.dumps(docs[0])
    return out.encode("utf-8", "surrogatepass")


def damaged(data: bytes, damage) -> bytes:
    kind = damage[0]
    at = int(damage[1] * len(data)) if kind in ("truncate", "flip", "insert") else 0
    if kind == "truncate":
        return data[:at]
    if kind == "flip":
        return data[:at] + bytes([damage[2]]) + data[at + 1 :]
    if kind == "insert":
        return data[:at] + damage[2] + data[at:]
    if kind == "utf16":
        return data.decode("utf-8").encode(damage[1])
    if kind == "deep":
        n = damage[1]
        return b"[" * n + b"1" + b"]" * n
    if kind == "replace":
        return json.dumps(damage[1]).encode("utf-8", "surrogatepass")
    return _retype(data, damage)
