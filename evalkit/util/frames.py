"""Results as pandas DataFrames for notebooks: the one import of pandas (a one-line error naming the pip
command where it is missing) and `FrameView`, the short repr and Jupyter HTML of a result that is a table."""

from __future__ import annotations

import html
from typing import Any


def pandas():
    """The pandas module, or the one-line `MissingDependency` that names the pip command installing it."""
    try:
        import pandas as pd
    except ModuleNotFoundError as exc:
        from evalkit.util.dependencies import missing_dependency

        raise (missing_dependency(exc) or exc) from None
    return pd


class FrameView:
    """A result whose content is a table: subclasses give `_records()` (the rows as dicts), `_columns`
    (their column order) and `_title()`; `to_frame()` is the DataFrame, `repr()` a title and the first rows,
    and `_repr_html_` the same as HTML for Jupyter."""

    _columns: tuple[str, ...] = ()
    _repr_rows = 12

    def _records(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _title(self) -> str:
        raise NotImplementedError

    def to_frame(self):
        pd = pandas()
        records = self._records()
        columns = list(self._columns) or None
        if not records:
            return pd.DataFrame(columns=columns)
        return pd.DataFrame.from_records(records, columns=columns)

    def __repr__(self) -> str:
        frame = self.to_frame()
        more = f"\n… {len(frame) - self._repr_rows} more rows" if len(frame) > self._repr_rows else ""
        body = frame.head(self._repr_rows).to_string(index=False) if len(frame) else "(no rows)"
        return f"{self._title()}\n{body}{more}"

    def _repr_html_(self) -> str:
        frame = self.to_frame()
        table = frame.to_html(index=False, na_rep="", float_format=lambda x: f"{x:.4g}", border=0)
        return f"<div><p><b>{html.escape(self._title())}</b></p>{table}</div>"
