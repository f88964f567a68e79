"""OIP V2 over gRPC (KServe's ``inference.GRPCInferenceService``) against a real Tusk server.

The server is the one ``tusk server`` builds (the API app, with serving, and the gRPC endpoint beside it on the
same event loop), on loopback. Clients: tritonclient.grpc at its default settings (it sends raw_input_contents
and reads raw_output_contents), and Triton's own generated stub for what tritonclient has no call for (typed
contents, malformed requests, trailing metadata). Two servers: an open one, and one with auth on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.serving_helpers import (
    ECHO,
    echoed,
    iris_repo,
    labels,
    live_server,
    python_model,
    sample,
    triton_client,
    wait_for,
)
from tusk.config import Settings
from tusk.root import create_server_app
from tusk.root.server import with_grpc
from tusk.sdk import Client
from tusk.services import Services
from tusk.serving.metrics import render

grpcclient = pytest.importorskip("tritonclient.grpc")
grpc = pytest.importorskip("grpc")
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402


@dataclass
class Served:
    url: str
    grpc: str  # host:port
    client: Client
    iris: str  # iris@master's commit
    echo: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("grpc")
    c = Client(home=root / "home")
    try:
        iris = iris_repo(c)
        c.create_deployment({"name": "iris", "predictors": [{"name": "only", "model": "iris@master"}],
                             "shadow": {"name": "candidate", "model": "iris@master"},
                             "logging": {"flush_seconds": 0.2}})
        echo = python_model(c, "echo-model", ECHO)
        c.create_deployment({"name": "echo", "predictors": [{"name": "only", "model": "echo-model@master"}]})
        app = with_grpc(create_server_app(c.services, scheduler=False, poll=0.2), "127.0.0.1", 0)
        with live_server(app) as url:
            yield Served(url, f"127.0.0.1:{app.state.grpc_port}", c, iris, echo)
    finally:
        c.close()


@pytest.fixture
def triton(served: Served) -> Iterator[Any]:
    with triton_client("grpc", served.grpc) as client:
        yield client


@pytest.fixture
def stub(served: Served) -> Iterator[Any]:
    with grpc.insecure_channel(served.grpc) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def _input(name: str, array: np.ndarray[Any, Any], datatype: str) -> Any:
    tensor = grpcclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def _code(exc: pytest.ExceptionInfo[Any]) -> str:
    return str(exc.value.status()).removeprefix("StatusCode.")


def _metric(name: str, **labels: str) -> float:
    total = 0.0
    for line in render().decode().splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# -- health and metadata -----------------------------------------------------------------------------------


def test_health_and_server_metadata(triton: Any) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("iris") and triton.is_model_ready("echo", model_version="only")
    meta = triton.get_server_metadata(as_json=True)
    assert meta["name"] == "tusk" and meta["version"] and "binary_tensor_data" in meta["extensions"]


def test_model_metadata(served: Served, triton: Any) -> None:
    meta = triton.get_model_metadata("iris", as_json=True)
    assert meta["name"] == "iris" and meta["versions"] == [served.iris] and meta["platform"] == "tusk-joblib"
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": ["-1", "4"]}]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
    assert triton.get_model_metadata("iris", model_version="only", as_json=True)["versions"] == [served.iris]


def test_an_unknown_model_is_not_found(triton: Any) -> None:
    for call in (lambda: triton.is_model_ready("nope"), lambda: triton.get_model_metadata("nope"),
                 lambda: triton.infer("nope", [_input("x", np.zeros((1, 4)), "FP64")])):
        with pytest.raises(InferenceServerException) as exc:
            call()
        assert _code(exc) == "NOT_FOUND" and "nope" in exc.value.message()
    with pytest.raises(InferenceServerException) as exc:
        triton.is_model_ready("iris", model_version="no-such-predictor")
    assert _code(exc) == "NOT_FOUND"


# -- inference -------------------------------------------------------------------------------------------------


def test_iris_with_requested_outputs(served: Served, triton: Any) -> None:
    from sklearn.datasets import load_iris

    x, _ = load_iris(return_X_y=True)
    model = served.client.load_model("iris@master")
    result = triton.infer("iris", [_input("input-0", x[:5], "FP64")], request_id="r1")
    assert result.as_numpy("predict").tolist() == model.predict(x[:5]).tolist()
    assert result.as_numpy("predict_proba") is None  # not asked for: predict alone
    response = result.get_response()
    assert response.id == "r1" and response.model_name == "iris" and response.model_version == served.iris
    assert response.parameters["predictor"].string_param == "only"
    outputs = [grpcclient.InferRequestedOutput("predict_proba"), grpcclient.InferRequestedOutput("predict")]
    result = triton.infer("iris", [_input("input-0", x[:5].astype(np.float32), "FP32")], outputs=outputs,
                          model_version=served.iris)
    assert [o.name for o in result.get_response().outputs] == ["predict_proba", "predict"]
    np.testing.assert_allclose(result.as_numpy("predict_proba"), model.predict_proba(x[:5].astype(np.float32)))
    for algorithm in ("gzip", "deflate"):  # gRPC's own message compression
        result = triton.infer("iris", [_input("input-0", x[:50], "FP64")], compression_algorithm=algorithm)
        assert result.as_numpy("predict").tolist() == model.predict(x[:50]).tolist()
    with pytest.raises(InferenceServerException) as exc:
        triton.infer("iris", [_input("input-0", x[:1], "FP64")], outputs=[grpcclient.InferRequestedOutput("nope")])
    assert _code(exc) == "INVALID_ARGUMENT" and "unknown output 'nope'" in exc.value.message()


DATATYPES = ["FP32", "FP64", "INT64", "INT32", "UINT8", "BOOL", "BYTES"]


@pytest.mark.parametrize("datatype", list(DATATYPES))
def test_raw_contents_reach_the_model_exactly(triton: Any, datatype: str) -> None:
    array = sample(datatype)
    result = triton.infer("echo", [_input("x", array, datatype)])
    assert labels(result.as_numpy("predict")) == echoed(array)
    assert result.get_response().outputs[0].datatype == "BYTES"


_TYPED = {"FP32": "fp32_contents", "FP64": "fp64_contents", "INT64": "int64_contents", "INT32": "int_contents",
          "UINT8": "uint_contents", "BOOL": "bool_contents", "BYTES": "bytes_contents"}


def _typed(name: str, array: np.ndarray[Any, Any], datatype: str) -> Any:
    tensor = service_pb2.ModelInferRequest().InferInputTensor(name=name, datatype=datatype, shape=list(array.shape))
    values = [v.encode() for v in array.ravel()] if datatype == "BYTES" else array.ravel().tolist()
    getattr(tensor.contents, _TYPED[datatype]).extend(values)
    return tensor


@pytest.mark.parametrize("datatype", list(DATATYPES))
def test_typed_contents_reach_the_model_exactly(stub: Any, datatype: str) -> None:
    array = sample(datatype)
    request = service_pb2.ModelInferRequest(model_name="echo", inputs=[_typed("x", array, datatype)])
    response = stub.ModelInfer(request)
    assert labels(grpcclient.InferResult(response).as_numpy("predict")) == echoed(array)


def test_named_columns_as_several_inputs(stub: Any) -> None:
    """Several inputs of shape [N] are the columns of one table, as over REST."""
    request = service_pb2.ModelInferRequest(model_name="echo", inputs=[
        _typed("a", np.array([1.5, 2.5]), "FP64"), _typed("b", np.array([3.0, 4.0]), "FP64")])
    response = stub.ModelInfer(request)
    assert labels(grpcclient.InferResult(response).as_numpy("predict")) == ["float64|1.5 3.0", "float64|2.5 4.0"]


def test_provenance_in_trailing_metadata(served: Served, stub: Any) -> None:
    request = service_pb2.ModelInferRequest(model_name="iris", inputs=[_typed("input-0", np.ones((2, 4)), "FP64")])
    response, call = stub.ModelInfer.with_call(request)
    trailing = dict(call.trailing_metadata())
    assert trailing["x-tusk-model-commit"] == served.iris == response.model_version
    assert trailing["x-tusk-model-repo"] == "iris" and trailing["x-tusk-predictor"] == "only"
    assert trailing["x-tusk-deployment-revision"] == "1" and trailing["x-tusk-global-id"]


@pytest.mark.parametrize(("tensors", "raw", "says"), [
    ([("x", "FP64", [2, 4], None)], [b"\0" * 8], "shape [2, 4] holds 8 FP64 elements"),
    ([("x", "FP99", [1, 4], None)], [b"\0" * 32], "unknown datatype 'FP99'"),
    ([("x", "FP64", [1, 4], None), ("y", "FP64", [1], None)], [b"\0" * 32], "raw_input_contents has 1 entries"),
    ([("x", "FP64", [1, 2], "fp32_contents")], [], "FP64 contents go in contents.fp64_contents"),
    ([("x", "FP16", [1, 2], "fp32_contents")], [], "FP16 has no typed contents"),
    ([("x", "INT64", [1, 2], "int64_contents")], [b"\0" * 16], "send every input one way or the other"),
    ([], [], "inputs must be a non-empty list"),
    ([("x", "BYTES", [1, 2], None)], [b"\5\0\0\0ab"], "BYTES element 0 says it is 5 bytes"),
])
def test_a_malformed_request_is_invalid_argument(stub: Any, tensors: list[Any], raw: list[bytes],
                                                 says: str) -> None:
    request = service_pb2.ModelInferRequest(model_name="echo", raw_input_contents=raw)
    for name, datatype, shape, typed in tensors:
        tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
        if typed:
            getattr(tensor.contents, typed).extend([1, 2])
    with pytest.raises(grpc.RpcError) as exc:
        stub.ModelInfer(request)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says in exc.value.details()


def test_a_model_failure_says_only_an_incident_id(triton: Any) -> None:
    with pytest.raises(InferenceServerException) as exc:
        triton.infer("echo", [_input("x", np.array([[666.0]]), "FP64")])
    assert _code(exc) == "INTERNAL"
    message = exc.value.message()
    assert "internal error" in message and "/work" not in message and "Traceback" not in message


def test_grpc_requests_are_counted_logged_and_shadowed(served: Served, triton: Any) -> None:
    labels = {"deployment": "iris", "predictor": "only", "model_version": served.iris, "protocol": "grpc"}
    before = _metric("tusk_requests_total", **labels, code="200")
    shadowed = _metric("tusk_shadow_requests_total", deployment="iris", predictor="candidate", outcome="ok")
    failed = _metric("tusk_requests_total", deployment="iris", protocol="grpc", code="400")
    triton.infer("iris", [_input("input-0", np.ones((3, 4)), "FP64")], request_id="logged-over-grpc")
    with pytest.raises(InferenceServerException):
        triton.infer("iris", [_input("input-0", np.ones((3, 2)), "FP64")])  # 2 features, not 4
    assert _metric("tusk_requests_total", **labels, code="200") == before + 1
    assert _metric("tusk_request_errors_total", deployment="iris", kind="InputError") >= 1
    assert _metric("tusk_requests_total", deployment="iris", protocol="grpc", code="400") == failed + 1
    wait_for(lambda: _metric("tusk_shadow_requests_total", deployment="iris", predictor="candidate",
                             outcome="ok") == shadowed + 1, 10, "the shadow's copy")

    def logged() -> list[dict[str, Any]]:
        c = served.client
        try:
            files = [f for f in c.walk_files("iris-requests@master:/") if f.kind == "file"]
        except Exception:
            return []
        records = [json.loads(line) for f in files
                   for line in c.get_file(f"iris-requests@master:{f.path}").splitlines()]
        return [r for r in records if r.get("id") == "logged-over-grpc"]

    wait_for(lambda: bool(logged()), 20, "the request log commit")
    record = logged()[0]
    assert record["protocol"] == "grpc" and record["model_commit"] == served.iris and not record["shadow"]
    assert record["latency_ms"] > 0 and len(record["outputs"]["predict"]) == 3


# -- auth ------------------------------------------------------------------------------------------------------


@dataclass
class Secured:
    grpc: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    root = tmp_path_factory.mktemp("grpc-auth")
    settings = Settings.for_home(root / "server", TUSK_RUNTIME="local", TUSK_USER="server")
    with Client(settings=settings) as operator:
        python_model(operator, "echo-model", ECHO)
        operator.create_deployment({"name": "echo", "predictors": [{"name": "only", "model": "echo-model@master"}]})
        operator.create_deployment({"name": "other", "predictors": [{"name": "only", "model": "echo-model@master"}]})
        _, root_token = operator.activate_auth("root")
    app = with_grpc(create_server_app(Services.open(settings), auth=True, scheduler=False, poll=0.2,
                                      close_services=True), "127.0.0.1", 0)
    with live_server(app):
        tokens = {"root": root_token}
        with Client(settings=settings) as admin:
            for user in ("rita", "nobody"):
                _, tokens[user] = admin.create_token(user, f"{user}'s token")
            admin.set_role("deployment/echo", "rita", "reader")
        yield Secured(f"127.0.0.1:{app.state.grpc_port}", tokens)


def test_auth_no_token_is_unauthenticated_a_reader_may_infer(secured: Secured) -> None:
    client = grpcclient.InferenceServerClient(secured.grpc)
    try:
        assert client.is_server_live() and client.is_server_ready()  # open, as /v2/health/* are
        x = [_input("x", np.array([[1.0, 2.0]]), "FP64")]
        for call in (lambda h: client.infer("echo", x, headers=h),
                     lambda h: client.get_model_metadata("echo", headers=h),
                     lambda h: client.is_model_ready("echo", headers=h),
                     lambda h: client.get_server_metadata(headers=h)):
            with pytest.raises(InferenceServerException) as exc:
                call(None)
            assert _code(exc) == "UNAUTHENTICATED" and "token" in exc.value.message()
            with pytest.raises(InferenceServerException) as exc:
                call({"authorization": "Bearer not-a-token"})
            assert _code(exc) == "UNAUTHENTICATED"
        rita = {"authorization": f"Bearer {secured.tokens['rita']}"}
        result = client.infer("echo", x, headers=rita)
        assert labels(result.as_numpy("predict")) == ["float64|1.0 2.0"]
        assert client.is_model_ready("echo", headers=rita) and client.get_server_metadata(headers=rita)
        for who, model in (("rita", "other"), ("nobody", "echo")):
            with pytest.raises(InferenceServerException) as exc:
                client.infer(model, x, headers={"authorization": f"Bearer {secured.tokens[who]}"})
            assert _code(exc) == "PERMISSION_DENIED", (who, model)
    finally:
        client.close()


# -- the process -----------------------------------------------------------------------------------------------


def test_import_tusk_does_not_import_grpc() -> None:
    code = ("import sys, tusk, tusk.root.server, tusk.serving.app, tusk.cli.main; "
            "sys.exit('grpc' in sys.modules or 'tusk.serving.grpc' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent).returncode == 0
