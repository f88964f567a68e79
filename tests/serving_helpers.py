"""Shared by the serving tests: census model repos, a live server on loopback, waiting for readiness."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.census import census_frame, train_census
from tusk.sdk import Client
from tusk.serving.server import serve_in_thread


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
