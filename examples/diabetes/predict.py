"""Predict disease progression for every attribute file under --input with the model under --model.

The model is loaded with tusk.models.load_dir, which checks its files against
the model's manifest before unpickling them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from tusk.models import load_dir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--input", type=Path, required=True)
    ap.add_argument("--output", type=Path, required=True)
    args = ap.parse_args()

    model = load_dir(args.model)
    features = list(model.impl.feature_names_in_)
    for path in sorted(args.input.rglob("*.csv")):
        frame = pd.read_csv(path)
        out = pd.DataFrame({"prediction": model.predict(frame[features])}, index=frame.index)
        target = args.output / path.relative_to(args.input)
        target.parent.mkdir(parents=True, exist_ok=True)
        out.to_csv(target, index=False, float_format="%.3f")
        print(f"{path.name}: {len(out)} predictions with model {model.commit}")


if __name__ == "__main__":
    main()
