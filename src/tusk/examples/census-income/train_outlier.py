"""Train an outlier detector (IsolationForest) on the numeric columns; write outlier.joblib and metrics.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
from sklearn.ensemble import IsolationForest

from common import NUMERIC, read_dir


def main(data: Path, out: Path) -> None:
    frame = read_dir(data)[NUMERIC]
    detector = IsolationForest(n_estimators=100, contamination=0.01, random_state=0).fit(frame)
    flagged = float((detector.predict(frame) == -1).mean())
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(detector, out / "outlier.joblib")
    (out / "metrics.json").write_text(json.dumps({"train_outlier_rate": round(flagged, 4), "n_train": len(frame),
                                                  "features": NUMERIC}, indent=2) + "\n")
    print(f"outlier detector: {flagged:.2%} of the training rows flagged")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
