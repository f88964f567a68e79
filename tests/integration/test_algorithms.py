"""Algorithms: publish owner/name/X.Y.Z, version resolution, .pipe, permissions, caching, typed errors, REST."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.census import FEATURES, census_frame
from tests.serving_helpers import census_repos
from tusk.errors import AlgorithmError, AlgorithmNotFound, AlreadyExists, InputError, InvalidArgument, PermissionDenied
from tusk.sdk import Client
from tusk.serving.app import create_app


def _algo(root: Path, name: str, code: str, descriptor: str) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "algo.py").write_text(code)
    (d / "algorithm.yaml").write_text(descriptor)
    return d


NORMALIZE = """
from tusk.errors import InputError

VERSION = "{v}"
CALLS = []

def apply(words):
    if not isinstance(words, list):
        raise InputError("give a list of words")
    CALLS.append(1)
    return {{"words": [w.strip().lower() for w in words], "version": VERSION, "calls": len(CALLS)}}
"""


def _publish_normalize(c: Client, tmp_path: Path) -> None:
    for v in ("1.0.0", "1.1.0", "1.1.3", "2.0.0"):
        d = _algo(tmp_path / v, "normalize", NORMALIZE.format(v=v), "entrypoint: algo.py:apply\ncache: true\n")
        c.publish_algorithm(d, "demo/normalize", v)


def test_versions_resolve_exactly_by_minor_by_major_and_latest(c: Client, tmp_path: Path) -> None:
    _publish_normalize(c, tmp_path)
    for ref, version in [("demo/normalize/1.0.0", "1.0.0"), ("demo/normalize/1.1", "1.1.3"),
                         ("demo/normalize/1", "1.1.3"), ("demo/normalize/latest", "2.0.0"),
                         ("demo/normalize", "2.0.0")]:
        response = c.algo(ref).pipe([" Hello", "WORLD "])
        assert response.result["words"] == ["hello", "world"]
        assert response.result["version"] == version and response.metadata["version"] == version, ref
    with pytest.raises(AlgorithmNotFound, match=r"no version matching 3 \(published: 1.0.0, 1.1.0, 1.1.3, 2.0.0\)"):
        c.algo("demo/normalize/3").pipe([])
    with pytest.raises(AlgorithmNotFound, match="no algorithm demo/nothing"):
        c.algo("demo/nothing").pipe([])
    with pytest.raises(AlreadyExists, match="immutable"):
        c.publish_algorithm(tmp_path / "1.0.0" / "normalize", "demo/normalize", "1.0.0")
    listed = [(v.full_name, v.spec.cache) for v in c.list_algorithms("demo/normalize")]
    assert listed[0] == ("demo/normalize/2.0.0", True) and len(listed) == 4


def test_results_are_cached_by_input_hash(c: Client, tmp_path: Path) -> None:
    _publish_normalize(c, tmp_path)
    first = c.algo("demo/normalize/2.0.0").pipe(["A"])
    again = c.algo("demo/normalize/2.0.0").pipe(["A"])
    other = c.algo("demo/normalize/2.0.0").pipe(["B"])
    assert (first.metadata["cached"], again.metadata["cached"], other.metadata["cached"]) == (False, True, False)
    assert again.result == first.result and other.result["calls"] == 2  # the function ran twice, not three times


CALLER = """
def apply(words, ctx):
    return ctx.algo("demo/normalize/1").pipe(words).result["words"]
"""


def test_an_algorithm_may_call_only_what_it_declares(c: Client, tmp_path: Path) -> None:
    _publish_normalize(c, tmp_path)
    allowed = _algo(tmp_path, "allowed", CALLER,
                    "entrypoint: algo.py:apply\npermissions:\n  call: [demo/normalize/1.*]\n")
    c.publish_algorithm(allowed, "demo/allowed", "0.1.0")
    assert c.algo("demo/allowed").pipe(["X "]).result == ["x"]

    rogue = _algo(tmp_path, "rogue", CALLER, "entrypoint: algo.py:apply\n")
    c.publish_algorithm(rogue, "demo/rogue", "0.1.0")
    with pytest.raises(PermissionDenied, match=r"demo/rogue/0\.1\.0 may not call demo/normalize/1\.1\.3"):
        c.algo("demo/rogue").pipe(["x"])

    narrow = _algo(tmp_path, "narrow", CALLER.replace("normalize/1", "normalize/2"),
                   "entrypoint: algo.py:apply\npermissions:\n  call: [demo/normalize/1.*]\n")
    c.publish_algorithm(narrow, "demo/narrow", "0.1.0")
    with pytest.raises(PermissionDenied, match=r"may not call demo/normalize/2\.0\.0"):
        c.algo("demo/narrow").pipe(["x"])


def test_errors_are_typed(c: Client, tmp_path: Path) -> None:
    _publish_normalize(c, tmp_path)
    with pytest.raises(InputError, match="give a list of words"):
        c.algo("demo/normalize").pipe("not a list")
    crash = _algo(tmp_path, "crash", "def apply(x):\n    return 1 / 0\n", "entrypoint: algo.py:apply\n")
    c.publish_algorithm(crash, "demo/crash", "1.0.0")
    with pytest.raises(AlgorithmError, match=r"demo/crash/1\.0\.0 raised ZeroDivisionError") as info:
        c.algo("demo/crash").pipe(1)
    assert "1 / 0" in info.value.stacktrace  # type: ignore[attr-defined]
    bad = _algo(tmp_path, "bad", "x = 1\n", "entrypoint: algo.py:apply\nmodel: m@master\n")
    with pytest.raises(InvalidArgument, match="exactly one of entrypoint"):
        c.publish_algorithm(bad, "demo/bad", "1.0.0")
    (bad / "algorithm.yaml").write_text("entrypoint: ../algo.py:apply\n")
    with pytest.raises(InvalidArgument, match="entrypoint"):
        c.publish_algorithm(bad, "demo/bad", "1.0.0")
    (bad / "algorithm.yaml").write_text("entrypoint: algo.py:apply\npermisions: {}\n")
    with pytest.raises(InvalidArgument, match="permisions: unknown field"):
        c.publish_algorithm(bad, "demo/bad", "1.0.0")
    with pytest.raises(InvalidArgument, match=r"X\.Y\.Z"):
        c.publish_algorithm(crash, "demo/crash", "1.0")


def test_a_model_is_an_algorithm_pinned_to_its_commit(c: Client, tmp_path: Path) -> None:
    v1, v2 = census_repos(c)
    d = tmp_path / "income"
    d.mkdir()
    (d / "algorithm.yaml").write_text("model: census-model@production\ndescription: income bracket\n")
    published = c.publish_algorithm(d, "census/income", "1.0.0")
    assert published.spec.model == f"census-model@{v1}"
    rows = census_frame(3, skip=20000)[FEATURES]
    expected = c.load_model(f"census-model@{v1}").predict(rows).tolist()
    c.promote_model(f"census-model@{v2}", "production")  # moving the branch does not change a published version
    assert c.algo("census/income/1.0.0").pipe(rows.to_dict("records")).result == expected
    with pytest.raises(InputError, match="lack 1 of the model's features: age"):
        c.algo("census/income").pipe(rows.drop(columns=["age"]).to_dict("records"))


def test_algorithms_over_rest(c: Client, tmp_path: Path) -> None:
    _publish_normalize(c, tmp_path)
    crash = _algo(tmp_path, "crash", "def apply(x):\n    raise KeyError('boom')\n", "entrypoint: algo.py:apply\n")
    c.publish_algorithm(crash, "demo/crash", "1.0.0")
    with TestClient(create_app(c.services, request_logging=False)) as t:
        r = t.post("/v1/algo/demo/normalize/1.1", json=["A "])
        assert r.status_code == 200
        assert r.json()["result"]["words"] == ["a"] and r.json()["metadata"]["version"] == "1.1.3"
        assert r.json()["metadata"]["content_type"] == "json"
        r = t.post("/v1/algo/demo/normalize", content=b"{oops", headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["error_type"] == "InputError"
        r = t.post("/v1/algo/demo/normalize", json="a string")
        assert r.status_code == 400 and r.json()["error"]["error_type"] == "InputError"
        r = t.post("/v1/algo/demo/crash", json=1)
        assert r.status_code == 500 and r.json()["error"]["error_type"] == "AlgorithmError"
        assert "KeyError" in r.json()["error"]["stacktrace"]
        r = t.post("/v1/algo/demo/missing", json=1)
        assert r.status_code == 404 and r.json()["error"]["error_type"] == "AlgorithmNotFound"
