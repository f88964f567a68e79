"""An ONNX model as the rest of Tusk sees a scikit-learn one: inputs by name, ``predict``, ``predict_proba``.

A converted tabular pipeline (skl2onnx) has one graph input per column, each ``[N, 1]`` of its own type
(strings for categories, floats or integers for numbers): ``feature_names_in_`` lists them in graph order and
``predict`` feeds each column to the input of its name. A model with one matrix input takes the matrix.

Outputs: the first graph output is the prediction (a classifier's label, a regressor's value); an output
named like a probability (skl2onnx's ``output_probability``), as a ``[N, C]`` tensor or as ZipMap's list of
``{class: p}`` maps, is ``predict_proba``. ``oip_inputs`` and ``oip_outputs`` give the Open Inference Protocol
datatype of each, read from the graph, so a deployment's metadata says what its responses carry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["OnnxModel"]

# ONNX element types → (numpy dtype to feed, OIP datatype)
_TYPES: dict[str, tuple[str, str]] = {
    "float": ("float32", "FP32"), "double": ("float64", "FP64"), "float16": ("float16", "FP16"),
    "int64": ("int64", "INT64"), "int32": ("int32", "INT32"), "int16": ("int16", "INT16"), "int8": ("int8", "INT8"),
    "uint64": ("uint64", "UINT64"), "uint32": ("uint32", "UINT32"), "uint16": ("uint16", "UINT16"),
    "uint8": ("uint8", "UINT8"), "bool": ("bool", "BOOL"), "string": ("object", "BYTES"),
}
_PROBABILITY = re.compile(r"prob", re.IGNORECASE)


def _element(onnx_type: str) -> tuple[str, str]:
    """The element type of ``tensor(float)``, or of the values of ``seq(map(int64,tensor(float)))``."""
    found = re.findall(r"tensor\((\w+)\)", onnx_type)
    return _TYPES.get(found[-1] if found else "", ("float32", "FP32"))


class OnnxModel:
    def __init__(self, session: Any) -> None:
        self.session = session
        self._inputs = list(session.get_inputs())
        self._outputs = list(session.get_outputs())
        self._feed = {i.name: _element(i.type)[0] for i in self._inputs}
        self._label = self._outputs[0].name
        proba = [o for o in self._outputs[1:] if _PROBABILITY.search(o.name)]
        self._proba = proba[0].name if proba else None
        self._proba_dtype = _element(proba[0].type)[0] if proba else "float32"
        self.oip_inputs = {i.name: _element(i.type)[1] for i in self._inputs}
        self.oip_outputs = {"predict": _element(self._outputs[0].type)[1]}
        if proba:
            self.oip_outputs["predict_proba"] = _element(proba[0].type)[1]
        self.classes_: Any = None  # known once a probability map has been seen (ZipMap's keys)
        if len(self._inputs) > 1:
            self.feature_names_in_ = np.array([i.name for i in self._inputs], dtype=object)
        else:
            shape = self._inputs[0].shape
            if len(shape) == 2 and isinstance(shape[1], int):
                self.n_features_in_ = shape[1]

    def _column(self, name: str, values: Any) -> Any:
        dtype = self._feed[name]
        column = np.asarray(values)
        if dtype == "object":
            column = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in column.ravel()],
                              dtype=object)
        else:
            column = column.astype(dtype)
        declared = next(i.shape for i in self._inputs if i.name == name)
        return column.reshape(-1, 1) if len(declared) == 2 else column.reshape(-1)

    def _run(self, x: Any, outputs: list[str]) -> list[Any]:
        if len(self._inputs) > 1:
            if not isinstance(x, Mapping) and not hasattr(x, "columns"):
                x = np.asarray(x)
                if x.ndim != 2 or x.shape[1] != len(self._inputs):
                    raise ValueError(f"this ONNX model takes {len(self._inputs)} named inputs: "
                                     + ", ".join(i.name for i in self._inputs))
                x = {i.name: x[:, k] for k, i in enumerate(self._inputs)}
            feed = {i.name: self._column(i.name, x[i.name]) for i in self._inputs}
        else:
            first = self._inputs[0]
            feed = {first.name: np.asarray(x, dtype=self._feed[first.name])}
        return list(self.session.run(outputs, feed))

    def predict(self, x: Any) -> Any:
        return np.asarray(self._run(x, [self._label])[0]).reshape(-1)

    @property
    def predict_proba(self) -> Any:
        if self._proba is None:
            raise AttributeError("this ONNX model has no probability output")
        return self._predict_proba

    def _predict_proba(self, x: Any) -> Any:
        assert self._proba is not None
        probs = self._run(x, [self._proba])[0]
        if isinstance(probs, list):  # ZipMap: one {class: probability} per row
            keys = sorted(probs[0]) if probs else []
            if self.classes_ is None:
                self.classes_ = np.asarray(keys)
            return np.asarray([[row[k] for k in keys] for row in probs], dtype=self._proba_dtype)
        return np.asarray(probs)
