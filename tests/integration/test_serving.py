"""Serving: OIP V2 conformance, /invocations, traffic split, sticky routing, shadow, hot swap, logging, detectors."""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from tests.census import census_frame, oip_inputs
from tests.conftest import Backend
from tests.serving_helpers import census_repos, joblib_bytes, live_server, python_model, wait_for
from tusk.errors import InvalidArgument
from tusk.sdk import Client
from tusk.serving.app import create_app
from tusk.serving.metrics import render
from tusk.storage.metadata import CommitRow


@contextmanager
def serving(c: Client, poll: float = 0.1, logging: bool = True) -> Iterator[TestClient]:
    with TestClient(create_app(c.services, poll=poll, request_logging=logging)) as t:
        wait_for(lambda: t.get("/v2/health/ready").status_code == 200, 60, "ready")
        yield t


def _census(c: Client, **extra: Any) -> tuple[str, str]:
    v1, v2 = census_repos(c)
    c.create_deployment({"name": "census", "predictors": [{"name": "main", "model": "census-model@production"}],
                         **extra})
    return v1, v2


def _infer(rows: int = 3, skip: int = 20000, **extra: Any) -> dict[str, Any]:
    return {"inputs": oip_inputs(census_frame(rows, skip=skip)), **extra}


def _iris(c: Client) -> str:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    c.create_repo("iris")
    c.put_file("iris@master:/model.joblib", joblib_bytes(LogisticRegression(max_iter=500).fit(x, y)))
    c.create_deployment({"name": "iris", "predictors": [{"name": "only", "model": "iris@master"}]})
    return c.inspect_commit("iris@master").id


# -- OIP V2 conformance ---------------------------------------------------------------------------------------


def test_health_server_and_model_metadata(c: Client) -> None:
    v1, _ = _census(c)
    with serving(c) as t:
        assert t.get("/v2/health/live").status_code == 200
        assert t.get("/v2/health/ready").json() == {"ready": True}
        server = t.get("/v2").json()
        assert server["name"] == "tusk" and server["version"] and isinstance(server["extensions"], list)
        meta = t.get("/v2/models/census").json()
        assert meta["name"] == "census" and meta["versions"] == [v1] and meta["platform"] == "tusk-joblib"
        inputs = {i["name"]: i for i in meta["inputs"]}
        assert set(inputs) == set(FEATURES_13) and inputs["sex"]["datatype"] == "BYTES"
        assert inputs["age"]["datatype"] == "FP64" and inputs["age"]["shape"] == [-1]
        assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
        assert meta["outputs"][1]["shape"] == [-1, 2]
        assert t.get(f"/v2/models/census/versions/{v1}").json()["versions"] == [v1]
        assert t.get("/v2/models/census/versions/main").json()["versions"] == [v1]
        assert t.get("/v2/models/census/ready").json() == {"name": "census", "ready": True}
        assert t.get(f"/v2/models/census/versions/{v1[:10]}/ready").status_code == 200
        for path in ("/v2/models/nope", "/v2/models/nope/ready", "/v2/models/census/versions/0badc0de/ready"):
            r = t.get(path)
            assert r.status_code == 404 and isinstance(r.json()["error"], str), path


FEATURES_13 = ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week", "workclass", "education",
               "marital-status", "occupation", "relationship", "race", "sex", "native-country"]


def test_infer_echoes_the_id_and_names_the_model_behind_the_answer(c: Client) -> None:
    v1, _ = _census(c)
    frame = census_frame(4, skip=20000)
    expected = c.load_model("census-model@production").predict(frame[FEATURES_13]).tolist()
    with serving(c) as t:
        r = t.post("/v2/models/census/infer", json=_infer(4, id="req-1", outputs=[{"name": "predict"},
                                                                                  {"name": "predict_proba"}]))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["id"] == "req-1" and body["model_name"] == "census" and body["model_version"] == v1
        predict, proba = body["outputs"]
        assert predict == {"name": "predict", "datatype": "BYTES", "shape": [4], "data": expected}
        assert proba["shape"] == [4, 2] and proba["datatype"] == "FP64"
        assert r.headers["x-tusk-model-commit"] == v1 and r.headers["x-tusk-predictor"] == "main"
        assert r.headers["x-tusk-model-repo"] == "census-model"
        assert r.headers["x-tusk-global-id"] == c.inspect_commit(f"census-model@{v1}").global_id
        assert r.headers["x-tusk-deployment-revision"] == "1"
        assert "id" not in t.post("/v2/models/census/infer", json=_infer(1)).json()
        by_version = t.post(f"/v2/models/census/versions/{v1}/infer", json=_infer(2))
        assert by_version.status_code == 200 and by_version.json()["model_version"] == v1


def test_a_numeric_model_takes_every_numeric_datatype(c: Client) -> None:
    commit = _iris(c)
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    with serving(c) as t:
        results = set()
        for datatype in ("FP16", "FP32", "FP64"):
            r = t.post("/v2/models/iris/infer", json={"inputs": [
                {"name": "x", "shape": [2, 4], "datatype": datatype, "data": rows}]})
            assert r.status_code == 200, r.text
            results.add(tuple(r.json()["outputs"][0]["data"]))
        assert results == {(0, 2)}
        for datatype in ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"):
            r = t.post("/v2/models/iris/infer", json={"inputs": [
                {"name": "x", "shape": [1, 4], "datatype": datatype, "data": [5, 3, 1, 0]}]})
            assert r.status_code == 200 and r.json()["outputs"][0]["datatype"] == "INT64", (datatype, r.text)
        r = t.post("/v2/models/iris/infer", json={"inputs": [
            {"name": "x", "shape": [1, 4], "datatype": "BOOL", "data": [True, False, True, True]}]})
        assert r.status_code == 200
        assert t.get("/v2/models/iris").json()["inputs"] == [{"name": "input-0", "datatype": "FP64",
                                                             "shape": [-1, 4]}]
        assert t.get("/v2/models/iris").json()["versions"] == [commit]


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "must be a JSON object"),
    (b"{}", 400, "inputs must be a non-empty list"),
    (b'{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}', 400,
     "expects 4 features per row, got 3"),
    (b'{"inputs": [{"name": "x", "shape": [1, 5], "datatype": "FP32", "data": [1, 2, 3, 4, 5]}]}', 400,
     "expects 4 features per row, got 5"),
    (b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ["a", "b", "c", "d"]}]}', 400,
     "must be numbers"),
    (b'{"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}', 400,
     "holds 8 values"),
    (b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FLOAT", "data": [1, 2, 3, 4]}]}', 400,
     "unknown datatype"),
    (b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}],'
     b' "outputs": [{"name": "logits"}]}', 400, "unknown output 'logits'"),
    (b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}],'
     b' "parameters": [1]}', 400, "parameters must be an object"),
])
def test_bad_payloads_are_4xx_json_errors_never_500(c: Client, body: bytes, status: int, message: str) -> None:
    _iris(c)
    with serving(c) as t:
        r = t.post("/v2/models/iris/infer", content=body, headers={"content-type": "application/json"})
        assert r.status_code == status, r.text
        assert set(r.json()) == {"error", "error_type"} and message in r.json()["error"]


def test_unknown_routes_models_and_methods_are_json_errors(c: Client) -> None:
    _iris(c)
    with serving(c) as t:
        r = t.post("/v2/models/nope/infer", json={"inputs": []})
        assert r.status_code == 404 and "nope" in r.json()["error"]
        assert t.get("/v2/models/iris/infer").status_code == 405
        assert t.get("/v2/models/iris/infer").json()["error"]
        assert t.get("/v3/whatever").status_code == 404 and t.get("/v3/whatever").json()["error"]
        r = t.post("/v2/models/iris/versions/0000000000000000/infer", json={"inputs": []})
        assert r.status_code in (400, 404) and r.json()["error"]


def test_a_census_request_missing_columns_is_a_400_naming_them_and_extra_ones_are_reported(c: Client) -> None:
    _census(c)
    with serving(c) as t:
        body = _infer(2)
        body["inputs"] = [i for i in body["inputs"] if i["name"] not in ("age", "sex")]
        r = t.post("/v2/models/census/infer", json=body)
        assert r.status_code == 400 and "lack 2 of the model's features: age, sex" in r.json()["error"]
        body = _infer(2)
        body["inputs"].append({"name": "vendor_score", "datatype": "FP64", "shape": [2], "data": [0.5, None]})
        r = t.post("/v2/models/census/infer", json=body)
        assert r.status_code == 200 and r.json()["parameters"]["ignored_inputs"] == ["vendor_score"]


# -- MLflow /invocations --------------------------------------------------------------------------------------


def test_invocations_accepts_every_mlflow_format(c: Client) -> None:
    _census(c)
    frame = census_frame(3, skip=20000)[FEATURES_13]
    expected = c.load_model("census-model@production").predict(frame).tolist()
    records = json.loads(frame.to_json(orient="records"))
    split = {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}
    with serving(c) as t:
        for body in ({"dataframe_split": split}, {"dataframe_records": records}, {"instances": records},
                     {"inputs": {col: frame[col].tolist() for col in frame.columns}}):
            r = t.post("/invocations", json=body)
            assert r.status_code == 200 and r.json() == {"predictions": expected}, (list(body), r.text)
        r = t.post("/invocations", content=frame.to_csv(index=False), headers={"content-type": "text/csv"})
        assert r.status_code == 200 and r.json() == {"predictions": expected}
        assert t.post("/deployments/census/invocations", json={"dataframe_records": records}).status_code == 200
        r = t.post("/invocations", json={"instances": records, "inputs": records})
        assert r.status_code == 400 and "exactly one of" in r.json()["error"]
        r = t.post("/invocations", json={"dataframe_split": {"columns": ["age"], "data": [[1, 2]]}})
        assert r.status_code == 400


# -- traffic --------------------------------------------------------------------------------------------------


def _two_models(c: Client, sticky: bool, weights: tuple[float, float] = (90, 10)) -> tuple[str, str]:
    v1, v2 = census_repos(c)
    c.create_deployment({"name": "census", "sticky": sticky, "predictors": [
        {"name": "stable", "model": "census-model@production", "weight": weights[0]},
        {"name": "canary", "model": "census-model@master", "weight": weights[1]}]})
    return v1, v2


def test_a_90_10_split_holds_over_2000_requests(c: Client) -> None:
    v1, v2 = _two_models(c, sticky=False)
    body = _infer(1)
    with serving(c, logging=False) as t:
        seen = collections.Counter()
        for _ in range(2000):
            r = t.post("/v2/models/census/infer", json=body)
            assert r.status_code == 200
            seen[(r.headers["x-tusk-predictor"], r.json()["model_version"])] += 1
    assert set(seen) == {("stable", v1), ("canary", v2)}
    # binomial(2000, 0.1): mean 200, sd 13.4; ±4.5 sd
    assert 140 <= seen[("canary", v2)] <= 260, seen


def test_sticky_routing_by_cookie_and_by_routing_key(c: Client) -> None:
    _two_models(c, sticky=True, weights=(50, 50))
    body = _infer(1)
    with serving(c, logging=False) as t:
        first = t.post("/v2/models/census/infer", json=body)
        assert "tusk-route-census" in first.headers["set-cookie"]
        pinned = first.headers["x-tusk-predictor"]
        assert {t.post("/v2/models/census/infer", json=body).headers["x-tusk-predictor"] for _ in range(30)} \
            == {pinned}  # the test client keeps cookies
        t.cookies.clear()
        by_key = {t.post("/v2/models/census/infer", json=body, headers={"x-tusk-route-key": "user-7"})
                  .headers["x-tusk-predictor"] for _ in range(20)}
        assert len(by_key) == 1


def test_rollout_and_deployment_rollback_change_the_split_live(c: Client) -> None:
    _two_models(c, sticky=False, weights=(100, 0))
    body = _infer(1)
    with serving(c, poll=0.05, logging=False) as t:
        assert {t.post("/v2/models/census/infer", json=body).headers["x-tusk-predictor"] for _ in range(40)} \
            == {"stable"}
        info = c.rollout("census", {"stable": 0, "canary": 100})
        assert info.revision == 2
        wait_for(lambda: t.post("/v2/models/census/infer", json=body).headers["x-tusk-predictor"] == "canary",
                 10, "the rollout")
        c.rollback_deployment("census")
        wait_for(lambda: t.post("/v2/models/census/infer", json=body).headers["x-tusk-predictor"] == "stable",
                 10, "the rollback")
    history = c.deployment_history("census")
    assert [(h.revision, h.reason) for h in history] == [(3, "rollback"), (2, "rollout"), (1, "create")]
    assert history[0].spec == history[2].spec
    with pytest.raises(InvalidArgument, match="no predictor shadowy"):
        c.rollout("census", {"shadowy": 5})


# -- shadow ---------------------------------------------------------------------------------------------------

SLOW_SHADOW = """
import time
class Model:
    def predict(self, x):
        time.sleep(0.4)
        return ["shadow"] * len(x)
"""

BROKEN_SHADOW = """
class Model:
    def predict(self, x):
        raise RuntimeError("the shadow model is broken")
"""


def test_the_shadow_gets_a_copy_of_every_request_without_delaying_it(c: Client) -> None:
    v1, _ = census_repos(c)
    shadow_commit = python_model(c, "shadow-model", SLOW_SHADOW)
    c.create_deployment({"name": "census", "predictors": [{"name": "main", "model": "census-model@production"}],
                         "shadow": {"name": "candidate", "model": "shadow-model@master"},
                         "logging": {"flush_seconds": 0.2}})
    with serving(c) as t:
        r = t.post("/v2/models/census/infer", json=_infer(2))
        assert r.status_code == 200 and r.json()["model_version"] == v1
        assert r.json()["outputs"][0]["data"] != ["shadow", "shadow"]
        # the answer came back while the shadow was still sleeping on its copy
        ok = {"predictor": "candidate", "model_version": shadow_commit, "outcome": "ok"}
        assert _metric(t, "tusk_shadow_requests_total", **ok) == 0
        wait_for(lambda: _metric(t, "tusk_shadow_requests_total", **ok) == 1, 10, "the shadow's answer")
    records = _log_records(c, "census-requests")
    shadow = [r for r in records if r["shadow"]]
    assert len(shadow) == 1 and shadow[0]["model_commit"] == shadow_commit
    assert shadow[0]["outputs"]["predict"] == ["shadow", "shadow"]
    main = [r for r in records if not r["shadow"]]
    assert len(main) == 1 and main[0]["inputs"] == shadow[0]["inputs"]


def test_a_failing_shadow_never_affects_responses(c: Client) -> None:
    v1, _ = census_repos(c)
    broken = python_model(c, "broken", BROKEN_SHADOW)
    c.create_deployment({"name": "census", "predictors": [{"name": "main", "model": "census-model@production"}],
                         "shadow": {"name": "broken", "model": "broken@master"}})
    with serving(c, logging=False) as t:
        for _ in range(20):
            assert t.post("/v2/models/census/infer", json=_infer(1)).status_code == 200
        errors = {"predictor": "broken", "model_version": broken, "outcome": "error"}
        wait_for(lambda: _metric(t, "tusk_shadow_requests_total", **errors) == 20, 10, "shadow errors")
        assert _metric(t, "tusk_requests_total", model_version=v1, code="200") == 20


# -- hot swap -------------------------------------------------------------------------------------------------


def test_hot_swap_under_load_fails_no_request(c: Client) -> None:
    v1, v2 = _census(c)
    body = json.dumps(_infer(1)).encode()
    failures: list[str] = []
    versions: list[tuple[float, str]] = []
    stop = threading.Event()
    app = create_app(c.services, poll=0.05, request_logging=False)
    with live_server(app) as url:
        def hammer() -> None:
            with httpx.Client(base_url=url, timeout=30) as h:
                while not stop.is_set():
                    try:
                        r = h.post("/v2/models/census/infer", content=body,
                                   headers={"content-type": "application/json"})
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))
                        continue
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text}")
                    else:
                        versions.append((time.monotonic(), r.headers["x-tusk-model-commit"]))

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for th in threads:
            th.start()
        try:
            _swap_and_roll_back(c, v1, v2, versions)
        finally:
            stop.set()
            for th in threads:
                th.join()
    assert failures == []
    assert {v for _, v in versions} == {v1, v2}


def _swap_and_roll_back(c: Client, v1: str, v2: str, versions: list[tuple[float, str]]) -> None:
    wait_for(lambda: len(versions) > 50, 30, "traffic")
    c.promote_model(f"census-model@{v2}", "production")  # a branch move: the deployment follows it
    wait_for(lambda: versions[-1][1] == v2, 30, "the swap to v2")
    swapped = time.monotonic()
    wait_for(lambda: versions[-1][0] > swapped + 0.3, 30, "traffic after the swap")
    c.rollback_model("census-model@production")  # rollback is a branch move too
    wait_for(lambda: versions[-1][1] == v1, 30, "the rollback to v1")
    count = len(versions)
    wait_for(lambda: len(versions) > count + 50, 30, "traffic after the rollback")


def test_a_tampered_model_is_refused_and_readiness_says_why(c: Client) -> None:
    v1, v2 = _census(c)
    with c.services.ctx.db.write() as s:  # production's commit now points at other bytes than its manifest says
        other = s.get(CommitRow, v2).tree_digest  # type: ignore[union-attr]
        s.execute(update(CommitRow).where(CommitRow.id == v1).values(tree_digest=other))
    before = _metric(None, "tusk_model_load_errors_total")
    with TestClient(create_app(c.services, poll=0.1, request_logging=False)) as t:
        wait_for(lambda: "does not match its manifest" in t.get("/v2/health/ready").text, 30, "the refusal")
        r = t.get("/v2/health/ready")
        assert r.status_code == 400 and r.json()["ready"] is False
        r = t.post("/v2/models/census/infer", json=_infer(1))
        assert r.status_code == 503 and "no model loaded" in r.json()["error"]
        assert t.get("/v2/models/census/ready").status_code == 400
        assert _metric(t, "tusk_model_load_errors_total") > before


def test_a_swap_to_a_tampered_commit_keeps_the_old_model_serving(c: Client) -> None:
    v1, v2 = _census(c)
    with serving(c, logging=False) as t:
        before = _metric(t, "tusk_model_load_errors_total")
        with c.services.ctx.db.write() as s:
            other = s.get(CommitRow, v1).tree_digest  # type: ignore[union-attr]
            s.execute(update(CommitRow).where(CommitRow.id == v2).values(tree_digest=other))
        c.promote_model(f"census-model@{v2}", "production")
        wait_for(lambda: _metric(t, "tusk_model_load_errors_total") > before, 30, "the refused swap")
        r = t.post("/v2/models/census/infer", json=_infer(1))
        assert r.status_code == 200 and r.json()["model_version"] == v1
        time.sleep(0.5)  # five more polls: the refused commit is not hashed again until the branch moves
        assert _metric(t, "tusk_model_load_errors_total") == before + 1


# -- request logging ------------------------------------------------------------------------------------------


def test_logged_requests_are_committed_to_the_deployment_repo(backend: Backend) -> None:
    c = backend.client()
    try:
        v1, _ = _census(c, logging={"flush_rows": 5, "flush_seconds": 30})
        with serving(c) as t:
            for i in range(12):
                assert t.post("/v2/models/census/infer", json=_infer(2, skip=20000 + 2 * i,
                                                                     id=f"r{i}")).status_code == 200
            wait_for(lambda: _logged_count(c) >= 10, 30, "two batches of 5 to land")
        records = _log_records(c, "census-requests")  # the last 2 were committed at shutdown
        assert sorted(r["id"] for r in records) == sorted(f"r{i}" for i in range(12))
        first = next(r for r in records if r["id"] == "r0")
        assert first["model_commit"] == v1 and first["predictor"] == "main" and first["model_branch"] == "production"
        assert len(first["inputs"]) == 2 and set(first["inputs"][0]) == set(FEATURES_13)
        assert len(first["outputs"]["predict"]) == 2
        commits = c.list_commits("census-requests@master")
        assert len(commits) >= 2  # at least one batch while serving (two, unless the second was waiting) and the rest
        assert {(p["repo"], p["commit"]) for p in commits[0].provenance} == {("census-model", v1)}
    finally:
        c.close()


def test_request_logs_are_bounded_sampled_and_redacted(backend: Backend) -> None:
    c = backend.client()
    try:
        _census(c, logging={"flush_rows": 1000, "flush_seconds": 30, "max_record_bytes": 4096,
                            "max_flush_bytes": 4096, "redact": ["age", "predict"]})
        skipped = {r: _metric(None, "tusk_request_log_skipped_total", deployment="census", reason=r)
                   for r in ("truncated", "sampled")}  # the registry is this process's: count what this test adds
        with serving(c) as t:
            for i in range(6):
                assert t.post("/v2/models/census/infer", json=_infer(2, skip=20000 + 2 * i,
                                                                     id=f"small{i}")).status_code == 200
            assert t.post("/v2/models/census/infer", json=_infer(200, id="big")).status_code == 200
        cut = _metric(None, "tusk_request_log_skipped_total", deployment="census", reason="truncated")
        records = {r["id"]: r for r in _log_records(c, "census-requests")}  # committed at shutdown
        assert set(records) == {f"small{i}" for i in range(6)} | {"big"}  # nothing lost
        big = records["big"]
        assert big["truncated"] is True and big["rows"] == 200 and big["record_bytes"] > 4096
        assert "inputs" not in big and big["model_commit"]  # what answered stays
        assert cut - skipped["truncated"] == 1
        small = records["small0"]
        assert {r["age"] for r in small["inputs"]} == {"[redacted]"} and small["outputs"]["predict"] == "[redacted]"
        assert all(r["education"] != "[redacted]" for r in small["inputs"])
        files = [f for f in c.walk_files("census-requests@master:/") if f.kind == "file"]
        assert len(files) >= 2 and all(f.size_bytes <= 4096 for f in files)  # one flush, at most max_flush_bytes
        c.update_deployment({"name": "census", "predictors": [{"name": "main", "model": "census-model@production"}],
                             "logging": {"sample_rate": 0.0, "flush_seconds": 30}})
        with serving(c) as t:
            for i in range(5):
                assert t.post("/v2/models/census/infer", json=_infer(1, id=f"unlogged{i}")).status_code == 200
        sampled = _metric(None, "tusk_request_log_skipped_total", deployment="census", reason="sampled")
        assert sampled - skipped["sampled"] == 5
        assert not any(r["id"].startswith("unlogged") for r in _log_records(c, "census-requests"))
    finally:
        c.close()


def _logged_count(c: Client) -> int:
    try:
        return len(_log_records(c, "census-requests"))
    except Exception:
        return 0


def _log_records(c: Client, repo: str) -> list[dict[str, Any]]:
    records = []
    for f in c.walk_files(f"{repo}@master:/"):
        if f.kind == "file":
            records += [json.loads(line) for line in c.get_file(f"{repo}@master:{f.path}").splitlines()]
    return records


def _metric(t: TestClient | None, name: str, **labels: str) -> float:
    """Sum of a metric's samples with these labels (t=None: read this process's registry directly)."""
    total = 0.0
    text = t.get("/metrics").text if t is not None else render().decode()
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# -- detectors ------------------------------------------------------------------------------------------------


def test_detectors_report_in_the_response_when_asked_and_in_metrics(c: Client) -> None:
    v1, _ = _census(c, detectors={"reference": "census@master:/train.csv", "label": "income",
                                  "drift": {"window": 200, "every": 100, "p_value": 0.01}})
    with serving(c, logging=False) as t:
        tests_before = _metric(t, "tusk_drift_tests_total", deployment="census")
        wait_for(lambda: bool(t.app.state.serving.deployments["census"].detectors), 30, "detectors")
        frame = census_frame(3, skip=20000)
        frame["age"] = [30, 95, 40]
        frame["capital-gain"] = [0, 99999, 0]
        r = t.post("/v2/models/census/infer", json={"inputs": oip_inputs(frame), "parameters": {"detect": True}})
        params = r.json()["parameters"]
        assert params["outlier"] == [False, True, False] and len(params["outlier_score"]) == 3
        shifted = census_frame(300, skip=21000)
        shifted["age"] = shifted["age"] + 15
        assert t.post("/v2/models/census/infer", json={"inputs": oip_inputs(shifted)}).status_code == 200
        wait_for(lambda: _metric(t, "tusk_drift_tests_total", deployment="census") > tests_before, 10, "drift test")
        r = t.post("/v2/models/census/infer", json={"inputs": oip_inputs(shifted.head(1)),
                                                     "parameters": {"detect": True}})
        drift = r.json()["parameters"]["drift"]
        assert drift["detected"] is True and drift["p_values"]["age"] < drift["threshold"]
        assert _metric(t, "tusk_drift_detected", deployment="census") == 1
        assert _metric(t, "tusk_outliers_total", model_version=v1) >= 1
        assert _metric(t, "tusk_drift_p_value", feature="age") < 0.001


# -- deployments ----------------------------------------------------------------------------------------------


def test_creating_a_deployment_checks_its_models(c: Client) -> None:
    census_repos(c)
    with pytest.raises(InvalidArgument, match="predictor 'main': census-model@nope"):
        c.create_deployment({"name": "d", "predictors": [{"name": "main", "model": "census-model@nope"}]})
    with pytest.raises(InvalidArgument, match="predictor 'main': census@master"):
        c.create_deployment({"name": "d", "predictors": [{"name": "main", "model": "census@master"}]})
    info = c.create_deployment({"name": "d", "predictors": [{"name": "main", "model": "census-model@production"}]})
    assert info.predictors[0].follows == "production" and info.predictors[0].commit
    assert [d.name for d in c.list_deployments()] == ["d"]
    c.delete_deployment("d")
    assert c.list_deployments() == []


def test_the_serving_apps_paths_go_to_it_directly_and_no_api_or_dashboard_path_does(tmp_path: Any) -> None:
    """The API app hands the serving app's requests to it without walking the API's router: only its paths,
    never one the API or the dashboard answers."""
    from starlette.routing import Mount

    from tusk.api.app import _ServingPaths, route_table
    from tusk.config import Settings
    from tusk.root import create_server_app as create_api
    from tusk.services import Services

    services = Services.open(Settings.for_home(tmp_path / "home"))
    app = create_api(services, scheduler=False)
    serving = next(r.app for r in app.routes if isinstance(r, Mount) and r.path == "")
    paths = _ServingPaths(serving)

    def scope(method: str, path: str) -> dict[str, Any]:
        return {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}

    api = [(op["method"], op["path"].replace("{", "").replace("}", "")) for op in route_table(app)]
    assert api and not [p for p in api if paths.matches(scope(*p))]
    assert not [p for p in ("/", "/ui", "/ui/repos", "/ui/static/app.css", "/docs", "/openapi.json")
                if paths.matches(scope("GET", p))]
    assert all(paths.matches(scope(m, p)) for m, p in [
        ("POST", "/v2/models/census/infer"), ("GET", "/v2/models/census/infer"), ("GET", "/v2/health/ready"),
        ("POST", "/invocations"), ("GET", "/metrics"), ("POST", "/v1/algo/a/b")])
    services.close()
