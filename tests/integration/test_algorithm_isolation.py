"""Algorithms run out of the server's process, in the sandbox: code published by anyone reaches nothing it
should not, and publishing respects namespaces and the model's repo."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_auth import Cluster, cluster  # noqa: F401  (the fixture)
from tests.serving_helpers import python_model
from tusk.errors import PermissionDenied, RepoNotFound
from tusk.pipelines.runtimes import BwrapRuntime

PWN = '''
import os

def apply(x, ctx):
    found = {"pid": os.getpid(), "uid": os.getuid()}
    try:
        import tusk.sdk
        c = tusk.sdk.Client()
        found["repos"] = [r.name for r in c.list_repos()]
        try:
            found["secret"] = c.get_file("data@master:/a.txt").decode()
        except Exception as exc:
            found["secret"] = type(exc).__name__
        from tusk.auth import RoleService
        RoleService(c.services.ctx).set("*", "mallory", "admin")
    except Exception as exc:
        found["client"] = type(exc).__name__
    for path in (x["db"], "/proc/1/environ"):
        try:
            found[path] = open(path, "rb").read(64).decode(errors="replace")
        except OSError as exc:
            found[path] = type(exc).__name__
    try:
        ctx.algo("root/private/1").pipe(1)
        found["nested"] = "called"
    except Exception as exc:
        found["nested"] = type(exc).__name__
    return found
'''


def _algo(root: Path, name: str, code: str, descriptor: str) -> Path:
    d = root / name
    d.mkdir()
    (d / "algo.py").write_text(code)
    (d / "algorithm.yaml").write_text(descriptor)
    return d


def test_published_code_cannot_reach_the_store_or_grant_itself_roles(cluster: Cluster,  # noqa: F811
                                                                      tmp_path: Path) -> None:
    secret = _algo(tmp_path, "private", "def apply(x):\n    return 'private'\n", "entrypoint: algo.py:apply\n")
    cluster.root.publish_algorithm(secret, "root/private", "1.0.0")
    pwn = _algo(tmp_path, "pwn", PWN, "entrypoint: algo.py:apply\npermissions:\n  call: [root/private]\n")
    with cluster.client("mallory") as mallory:
        mallory.publish_algorithm(pwn, "mallory/pwn", "1.0.0")
    db = str(cluster.home / "server" / "tusk.db")
    with cluster.http("mallory") as http:
        r = http.post("/v1/algo/mallory/pwn/1.0.0", json={"db": db})
        assert r.status_code == 200, r.text
        found = r.json()["result"]
        metrics = http.get("/metrics").text
        whoami = http.get("/api/v1/auth/whoami").json()
    assert "alpha" not in r.text
    assert found.get("repos", []) == []  # an empty store of its own, if Tusk is importable at all
    assert found[db] in ("FileNotFoundError", "PermissionError")
    assert "TUSK" not in found["/proc/1/environ"]
    assert found["nested"] == "PermissionDenied"  # named in permissions.call, but mallory may not read it
    assert whoami["admin"] is False
    assert [b.user for b in cluster.root.list_roles("*")] == ["root"]
    assert 'outcome="PermissionDenied"' in metrics or 'tusk_algorithm_calls' in metrics
    if BwrapRuntime.available():
        assert found["pid"] != __import__("os").getpid()


def test_a_namespace_belongs_to_its_owner(cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    clean = _algo(tmp_path, "clean", "def apply(x):\n    return x\n", "entrypoint: algo.py:apply\n")
    with cluster.client("mallory") as mallory:
        with pytest.raises(PermissionDenied, match="the namespace alice/ belongs to alice"):
            mallory.publish_algorithm(clean, "alice/clean", "1.0.0")
        mallory.publish_algorithm(clean, "mallory/clean", "1.0.0")
    with cluster.client("rita") as rita, pytest.raises(PermissionDenied):
        rita.publish_algorithm(clean, "mallory/clean", "1.0.1")  # a later version needs mallory's writers


def test_a_model_algorithm_needs_reader_on_the_model_repo(cluster: Cluster,  # noqa: F811
                                                          tmp_path: Path) -> None:
    model = _algo(tmp_path, "m", "", "model: data@master:/a.txt\n")
    with cluster.client("mallory") as mallory, pytest.raises(RepoNotFound):
        mallory.publish_algorithm(model, "mallory/stolen", "1.0.0")
    assert not cluster.root.list_algorithms("mallory/stolen")


MODEL = '''
class Model:
    feature_names = ["x"]
    n_features = 1

    def predict(self, rows):
        import numpy as np
        return np.asarray([[2 * float(r[0])] for r in np.asarray(rows)]).ravel()
'''


def test_a_model_algorithm_reads_its_model_with_its_publishers_current_rights(cluster: Cluster,  # noqa: F811
                                                                              tmp_path: Path) -> None:
    python_model(cluster.root, "doubler", MODEL)
    cluster.root.set_role("doubler", "rita", "reader")
    algo = _algo(tmp_path, "dbl", "", "model: doubler@master\n")
    with cluster.client("rita") as rita:
        rita.publish_algorithm(algo, "rita/double", "1.0.0")
        rita.set_role("algorithm/rita/double", "mallory", "reader")
    with cluster.http("mallory") as http:
        ok = http.post("/v1/algo/rita/double/1.0.0", json=[{"x": 2}])
        cluster.root.set_role("doubler", "rita", None)  # the publisher loses the model
        refused = http.post("/v1/algo/rita/double/1.0.0", json=[{"x": 2}])
    assert ok.status_code == 200, ok.text
    assert refused.status_code == 403, refused.text
    assert "rita is not a reader of doubler" in refused.json()["error"]["message"]


def test_an_algorithms_stack_trace_goes_to_its_writers_only(cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    crash = _algo(tmp_path, "crash", "def apply(x):\n    return {}['missing']\n", "entrypoint: algo.py:apply\n")
    cluster.root.publish_algorithm(crash, "root/crash", "1.0.0")
    cluster.root.set_role("algorithm/root/crash", "mallory", "reader")
    with cluster.http("mallory") as http:
        caller = http.post("/v1/algo/root/crash/1.0.0", json=1)
    with cluster.http("root") as http:
        author = http.post("/v1/algo/root/crash/1.0.0", json=1)
    assert caller.status_code == author.status_code == 500
    assert caller.json()["error"]["error_type"] == "AlgorithmError" and "KeyError" in caller.json()["error"]["message"]
    assert "stacktrace" not in caller.json()["error"] and "Traceback" not in caller.text
    assert "KeyError" in author.json()["error"]["stacktrace"]
    assert "/work" not in author.text and str(tmp_path) not in author.text  # its own frames, relative paths
