"""XGBoost and LightGBM models in their own save formats, and MLflow's sklearn flavor with probabilities: loaded,
verified, predicted as the library predicts, and served over OIP with the types the responses carry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tusk.config import Settings
from tusk.errors import ModelUnloadable
from tusk.sdk import Client


@pytest.fixture()
def client(tmp_path: Path) -> Any:
    c = Client(settings=Settings.for_home(tmp_path / "home", TUSK_RUNTIME="local"))
    yield c
    c.close()


def _iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32), y


def _infer(c: Client, name: str, model: str, x: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    from starlette.testclient import TestClient

    from tusk.serving.app import create_app

    c.create_deployment({"name": name, "predictors": [{"name": "main", "model": model}]})
    with TestClient(create_app(c.services, poll=0.1, request_logging=False)) as t:
        meta = t.get(f"/v2/models/{name}").json()
        r = t.post(f"/v2/models/{name}/infer", json={
            "inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}]})
        assert r.status_code == 200, r.text
        return meta, {o["name"]: o for o in r.json()["outputs"]}


def test_an_xgboost_classifier_from_its_ubj_file(client: Client, tmp_path: Path) -> None:
    xgboost = pytest.importorskip("xgboost")
    x, y = _iris()
    model = xgboost.XGBClassifier(n_estimators=8, max_depth=3).fit(x, y)
    model.save_model(tmp_path / "model.ubj")
    client.create_repo("xgb")
    client.put_file("xgb@master:/model.ubj", tmp_path / "model.ubj")
    loaded = client.load_model("xgb@master:/model.ubj")
    assert loaded.flavor == "xgboost"
    assert list(loaded.predict(x[:20])) == list(model.predict(x[:20]))
    assert np.allclose(loaded.predict_proba(x[:20]), model.predict_proba(x[:20]), atol=1e-6)
    meta, out = _infer(client, "xgb", "xgb@master", x[:5])
    assert {o["name"]: o["datatype"] for o in meta["outputs"]} == {"predict": "INT64", "predict_proba": "FP64"}
    assert meta["outputs"][1]["shape"] == [-1, 3]
    assert out["predict"]["datatype"] == "INT64" and out["predict"]["data"] == list(model.predict(x[:5]))
    assert np.allclose(np.asarray(out["predict_proba"]["data"]).reshape(5, 3), model.predict_proba(x[:5]),
                       atol=1e-6)


def test_xgboost_binary_and_regression_objectives(client: Client, tmp_path: Path) -> None:
    xgboost = pytest.importorskip("xgboost")
    x, y = _iris()
    binary = xgboost.XGBClassifier(n_estimators=4).fit(x, (y == 2).astype(int))
    regressor = xgboost.XGBRegressor(n_estimators=4).fit(x, y.astype(float))
    binary.save_model(tmp_path / "b.xgb")
    regressor.save_model(tmp_path / "r.ubj")
    client.create_repo("boost")
    client.put_file("boost@master:/b.xgb", tmp_path / "b.xgb")
    client.put_file("boost@master:/r.ubj", tmp_path / "r.ubj")
    b = client.load_model("boost@master:/b.xgb")
    assert np.allclose(b.predict_proba(x[100:110]), binary.predict_proba(x[100:110]), atol=1e-6)
    assert list(b.predict(x[100:110])) == list(binary.predict(x[100:110]))
    r = client.load_model("boost@master:/r.ubj")
    assert np.allclose(r.predict(x[:10]), regressor.predict(x[:10]), atol=1e-5)
    assert not r.has_predict_proba
    with pytest.raises(ModelUnloadable, match="no predict_proba"):
        r.predict_proba(x[:1])


def test_a_lightgbm_model_named_by_its_descriptor(client: Client, tmp_path: Path) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    x, y = _iris()
    model = lightgbm.LGBMClassifier(n_estimators=8, verbose=-1).fit(x, y)
    model.booster_.save_model(str(tmp_path / "model.txt"))
    client.create_repo("lgb")
    with client.modify("lgb@master") as m:  # `model.txt` names no flavor: the descriptor does
        m.put_file("/iris/model.txt", tmp_path / "model.txt")
        m.put_bytes("/iris/tusk-model.yaml", b"flavor: lightgbm\nfile: model.txt\n")
    manifest = client.model_manifest("lgb@master")
    (entry,) = manifest.models
    assert entry.flavor == "lightgbm" and entry.path == "/iris"
    loaded = client.load_model("lgb@master:/iris")
    assert list(loaded.predict(x[::10])) == list(model.predict(x[::10]))
    assert np.allclose(loaded.predict_proba(x[::10]), model.predict_proba(x[::10]), atol=1e-9)
    _meta, out = _infer(client, "lgb", "lgb@master", x[:4])
    assert out["predict"]["data"] == list(model.predict(x[:4]))


def test_a_tampered_or_foreign_booster_file_is_refused_with_its_name(client: Client) -> None:
    pytest.importorskip("xgboost")
    client.create_repo("bad")
    client.put_file("bad@master:/model.ubj", b"not a booster at all")
    with pytest.raises(ModelUnloadable, match=r"model\.ubj is not a loadable XGBoost model"):
        client.load_model("bad@master:/model.ubj")


def test_an_mlflow_sklearn_model_has_predict_proba(client: Client, tmp_path: Path) -> None:
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn")
    from sklearn.linear_model import LogisticRegression

    x, y = _iris()
    model = LogisticRegression(max_iter=500).fit(x, y)
    mlflow_sklearn.save_model(model, str(tmp_path / "mlflow-model"),
                              serialization_format=mlflow_sklearn.SERIALIZATION_FORMAT_PICKLE)
    client.create_repo("mlf")
    client.put_file("mlf@master:/model/", tmp_path / "mlflow-model", recursive=True)
    loaded = client.load_model("mlf@master:/model")
    assert loaded.flavor == "mlflow" and loaded.has_predict_proba
    assert np.allclose(loaded.predict_proba(x[:5]), model.predict_proba(x[:5]))
    meta, out = _infer(client, "mlf", "mlf@master", x[:3])
    assert {o["name"]: o["datatype"] for o in meta["outputs"]} == {"predict": "INT64", "predict_proba": "FP64"}
    assert out["predict"]["data"] == list(model.predict(x[:3]))
    assert np.allclose(np.asarray(out["predict_proba"]["data"]).reshape(3, 3), model.predict_proba(x[:3]))
