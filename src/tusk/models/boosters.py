"""XGBoost and LightGBM models from their own save formats, with scikit-learn's ``predict``/``predict_proba``.

A booster file does not say whether it classifies: its objective does. A
classifier's ``predict`` is the most probable class index and ``predict_proba``
the probability of each class (two columns for a binary objective, as
scikit-learn gives); a regressor has ``predict`` only. Objectives that give
labels without probabilities (``multi:softmax``, ``binary:hinge``) predict
labels and have no ``predict_proba``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from tusk.errors import ModelUnloadable

__all__ = ["LightGBMModel", "XGBoostModel"]

_XGB_PROBABILITIES = {"binary:logistic": "binary", "multi:softprob": "multi"}
_XGB_LABELS = {"multi:softmax", "binary:hinge"}
_LGB_PROBABILITIES = {"binary": "binary", "cross_entropy": "binary", "xentropy": "binary",
                      "multiclass": "multi", "softmax": "multi", "multiclassova": "multi", "multiclass_ova": "multi",
                      "ova": "multi", "ovr": "multi"}
_DEFAULT_NAME = re.compile(r"(f|Column_)\d+")  # what the libraries call unnamed features: no names to send


class _Booster:
    """What the two libraries share: probabilities by objective, classes, feature names."""

    objective: str
    _kind: str | None  # "binary", "multi" or None (no probabilities)
    _labels: bool  # the raw prediction is already a label
    feature_names_in_: np.ndarray[Any, Any] | None

    def _raw(self, x: Any) -> np.ndarray[Any, Any]:
        raise NotImplementedError

    def _probabilities(self, x: Any) -> np.ndarray[Any, Any]:
        raw = np.asarray(self._raw(x))
        if self._kind == "binary":
            p = raw.reshape(-1)
            return np.column_stack([1.0 - p, p])
        return raw

    @property
    def classes_(self) -> np.ndarray[Any, Any] | None:
        return None if self._kind is None else np.arange(self._n_classes())

    def _n_classes(self) -> int:
        raise NotImplementedError

    def predict(self, x: Any) -> np.ndarray[Any, Any]:
        if self._kind is not None:
            return np.asarray(np.argmax(self._probabilities(x), axis=1), dtype=np.int64)
        raw = np.asarray(self._raw(x))
        return raw.astype(np.int64) if self._labels else raw

    def __getattr__(self, name: str) -> Any:
        if name == "predict_proba" and self._kind is not None:
            return self._probabilities
        raise AttributeError(f"{type(self).__name__} with objective {self.objective!r} has no {name}")


def _names(names: Sequence[str] | None) -> np.ndarray[Any, Any] | None:
    if not names or all(_DEFAULT_NAME.fullmatch(n) for n in names):
        return None
    return np.asarray(names, dtype=object)


class XGBoostModel(_Booster):
    """An XGBoost model from ``save_model`` (UBJSON or JSON), predicted with ``inplace_predict``."""

    def __init__(self, data: bytes | memoryview, path: str) -> None:
        import xgboost

        self.booster = xgboost.Booster()
        try:
            self.booster.load_model(bytearray(data))
            config = json.loads(self.booster.save_config())
            self.objective = str(config["learner"]["objective"]["name"])
            self._classes = int(config["learner"]["learner_model_param"].get("num_class", "0") or 0)
        except Exception as e:  # xgboost.core.XGBoostError and malformed configs alike
            raise ModelUnloadable(f"{path} is not a loadable XGBoost model: {str(e).splitlines()[0]}") from e
        self._kind = _XGB_PROBABILITIES.get(self.objective)
        self._labels = self.objective in _XGB_LABELS
        self.feature_names_in_ = _names(self.booster.feature_names)

    def _raw(self, x: Any) -> np.ndarray[Any, Any]:
        return np.asarray(self.booster.inplace_predict(x))

    def _n_classes(self) -> int:
        return 2 if self._kind == "binary" else max(self._classes, 2)


class LightGBMModel(_Booster):
    """A LightGBM model from ``Booster.save_model`` (its text format)."""

    def __init__(self, data: bytes | memoryview, path: str) -> None:
        import lightgbm

        try:
            text = str(data, "utf-8")
            self.booster = lightgbm.Booster(model_str=text)
        except Exception as e:  # lightgbm.basic.LightGBMError, or bytes that are not its text format
            raise ModelUnloadable(f"{path} is not a loadable LightGBM model: {str(e).splitlines()[0]}") from e
        line = next((ln for ln in text.splitlines() if ln.startswith("objective=")), "objective=regression")
        self.objective = line.split("=", 1)[1].split()[0] if "=" in line else "regression"
        self._kind = _LGB_PROBABILITIES.get(self.objective)
        self._labels = False
        self.feature_names_in_ = _names(self.booster.feature_name())

    def _raw(self, x: Any) -> np.ndarray[Any, Any]:
        return np.asarray(self.booster.predict(x))

    def _n_classes(self) -> int:
        return 2 if self._kind == "binary" else int(self.booster.num_model_per_iteration())
