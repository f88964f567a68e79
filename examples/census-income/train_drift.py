"""Write the drift reference of the training data: reference.json + the detector class + tusk-model.yaml."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from common import LABEL, features_of, read_dir


def main(data: Path, out: Path) -> None:
    frame = read_dir(data)
    numeric, categorical = features_of(frame)
    sample = frame.sample(n=min(2000, len(frame)), random_state=0)
    reference = {
        "numeric": {c: sorted(float(v) for v in sample[c]) for c in numeric},
        "categorical": {c: {str(k): float(v) for k, v in frame[c].astype(str).value_counts(normalize=True).items()}
                        for c in categorical if c != LABEL},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "reference.json").write_text(json.dumps(reference))
    shutil.copy(Path(__file__).with_name("detector.py"), out / "detector.py")
    (out / "tusk-model.yaml").write_text("class: detector.py:DriftDetector\n")
    (out / "metrics.json").write_text(json.dumps({"n_reference": len(sample), "features": numeric + categorical},
                                                 indent=2) + "\n")
    print(f"drift reference over {len(numeric)} numeric and {len(categorical)} categorical features")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
