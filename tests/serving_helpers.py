"""Shared by the serving tests: census, iris and echo model repos, a live server on loopback, waiting for
readiness, OIP clients at their defaults, and the tensors every client sends to the echo model."""

from __future__ import annotations

import importlib
import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import numpy as np

from tests.census import census_frame, train_census
from tusk.root.server import serve_in_thread
from tusk.sdk import Client


def joblib_bytes(model: Any) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(model, buf)
    return buf.getvalue()


def census_repos(c: Client, rows: int = 3000) -> tuple[str, str]:
    """Repo ``census`` (train.csv) and ``census-model`` with two model commits: v1 (C=1) on production,
    v2 (C=0.001, a different model) on master. Returns (v1, v2) commit ids."""
    frame = census_frame(rows)
    c.create_repo("census")
    c.put_file("census@master:/train.csv", frame.to_csv(index=False).encode())
    c.create_repo("census-model")
    c.put_file("census-model@master:/model.joblib", joblib_bytes(train_census(frame, c=1.0)))
    v1 = c.inspect_commit("census-model@master").id
    c.promote_model(f"census-model@{v1}", "production")
    c.put_file("census-model@master:/model.joblib", joblib_bytes(train_census(frame, c=0.001)))
    v2 = c.inspect_commit("census-model@master").id
    return v1, v2


def iris_repo(c: Client, repo: str = "iris") -> str:
    """A scikit-learn logistic regression on iris (a numeric matrix, 4 features) in ``repo``; returns the commit."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    c.create_repo(repo)
    c.put_file(f"{repo}@master:/model.joblib", joblib_bytes(LogisticRegression(max_iter=500).fit(x, y)))
    return c.inspect_commit(f"{repo}@master").id


# A Python-class model that answers each row with the dtype and the values it was given, so that every datatype
# can be checked exactly; 666 in a numeric tensor is an unexpected failure, whose details clients never see.
ECHO = """
import numpy as np


class Model:
    def predict(self, x):
        x = np.asarray(x)
        if x.dtype.kind in "iuf" and (x == 666).any():
            raise RuntimeError("boom at /work/secret/place.py")  # an unexpected failure: never shown to clients
        return np.array([x.dtype.name + "|" + " ".join(repr(v) for v in row.tolist()) for row in x], dtype=object)
"""

# each OIP datatype (but BF16, which numpy lacks) and the numpy dtype the model gets it as
DATATYPES: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
    "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_}


def sample(datatype: str) -> np.ndarray[Any, Any]:
    """A [2, 3] tensor of ``datatype`` with its edge values: the type's range, non-ASCII and empty strings."""
    if datatype == "BOOL":
        return np.array([[True, False, True], [False, False, True]])
    if datatype == "BYTES":
        return np.array([["Private", "café", ""], ["a b", "<=50K", "x"]], dtype=object)
    info = np.iinfo(DATATYPES[datatype]) if datatype[0] in "IU" else None
    top = int(info.max) if info is not None else 1.5
    low = int(info.min) if info is not None else -0.25
    return np.array([[1, 2, 3], [low, 0, top]], dtype=DATATYPES[datatype])


def echoed(array: np.ndarray[Any, Any]) -> list[str]:
    """What the ECHO model answers for ``array``, one string per row."""
    return [f"{array.dtype.name}|" + " ".join(repr(v) for v in row.tolist()) for row in array]


def labels(values: Any) -> list[str]:
    """An output tensor's elements as strings (BYTES come back as bytes from some clients, str from others)."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).ravel()]


@contextmanager
def triton_client(protocol: str, address: str) -> Iterator[Any]:
    """tritonclient's ``http`` or ``grpc`` InferenceServerClient for ``host:port``, every setting at its default."""
    module = importlib.import_module(f"tritonclient.{protocol}")
    client = module.InferenceServerClient(address)
    try:
        yield client
    finally:
        client.close()


def python_model(c: Client, repo: str, body: str) -> str:
    """A Python-class model (``class Model`` in model.py) committed to ``repo``; returns the commit."""
    c.create_repo(repo)
    with c.modify(f"{repo}@master") as m:
        m.put_bytes("/tusk-model.yaml", b"class: model.py:Model\n")
        m.put_bytes("/model.py", body.encode())
    return c.inspect_commit(f"{repo}@master").id


def wait_for(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """The app on a free loopback port, once it reports ready."""
    with serve_in_thread(app) as url:
        wait_for(lambda: httpx.get(f"{url}/v2/health/ready").status_code == 200, 60, "the server to be ready")
        yield url
