"""The records training data turns into, and the plumbing every format importer shares.

`training.data` is the public entry point (`load_preferences`, `load_sft`); this module holds the
dataclasses, the JSONL / JSON-list reader that keeps line numbers, and `Context`, which every importer in
`training.data_formats` writes through so that each record is either kept, counted under a skip reason,
or rejected with a `UserError` naming `file:line`.
"""

from __future__ import annotations

import ast
import bisect
import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from evalkit.types import UserError
from evalkit.util.datafiles import jsonl_records, read_text, require_fields

T = TypeVar("T")

#: the roles a conversation turn may carry (LLaVA `from`, OpenAI/TRL `role`)
USER_ROLES = ("human", "user")
ASSISTANT_ROLES = ("gpt", "assistant", "model", "bot")
#: where a record may keep its image, first match wins (`images` may be a one-element list)
IMAGE_KEYS = ("image", "images", "image_path", "img_path")
#: a dict with one of these keys is taken for a conversation turn when a string is parsed
_TURN_KEYS = {"from", "role", "value", "content", "preference_values"}


@dataclass(frozen=True)
class PreferencePair:
    """One DPO example. `image` is an absolute path (or None for a text-only pair); `source` is the
    `file:line` the pair came from; `scores` carries whatever ratings the pair was built from;
    `second_rejected` is a second rejected answer (the two-rejected loss, `training.avg_dpo`), or None."""

    prompt: str
    chosen: str
    rejected: str
    image: str | None
    source: str
    id: str
    scores: dict | None = None
    second_rejected: str | None = None


@dataclass(frozen=True)
class SFTExample:
    """One supervised example. `attributes` holds the SteerLM attribute scores when the format has them."""

    prompt: str
    response: str
    image: str | None
    source: str
    id: str
    attributes: dict | None = None


@dataclass
class Loaded(Generic[T]):
    """What a loader returns: the kept `items`, `skipped` (reason -> count; nothing is dropped without
    a count), the `format` read, and `info` (path, sha256, counts, rule options) for the training log."""

    items: list[T]
    skipped: dict[str, int]
    format: str
    info: dict[str, Any]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def summary(self) -> str:
        """One line for the training log."""
        where = self.info.get("path") or self.info.get("source") or self.info.get("hub_id")  # hub: @commit
        how = "auto-detected" if self.info.get("auto_detected") else "as asked"
        line = f"{len(self.items)} examples from {self.info.get('records', 0)} records of {where} "
        line += f"(format {self.format}, {how})"
        if self.skipped:
            line += "; skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items()))
        noise = self.info.get("label_noise")
        if noise:
            line += f"; chosen and rejected swapped in {noise['flipped_pairs']} of {noise['of_pairs']} pairs"
        return line


@dataclass(frozen=True)
class Rules:
    """The rule options of `load_preferences` / `load_sft` that importers read."""

    min_gap: float = 2  # seed: drop a group whose best-worst quality gap is below this
    group_by: str = "prompt"  # seed one-row-per-completion files: "prompt" (image+question) or "image"
    seed: int = 0  # VLFeedback: the seeded draw of the rejected response


def number(value: Any) -> float | None:
    """A rating as a float (numbers and numeric strings); None for null, empty, NaN or non-numeric."""
    if value is None or isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


class Skip(Exception):
    """Raised inside an importer to drop the current record under `reason` (counted, never silent)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Context:
    """The file being read, the rules for images, and the kept items and skip counts so far."""

    label: str  # the file path, or `hf:<id>:<split>` for a hub dataset (then "line" is the 0-based row)
    base_dir: Path  # relative image paths are resolved against this folder
    skip_missing_images: bool = False
    items: list = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)  # facts for `info` that drop nothing (e.g. ties broken)
    seen_ids: set = field(default_factory=set)
    renamed_ids: int = 0

    def where(self, line: int) -> str:
        return f"{self.label}:{line}"

    def error(self, line: int, message: str) -> UserError:
        return UserError(one_line(f"{self.where(line)}: {message}"))

    def skip(self, reason: str, n: int = 1) -> None:
        if n:
            self.skipped[reason] += n

    def each(self, records: list[tuple[int, dict]], fn) -> None:
        """Call `fn(line, row)` for each record; a `Skip` is counted under its reason."""
        for line, row in records:
            try:
                fn(line, row)
            except Skip as s:
                self.skipped[s.reason] += 1

    def require(self, line: int, row: dict, fields: dict[str, type | tuple[type, ...]]) -> None:
        require_fields(Path(self.label), line, row, fields)

    def field(self, line: int, row: dict, name: str) -> Any:
        if name not in row:
            raise self.error(line, f"missing field {name!r} (keys: {keys_of(row)})")
        return row[name]

    def record_id(self, line: int, row: dict) -> str:
        for key in ("id", "idx"):
            if row.get(key) not in (None, ""):
                return str(row[key])
        return f"{Path(self.label).stem}-{line}"

    def image(self, line: int, raw: Any) -> str | None:
        """Resolve a record's image value to an absolute path that exists (or None for no image)."""
        if isinstance(raw, list | tuple):
            if len(raw) > 1:
                raise self.error(line, f"{len(raw)} images; the trainers take one image per example")
            raw = raw[0] if raw else None
        if isinstance(raw, dict):
            if not raw.get("path"):
                raise self.error(line, "image is a dict without a 'path' (export images to files first)")
            raw = raw["path"]
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str):
            raise self.error(line, f"image must be a path string, got {type(raw).__name__}")
        path = Path(raw).expanduser()
        path = Path(os.path.abspath(path if path.is_absolute() else self.base_dir / path))
        if not path.is_file():
            if self.skip_missing_images:
                raise Skip("image not found")
            raise self.error(line, f"image not found: {path} (pass image_root= if images live elsewhere)")
        return str(path)

    def check_text(self, line: int, **texts: str) -> None:
        """Text that cannot be encoded as UTF-8 (a lone surrogate such as "\\ud800" in the JSON) would stop
        the tokenizer mid-training: refused here, naming the line."""
        for name, text in texts.items():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                char = f"U+{ord(text[exc.start]):04X}"
                why = f"field {name!r} holds a lone surrogate ({char}), which is not text"
                raise self.error(line, why) from None

    def _unique(self, id_: str) -> str:
        if id_ in self.seen_ids:
            self.renamed_ids += 1
            n = 2
            while f"{id_}#{n}" in self.seen_ids:
                n += 1
            id_ = f"{id_}#{n}"
        self.seen_ids.add(id_)
        return id_

    def add_pair(
        self,
        line: int,
        *,
        id: str,
        prompt: str,
        chosen: str,
        rejected: str,
        image: Any,
        scores: dict | None = None,
        second_rejected: str | None = None,
    ) -> None:
        """Check and keep one pair (text checks first, then the image)."""
        self.check_text(line, prompt=prompt, chosen=chosen, rejected=rejected)
        if second_rejected is not None:
            self.check_text(line, second_rejected=second_rejected)
            if not second_rejected.strip():
                raise Skip("empty second_rejected")
            if second_rejected.strip() == chosen.strip():
                raise Skip("chosen == second_rejected")
        if not chosen.strip() or not rejected.strip():
            raise Skip("empty response")
        if chosen.strip() == rejected.strip():
            raise Skip("chosen == rejected")
        path = self.image(line, image)
        if not prompt.strip() and path is None:
            raise Skip("empty prompt and no image")
        self.items.append(
            PreferencePair(
                prompt, chosen, rejected, path, self.where(line), self._unique(id), scores, second_rejected
            )
        )

    def add_sft(
        self, line: int, *, id: str, prompt: str, response: str, image: Any, attributes: dict | None = None
    ) -> None:
        self.check_text(line, prompt=prompt, response=response)
        if not response.strip():
            raise Skip("empty response")
        path = self.image(line, image)
        if not prompt.strip() and path is None:
            raise Skip("empty prompt and no image")
        self.items.append(SFTExample(prompt, response, path, self.where(line), self._unique(id), attributes))


def one_line(text: str) -> str:
    """`text` with every line break (and run of white space) made one space: errors are one line."""
    return " ".join(text.split())


def keys_of(row: dict, most: int = 20) -> str:
    """A record's keys for an error message, each cut to 40 characters, at most `most` of them."""
    keys = sorted(str(k)[:40] for k in row)
    more = f", ... ({len(keys) - most} more)" if len(keys) > most else ""
    return (", ".join(keys[:most]) or "none") + more


def image_value(row: dict) -> Any:
    """The first non-empty image field of a record (see `IMAGE_KEYS`), or None."""
    for key in IMAGE_KEYS:
        if row.get(key) not in (None, "", []):
            return row[key]
    return None


# ---- reading files ---------------------------------------------------------------------------------

_WS = re.compile(r"\s*")


def read_records(path: Path) -> list[tuple[int, dict]]:
    """(line, record) for each record of a JSONL file or a JSON list (the line where the element starts).
    A malformed or non-UTF-8 line, or JSON nested too deeply, is a `UserError` naming `file:line`
    (`evalkit.util.datafiles` reads every user file the same way)."""
    text = read_text(path)
    if text.lstrip().startswith("["):
        return _json_list(path, text)
    return jsonl_records(path, text)


def _json_list(path: Path, text: str) -> list[tuple[int, dict]]:
    newlines = [m.start() for m in re.finditer("\n", text)]

    def line_at(pos: int) -> int:
        return bisect.bisect_left(newlines, pos) + 1

    decoder = json.JSONDecoder()
    records: list[tuple[int, dict]] = []
    i = _WS.match(text, text.index("[") + 1).end()
    if text.startswith("]", i):
        return records
    while True:
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{line_at(exc.pos)}: malformed JSON ({exc.msg})") from None
        except RecursionError:
            raise UserError(f"{path}:{line_at(i)}: JSON nested too deeply") from None
        if not isinstance(obj, dict):
            raise UserError(f"{path}:{line_at(i)}: expected a JSON object, got {type(obj).__name__}")
        records.append((line_at(i), obj))
        i = _WS.match(text, end).end()
        if text.startswith(",", i):
            i = _WS.match(text, i + 1).end()
        elif text.startswith("]", i):
            return records
        else:
            raise UserError(f"{path}:{line_at(i)}: malformed JSON list (expected ',' or ']')")


# ---- text in its many shapes -------------------------------------------------------------------------


def maybe_parse(value: Any) -> Any:
    """A conversation or turn stored as a string (JSON, or a Python repr as in the seed study's files);
    any other string, including text that merely looks like JSON, is returned unchanged."""
    if not (isinstance(value, str) and value.lstrip()[:1] in ("[", "{")):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        try:
            parsed = ast.literal_eval(value.strip())
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return value
    turns = parsed if isinstance(parsed, list) else [parsed]
    is_turn = [isinstance(t, dict) and bool(_TURN_KEYS & set(t)) for t in turns]
    return parsed if turns and all(is_turn) else value


def role_of(turn: dict) -> str:
    return str(turn.get("from", turn.get("role", ""))).lower()


def text_of(ctx: Context, line: int, value: Any, name: str) -> str:
    """A response's text from a string, a turn (`{"from","value"}` / `{"role","content"}`), TRL content
    parts, or a whole conversation (its last assistant turn)."""
    value = maybe_parse(value)
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("value", "content", "text"):
            if key in value:
                return text_of(ctx, line, value[key], name)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        if all("type" in v for v in value):  # content parts: [{"type": "image"}, {"type": "text", ...}]
            return "".join(str(v.get("text", "")) for v in value if v.get("type") == "text")
        answers = [t for t in value if role_of(t) in ASSISTANT_ROLES]
        if answers:
            return text_of(ctx, line, answers[-1], name)
    raise ctx.error(line, f"field {name!r}: expected text or a conversation turn, got {_shape(value)}")


def prompt_of(ctx: Context, line: int, value: Any, name: str) -> str:
    """A single-turn prompt from a string, a turn, or a conversation (its one user turn; a conversation
    with more than one user turn is skipped as "multi-turn conversation")."""
    value = maybe_parse(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        if not all("type" in v for v in value):
            users = [t for t in value if role_of(t) in USER_ROLES]
            others = [t for t in value if role_of(t) not in USER_ROLES + ASSISTANT_ROLES]
            if len(users) > 1 or others:
                raise Skip("multi-turn conversation")
            if not users:
                raise ctx.error(line, f"field {name!r}: no user turn in the conversation")
            value = users[0]
    return clean_prompt(text_of(ctx, line, value, name))


def clean_prompt(text: str) -> str:
    """Drop LLaVA's `<image>` placeholder (the trainer inserts the image itself) and outer whitespace."""
    return text.replace("<image>", "").strip()


def _shape(value: Any) -> str:
    if isinstance(value, list):
        return "an empty list" if not value else f"a list of {type(value[0]).__name__}"
    return type(value).__name__
