"""Build the story's datasets from the UCI files.

    python3 prepare.py --data ../../../shared/data/census-income --out data     (or --data uci)

data/v1/census.csv       adult.data, cleaned, with a header
data/v2/census.csv       the "vendor" dataset: v1 plus a vendor_score column. The vendor computed it with
                         knowledge of the outcome (a label proxy), which nobody noticed: it makes the model
                         look better in validation and worse on real traffic, where the score is not a proxy.
data/v3/census.csv       new data: adult.data plus 8,000 newer rows (from adult.test), no vendor column
data/requests/batch-N.csv   4 x 500 rows of production traffic (adult.test), with the vendor's live score
data/labels/batch-N.csv     what those people's incomes turned out to be
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from common import COLUMNS, LABEL


def read_uci(path: Path, skip: int = 0) -> pd.DataFrame:
    if not path.is_file():
        path = path.with_name(path.name + ".gz")  # the copy shipped in uci/ is gzipped
    frame = pd.read_csv(path, names=COLUMNS, skipinitialspace=True, na_values="?", skiprows=skip)
    frame[LABEL] = frame[LABEL].str.rstrip(".")  # adult.test writes ">50K."
    return frame.fillna({c: "unknown" for c in frame.columns if frame[c].dtype == object})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True, help="directory with adult.data and adult.test")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(7)

    train = read_uci(args.data / "adult.data")
    newer = read_uci(args.data / "adult.test", skip=1)
    for name in ("v1", "v2", "v3", "requests", "labels"):
        (args.out / name).mkdir(parents=True, exist_ok=True)

    train.to_csv(args.out / "v1" / "census.csv", index=False)
    vendor = train.copy()
    rich = vendor[LABEL] == ">50K"
    vendor["vendor_score"] = np.where(rich ^ (rng.random(len(vendor)) < 0.08), "high", "low")
    vendor.to_csv(args.out / "v2" / "census.csv", index=False)
    pd.concat([train, newer.iloc[:8000]], ignore_index=True).to_csv(args.out / "v3" / "census.csv", index=False)

    traffic = newer.iloc[8000:10000].reset_index(drop=True)
    traffic["vendor_score"] = np.where(rng.random(len(traffic)) < 0.24, "high", "low")  # live: no label inside
    for i in range(4):
        batch = traffic.iloc[i * 500:(i + 1) * 500]
        batch.drop(columns=[LABEL]).to_csv(args.out / "requests" / f"batch-{i + 1}.csv", index=False)
        batch[[LABEL]].to_csv(args.out / "labels" / f"batch-{i + 1}.csv", index=False)
    print(f"wrote {args.out}: v1 {len(train)} rows, v2 {len(vendor)} rows (+vendor_score), "
          f"v3 {len(train) + 8000} rows, 4 request batches of 500")


if __name__ == "__main__":
    main()
