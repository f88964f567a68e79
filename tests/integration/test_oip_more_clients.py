"""More OIP V2 clients at their defaults against a real Tusk server: KServe's python SDK (InferenceRESTClient,
InferenceGRPCClient, and its generated stub for the metadata calls the SDK lacks), open-inference-openapi (the
Open Inference Protocol's generated REST client) and open-inference-grpc (its generated gRPC stub).

They cannot join the dev extra: KServe 0.21 pins pandas<3 and brings kubernetes, and both KServe and
open-inference-grpc register their own copy of the ``inference`` protobuf package, which clashes with
tritonclient's (and with each other) in one process. So they are installed apart, in .venv/kserve-lib
(scripts/bootstrap.sh), or wherever TUSK_TEST_OIP_CLIENTS_PATH says::

    pip install --target /tmp/oip-lib kserve==0.21.0 open-inference-openapi==2.0.0.1 open-inference-grpc==2.0.0
    TUSK_TEST_OIP_CLIENTS_PATH=/tmp/oip-lib pytest tests/integration/test_oip_more_clients.py

and each family runs in a child process (tests/integration/oip_side_clients.py) that makes every call and
prints what each returned or raised; the tests here assert on each. Without the side install they are skipped,
saying so.

One server on loopback (the app ``tusk server`` builds, REST and gRPC) serves census (a scikit-learn pipeline
over named INT64/BYTES columns), iris (a numeric matrix) and echo (a Python-class model that answers with the
dtype and values it was given).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.census import CATEGORICAL, FEATURES, census_frame
from tests.serving_helpers import ECHO, census_repos, echoed, iris_repo, live_server, python_model, sample
from tusk.root import create_server_app
from tusk.root.server import with_grpc
from tusk.sdk import Client

SCRIPT = Path(__file__).with_name("oip_side_clients.py")
# what the echo model is sent: each datatype's sample (INT64 with its range's ends), and INT64 within +-2**53
ECHO_KEYS = ["INT64", "FP64", "BOOL", "BYTES", "INT64-small"]


def _echo_array(key: str) -> np.ndarray[Any, Any]:
    if key == "INT64-small":  # integers a float64 holds exactly
        return np.array([[1, 2, 3], [-(2**53), 0, 2**53]], dtype=np.int64)
    return sample(key)


def _side_lib() -> Path | None:
    path = os.environ.get("TUSK_TEST_OIP_CLIENTS_PATH")
    if path:
        return Path(path)
    default = Path(__file__).parents[2] / ".venv" / "kserve-lib"  # scripts/bootstrap.sh's
    return default if default.is_dir() else None


@dataclass
class Served:
    url: str
    grpc: str  # host:port
    client: Client
    production: str  # census-model@production's commit
    predictions: list[str]  # the census model's own, for the census rows sent
    proba: list[float]
    case: Path  # what the child processes send, and where


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("oip-more")
    c = Client(home=root / "home")
    try:
        production, _ = census_repos(c)
        c.create_deployment({"name": "census", "predictors": [{"name": "main", "model": "census-model@production"}]})
        iris_repo(c)
        c.create_deployment({"name": "iris", "predictors": [{"name": "only", "model": "iris@master"}]})
        python_model(c, "echo-model", ECHO)
        c.create_deployment({"name": "echo", "predictors": [{"name": "only", "model": "echo-model@master"}]})
        frame = census_frame(5, skip=20000)
        model = c.load_model("census-model@production")
        census = {col: ["BYTES" if col in CATEGORICAL else "INT64", frame[col].tolist()] for col in FEATURES}
        echo = {key: [key.removesuffix("-small"), _echo_array(key).tolist()] for key in ECHO_KEYS}
        app = with_grpc(create_server_app(c.services, scheduler=False, poll=0.2), "127.0.0.1", 0)
        with live_server(app) as url:
            grpc = f"127.0.0.1:{app.state.grpc_port}"
            case = root / "case.json"
            case.write_text(json.dumps({"url": url, "grpc": grpc, "version": production, "census": census,
                                        "echo": echo, "iris": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}))
            yield Served(url, grpc, c, production, model.predict(frame[FEATURES]).tolist(),
                         model.predict_proba(frame[FEATURES]).ravel().tolist(), case)
    finally:
        c.close()


def _lib(family: str, package: str) -> Path:
    lib = _side_lib()
    if lib is None or not (lib / package).is_dir():
        pytest.skip(f"{family} is installed apart (it clashes with the dev extra's pins): install it into "
                    ".venv/kserve-lib (scripts/bootstrap.sh) or set TUSK_TEST_OIP_CLIENTS_PATH (see this module's "
                    "docstring)")
    return lib


def _run(lib: Path, served: Served, family: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSK_")} | {"PYTHONPATH": str(lib)}
    done = subprocess.run([sys.executable, str(SCRIPT), family, str(served.case)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    calls: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    assert "__setup__" not in calls, calls["__setup__"]["error"]["message"]
    return calls


@pytest.fixture(scope="module")
def kserve(request: pytest.FixtureRequest) -> dict[str, Any]:
    lib = _lib("KServe's python SDK (kserve)", "kserve")  # before the server is built
    return _run(lib, request.getfixturevalue("served"), "kserve")


@pytest.fixture(scope="module")
def oi(request: pytest.FixtureRequest) -> dict[str, Any]:
    lib = _lib("open-inference-openapi (and open-inference-grpc)", "open_inference/openapi")
    return _run(lib, request.getfixturevalue("served"), "open-inference")


def result(calls: dict[str, Any], name: str) -> Any:
    outcome = calls[name]
    assert "result" in outcome, f"{name} raised {outcome.get('error')}"
    return outcome["result"]


def error(calls: dict[str, Any], name: str) -> dict[str, Any]:
    outcome = calls[name]
    assert "error" in outcome, f"{name} returned {outcome.get('result')!r}, expected an error"
    return dict(outcome["error"])


NOPE = "no deployment named 'nope' is served here (serving: census, echo, iris)"
FEATURES_2 = "the model expects 4 features per row, got 2"


def _census_answer(served: Served, answer: dict[str, Any], outputs: list[str] | None = None) -> None:
    """A census inference answered by census@production's predictor, with the model's own results."""
    assert answer["model_name"] == "census"
    got = answer["outputs"]
    assert list(got) == (outputs or ["predict"])  # the outputs asked for, in that order; else predict alone
    if "predict" in got:
        assert got["predict"]["datatype"] == "BYTES" and got["predict"]["shape"] == [5]
        assert got["predict"]["data"] == served.predictions
    if "predict_proba" in got:
        assert got["predict_proba"]["datatype"] == "FP64" and got["predict_proba"]["shape"] == [5, 2]
        np.testing.assert_allclose(got["predict_proba"]["data"], served.proba)


# -- KServe: InferenceRESTClient (protocol v2) --------------------------------------------------------------------


def test_kserve_rest_health(kserve: dict[str, Any]) -> None:
    assert result(kserve, "rest.is_server_live") is True
    assert result(kserve, "rest.is_server_ready") is True
    assert result(kserve, "rest.is_model_ready(census)") is True
    assert result(kserve, "rest.is_model_ready(nope)") is False  # v2: any non-2xx is "not ready", not an error


def test_kserve_rest_infer(served: Served, kserve: dict[str, Any]) -> None:
    # KServe's InferResponse.from_bytes keeps no model_version: the SDK drops it, whatever the server sends
    answer = result(kserve, "rest.infer(census)")  # set_data_from_numpy's default: every input binary
    _census_answer(served, answer)
    assert answer["id"] == "k-rest-1" and answer["parameters"]["predictor"] == "main"
    assert answer["content_type"] == "application/json"  # no binary output asked for: JSON
    answer = result(kserve, "rest.infer(census, json inputs)")
    _census_answer(served, answer)
    assert answer["id"]  # the SDK makes one up (a UUID) when none is given
    answer = result(kserve, "rest.infer(census, outputs)")
    _census_answer(served, answer, ["predict_proba", "predict"])
    assert answer["content_type"] == "application/octet-stream"  # predict asked for binary_data: true


@pytest.mark.parametrize("call", ["rest.infer", "grpc.infer"])
@pytest.mark.parametrize("key", ECHO_KEYS)
def test_kserve_every_datatype_reaches_the_model_exactly(kserve: dict[str, Any], call: str, key: str) -> None:
    answer = result(kserve, f"{call}(echo, {key})")
    assert answer["outputs"]["predict"]["data"] == echoed(_echo_array(key))


def test_kserve_rest_errors(kserve: dict[str, Any]) -> None:
    err = error(kserve, "rest.infer(nope)")
    assert err["type"] == "httpx.HTTPStatusError" and err["status"] == 404 and NOPE in err["message"]
    err = error(kserve, "rest.infer(iris, 2 features)")
    assert err["type"] == "httpx.HTTPStatusError" and err["status"] == 400 and FEATURES_2 in err["message"]


# -- KServe: InferenceGRPCClient and the generated stub -----------------------------------------------------------


def test_kserve_grpc_health_and_metadata(served: Served, kserve: dict[str, Any]) -> None:
    assert result(kserve, "grpc.is_server_live") is True
    assert result(kserve, "grpc.is_server_ready") is True
    assert result(kserve, "grpc.is_model_ready(census)") is True
    err = error(kserve, "grpc.is_model_ready(nope)")
    assert err["type"] == "grpc.aio._call.AioRpcError" and err["status"] == "NOT_FOUND" and err["message"] == NOPE
    meta = result(kserve, "stub.ServerMetadata")
    assert meta["name"] == "tusk" and meta["version"] and "binary_tensor_data" in meta["extensions"]
    for call in ("stub.ModelMetadata(census)", "stub.ModelMetadata(census, version)"):
        meta = result(kserve, call)
        assert meta["name"] == "census" and meta["versions"] == [served.production], call
        assert meta["platform"] == "tusk-joblib" and meta["inputs"]["sex"] == "BYTES"
        assert meta["outputs"] == ["predict", "predict_proba"]
    err = error(kserve, "stub.ModelMetadata(nope)")
    assert err["status"] == "NOT_FOUND" and err["message"] == NOPE


def test_kserve_grpc_infer(served: Served, kserve: dict[str, Any]) -> None:
    answer = result(kserve, "grpc.infer(census)")  # raw_input_contents, as the SDK sends numpy data
    _census_answer(served, answer)
    assert answer["id"] == "k-grpc-1" and answer["model_version"] == served.production
    assert answer["parameters"] == {"predictor": "main", "model_repo": "census-model", "global_id": served.production}
    _census_answer(served, result(kserve, "grpc.infer(census, json inputs)"))  # typed contents
    answer = result(kserve, "grpc.infer(census, outputs, version)")
    _census_answer(served, answer, ["predict_proba", "predict"])
    assert answer["model_version"] == served.production


def test_kserve_grpc_errors(kserve: dict[str, Any]) -> None:
    err = error(kserve, "grpc.infer(nope)")
    assert err["type"] == "grpc.aio._call.AioRpcError" and err["status"] == "NOT_FOUND" and err["message"] == NOPE
    err = error(kserve, "grpc.infer(iris, 2 features)")
    assert err["status"] == "INVALID_ARGUMENT" and err["message"] == FEATURES_2


# -- open-inference-openapi ----------------------------------------------------------------------------------------


OI_ERRORS = "open_inference.openapi.errors."


def test_open_inference_openapi_health_and_metadata(served: Served, oi: dict[str, Any]) -> None:
    for call in ("check_server_liveness", "check_server_readiness", "check_model_readiness(census)",
                 "check_model_version_readiness(census, version)"):
        assert result(oi, f"openapi.{call}") is None, call  # the calls return nothing; an error raises
    err = error(oi, "openapi.check_model_readiness(nope)")
    assert err["type"] == OI_ERRORS + "not_found_error.NotFoundError" and err["status"] == 404
    assert NOPE in err["message"]
    meta = result(oi, "openapi.read_server_metadata")
    assert meta["name"] == "tusk" and "binary_tensor_data" in meta["extensions"]
    for call in ("read_model_metadata(census)", "read_model_version_metadata(census, version)"):
        meta = result(oi, f"openapi.{call}")
        assert meta["name"] == "census" and meta["versions"] == [served.production] and meta["platform"]
        assert {"name": "sex", "datatype": "BYTES", "shape": [-1]} in meta["inputs"]
        assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
    err = error(oi, "openapi.read_model_metadata(nope)")  # the client maps only 400 to its own class here
    assert err["type"] == "open_inference.openapi.core.api_error.ApiError" and err["status"] == 404


def test_open_inference_openapi_infer(served: Served, oi: dict[str, Any]) -> None:
    answer = result(oi, "openapi.model_infer(census)")  # JSON; INT64 data goes as floats (39.0): accepted
    _census_answer(served, answer)
    assert answer["id"] == "oi-1" and answer["model_version"] == served.production
    _census_answer(served, result(oi, "openapi.model_infer(census, outputs)"), ["predict_proba", "predict"])
    answer = result(oi, "openapi.model_version_infer(census, version)")
    _census_answer(served, answer)
    assert answer["model_version"] == served.production


@pytest.mark.parametrize("key", ECHO_KEYS)
def test_open_inference_every_datatype(oi: dict[str, Any], key: str) -> None:
    grpc_answer = result(oi, f"oigrpc.ModelInfer(echo, {key})")  # typed contents: exact
    assert grpc_answer["outputs"]["predict"]["data"] == echoed(_echo_array(key))
    if key == "INT64":
        # the generated REST client's TensorData is a union of float, str and bool: an integer goes as a float,
        # so 2**63 - 1 arrives as 2**63, which Tusk refuses rather than wrap around
        err = error(oi, "openapi.model_infer(echo, INT64)")
        assert err["type"] == OI_ERRORS + "bad_request_error.BadRequestError" and err["status"] == 400
        assert "input 'x': 9223372036854775808 is outside the range of INT64" in err["message"]
        return
    answer = result(oi, f"openapi.model_infer(echo, {key})")
    assert answer["outputs"]["predict"]["data"] == echoed(_echo_array(key))


def test_open_inference_openapi_errors(oi: dict[str, Any]) -> None:
    err = error(oi, "openapi.model_infer(nope)")
    assert err["type"] == "open_inference.openapi.core.api_error.ApiError" and err["status"] == 404
    assert NOPE in err["message"]
    err = error(oi, "openapi.model_infer(iris, 2 features)")
    assert err["type"] == OI_ERRORS + "bad_request_error.BadRequestError" and err["status"] == 400
    assert FEATURES_2 in err["message"]


# -- open-inference-grpc's stub -----------------------------------------------------------------------------------


def test_open_inference_grpc(served: Served, oi: dict[str, Any]) -> None:
    assert result(oi, "oigrpc.ServerLive") is True and result(oi, "oigrpc.ServerReady") is True
    assert "binary_tensor_data" in result(oi, "oigrpc.ServerMetadata")
    assert result(oi, "oigrpc.ModelReady(census)") is True
    assert result(oi, "oigrpc.ModelMetadata(census)") == [served.production]
    answer = result(oi, "oigrpc.ModelInfer(census)")
    _census_answer(served, answer)
    assert answer["id"] == "oig-1" and answer["model_version"] == served.production
    answer = result(oi, "oigrpc.ModelInfer(census, outputs, version)")
    _census_answer(served, answer, ["predict_proba"])
    for call, status, message in [("ModelReady(nope)", "NOT_FOUND", NOPE), ("ModelInfer(nope)", "NOT_FOUND", NOPE),
                                  ("ModelInfer(iris, 2 features)", "INVALID_ARGUMENT", FEATURES_2)]:
        err = error(oi, f"oigrpc.{call}")
        assert err["type"] == "grpc._channel._InactiveRpcError" and err["status"] == status, call
        assert err["message"] == message
