"""Write the drift reference of the training data: reference.json + the detector class + tusk-model.yaml."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from common import LABEL, features_of, read_dir

from tusk.serving.detectors import build_reference


def main(data: Path, out: Path) -> None:
    frame = read_dir(data)
    numeric, categorical = features_of(frame)
    features = numeric + [c for c in categorical if c != LABEL]
    reference = build_reference(frame, features, sample=2000)
    out.mkdir(parents=True, exist_ok=True)
    (out / "reference.json").write_text(json.dumps(reference))
    shutil.copy(Path(__file__).with_name("detector.py"), out / "detector.py")
    (out / "tusk-model.yaml").write_text("class: detector.py:DriftDetector\n")
    (out / "metrics.json").write_text(json.dumps({"n_reference": min(2000, len(frame)), "features": features},
                                                 indent=2) + "\n")
    print(f"drift reference over {len(numeric)} numeric and {len(categorical)} categorical features")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
