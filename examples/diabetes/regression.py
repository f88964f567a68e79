"""Train a linear regression on every CSV under --input; write the model and its metrics to --output.

--features bmi        simple linear regression on one attribute (the workshop's first model)
--features all        multiple regression on every attribute (exercise 3)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import joblib
import pandas as pd
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import train_test_split


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", type=Path, required=True)
    ap.add_argument("--target-col", default="target")
    ap.add_argument("--features", default="bmi", help="comma-separated columns, or 'all'")
    ap.add_argument("--output", type=Path, required=True)
    args = ap.parse_args()

    frame = pd.concat([pd.read_csv(p) for p in sorted(args.input.rglob("*.csv"))], ignore_index=True)
    y = frame[args.target_col]
    x = frame.drop(columns=[args.target_col])
    if args.features != "all":
        x = x[args.features.split(",")]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=42)
    model = LinearRegression().fit(x_train, y_train)
    predicted = model.predict(x_test)

    args.output.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, args.output / "model.joblib")
    metrics = {"r2": r2_score(y_test, predicted), "mse": mean_squared_error(y_test, predicted),
               "n_train": len(x_train), "n_test": len(x_test), "features": list(x.columns)}
    (args.output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"trained on {len(x_train)} rows with {len(x.columns)} feature(s): r2={metrics['r2']:.3f}")


if __name__ == "__main__":
    main()
