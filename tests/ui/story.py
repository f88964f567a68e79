"""The census story for the dashboard tests, on a small sample of the UCI file the repo ships: the raw CSV in
income_data, the census example's own train_income pipeline run on two releases of it (two model commits, with
their metrics), a pipeline that succeeds and one that fails, model v1 in production, and a deployment that
follows production, with a canary, drift detectors fitted on the raw CSV and a request log; and a tiny
algorithm, root/clean, in two versions."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

from tests.census import ROOT, census_frame
from tusk.errors import JobFailed
from tusk.sdk import Client
from tusk.versioning.triggers import BranchTrigger

EXAMPLE = ROOT / "examples" / "census-income"
ROWS = 600  # per release: enough for a model whose metrics mean something, trained in seconds
FIRST_NOTE = "first census model <b>to</b> pass review"
WC: dict[str, Any] = {
    "pipeline": {"name": "wc"},
    "transform": {"cmd": ["sh"], "stdin": [
        "for f in /pfs/income_data/*; do wc -l < $f > /pfs/out/$(basename $f).n; done"]},
    "input": {"pfs": {"repo": "income_data", "glob": "/*"}},
}
BROKEN: dict[str, Any] = {
    "pipeline": {"name": "broken"},
    "transform": {"cmd": ["sh", "-c", "echo reading the census; echo 'column income is missing' >&2; exit 3"]},
    "input": {"pfs": {"repo": "income_data", "glob": "/"}},
    "datum_tries": 1,
}


CLEAN = """
def apply(words):
    return [w.strip().lower() for w in words] if isinstance(words, list) else words.strip().lower()
"""


def publish_clean(c: Client) -> None:
    """root/clean 1.0.0 and 1.1.0: lower-cased, stripped words (a list) or text."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "clean.py").write_text(CLEAN)
        for version in ("1.0.0", "1.1.0"):
            (d / "algorithm.yaml").write_text(f"entrypoint: clean.py:apply\ndescription: census words, cleaned "
                                              f"({version})\ncache: true\n")
            c.publish_algorithm(d, "root/clean", version)


def census_csv(rows: int, skip: int = 0) -> bytes:
    return bytes(census_frame(rows, skip).to_csv(index=False).encode())


def tensors(rows: int, skip: int = 0) -> list[dict[str, Any]]:
    """OIP inputs for ``rows`` census rows: one tensor per column the raw CSV has, but the label."""
    frame = census_frame(rows, skip).drop(columns=["income"])
    out = []
    for column in frame.columns:
        numeric = frame[column].dtype.kind in "if"
        out.append({"name": column, "shape": [len(frame)], "data": frame[column].tolist(),
                    "datatype": "INT64" if numeric else "BYTES"})
    return out


def build(c: Client) -> dict[str, str]:
    """The store; returns the ids the tests check against (raw data commits, model commits v1 and v2)."""
    c.create_repo("income_data", "the UCI census-income sample")
    with c.modify("income_data@master", "census data, first release") as m:
        m.put_bytes("/census.csv", census_csv(ROWS))
        m.put_bytes("/notes.json", json.dumps({"source": "UCI", "rows": ROWS}).encode())
    raw1 = c.inspect_commit("income_data@master")
    c.create_branch("income_data@staging", trigger=BranchTrigger(branch="master", commits=5))
    c.create_pipeline(WC)
    with contextlib.suppress(JobFailed):  # its failed job is the point
        c.create_pipeline(BROKEN)
        c.raise_for_jobs()
    c.create_pipeline(EXAMPLE / "train_income.json")  # the census example's own training pipeline
    v1 = c.inspect_commit("train_income@master").id
    raw2 = c.put_file("income_data@master:/census.csv", census_csv(2 * ROWS),  # (broken fails again)
                      description=f"census data plus {ROWS} newer rows")
    v2 = c.inspect_commit("train_income@master").id
    assert raw2 is not None and v1 != v2
    c.promote_model(f"train_income@{v1}", "production", note=FIRST_NOTE)
    c.create_deployment({  # a canary on no traffic yet; drift tested every 10 rows; the log committed twice a second
        "name": "income",
        "predictors": [{"name": "main", "model": "train_income@production:/model.joblib"},
                       {"name": "canary", "model": "train_income@production:/model.joblib", "weight": 0}],
        "detectors": {"reference": "income_data@master:/census.csv", "label": "income",
                      "drift": {"window": 20, "every": 10}},
        "logging": {"flush_seconds": 0.5}})
    publish_clean(c)
    return {"raw1": raw1.id, "raw2": raw2.id, "v1": v1, "v2": v2}
