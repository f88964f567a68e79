"""Outlier and drift detection against the training data, with numpy, scipy and scikit-learn.

- **Outliers**: a Mahalanobis distance over the standardized numeric features
  (or an IsolationForest score), with the threshold at a quantile of the
  reference's own scores — at ``quantile: 0.995`` about 0.5 % of rows drawn
  like the training data are flagged.
- **Drift**: over a sliding window of the most recent rows, a two-sample
  Kolmogorov-Smirnov test per numeric feature and a chi-squared test of the
  category counts per categorical feature, each against the reference. Drift is
  declared when a p-value falls below ``p_value`` divided by the number of
  features tested (Bonferroni), so a window drawn like the training data
  rarely raises a false alarm however many features there are.

:func:`build_reference` and :func:`drift_p_values` are also what the census
example's Python-class drift detector uses inside a pipeline.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tusk.deployments.spec import Detectors

__all__ = ["DeploymentDetectors", "DriftMonitor", "OutlierModel", "build_reference", "drift_p_values"]

_MAX_NUMERIC_SAMPLE = 5000


def build_reference(frame: Any, features: Sequence[str], sample: int = _MAX_NUMERIC_SAMPLE,
                    seed: int = 0) -> dict[str, Any]:
    """``{"numeric": {col: sorted sample}, "categorical": {col: {category: frequency}}}`` of a DataFrame."""
    import pandas as pd

    rows = frame.sample(n=min(sample, len(frame)), random_state=seed) if len(frame) > sample else frame
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(frame[c])]
    return {
        "numeric": {c: sorted(float(v) for v in rows[c].dropna()) for c in numeric},
        "categorical": {c: {k: n / len(frame) for k, n in _category_counts(frame[c]).items()}
                        for c in features if c not in numeric},
    }


def drift_p_values(reference: dict[str, Any], batch: Any) -> dict[str, float]:
    """One p-value per feature of ``reference`` present in ``batch`` (a DataFrame): KS or chi-squared."""
    from scipy import stats

    p_values: dict[str, float] = {}
    for column, sample in reference["numeric"].items():
        if column in batch:
            values = np.asarray(batch[column], dtype=float)
            values = values[np.isfinite(values)]
            if len(values) and len(sample):
                p_values[column] = float(stats.ks_2samp(values, sample).pvalue)
    for column, freqs in reference["categorical"].items():
        if column not in batch:
            continue
        seen = _category_counts(batch[column])
        categories = list(freqs)
        observed = np.array([seen.get(c, 0) for c in categories], dtype=float)
        unseen = sum(n for c, n in seen.items() if c not in freqs)
        if unseen:  # categories the training data never had: a category of their own, expected almost never
            categories.append("(unseen)")
            observed = np.append(observed, unseen)
        expected = np.array([freqs.get(c, 0.0) for c in categories], dtype=float)
        expected = np.maximum(expected, 0.5 / max(len(batch), 1)) if unseen else expected
        keep = expected > 0
        if observed.sum() > 0 and keep.sum() > 1:
            observed, expected = observed[keep], expected[keep]
            expected *= observed.sum() / expected.sum()
            p_values[column] = float(stats.chisquare(observed, expected).pvalue)
    return p_values


MISSING = "(missing)"


def _category_counts(values: Any) -> dict[str, int]:
    """Counts per category; None and NaN (however pandas or JSON spelled them) are one category, MISSING."""
    counts: dict[str, int] = {}
    for v in values:
        key = MISSING if v is None or (isinstance(v, float) and v != v) else str(v)
        counts[key] = counts.get(key, 0) + 1
    return counts


class OutlierModel:
    """Scores rows by how unlike the reference's numeric features they are; above ``threshold`` is an outlier."""

    def __init__(self, reference: Any, features: Sequence[str], method: str, quantile: float) -> None:
        import pandas as pd

        self.features = [c for c in features if pd.api.types.is_numeric_dtype(reference[c])]
        if not self.features:
            raise ValueError("outlier detection needs at least one numeric feature in the reference")
        self.method = method
        x = reference[self.features].to_numpy(dtype=float)
        x = x[np.isfinite(x).all(axis=1)]
        self.mean = x.mean(axis=0)
        std = x.std(axis=0)
        self.scale = np.where(std > 0, std, 1.0)
        z = (x - self.mean) / self.scale
        if method == "isolation_forest":
            from sklearn.ensemble import IsolationForest

            self.forest = IsolationForest(n_estimators=100, random_state=0).fit(z)
        else:
            self.precision = np.linalg.pinv(np.cov(z, rowvar=False).reshape(len(self.features), -1))
        self.threshold = float(np.quantile(self._scores(z), quantile))

    def _scores(self, z: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if self.method == "isolation_forest":
            return np.asarray(-self.forest.score_samples(z))
        return np.asarray(np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", z, self.precision, z), 0)))

    def score(self, frame: Any) -> np.ndarray[Any, Any]:
        x = np.asarray(frame[self.features], dtype=float)
        z = (np.where(np.isfinite(x), x, self.mean) - self.mean) / self.scale
        return self._scores(z)


@dataclass
class DriftReport:
    p_values: dict[str, float]
    drift: bool
    threshold: float
    window: int


@dataclass
class DriftMonitor:
    """A sliding window of recent rows, tested against the reference every ``every`` rows."""

    reference: dict[str, Any]
    window: int
    every: int
    p_value: float
    _rows: deque[dict[str, Any]] = field(default_factory=deque)
    _since: int = 0
    last: DriftReport | None = None

    def __post_init__(self) -> None:
        self._rows = deque(maxlen=self.window)
        self._columns = [*self.reference["numeric"], *self.reference["categorical"]]

    def add(self, frame: Any) -> DriftReport | None:
        """Add rows; returns a new report when a test ran."""
        present = [c for c in self._columns if c in frame]
        if not present:
            return None
        cols = {c: list(frame[c]) for c in present}
        n = len(frame)
        for i in range(n):
            self._rows.append({c: cols[c][i] for c in present})
        self._since += n
        if self._since < self.every or len(self._rows) < min(self.window, 2 * self.every):
            return None
        self._since = 0
        return self.test()

    def test(self) -> DriftReport:
        import pandas as pd

        p_values = drift_p_values(self.reference, pd.DataFrame(list(self._rows)))
        threshold = self.p_value / max(len(p_values), 1)
        self.last = DriftReport(p_values, any(p < threshold for p in p_values.values()), threshold,
                                len(self._rows))
        return self.last


@dataclass
class Detection:
    outlier: list[bool] | None
    outlier_score: list[float] | None
    drift: DriftReport | None


class DeploymentDetectors:
    """The detectors of one deployment, fit on its reference data; called from one detector thread."""

    def __init__(self, spec: Detectors, reference_frame: Any, reference_ref: str,
                 model_features: Sequence[str] | None) -> None:
        columns = list(reference_frame.columns)
        if spec.features is not None:
            missing = [c for c in spec.features if c not in columns]
            if missing:
                raise ValueError(f"detectors.features names columns the reference lacks: {', '.join(missing)}")
            features = list(spec.features)
        elif model_features is not None:
            features = [c for c in model_features if c in columns]
        else:
            features = [c for c in columns if c != spec.label]
        if not features:
            raise ValueError(f"the reference {reference_ref} shares no feature column with the model")
        self.features = features
        self.outlier = (OutlierModel(reference_frame, features, spec.outlier.method, spec.outlier.quantile)
                        if spec.outlier else None)
        self.drift = (DriftMonitor(build_reference(reference_frame, features), spec.drift.window, spec.drift.every,
                                   spec.drift.p_value) if spec.drift else None)
        self._lock = threading.Lock()

    def observe(self, frame: Any) -> tuple[Detection, DriftReport | None]:
        """Score rows for outliers and add them to the drift window: (detection, a new drift report or None)."""
        with self._lock:
            flags = scores = None
            if self.outlier is not None:
                s = self.outlier.score(frame)
                scores = [round(float(v), 4) for v in s]
                flags = [bool(v > self.outlier.threshold) for v in s]
            report = self.drift.add(frame) if self.drift is not None else None
            return Detection(flags, scores, self.drift.last if self.drift else None), report
