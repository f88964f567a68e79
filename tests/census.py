"""A small census-income model and its data, built from the UCI file the repo ships (for serving tests)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
           "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
           "income"]
NUMERIC = ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
CATEGORICAL = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "sex",
               "native-country"]
FEATURES = NUMERIC + CATEGORICAL


def census_frame(rows: int = 4000, skip: int = 0) -> Any:
    import pandas as pd

    raw = gzip.decompress((ROOT / "examples/census-income/uci/adult.data.gz").read_bytes()).decode()
    frame = pd.read_csv(io.StringIO(raw), names=COLUMNS, skipinitialspace=True, na_values="?",
                        skiprows=skip, nrows=rows)
    return frame.fillna("unknown")


def train_census(frame: Any, c: float = 1.0) -> Any:
    """One-hot + logistic regression, as the census example's train_income.py."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return Pipeline([
        ("features", ColumnTransformer([("num", StandardScaler(), NUMERIC),
                                        ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)])),
        ("classifier", LogisticRegression(max_iter=500, C=c)),
    ]).fit(frame[FEATURES], frame["income"])


def oip_inputs(frame: Any) -> list[dict[str, Any]]:
    """One OIP tensor per feature column."""
    out = []
    for c in FEATURES:
        values = frame[c].tolist()
        datatype = "BYTES" if c in CATEGORICAL else "INT64"
        out.append({"name": c, "datatype": datatype, "shape": [len(values)], "data": values})
    return out
