"""SteerLM prompts: the seed study's attribute suffix, written into the user turn (spec training.md §1a).

    steer_prompt("Why is it red?", {"helpfulness": 4, "correctness": 4, "coherence": 4,
                                    "complexity": 2, "verbosity": 1})
    -> "Why is it red?\\nPlease answer the question such that your response is in the following attributes
        in 5-point Likert scale:\\nHelpfulness:4,Correctness:4,Coherence:4,Complexity:2,Verbosity:1"

Training writes each completion's own scores into its prompt; at inference the model is asked with the
target scores. A SteerLM checkpoint carries its targets in `steerlm.json` (default: all 4, as the seed
repo prompts); `evalkit run --model CKPT` appends the suffix to every user turn (`evalkit.models.hf`), and
`--steer "verbosity=1"` changes the targets of that run. Both are recorded in the run's model fingerprint.
It lives in the core because training writes this format and the evaluation backend reads it.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from evalkit.types import UserError

#: the five attributes, in the order the suffix lists them
ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
SUFFIX = (
    "\nPlease answer the question such that your response is in the following attributes in 5-point "
    "Likert scale:\n"
)
DEFAULT_TARGETS = dict.fromkeys(ATTRIBUTES, 4)
STEER_FILE = "steerlm.json"
STEER_FORMAT = "evalkit-steerlm/1"
_PAIR = re.compile(r"\s*([A-Za-z]+)\s*[:=]\s*([0-9]+(?:\.[0-9]+)?)\s*")


def _value(name: str, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UserError(f"SteerLM attribute {name} must be a number, got {value!r}")
    if not 0 <= value <= 4:
        raise UserError(f"SteerLM attribute {name} must be on the 0-4 scale, got {value!r}")
    return int(value) if float(value).is_integer() else float(value)


def format_attributes(attributes: dict[str, Any]) -> str:
    """`Helpfulness:4,Correctness:4,Coherence:4,Complexity:2,Verbosity:1` (all five, in order)."""
    values = {str(k).lower(): v for k, v in attributes.items()}
    missing = [a for a in ATTRIBUTES if a not in values]
    if missing:
        raise UserError(f"SteerLM attributes lack {', '.join(missing)} (need all of {', '.join(ATTRIBUTES)})")
    return ",".join(f"{a.capitalize()}:{_value(a, values[a]):g}" for a in ATTRIBUTES)


def parse_attributes(text: str) -> dict[str, int | float]:
    """The inverse of `format_attributes`."""
    return parse_steer(text, partial=False)


def steer_prompt(question: str, attributes: dict[str, Any]) -> str:
    return question + SUFFIX + format_attributes(attributes)


def parse_steer(
    spec: str | None, *, base: dict[str, Any] | None = None, partial: bool = True
) -> dict[str, int | float]:
    """Targets from `"verbosity=1,complexity=2"` or the suffix form `"Verbosity:1,..."`; attributes not
    named keep their value in `base` (default: 4) when `partial`."""
    targets: dict[str, int | float] = dict(base or DEFAULT_TARGETS) if partial else {}
    if spec is None or not spec.strip():
        if partial:
            return targets
        raise UserError("empty SteerLM attribute list")
    for item in spec.split(","):
        m = _PAIR.fullmatch(item)
        if not m:
            raise UserError(
                f"cannot read SteerLM attribute {item.strip()!r}; write NAME=VALUE pairs such as "
                f"verbosity=1 (names: {', '.join(ATTRIBUTES)})"
            )
        name = m.group(1).lower()
        if name not in ATTRIBUTES:
            raise UserError(f"unknown SteerLM attribute {m.group(1)!r}; names: {', '.join(ATTRIBUTES)}")
        targets[name] = _value(name, float(m.group(2)))
    if not partial:
        format_attributes(targets)  # all five must be there
    return targets


def write_steer_file(folder: Path, targets: dict[str, Any]) -> Path:
    path = Path(folder) / STEER_FILE
    data = {"format": STEER_FORMAT, "suffix": SUFFIX, "targets": {a: targets[a] for a in ATTRIBUTES}}
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def read_steer_file(folder: Path | None) -> dict[str, int | float] | None:
    """The targets a SteerLM checkpoint was saved with; None for other checkpoints."""
    if folder is None or not (Path(folder) / STEER_FILE).is_file():
        return None
    path = Path(folder) / STEER_FILE
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from None
    if data.get("format") != STEER_FORMAT or data.get("suffix") != SUFFIX:
        raise UserError(f"{path} was not written by this version of evalkit's SteerLM trainer")
    targets = {a: _value(a, data["targets"].get(a)) for a in ATTRIBUTES}
    return targets
