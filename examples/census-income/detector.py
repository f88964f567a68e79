"""A feature-drift detector, loaded by Tusk's Python-class loader (see tusk-model.yaml).

Per feature, a batch is compared with the training reference: a two-sample
Kolmogorov-Smirnov test for numeric columns, a chi-squared test of the category
counts for the others. ``predict`` returns one p-value per feature.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats


class DriftDetector:
    def __init__(self) -> None:
        self.reference: dict[str, Any] = {}

    def load(self, model_dir: str) -> None:
        self.reference = json.loads((Path(model_dir) / "reference.json").read_text())

    def predict(self, batch: pd.DataFrame) -> dict[str, float]:
        p_values: dict[str, float] = {}
        for column, sample in self.reference["numeric"].items():
            if column in batch:
                p_values[column] = float(stats.ks_2samp(batch[column].astype(float), sample).pvalue)
        for column, freqs in self.reference["categorical"].items():
            if column not in batch:
                continue
            counts = batch[column].astype(str).value_counts()
            categories = list(freqs)
            observed = np.array([counts.get(c, 0) for c in categories], dtype=float)
            expected = np.array([freqs[c] for c in categories], dtype=float) * observed.sum()
            keep = expected > 0
            if observed.sum() > 0 and keep.sum() > 1:
                observed, expected = observed[keep], expected[keep]
                expected *= observed.sum() / expected.sum()
                p_values[column] = float(stats.chisquare(observed, expected).pvalue)
        return p_values
