"""Compare predictions with the incomes that came true: /pfs/out/accuracy.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd


def main(predictions: Path, labels: Path, out: Path) -> None:
    rows = []
    for path in sorted(labels.glob("*.csv")):
        scored = predictions / path.name
        if scored.is_file():
            rows.append(pd.concat([pd.read_csv(scored), pd.read_csv(path)], axis=1))
    frame = pd.concat(rows, ignore_index=True)
    report = {
        "accuracy": round(float((frame["prediction"] == frame["income"]).mean()), 4),
        "n": len(frame),
        "batches": len(rows),
        "model_commits": sorted(frame["model_commit"].unique().tolist()),
        "outlier_rate": round(float(frame["outlier"].mean()), 4),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"accuracy {report['accuracy']} over {report['n']} labelled requests")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
