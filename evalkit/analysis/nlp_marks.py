"""Which NLP backend scored a run's AMBER generative rows, and the marks that flag non-official numbers.

AMBER's official CHAIR / Cover / Hal / Cog need NLTK's tagger data and spaCy `en_core_web_lg`;
`amber.nlp=auto` uses a spaCy model or the dependency-free `basic` matcher when those are missing, which
moves CHAIR by about 1.4 points. run.json records the backend (`tasks.amber.data.nlp`, with `official`);
the run summary, the leaderboard and the alignment-tax table read it here, so a number scored another
way is never shown as the official one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: tasks whose run.json records a generative NLP backend with an `official` flag
NLP_TASKS = ("amber",)
MARK = "†"
NEED = (
    "official AMBER numbers need NLTK's punkt_tab and averaged_perceptron_tagger_eng data and spaCy "
    "en_core_web_lg (then amber.nlp=official)"
)


def unofficial_backend(header: dict[str, Any], task: str) -> str | None:
    """The id of the non-official NLP backend that scored `task` in a run (its run.json header), or None
    when the task has no such backend, the official one ran, or no generative row was scored."""
    if task not in NLP_TASKS:
        return None
    info = (header.get("tasks") or {}).get(task)
    data = info.get("data") if isinstance(info, dict) else None
    nlp = data.get("nlp") if isinstance(data, dict) else None
    if isinstance(nlp, dict) and nlp.get("official") is False:
        return str(nlp.get("id") or "unknown")
    return None


def footnote(backends: Iterable[str]) -> str:
    """The footnote under a table with marked cells, naming the backends that ran."""
    ids = ", ".join(sorted(set(backends)))
    return f"{MARK} AMBER scored with a non-official NLP backend ({ids}); {NEED}."


def summary_lines(header: dict[str, Any]) -> list[str]:
    """One line per task of a run scored with a non-official NLP backend, for the run's terminal summary."""
    out = []
    for task in header.get("tasks") or {}:
        backend = unofficial_backend(header, task)
        if backend is not None:
            out.append(f"{task}: NLP backend {backend!r}, not the official one; {NEED}")
    return out
