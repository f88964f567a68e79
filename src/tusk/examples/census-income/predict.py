"""Score a batch of requests with the models in /pfs/models (each checked against its manifest first).

Writes /pfs/out/<batch>.csv (prediction, probability, outlier flag and the model
commit behind each row) and /pfs/out/drift/<batch>.json (a p-value per feature).

Runs as ``transform.function`` ("predict:score"): a warm worker imports this module
once and calls ``score`` per request batch, loading the models only when the
models' commit changes. ``python3 predict.py MODELS REQUESTS OUT`` scores a
directory of batches the same way, in one process.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from tusk.models import load_dir

_models: dict[str, tuple[Any, Any, Any]] = {}  # the models' commit → (income, outlier, drift): one at a time


def load(models: Path, commit: str = "") -> tuple[Any, Any, Any]:
    if commit not in _models or not commit:
        _models.clear()
        _models[commit] = (load_dir(models, "/income/model.joblib"), load_dir(models, "/outlier/outlier.joblib"),
                           load_dir(models, "/drift"))
    return _models[commit]


def score(datum: Any) -> None:
    """One datum: the request batch at ``datum.inputs["requests"]`` with the models at ``datum.inputs["models"]``."""
    requests = Path(os.environ.get("PFS", "/pfs")) / "requests"
    main(Path(datum.inputs["models"]), requests, Path(datum.out), datum.env.get("models_COMMIT", ""))


def main(models: Path, requests: Path, out: Path, commit: str = "") -> None:
    income, outlier, drift = load(models, commit)
    for path in sorted(requests.rglob("*.csv")):
        batch = pd.read_csv(path)
        scored = pd.DataFrame({
            "prediction": [">50K" if p else "<=50K" for p in income.predict(batch)],
            "probability": income.predict_proba(batch)[:, 1].round(4),
            "outlier": (outlier.predict(batch[list(outlier.impl.feature_names_in_)]) == -1).astype(int),
            "model_commit": income.commit,
        })
        target = out / path.relative_to(requests)
        target.parent.mkdir(parents=True, exist_ok=True)
        scored.to_csv(target, index=False)
        report = out / "drift" / path.relative_to(requests).with_suffix(".json")
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps({k: round(v, 6) for k, v in drift.predict(batch).items()}, indent=1) + "\n")
        print(f"{path.name}: {len(scored)} rows scored by model {income.commit}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
