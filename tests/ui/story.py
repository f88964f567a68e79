"""A small store for the dashboard tests: data, a pipeline that succeeds and one that fails, two model versions,
a deployment with a canary, detectors and a request log."""

from __future__ import annotations

import contextlib
import io
import json
import pickle
from typing import Any

from tusk.errors import JobFailed
from tusk.sdk import Client
from tusk.versioning.triggers import BranchTrigger

WC: dict[str, Any] = {
    "pipeline": {"name": "wc"},
    "transform": {"cmd": ["sh"], "stdin": ["for f in /pfs/census/*; do wc -l < $f > /pfs/out/$(basename $f).n; done"]},
    "input": {"pfs": {"repo": "census", "glob": "/*"}},
}
BROKEN: dict[str, Any] = {
    "pipeline": {"name": "broken"},
    "transform": {"cmd": ["sh", "-c", "echo reading the census; echo 'column income is missing' >&2; exit 3"]},
    "input": {"pfs": {"repo": "census", "glob": "/"}},
    "datum_tries": 1,
}
SCORER = """
class Model:
    def predict(self, x):
        return [0.5] * len(x)
"""
CSV = b"age,workclass,income\n39,State-gov,<=50K\n50,Self-emp,>50K\n38,Private,<=50K\n"


class Doubler:
    """A picklable model (any object with predict)."""

    def predict(self, rows: list[list[float]]) -> list[float]:
        return [2 * r[0] for r in rows]


def build(c: Client) -> dict[str, str]:
    c.create_repo("census", "the UCI census sample")
    c.put_file("census@master:/adult.csv", CSV, description="first sample")
    c.put_file("census@master:/notes.json", json.dumps({"source": "UCI", "rows": 3}).encode())
    c.create_branch("census@staging", trigger=BranchTrigger(branch="master", commits=5))
    c.create_pipeline(WC)
    with contextlib.suppress(JobFailed):  # its failed job is the point
        c.create_pipeline(BROKEN)
        c.raise_for_jobs()
    c.create_repo("models")
    commits = []
    for r2 in (0.81, 0.86):
        with c.modify("models@master") as m:
            buf = io.BytesIO()
            pickle.dump(Doubler(), buf)
            m.put_bytes("/model.pkl", buf.getvalue())
            m.put_bytes("/metrics.json", json.dumps({"r2": r2, "rmse": round(1 - r2, 3)}).encode())
        commits.append(c.inspect_commit("models@master").id)
    c.create_repo("scorer")
    with c.modify("scorer@master") as m:
        m.put_bytes("/tusk-model.yaml", b"class: model.py:Model\n")
        m.put_bytes("/model.py", SCORER.encode())
        m.put_bytes("/reference.csv", b"x\n" + b"".join(f"{i % 10}\n".encode() for i in range(200)))
    c.create_deployment({  # a canary on no traffic yet; drift tested every 10 rows; the log committed twice a second
        "name": "scorer",
        "predictors": [{"name": "main", "model": "scorer@master"},
                       {"name": "canary", "model": "scorer@master", "weight": 0}],
        "detectors": {"reference": "scorer@master:/reference.csv", "drift": {"window": 20, "every": 10}},
        "logging": {"flush_seconds": 0.5}})
    return {"v1": commits[0], "v2": commits[1]}
