"""Shared by the census-income scripts: the UCI columns and how to read them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

COLUMNS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
           "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
           "income"]
NUMERIC = ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
LABEL = "income"
NOT_FEATURES = {LABEL, "fnlwgt"}  # fnlwgt is a census sampling weight, not a property of the person


def read_dir(directory: Path) -> pd.DataFrame:
    """Every CSV under a directory (with a header row), as one frame."""
    paths = sorted(directory.rglob("*.csv"))
    if not paths:
        raise SystemExit(f"no CSV files under {directory}")
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)


def features_of(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature columns: every column the data has, except the label and the weight."""
    numeric = [c for c in frame.columns if c not in NOT_FEATURES and pd.api.types.is_numeric_dtype(frame[c])]
    categorical = [c for c in frame.columns if c not in NOT_FEATURES and c not in numeric]
    return numeric, categorical
