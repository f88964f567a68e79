"""Explainers: trained beside the model, hashed in its manifest, verified and served with it.

``POST /v2/models/{m}/explain`` (and the model ``{m}:explain`` over gRPC and to any OIP client) answers, for
each row, one attribution per input column; with the base value they add up to the explained output.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from tests.census import FEATURES, census_frame, oip_inputs, train_census
from tests.serving_helpers import joblib_bytes, live_server, wait_for
from tusk.models.explainers import build_explainer
from tusk.sdk import Client
from tusk.serving.app import create_app
from tusk.storage.metadata import CommitRow

ROWS = census_frame(6, skip=20000)


@contextmanager
def serving(c: Client) -> Iterator[TestClient]:
    with TestClient(create_app(c.services, poll=0.1, request_logging=False)) as t:
        yield t


def _model_repo(c: Client, repo: str, model: Any, frame: Any, **options: Any) -> str:
    """``repo`` with model.joblib and its explainer.json (built from ``frame``); returns the commit."""
    doc = build_explainer(model, frame[FEATURES], **options)
    with c.modify(f"{repo}@master") as m:
        m.put_bytes("/model.joblib", joblib_bytes(model))
        m.put_bytes("/explainer.json", json.dumps(doc).encode())
    return c.inspect_commit(f"{repo}@master").id


@pytest.fixture(scope="module")
def census() -> tuple[Any, Any]:
    frame = census_frame(3000)
    return frame, train_census(frame)


def _deploy(c: Client, name: str, ref: str) -> None:
    c.create_deployment({"name": name, "predictors": [{"name": "main", "model": ref}],
                         "logging": {"enabled": False}})


def _explain(t: TestClient, name: str, rows: Any = ROWS, **extra: Any) -> Any:
    return t.post(f"/v2/models/{name}/explain", json={"inputs": oip_inputs(rows), **extra})


def _attributions(doc: dict[str, Any]) -> dict[str, np.ndarray[Any, Any]]:
    return {o["name"]: np.asarray(o["data"], dtype=float) for o in doc["outputs"]}


def test_the_manifest_hashes_the_explainer_and_links_it_to_its_model(c: Client, census: Any) -> None:
    frame, model = census
    c.create_repo("m")
    commit = _model_repo(c, "m", model, frame)
    manifest = c.model_manifest(f"m@{commit}")
    assert [(e.path, e.explainer) for e in manifest.models] == [("/model.joblib", "/explainer.json")]
    assert {f.path: f.role for f in manifest.files} == {"/model.joblib": "model", "/explainer.json": "explainer"}
    doc = json.loads(c.get_file(f"m@{commit}:/explainer.json"))
    assert doc["format"] == "tusk-explainer:v1" and doc["method"] == "linear" and doc["model"] == "model.joblib"
    assert doc["columns"] == FEATURES and len(doc["background"]) == 100


def test_linear_attributions_are_named_by_column_and_add_up_to_the_log_odds(c: Client, census: Any) -> None:
    frame, model = census
    c.create_repo("m")
    commit = _model_repo(c, "m", model, frame)
    _deploy(c, "census", "m@master")
    with serving(c) as t:
        r = _explain(t, "census", id="why")
        assert r.status_code == 200, r.text
        doc = r.json()
        assert r.headers["x-tusk-model-commit"] == commit == doc["model_version"] and doc["id"] == "why"
        assert r.headers["x-tusk-predictor"] == "main" and doc["model_name"] == "census"
        assert [o["name"] for o in doc["outputs"]] == FEATURES  # one output per input column, the model's order
        assert all(o["datatype"] == "FP64" and o["shape"] == [len(ROWS)] for o in doc["outputs"])
        p = doc["parameters"]
        assert (p["method"], p["output"], p["class"], p["explainer"]) == ("linear", "log_odds", ">50K",
                                                                          "/explainer.json")
        values = _attributions(doc)
        log_odds = model.decision_function(ROWS[FEATURES])
        np.testing.assert_allclose(sum(values.values()) + p["base_value"], log_odds, atol=1e-9)
        # the other class: the same attributions, negated
        other = _explain(t, "census", parameters={"class": "<=50K"}).json()
        np.testing.assert_allclose(_attributions(other)["age"], -values["age"], atol=1e-12)
        # outputs picks columns; the binary tensor data extension works as for infer
        some = _explain(t, "census", outputs=[{"name": "sex"}, {"name": "age"}]).json()
        assert [o["name"] for o in some["outputs"]] == ["sex", "age"]
        # {m}:explain is the same explainer, as OIP clients name it
        alias = t.post("/v2/models/census:explain/infer", json={"inputs": oip_inputs(ROWS)})
        assert alias.status_code == 200 and alias.json()["model_name"] == "census:explain"
        np.testing.assert_allclose(_attributions(alias.json())["age"], values["age"])
        meta = t.get("/v2/models/census:explain").json()
        assert meta["name"] == "census:explain" and meta["platform"] == "tusk-explainer-linear"
        assert [o["name"] for o in meta["outputs"]] == FEATURES
        assert t.get("/v2/models/census:explain/ready").json() == {"name": "census:explain", "ready": True}


def test_linear_attributions_are_shap_values(census: Any) -> None:
    """The numpy linear explainer gives what shap's LinearExplainer gives, one-hot columns summed."""
    shap = pytest.importorskip("shap")
    from tusk.models.explainers import _background, _groups, _Linear, _summed

    frame, model = census
    doc = build_explainer(model, frame[FEATURES])
    background = _background(doc["background"], FEATURES, named=True)
    ours, base, _ = _Linear(model[:-1], model[-1], FEATURES, background).explain(ROWS[FEATURES], 1)
    pre = model[:-1]
    dense = lambda z: z.toarray() if hasattr(z, "toarray") else z  # noqa: E731
    reference = shap.LinearExplainer(model[-1], dense(pre.transform(background)))
    theirs = _summed(np.asarray(reference.shap_values(dense(pre.transform(ROWS[FEATURES])))),
                     _groups(pre, FEATURES), len(FEATURES))
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    assert base == pytest.approx(float(reference.expected_value))


def test_a_sampling_explainer_adds_up_to_the_probability(c: Client, census: Any) -> None:
    frame, model = census
    c.create_repo("sampled")
    _model_repo(c, "sampled", model, frame, method="sampling")
    _deploy(c, "sampled", "sampled@master")
    with serving(c) as t:
        doc = _explain(t, "sampled").json()
        assert (doc["parameters"]["method"], doc["parameters"]["output"]) == ("sampling", "probability")
        assert [o["name"] for o in doc["outputs"]] == FEATURES
        total = sum(_attributions(doc).values()) + doc["parameters"]["base_value"]
        np.testing.assert_allclose(total, model.predict_proba(ROWS[FEATURES])[:, 1], atol=1e-9)
        assert _explain(t, "sampled").json()["outputs"] == doc["outputs"]  # a fixed seed: one row, one answer
        r = _explain(t, "sampled", census_frame(101, skip=20000))
        assert r.status_code == 400 and "at most 100 rows" in r.json()["error"]


def test_a_tree_explainer_adds_up_to_the_raw_output(c: Client, census: Any) -> None:
    pytest.importorskip("shap", reason="the tree explainer needs shap (tusk[explain])")
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from tests.census import CATEGORICAL, NUMERIC

    frame, _ = census
    encode = ColumnTransformer([("num", "passthrough", NUMERIC),
                                ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL)])
    tree = Pipeline([("features", encode),
                     ("classifier", GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0))])
    tree.fit(frame[FEATURES], frame["income"])
    c.create_repo("boosted")
    _model_repo(c, "boosted", tree, frame, rows=50)
    _deploy(c, "boosted", "boosted@master")
    with serving(c) as t:
        doc = _explain(t, "boosted").json()
        assert (doc["parameters"]["method"], doc["parameters"]["output"]) == ("tree", "raw")
        assert [o["name"] for o in doc["outputs"]] == FEATURES
        total = sum(_attributions(doc).values()) + doc["parameters"]["base_value"]
        np.testing.assert_allclose(total, tree.decision_function(ROWS[FEATURES]), atol=1e-6)


def test_explanations_over_grpc_and_http_with_tritonclient(tmp_path: Any, census: Any) -> None:
    grpcclient = pytest.importorskip("tritonclient.grpc")
    httpclient = pytest.importorskip("tritonclient.http")
    from tusk.root import create_server_app as create_api
    from tusk.root.server import with_grpc

    frame, model = census
    c = Client(home=tmp_path / "home")
    try:
        c.create_repo("m")
        commit = _model_repo(c, "m", model, frame)
        _deploy(c, "census", "m@master")
        app = with_grpc(create_api(c.services, scheduler=False, poll=0.2), "127.0.0.1", 0)
        with live_server(app) as url:
            expected = model.decision_function(ROWS[FEATURES])
            g = grpcclient.InferenceServerClient(f"127.0.0.1:{app.state.grpc_port}")
            h = httpclient.InferenceServerClient(url.removeprefix("http://"))
            for client, lib in ((g, grpcclient), (h, httpclient)):
                inputs = []
                for tensor in oip_inputs(ROWS):
                    data = np.array(tensor["data"], dtype=object if tensor["datatype"] == "BYTES" else np.int64)
                    x = lib.InferInput(tensor["name"], [len(ROWS)], tensor["datatype"])
                    x.set_data_from_numpy(data)
                    inputs.append(x)
                assert client.is_model_ready("census:explain")
                result = client.infer("census:explain", inputs)
                response = result.get_response(as_json=True) if lib is grpcclient else result.get_response()
                assert response["model_version"] == commit
                base = response["parameters"]["base_value"]
                base = base["double_param"] if isinstance(base, dict) else base
                total = sum(result.as_numpy(col).astype(float) for col in FEATURES) + float(base)
                np.testing.assert_allclose(total, expected, atol=1e-9)
            meta = g.get_model_metadata("census:explain", as_json=True)
            assert [o["name"] for o in meta["outputs"]] == FEATURES
    finally:
        c.close()


def test_a_tampered_explainer_is_refused_with_its_model(c: Client, census: Any) -> None:
    frame, model = census
    c.create_repo("m")
    v1 = _model_repo(c, "m", model, frame, seed=0)
    c.promote_model(f"m@{v1}", "production")
    v2 = _model_repo(c, "m", model, frame, seed=1)  # the same model bytes, another explainer
    with c.services.ctx.db.write() as s:  # production's commit now has v2's explainer, not the one hashed
        other = s.get(CommitRow, v2).tree_digest  # type: ignore[union-attr]
        s.execute(update(CommitRow).where(CommitRow.id == v1).values(tree_digest=other))
    _deploy(c, "census", "m@production")
    with serving(c) as t:
        wait_for(lambda: "does not match its manifest" in t.get("/v2/health/ready").text, 30, "the refusal")
        reason = t.get("/v2/models/census/ready").json()["reason"]
        assert "/explainer.json does not match its manifest" in reason
        assert _explain(t, "census").status_code == 503


def test_without_an_explainer_or_with_a_bad_payload_the_answer_is_a_clear_4xx(c: Client, census: Any) -> None:
    frame, model = census
    c.create_repo("plain")
    c.put_file("plain@master:/model.joblib", joblib_bytes(model))
    _deploy(c, "plain", "plain@master")
    c.create_repo("m")
    _model_repo(c, "m", model, frame)
    _deploy(c, "census", "m@master")
    c.create_repo("wrong")  # a tree explainer for a linear model: predictions serve, explanations say why
    _model_repo(c, "wrong", model, frame, method="tree")
    _deploy(c, "wrong", "wrong@master")
    with serving(c) as t:
        r = _explain(t, "plain")
        assert r.status_code == 404 and "deployment plain has no explainer" in r.json()["error"]
        assert "explainer.json" in r.json()["error"]
        assert t.get("/v2/models/plain:explain/ready").status_code == 400
        assert t.post("/v2/models/plain/infer", json={"inputs": oip_inputs(ROWS)}).status_code == 200
        r = _explain(t, "wrong")
        assert r.status_code == 400 and "cannot explain /model.joblib" in r.json()["error"]
        assert t.post("/v2/models/wrong/infer", json={"inputs": oip_inputs(ROWS)}).status_code == 200
        assert _explain(t, "nope").status_code == 404
        bad: list[tuple[Any, str]] = [
            ({"inputs": oip_inputs(ROWS)[1:]}, "lack 1 of the model's features: age"),
            ({"inputs": oip_inputs(ROWS), "parameters": {"class": "rich"}}, "not a class of this model"),
            ({"inputs": oip_inputs(ROWS), "parameters": {"class": [1]}}, "must be a class label"),
            ({"inputs": oip_inputs(ROWS), "outputs": [{"name": "predict"}]}, "this explainer has age"),
            ({"inputs": oip_inputs(ROWS), "parameters": 3}, "parameters must be an object"),
            ([1, 2], "must be a JSON object"),
            ({"inputs": "x"}, ""),
        ]
        for body, says in bad:
            r = t.post("/v2/models/census/explain", json=body)
            assert r.status_code == 400 and says in r.json()["error"], (body, r.text)
        r = t.post("/v2/models/census/explain", content=b"{not json")
        assert r.status_code == 400 and r.json()["error_type"]
