"""Train the income classifier on every CSV in /pfs/income_data; write model.joblib, its explainer and metrics.json.

Every column the data has is a feature (except the label and the sampling
weight), so a column a vendor adds is used without anyone deciding to. The
explainer (explainer.json: a linear explainer with 100 training rows as its
background) is trained beside the model, so the model's manifest hashes both
and serving answers /v2/models/{m}/explain with per-column attributions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
from sklearn.compose import ColumnTransformer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from common import LABEL, features_of, read_dir
from tusk.models.explainers import write_explainer


def main(data: Path, out: Path) -> None:
    frame = read_dir(data)
    numeric, categorical = features_of(frame)
    x, y = frame[numeric + categorical], (frame[LABEL] == ">50K").astype(int)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    model = Pipeline([
        ("features", ColumnTransformer([("num", StandardScaler(), numeric),
                                        ("cat", OneHotEncoder(handle_unknown="ignore"), categorical)])),
        ("classifier", LogisticRegression(max_iter=2000)),
    ]).fit(x_train, y_train)
    sample = x_test.sample(n=min(2000, len(x_test)), random_state=0)
    importance = permutation_importance(model, sample, y_test.loc[sample.index], n_repeats=3, random_state=0)
    ranked = sorted(zip(x.columns, importance.importances_mean, strict=True), key=lambda kv: -kv[1])
    metrics = {
        "accuracy": round(float(accuracy_score(y_test, model.predict(x_test))), 4),
        "roc_auc": round(float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])), 4),
        "n_train": len(x_train),
        "n_test": len(x_test),
        "features": list(x.columns),
        "top_features": {name: round(float(v), 4) for name, v in ranked[:5]},
    }
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "model.joblib")
    explainer = write_explainer(out, model, x_train, model_file="model.joblib", rows=100, seed=0)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"income model: accuracy {metrics['accuracy']}, top feature {ranked[0][0]}; "
          f"{explainer['method']} explainer")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
