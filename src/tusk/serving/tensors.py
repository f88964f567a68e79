"""Open Inference Protocol V2 tensors ⇄ the rows a model predicts on.

A request's inputs become :class:`Rows`, in one of two layouts:

- ``array``: one input of shape ``[N, F]`` — a numeric matrix;
- ``columns``: one input per column, each of shape ``[N]`` or ``[N, 1]`` (the
  layout MLServer calls the pandas codec) — for models that take a table with
  named, mixed-type columns.

Numbers are taken as clients send them: an integral float (``39.0``) is an
integer, ``0``/``1`` (or ``0.0``/``1.0``) a BOOL; nothing is truncated or wraps
around, so ``5.5`` in an INT64 tensor or ``70000`` in an FP16 one is refused.
A tensor's data is JSON, or raw bytes after the JSON (:mod:`tusk.serving.binary`).

Everything a client can get wrong is an :class:`~tusk.errors.InputError`
naming the input: unknown datatype, data that does not fit the shape, strings
in a numeric tensor, integers out of range, ragged nesting. Rows of one layout
and signature concatenate, which is what the batcher needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tusk.errors import InputError
from tusk.serving.binary import BinarySection, from_bytes, to_bytes

__all__ = ["DATATYPES", "Rows", "columns_from_records", "datatype_of", "decode_inputs", "encode_binary_output",
           "encode_output", "rows_from_json"]

DATATYPES: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_,
    "BF16": np.float32,  # bfloat16: binary data only (as Triton has it); the model gets float32
}


@dataclass(frozen=True)
class Rows:
    """N rows for a model: a 2-D array, or named 1-D columns of equal length."""

    n: int
    array: np.ndarray[Any, Any] | None = None
    columns: dict[str, np.ndarray[Any, Any]] | None = None

    @property
    def signature(self) -> tuple[Any, ...]:
        """Rows with the same signature can be stacked into one batch."""
        if self.array is not None:
            return ("array", self.array.shape[1], self.array.dtype.kind)
        assert self.columns is not None
        return ("columns", *self.columns)

    @property
    def width(self) -> int:
        return self.array.shape[1] if self.array is not None else len(self.columns or {})

    @staticmethod
    def concat(parts: Sequence[Rows]) -> Rows:
        if len(parts) == 1:
            return parts[0]
        n = sum(p.n for p in parts)
        if parts[0].array is not None:
            return Rows(n, array=np.concatenate([p.array for p in parts if p.array is not None]))
        names = list(parts[0].columns or {})
        return Rows(n, columns={c: np.concatenate([(p.columns or {})[c] for p in parts]) for c in names})

    def model_input(self, feature_names: Sequence[str] | None) -> Any:
        """What ``model.predict`` takes: a matrix for a model trained on one, else a DataFrame of its features
        in training order (columns it does not use are left out)."""
        if feature_names is None:
            return self.array if self.columns is None else np.column_stack(list(self.columns.values()))
        import pandas as pd

        if self.columns is None:
            return pd.DataFrame(self.array, columns=list(feature_names))
        return pd.DataFrame({c: self.columns[c] for c in feature_names})

    def frame(self, names: Sequence[str] | None = None) -> Any:
        """A DataFrame of the rows (an array's columns named ``names``, or 0..F-1)."""
        import pandas as pd

        if self.columns is not None:
            return pd.DataFrame(self.columns)
        assert self.array is not None
        labels = list(names) if names is not None and len(names) == self.width else list(range(self.width))
        return pd.DataFrame(self.array, columns=labels)

    def check(self, feature_names: Sequence[str] | None, n_features: int | None) -> list[str]:
        """Refuse, before any batching, rows the model cannot take: missing columns, wrong feature count.

        Returns the named columns the model does not use; they are ignored, as scikit-learn's column
        transformers ignore them, and the response lists them so a client notices a misspelt column.
        """
        if self.columns is not None and feature_names is not None:
            missing = [c for c in feature_names if c not in self.columns]
            if missing:
                raise InputError(f"the inputs lack {len(missing)} of the model's features: {', '.join(missing)} "
                                 f"(expected {len(feature_names)}: {', '.join(feature_names)})")
            known = set(feature_names)
            return [c for c in self.columns if c not in known]
        expected = len(feature_names) if feature_names is not None else n_features
        if expected is not None and self.width != expected:
            raise InputError(f"the model expects {expected} features per row, got {self.width}")
        return []

    def to_records(self) -> list[dict[str, Any]] | list[list[Any]]:
        if self.array is not None:
            return [[_plain(v) for v in row] for row in self.array.tolist()]
        cols = {c: v.tolist() for c, v in (self.columns or {}).items()}
        return [{c: _plain(cols[c][i]) for c in cols} for i in range(self.n)]


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _tensor(t: Any, index: int, binary: BinarySection | None) -> tuple[str, np.ndarray[Any, Any]]:
    if not isinstance(t, dict):
        raise InputError(f"inputs[{index}] must be an object with name, shape, datatype and data")
    name = t.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"inputs[{index}].name must be a non-empty string")
    where = f"input {name!r}"
    shape, datatype, data = t.get("shape"), t.get("datatype"), t.get("data")
    if (not isinstance(shape, list) or not shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise InputError(f"{where}: shape must be a non-empty list of non-negative integers, got {shape!r}")
    if datatype not in DATATYPES:
        raise InputError(f"{where}: unknown datatype {datatype!r}; use one of {', '.join(DATATYPES)}")
    size = _binary_size(t, index)
    if size is not None:
        if data is not None:
            raise InputError(f"{where}: has both data and parameters.binary_data_size; send one or the other")
        if binary is None:
            raise InputError(f"{where}: parameters.binary_data_size is set, but the request has no {_HEADER} "
                             "header: the binary tensor data extension needs it to find where the JSON ends")
        return name, from_bytes(binary.take(size), datatype, shape, where)
    if data is None:
        raise InputError(f"{where}: data is missing")
    if datatype == "BF16":
        raise InputError(f"{where}: BF16 data must be binary (the binary tensor data extension); JSON has no "
                         "bfloat16 numbers. Or send FP32")
    count = math.prod(shape)
    if not isinstance(data, list):
        data = [data]
    try:
        raw = np.asarray(data, dtype=np.object_ if datatype == "BYTES" else None)
    except ValueError:
        raise InputError(f"{where}: data is ragged (nested lists of different lengths)") from None
    if raw.size != count:
        raise InputError(f"{where}: shape {shape} holds {count} values, but data has {raw.size}")
    if raw.dtype.kind in "fO" and np.dtype(DATATYPES[datatype]).kind in "iu":
        raw = np.asarray(data, dtype=np.object_)  # the numbers as parsed: no detour through float64
    return name, _typed(raw.reshape(shape), datatype, where)


_HEADER = "Inference-Header-Content-Length"


def _binary_size(t: dict[str, Any], index: int) -> int | None:
    """``parameters.binary_data_size`` of an input, checked; None when it has none."""
    params = t.get("parameters")
    if params is None:
        return None
    name = t.get("name") or f"inputs[{index}]"
    if not isinstance(params, dict):
        raise InputError(f"input {name!r}: parameters must be an object")
    if params.get("shared_memory_region") is not None:
        raise InputError(f"input {name!r}: the shared memory extension is not supported here; send the data "
                         "as JSON or binary (binary_data_size)")
    size = params.get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InputError(f"input {name!r}: parameters.binary_data_size must be a non-negative integer, "
                         f"got {size!r}")
    return size


def _typed(raw: np.ndarray[Any, Any], datatype: str, where: str) -> np.ndarray[Any, Any]:
    """Check values against the datatype; ``null`` means missing (NaN) in FP and BYTES tensors only."""
    target = np.dtype(DATATYPES[datatype])
    kind = raw.dtype.kind
    if datatype == "BYTES":
        if raw.size and not all(isinstance(v, (str, bytes)) or v is None for v in raw.flat):
            raise InputError(f"{where}: BYTES data must be strings (or null for missing)")
        return np.fromiter(map(_text, raw.flat), dtype=object, count=raw.size).reshape(raw.shape)
    if raw.size == 0:
        return raw.astype(target)
    if kind == "O" and target.kind == "f":
        values = list(raw.flat)
        if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
            return _floats(np.asarray([np.nan if v is None else v for v in values]).reshape(raw.shape), target,
                           datatype, where)
    if kind == "O" and any(v is None for v in raw.flat):
        raise InputError(f"{where}: null (missing) is allowed in FP and BYTES tensors only, not {datatype}")
    if datatype == "BOOL":
        if kind == "b":
            return raw
        if kind in "iuf":
            bad = raw[(raw != 0) & (raw != 1)]
            if not bad.size:
                return raw.astype(np.bool_)
            raise InputError(f"{where}: BOOL data must be true/false (or 0/1), got {bad.flat[0].item()!r}")
        raise InputError(f"{where}: BOOL data must be true/false (or 0/1)")
    if target.kind in "iu":
        return _integers(raw, target, datatype, where)
    if kind not in "biuf":
        raise InputError(f"{where}: {datatype} data must be numbers, not {_kind_name(kind)}")
    return _floats(raw, target, datatype, where)


def _integers(raw: np.ndarray[Any, Any], target: np.dtype[Any], datatype: str, where: str) -> np.ndarray[Any, Any]:
    """Integers, and floats with no fraction (``39.0``, as many clients write them), all within range."""
    if raw.dtype.kind == "O":  # JSON numbers as parsed: ints exact, floats that must be whole
        values: list[int] = []
        for v in raw.flat:
            if isinstance(v, float) and v.is_integer():
                values.append(int(v))
            elif isinstance(v, float):
                raise InputError(f"{where}: {datatype} data must be integers, but {v!r} has a fraction; send "
                                 "FP32/FP64 for fractions" if math.isfinite(v)
                                 else f"{where}: {datatype} data must be integers, not {v!r}")
            elif isinstance(v, int):  # a bool is 0 or 1 here, as numpy has it
                values.append(int(v))
            else:
                raise InputError(f"{where}: {datatype} data must be numbers, not {type(v).__name__} values")
        low, high = min(values), max(values)
    elif raw.dtype.kind in "biu":
        if np.can_cast(raw.dtype, target):  # every value fits (JSON integers parse as int64): nothing to check
            return raw.astype(target, copy=False)
        low, high = int(raw.min()), int(raw.max())
    else:
        raise InputError(f"{where}: {datatype} data must be numbers, not {_kind_name(raw.dtype.kind)}")
    info = np.iinfo(target)
    if low < info.min or high > info.max:
        raise InputError(f"{where}: {low if low < info.min else high} is outside the range of {datatype} "
                         f"({info.min}..{info.max})")
    if raw.dtype.kind == "O":
        return np.asarray(values, dtype=target).reshape(raw.shape)
    return raw.astype(target)


def _floats(raw: np.ndarray[Any, Any], target: np.dtype[Any], datatype: str, where: str) -> np.ndarray[Any, Any]:
    """Numbers as a float type; a finite value too large for it (70000 as FP16) is refused, not made inf."""
    if np.can_cast(raw.dtype, target) and raw.dtype.kind != "O":  # e.g. JSON numbers (float64) as FP64
        return raw.astype(target, copy=False)
    with np.errstate(over="ignore"):
        out = raw.astype(target)
    overflow = np.isinf(out) & np.isfinite(raw.astype(np.float64))
    if overflow.any():
        value = raw[overflow].flat[0]
        raise InputError(f"{where}: {value.item() if hasattr(value, 'item') else value!r} is outside the range of "
                         f"{datatype} (up to {np.finfo(target).max.item():g}); send FP32 or FP64")
    return out


def _text(v: Any) -> Any:
    if v is None:
        return np.nan  # what pandas reads for a missing string, so a model sees what it saw in training
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def _kind_name(kind: str) -> str:
    return {"U": "strings", "S": "strings", "O": "mixed values or nulls"}.get(kind, f"dtype kind {kind!r}")


def decode_inputs(inputs: Any, binary: BinarySection | None = None) -> Rows:
    """The ``inputs`` of an OIP inference request → :class:`Rows`; ``binary``: the bytes after the JSON, for
    inputs sent with the binary tensor data extension."""
    if not isinstance(inputs, list) or not inputs:
        raise InputError("inputs must be a non-empty list of tensors")
    if binary is not None:
        binary.check_sizes([(str(t.get("name")), size) for i, t in enumerate(inputs) if isinstance(t, dict)
                            and (size := _binary_size(t, i)) is not None])
    tensors = [_tensor(t, i, binary) for i, t in enumerate(inputs)]
    names = [n for n, _ in tensors]
    if len(set(names)) != len(names):
        raise InputError(f"input names must be unique, got {', '.join(names)}")
    if len(tensors) == 1 and tensors[0][1].ndim == 2 and tensors[0][1].shape[1] != 1:
        array = tensors[0][1]
        return Rows(array.shape[0], array=array)
    columns: dict[str, np.ndarray[Any, Any]] = {}
    for name, value in tensors:
        if value.ndim == 2 and value.shape[1] == 1:
            value = value[:, 0]
        if value.ndim != 1:
            raise InputError(f"input {name!r}: with several inputs each is one column, shape [N] or [N, 1]; "
                             f"got shape {list(value.shape)}")
        columns[name] = value
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise InputError("the input columns have different lengths: "
                         + ", ".join(f"{n}={len(v)}" for n, v in columns.items()))
    return Rows(lengths.pop(), columns=columns)


def columns_from_records(columns: Sequence[Any], rows: Sequence[Any]) -> Rows:
    """Named columns from row-major data (MLflow's dataframe_split / dataframe_records)."""
    if not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
        raise InputError("columns must be unique strings")
    if not rows:
        raise InputError("no rows to predict on")
    if any(not isinstance(r, list) or len(r) != len(columns) for r in rows):
        raise InputError(f"every row must be a list of {len(columns)} values, one per column")
    out: dict[str, np.ndarray[Any, Any]] = {}
    for i, name in enumerate(columns):
        values = [r[i] for r in rows]
        out[name] = _column(values, name)
    return Rows(len(rows), columns=out)


def rows_from_json(data: Any, what: str = "input") -> Rows:
    """Plain JSON rows: a list of objects (records), a list of numeric rows, or ``{column: [values]}``."""
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        lengths = {len(v) for v in data.values()}
        if len(lengths) != 1 or 0 in lengths:
            raise InputError(f"{what}: every column needs the same, non-zero number of values")
        return Rows(lengths.pop(), columns={str(k): _column(v, str(k)) for k, v in data.items()})
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        columns = list(data[0])
        if any(list(r) != columns and set(r) != set(columns) for r in data):
            raise InputError(f"{what}: every record needs the same fields as the first ({', '.join(columns)})")
        return columns_from_records(columns, [[r[c] for c in columns] for r in data])
    if isinstance(data, list) and data and all(isinstance(r, list) for r in data):
        try:
            array = np.asarray(data)
        except ValueError:
            raise InputError(f"{what}: rows have different lengths") from None
        if array.ndim != 2 or array.dtype.kind not in "biuf":
            raise InputError(f"{what}: a list of rows must be numbers, each row the same length; "
                             "send records ({column: value}) for named or mixed-type columns")
        return Rows(array.shape[0], array=array)
    raise InputError(f"{what}: expected a list of records, a list of numeric rows, or {{column: [values]}}")


def _column(values: list[Any], name: str) -> np.ndarray[Any, Any]:
    if all(isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.bool_)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.float64 if any(isinstance(v, float) for v in values) else np.int64)
    if all(isinstance(v, str) for v in values):
        return np.asarray(values, dtype=np.object_)
    if all(v is None or isinstance(v, (int, float)) for v in values):
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    raise InputError(f"column {name!r} mixes types: use all numbers or all strings")


def datatype_of(array: np.ndarray[Any, Any]) -> str:
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "b":
        return "BOOL"
    if kind == "f":
        return {2: "FP16", 4: "FP32"}.get(size, "FP64")
    if kind in "iu":
        return f"{'UINT' if kind == 'u' else 'INT'}{size * 8}"
    return "BYTES"


def encode_output(name: str, value: Any) -> dict[str, Any]:
    """A model result → an OIP output tensor (row-major flat data)."""
    array = np.asarray(value)
    datatype = datatype_of(array)
    if datatype == "BYTES":
        data: list[Any] = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in array.ravel()]
    else:
        data = array.ravel().tolist()
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            data = [v if math.isfinite(v) else None for v in data]
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def encode_binary_output(name: str, value: Any) -> tuple[dict[str, Any], bytes]:
    """A model result → an OIP output tensor sent as binary (the binary tensor data extension), and its bytes."""
    array = np.asarray(value)
    datatype = datatype_of(array)
    data = to_bytes(array, datatype)
    return {"name": name, "datatype": datatype, "shape": list(array.shape),
            "parameters": {"binary_data_size": len(data)}}, data
