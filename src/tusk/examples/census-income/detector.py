"""A feature-drift detector, loaded by Tusk's Python-class loader (see tusk-model.yaml).

Per feature, a batch is compared with the training reference: a two-sample
Kolmogorov-Smirnov test for numeric columns, a chi-squared test of the category
counts for the others. ``predict`` returns one p-value per feature.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tusk.serving.detectors import drift_p_values


class DriftDetector:
    def __init__(self) -> None:
        self.reference: dict[str, dict[str, object]] = {}

    def load(self, model_dir: str) -> None:
        self.reference = json.loads((Path(model_dir) / "reference.json").read_text())

    def predict(self, batch: pd.DataFrame) -> dict[str, float]:
        return drift_p_values(self.reference, batch)  # the same tests Tusk's serving detectors run
