"""Write the workshop's data from scikit-learn's bundled diabetes set (no download).

    python3 make_data.py OUT_DIR

OUT_DIR/training/diabetes.csv   400 patients: 10 attributes and the target (disease progression after a year)
OUT_DIR/attributes/1.csv .. 4.csv   the other 42 patients, attributes only, in four files
OUT_DIR/new-attributes/5.csv    a few more patients, to add later
"""

from __future__ import annotations

import sys
from pathlib import Path

from sklearn.datasets import load_diabetes


def main(out: Path) -> None:
    frame = load_diabetes(as_frame=True, scaled=False).frame
    (out / "training").mkdir(parents=True, exist_ok=True)
    (out / "attributes").mkdir(parents=True, exist_ok=True)
    (out / "new-attributes").mkdir(parents=True, exist_ok=True)
    frame.iloc[:400].to_csv(out / "training" / "diabetes.csv", index=False)
    features = frame.drop(columns=["target"])
    for i, start in enumerate(range(400, 440, 10), start=1):
        features.iloc[start:start + 10].to_csv(out / "attributes" / f"{i}.csv", index=False)
    features.iloc[440:].to_csv(out / "new-attributes" / "5.csv", index=False)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "data"))
