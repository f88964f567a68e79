"""ONNX models as converters make them: a 13-input census pipeline from skl2onnx, fed by input name, with its
probabilities, answering as the scikit-learn pipeline does, through the SDK and over OIP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import census as census_module
from tests.census import oip_inputs
from tusk.config import Settings
from tusk.sdk import Client

# skl2onnx names graph inputs after the columns, with "-" made "_": a converted model's users name theirs so
NUMERIC = [n.replace("-", "_") for n in census_module.NUMERIC]
CATEGORICAL = [n.replace("-", "_") for n in census_module.CATEGORICAL]
FEATURES = NUMERIC + CATEGORICAL


def census_frame(rows: int, skip: int = 0) -> Any:
    return census_module.census_frame(rows, skip).rename(columns=lambda n: n.replace("-", "_"))


def train_census(frame: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return Pipeline([
        ("features", ColumnTransformer([("num", StandardScaler(), NUMERIC),
                                        ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)])),
        ("classifier", LogisticRegression(max_iter=500)),
    ]).fit(frame[FEATURES], frame["income"])


def _oip(frame: Any) -> list[dict[str, Any]]:
    tensors = oip_inputs(frame.rename(columns=lambda n: n.replace("_", "-")))
    return [dict(t, name=t["name"].replace("-", "_")) for t in tensors]

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")


def _census_onnx(frame: Any) -> tuple[Any, bytes]:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    model = train_census(frame)
    types = [(c, StringTensorType([None, 1]) if c in CATEGORICAL else FloatTensorType([None, 1])) for c in FEATURES]
    return model, to_onnx(model, initial_types=types, target_opset=17).SerializeToString()


@pytest.fixture()
def census_onnx(tmp_path: Path) -> Any:
    frame = census_frame(3000)
    model, onnx_bytes = _census_onnx(frame)
    c = Client(settings=Settings.for_home(tmp_path / "home", TUSK_RUNTIME="local"))
    c.create_repo("onnx-model")
    c.put_file("onnx-model@master:/model.onnx", onnx_bytes)
    yield c, model
    c.close()


def test_a_13_input_onnx_pipeline_answers_as_its_scikit_learn_original(census_onnx: Any) -> None:
    c, model = census_onnx
    rows = census_frame(200, skip=20000)
    loaded = c.load_model("onnx-model@master:/model.onnx")
    assert loaded.feature_names == FEATURES  # one graph input per column, in the pipeline's order
    got = loaded.predict(rows[FEATURES])
    assert list(got) == list(model.predict(rows[FEATURES]))
    assert np.allclose(loaded.predict_proba(rows[FEATURES]), model.predict_proba(rows[FEATURES]), atol=1e-4)
    assert list(loaded.impl.classes_) == list(model.classes_)


def test_the_onnx_census_model_over_oip_by_input_name(census_onnx: Any) -> None:
    from starlette.testclient import TestClient

    from tusk.serving.app import create_app

    c, model = census_onnx
    c.create_deployment({"name": "onnx", "predictors": [{"name": "main", "model": "onnx-model@master"}]})
    rows = census_frame(50, skip=21000)
    with TestClient(create_app(c.services, poll=0.1, request_logging=False)) as t:
        meta = t.get("/v2/models/onnx").json()
        assert [i["name"] for i in meta["inputs"]] == FEATURES
        types = {i["name"]: i["datatype"] for i in meta["inputs"]}
        assert {types[n] for n in NUMERIC} == {"FP32"} and {types[n] for n in CATEGORICAL} == {"BYTES"}
        assert {o["name"]: o["datatype"] for o in meta["outputs"]} == {"predict": "BYTES", "predict_proba": "FP32"}
        r = t.post("/v2/models/onnx/infer", json={  # integers as clients send them, for FP32 inputs too
            "inputs": _oip(rows), "outputs": [{"name": "predict"}, {"name": "predict_proba"}]})
        assert r.status_code == 200, r.text
        outputs = {o["name"]: o for o in r.json()["outputs"]}
        assert outputs["predict"]["datatype"] == "BYTES" and outputs["predict_proba"]["datatype"] == "FP32"
        assert outputs["predict"]["data"] == list(model.predict(rows[FEATURES]))
        proba = np.asarray(outputs["predict_proba"]["data"]).reshape(outputs["predict_proba"]["shape"])
        assert np.allclose(proba, model.predict_proba(rows[FEATURES]), atol=1e-4)
        missing = t.post("/v2/models/onnx/infer", json={"inputs": _oip(rows)[:-1]})
        assert missing.status_code == 400 and "native_country" in missing.text
