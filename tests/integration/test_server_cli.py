"""`tusk deploy` and `tusk algo` through the CLI, and `tusk server --workers 2` as a real process (both backends)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.census import CATEGORICAL, FEATURES, census_frame, oip_inputs
from tests.conftest import Backend
from tests.integration.test_cli import Run, backend, tusk  # noqa: F401  (the fixtures: every CLI backend)
from tests.serving_helpers import census_repos, wait_for


def test_deploy_and_algo_commands(tusk: Run, backend: Backend, tmp_path: Path) -> None:  # noqa: F811
    c = backend.client()
    try:
        v1, v2 = census_repos(c)
    finally:
        c.close()
    spec = tmp_path / "deploy.yaml"
    spec.write_text("name: census\npredictors:\n"
                    "  - {name: stable, model: 'census-model@production', weight: 90}\n"
                    "  - {name: canary, model: 'census-model@master', weight: 10}\n")
    created = tusk("deploy", "create", "-f", str(spec))
    assert created.code == 0 and "revision 1" in created.out
    listed = tusk("deploy", "list", "--json").json()
    assert [(p["name"], p["commit"]) for p in listed[0]["predictors"]] == [("stable", v1), ("canary", v2)]  # type: ignore[index]
    assert tusk("deploy", "rollout", "census", "-w", "canary=50", "-w", "stable=50").code == 0
    assert tusk("deploy", "rollback", "census").code == 0
    history = tusk("deploy", "history", "census", "--json").json()
    assert [h["reason"] for h in history] == ["rollback", "rollout", "create"]  # type: ignore[index]
    assert tusk("deploy", "inspect", "census").code == 0
    bad = tusk("deploy", "rollout", "census", "-w", "canary")
    assert bad.code == 2 and "PREDICTOR=WEIGHT" in bad.err
    spec.write_text("name: other\npredictors:\n  - {name: a, model: 'census-model@production', wieght: 1}\n")
    bad = tusk("deploy", "create", "-f", str(spec))
    assert bad.code == 2 and "predictors.0.wieght: unknown field" in bad.err
    assert tusk("deploy", "delete", "census").code == 0
    assert tusk("deploy", "inspect", "census").code == 2

    algo = tmp_path / "upper"
    algo.mkdir()
    (algo / "algorithm.yaml").write_text("entrypoint: main.py:apply\n")
    (algo / "main.py").write_text("def apply(text):\n    return text.upper()\n")
    assert tusk("algo", "publish", str(algo), "demo/upper", "--version", "1.0.0").code == 0
    called = tusk("algo", "call", "demo/upper/1", "hello", "--text")
    assert called.code == 0 and json.loads(called.out)["result"] == "HELLO"
    assert tusk("algo", "list", "--json").json()[0]["version"] == "1.0.0"  # type: ignore[index]
    assert tusk("algo", "call", "demo/upper/2", '"x"').code == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _grpc_census(address: str, frame: Any, request_id: str) -> str:
    """One census inference over OIP gRPC (tritonclient at its defaults); the model commit that answered."""
    import numpy as np
    import tritonclient.grpc as grpcclient

    inputs = []
    for col in FEATURES:
        datatype = "BYTES" if col in CATEGORICAL else "INT64"
        values = np.array(frame[col].tolist(), dtype=object) if col in CATEGORICAL else frame[col].to_numpy(np.int64)
        tensor = grpcclient.InferInput(col, [len(frame)], datatype)
        tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    client = grpcclient.InferenceServerClient(address)
    try:
        return str(client.infer("census", inputs, request_id=request_id).get_response().model_version)
    finally:
        client.close()


def test_server_with_two_workers_serves_sums_metrics_and_drains_on_sigterm(backend: Backend) -> None:  # noqa: F811
    if backend.name == "remote":
        pytest.skip("starts its own server on the store")
    c = backend.client()
    try:
        v1, _ = census_repos(c)
        c.create_deployment({"name": "census", "predictors": [{"name": "main", "model": "census-model@production"}],
                             "logging": {"flush_seconds": 3600}})  # nothing is committed until shutdown
    finally:
        c.close()
    port, grpc_port = _free_port(), _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _two_workers(backend, port, "--grpc-port", str(grpc_port), "--log-level", "warning")
    try:
        _wait_ready(base)
        body = {"inputs": oip_inputs(census_frame(1, skip=20000))}
        with httpx.Client(base_url=base, timeout=30) as h:
            for i in range(40):
                r = h.post("/v2/models/census/infer", json=body | {"id": f"r{i}"})
                assert r.status_code == 200 and r.headers["x-tusk-model-commit"] == v1
            for i in range(10):  # the workers share the gRPC port too: a new connection each
                assert _grpc_census(f"127.0.0.1:{grpc_port}", census_frame(1, skip=20000), f"g{i}") == v1
            text = h.get("/metrics").text
        served = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith("tusk_requests_total{") and f'model_version="{v1}"' in line)
        assert served == 50  # summed over both workers and both protocols
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out.decode()[-3000:]
    c = backend.client()
    try:
        ids = []
        for f in c.walk_files("census-requests@master:/"):
            if f.kind == "file":
                ids += [json.loads(line)["id"] for line in c.get_file(f"census-requests@master:{f.path}").splitlines()]
        # every request, committed during shutdown
        assert sorted(ids) == sorted([f"r{i}" for i in range(40)] + [f"g{i}" for i in range(10)])
    finally:
        c.close()


def _model_loads(base: str) -> dict[str, float]:
    """``tusk_model_loads_total`` by who loaded: the parent for every worker (shared), or a worker itself."""
    loads: dict[str, float] = {}
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        if line.startswith("tusk_model_loads_total{"):
            by = line.split('by="', 1)[1].split('"', 1)[0]
            loads[by] = loads.get(by, 0.0) + float(line.rsplit(" ", 1)[1])
    return loads


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry.name))
    return sorted(out)


def _commits_seen(base: str, connections: int) -> set[str]:
    """The model commits that answer requests made over ``connections`` fresh connections (two each)."""
    body = {"inputs": oip_inputs(census_frame(1, skip=20000))}
    seen = set()
    for _ in range(connections):
        with httpx.Client(base_url=base, timeout=30) as h:  # a new connection: any worker may take it
            for _ in range(2):
                r = h.post("/v2/models/census/infer", json=body)
                assert r.status_code == 200, r.text
                seen.add(r.headers["x-tusk-model-commit"])
    return seen


def test_server_with_two_workers_loads_a_model_once_and_hot_swaps_every_worker(backend: Backend) -> None:  # noqa: F811
    """Pre-fork: the parent loads and verifies the model once for both workers; a branch move reaches every
    worker (and the parent shares the new version, rolling the workers onto it); SIGTERM exits 0."""
    if backend.name == "remote":
        pytest.skip("starts its own server on the store")
    c = backend.client()
    try:
        v1, v2 = census_repos(c)
        c.create_deployment({"name": "census", "predictors": [{"name": "main", "model": "census-model@production"}],
                             "logging": {"enabled": False}})
    finally:
        c.close()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _two_workers(backend, port, "--no-grpc", "--log-level", "info")
    try:
        _wait_ready(base)
        assert _commits_seen(base, 20) == {v1}
        assert _model_loads(base) == {"shared": 1.0}  # loaded and verified once, by the parent; no worker loaded

        c = backend.client()
        try:
            c.promote_model(f"census-model@{v2}", "production")
        finally:
            c.close()
        # every worker swaps on its own; then the parent shares v2 and rolls the workers onto it
        wait_for(lambda: _model_loads(base).get("shared") == 2.0 and _commits_seen(base, 10) == {v2}, 120,
                 "every worker to serve v2, shared by the parent")
        wait_for(lambda: _commits_seen(base, 20) == {v2}, 60, "the old workers to have drained")
        assert _commits_seen(base, 30) == {v2}  # across many connections: no worker serves v1 any more

        # a worker that dies is replaced, and the new one takes the shared model too
        workers = _children(proc.pid)
        assert len(workers) == 2
        loads = _model_loads(base)
        os.kill(workers[0], signal.SIGKILL)
        wait_for(lambda: len(_children(proc.pid)) == 2 and workers[0] not in _children(proc.pid), 60,
                 "the parent to start another worker")
        wait_for(lambda: _commits_seen(base, 20) == {v2}, 60, "the new worker to serve")
        assert _model_loads(base) == loads
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    log = out.decode()
    assert proc.returncode == 0, log[-3000:]
    assert log.count("loaded and verified census-model@") == 2, log[-3000:]  # v1, then v2: once each
    assert "workers rolled onto the shared models" in log, log[-3000:]


def _two_workers(store: Backend, port: int, *flags: str) -> subprocess.Popen[bytes]:
    """``tusk server --workers 2`` on the store of a backend (no S3 gateway), its output piped."""
    tusk_bin = str(Path(sys.executable).parent / "tusk")
    return subprocess.Popen([tusk_bin, "server", "--port", str(port), "--workers", "2", "--poll", "0.2", "--no-s3",
                             *flags], env=store.subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_ready(base: str) -> None:
    def ready() -> bool:
        try:
            return httpx.get(f"{base}/v2/health/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, 120, "tusk server to be ready")
