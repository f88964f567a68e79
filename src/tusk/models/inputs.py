"""Read rows to predict on from a CSV or JSON file, for ``tusk model predict``."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from tusk.errors import InputError, InvalidArgument

__all__ = ["fit_columns", "read_rows", "to_jsonable"]


def _numeric(value: str) -> Any:
    """A CSV field: a number, a string, or None for an empty field (missing, as pandas reads it)."""
    if not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        return value.strip()


def read_rows(data: bytes, name: str) -> Any:
    """A pandas DataFrame when the rows have column names and pandas is installed, else a list of rows.

    CSV: a header row names the columns. JSON: a list of objects (named
    columns), a list of lists, or ``{"columns": [...], "data": [[...]]}``.
    """
    text = data.decode("utf-8-sig")
    if name.endswith(".json") or text.lstrip().startswith(("[", "{")):
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise InvalidArgument(f"{name}: not valid JSON ({e})") from e
        if isinstance(doc, dict) and "columns" in doc and "data" in doc:
            return _frame(doc["data"], doc["columns"])
        if isinstance(doc, list) and doc and all(isinstance(r, dict) for r in doc):
            columns = list(doc[0])
            return _frame([[r.get(c) for c in columns] for r in doc], columns)
        if isinstance(doc, list) and all(isinstance(r, list) for r in doc):
            return doc
        raise InvalidArgument(f"{name}: expected a list of rows, a list of objects, or {{columns, data}}")
    reader = list(csv.reader(io.StringIO(text)))
    if not reader:
        raise InvalidArgument(f"{name}: no rows")
    header, rows = reader[0], reader[1:]
    if all(isinstance(_numeric(h), float) for h in header):  # no header: every row is data
        return [[_numeric(v) for v in r] for r in reader if r]
    return _frame([[_numeric(v) for v in r] for r in rows if r], [h.strip() for h in header])


def _frame(rows: list[list[Any]], columns: list[str]) -> Any:
    try:
        import pandas as pd
    except ImportError:
        return rows
    return pd.DataFrame(rows, columns=columns)


def to_jsonable(result: Any) -> Any:
    tolist = getattr(result, "tolist", None)
    return tolist() if callable(tolist) else result


def fit_columns(rows: Any, feature_names: list[str] | None, n_features: int | None) -> tuple[Any, list[str]]:
    """The rows as the model takes them: its columns in training order; and the columns it does not use.

    A missing column is an error naming it (and the unused ones, often the same column misspelt), before
    the model's library sees the rows; a wrong count of unnamed columns likewise.
    """
    columns = [str(c) for c in getattr(rows, "columns", [])]
    if feature_names is not None and columns:
        missing = [c for c in feature_names if c not in columns]
        extra = [c for c in columns if c not in feature_names]
        if missing:
            also = f"; it does not use {', '.join(extra)}" if extra else ""
            raise InputError(f"the rows lack the model's column(s) {', '.join(missing)}{also} "
                             f"(it expects {', '.join(feature_names)})")
        return rows[feature_names], extra
    width = len(columns) if columns else len(rows[0]) if isinstance(rows, list) and rows else None
    expected = len(feature_names) if feature_names is not None else n_features
    if width is not None and expected is not None and width != expected:
        raise InputError(f"the model expects {expected} column(s) per row, the rows have {width}")
    return rows, []
