"""Real OIP V2 clients against a real Tusk server: tritonclient.http at its default settings, and raw HTTP.

tritonclient sends tensors binary (the binary tensor data extension) and asks for binary outputs unless told
otherwise; with the compression options it sends gzip/deflate bodies and asks for compressed answers. One server
(on loopback, under uvicorn) serves four deployments for the whole module: census (a scikit-learn pipeline over
named INT64/BYTES columns), iris (a numeric matrix), echo (a Python-class model that answers with the dtype and
values it was given, so every datatype can be checked exactly) and broken (a model that cannot be loaded, which
must not take the others down).
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from tests.census import CATEGORICAL, FEATURES, census_frame
from tests.serving_helpers import (
    DATATYPES,
    ECHO,
    census_repos,
    echoed,
    iris_repo,
    labels,
    live_server,
    python_model,
    sample,
    triton_client,
)
from tusk.sdk import Client
from tusk.serving.app import create_app

httpclient = pytest.importorskip("tritonclient.http")

MAX_BODY = 2 << 20  # this server's TUSK_SERVING_MAX_BODY_BYTES

BROKEN = """
class Model:
    def load(self, directory):
        raise FileNotFoundError(directory + "/weights.bin")
"""


@dataclass
class Served:
    url: str
    client: Client
    production: str  # census-model@production's commit

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("oip")
    c = Client(home=root / "home")
    try:
        v1, _ = census_repos(c)
        c.create_deployment({"name": "census", "predictors": [{"name": "main", "model": "census-model@production"}]})
        iris_repo(c)
        c.create_deployment({"name": "iris", "predictors": [{"name": "only", "model": "iris@master"}]})
        python_model(c, "echo-model", ECHO)
        c.create_deployment({"name": "echo", "predictors": [{"name": "only", "model": "echo-model@master"}]})
        python_model(c, "broken-model", BROKEN)
        c.create_deployment({"name": "broken", "predictors": [{"name": "only", "model": "broken-model@master"}]})
        algo = root / "algo"
        algo.mkdir()
        (algo / "algo.py").write_text("def apply(x):\n    if x == 'crash':\n        return 1 / 0\n"
                                      "    return {'type': type(x).__name__}\n")
        (algo / "algorithm.yaml").write_text("entrypoint: algo.py:apply\n")
        c.publish_algorithm(algo, "demo/kind", "1.0.0")
        app = create_app(c.services, poll=0.2, request_logging=False, max_body_bytes=MAX_BODY)
        with live_server(app) as url:
            yield Served(url, c, v1)
    finally:
        c.close()


@pytest.fixture
def triton(served: Served) -> Iterator[Any]:
    with triton_client("http", served.address) as client:
        yield client


def _input(name: str, array: np.ndarray[Any, Any], datatype: str, binary: bool = True) -> Any:
    tensor = httpclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def _census_inputs(frame: Any, binary: bool | list[str] = True) -> list[Any]:
    """One tensor per feature: INT64 numbers, BYTES categories; ``binary``: all, none, or the named ones."""
    out = []
    for col in FEATURES:
        as_binary = binary if isinstance(binary, bool) else col in binary
        if col in CATEGORICAL:
            out.append(_input(col, np.array(frame[col].tolist(), dtype=object), "BYTES", as_binary))
        else:
            out.append(_input(col, frame[col].to_numpy(dtype=np.int64), "INT64", as_binary))
    return out


# -- tritonclient.http at its defaults ------------------------------------------------------------------------


def test_health_and_metadata_through_tritonclient(served: Served, triton: Any) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("census") and triton.is_model_ready("echo")
    assert "binary_tensor_data" in triton.get_server_metadata()["extensions"]
    meta = triton.get_model_metadata("census")
    assert meta["name"] == "census" and meta["versions"] == [served.production]
    assert {i["name"]: i["datatype"] for i in meta["inputs"]}["sex"] == "BYTES"
    assert triton.get_model_metadata("census", model_version="main")["versions"] == [served.production]


def test_census_with_binary_json_and_mixed_inputs_and_outputs(served: Served, triton: Any) -> None:
    frame = census_frame(5, skip=20000)
    expected = served.client.load_model("census-model@production").predict(frame[FEATURES]).tolist()
    proba = served.client.load_model("census-model@production").predict_proba(frame[FEATURES])
    for binary in (True, False, ["age", "sex", "hours-per-week"]):
        result = triton.infer("census", _census_inputs(frame, binary), request_id=f"r-{binary}")
        assert labels(result.as_numpy("predict")) == expected, binary
        response = result.get_response()
        assert response["id"] == f"r-{binary}" and response["model_version"] == served.production
        assert response["outputs"][0]["parameters"]["binary_data_size"] > 0  # no outputs named: all binary
    outputs = [httpclient.InferRequestedOutput("predict", binary_data=False),
               httpclient.InferRequestedOutput("predict_proba", binary_data=True)]
    result = triton.infer("census", _census_inputs(frame), outputs=outputs)
    assert labels(result.as_numpy("predict")) == expected
    np.testing.assert_allclose(result.as_numpy("predict_proba"), proba)
    predict, probabilities = result.get_response()["outputs"]
    assert "data" in predict and "parameters" not in predict
    assert probabilities["parameters"] == {"binary_data_size": proba.size * 8} and "data" not in probabilities
    result = triton.infer("census", _census_inputs(frame), model_version=served.production,
                          outputs=[httpclient.InferRequestedOutput("predict_proba", binary_data=False)])
    np.testing.assert_allclose(result.as_numpy("predict_proba"), proba)


@pytest.mark.parametrize("request_coding", [None, "gzip", "deflate"])
@pytest.mark.parametrize("response_coding", [None, "gzip", "deflate"])
def test_compressed_requests_and_responses(served: Served, triton: Any, request_coding: str | None,
                                           response_coding: str | None) -> None:
    frame = census_frame(40, skip=20000)
    expected = served.client.load_model("census-model@production").predict(frame[FEATURES]).tolist()
    result = triton.infer("census", _census_inputs(frame), request_compression_algorithm=request_coding,
                          response_compression_algorithm=response_coding,
                          outputs=[httpclient.InferRequestedOutput("predict"),
                                   httpclient.InferRequestedOutput("predict_proba")])
    assert labels(result.as_numpy("predict")) == expected
    assert result.as_numpy("predict_proba").shape == (40, 2)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", list(DATATYPES))
def test_every_datatype_reaches_the_model_exactly(triton: Any, datatype: str, binary: bool) -> None:
    array = sample(datatype)
    result = triton.infer("echo", [_input("x", array, datatype, binary)])
    assert labels(result.as_numpy("predict")) == echoed(array)


def test_bf16_is_binary_only_and_reaches_the_model_as_float32(triton: Any) -> None:
    import ml_dtypes

    array = np.array([[1.5, -2.0, 0.25]], dtype=ml_dtypes.bfloat16)
    result = triton.infer("echo", [_input("x", array, "BF16")])
    assert labels(result.as_numpy("predict")) == ["float32|1.5 -2.0 0.25"]


def test_a_real_numeric_model_takes_every_numeric_datatype(triton: Any) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    for datatype in ("FP16", "FP32", "FP64"):
        result = triton.infer("iris", [_input("x", np.array(rows, dtype=DATATYPES[datatype]), datatype)])
        assert result.as_numpy("predict").tolist() == [0, 2], datatype
    for datatype in ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"):
        result = triton.infer("iris", [_input("x", np.array([[5, 3, 1, 0]], dtype=DATATYPES[datatype]), datatype)])
        assert result.as_numpy("predict").dtype == np.int64, datatype


def test_one_unloadable_deployment_does_not_make_the_server_unready(served: Served, triton: Any) -> None:
    assert triton.is_server_ready() and not triton.is_model_ready("broken")
    r = httpx.get(f"{served.url}/v2/health/ready")
    assert r.status_code == 200 and r.json()["ready"] is True
    assert "failed to load: FileNotFoundError: weights.bin" in r.json()["waiting"]["broken"][0]
    assert "/tmp" not in r.text and "/work" not in r.text  # the model's files by their names, not the server's paths
    strict = httpx.get(f"{served.url}/v2/health/ready", params={"strict": "true"})
    assert strict.status_code == 400 and strict.json()["ready"] is False and "broken" in strict.json()["waiting"]
    r = httpx.get(f"{served.url}/v2/models/broken/ready")
    assert r.status_code == 400 and r.json()["ready"] is False
    assert r.json()["reason"].startswith("predictor only: broken-model@") and "failed to load" in r.json()["reason"]
    with pytest.raises(Exception, match="no model loaded"):
        triton.infer("broken", [_input("x", np.array([[1.0]]), "FP64")])
    assert httpx.get(f"{served.url}/v2/models/census/ready").json() == {"name": "census", "ready": True}


# -- raw HTTP: what clients get wrong -------------------------------------------------------------------------


def _binary_request(inputs: list[dict[str, Any]], blobs: list[bytes], **extra: Any) -> tuple[bytes, dict[str, str]]:
    header = orjson.dumps({"inputs": inputs, **extra})
    return header + b"".join(blobs), {"Inference-Header-Content-Length": str(len(header)),
                                      "Content-Type": "application/octet-stream"}


def _fp64(name: str, values: list[float], shape: list[int] | None = None) -> tuple[dict[str, Any], bytes]:
    data = np.array(values, dtype="<f8").tobytes()
    return {"name": name, "datatype": "FP64", "shape": shape or [1, len(values)],
            "parameters": {"binary_data_size": len(data)}}, data


def _post(served: Served, path: str, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{served.url}{path}", content=content, headers=headers or {}, timeout=60)


def _clean(r: httpx.Response) -> None:
    """An error a client may see: JSON, with no stack trace and nothing of the server's files."""
    assert r.headers["content-type"].startswith("application/json"), r.text
    for leak in ("Traceback", "/work", ".py", 'File "'):
        assert leak not in r.text, (leak, r.text)


def test_raw_binary_requests_and_responses(served: Served) -> None:
    iris = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]] * 50
    tensor, data = _fp64("x", [v for row in iris for v in row], [100, 4])
    body, headers = _binary_request([tensor], [data], outputs=[{"name": "predict", "parameters": {"binary_data": True}},
                                                               {"name": "predict_proba"}], id="raw-1")
    r = _post(served, "/v2/models/iris/infer", body, headers | {"Accept-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream" and r.headers["content-encoding"] == "gzip"
    n = int(r.headers["inference-header-content-length"])
    doc = orjson.loads(r.content[:n])  # httpx inflated the body: the header counts the JSON before compression
    assert doc["id"] == "raw-1" and doc["outputs"][0]["parameters"] == {"binary_data_size": 800}
    assert np.frombuffer(r.content[n:], "<i8").tolist() == [0, 2] * 50 and len(doc["outputs"][1]["data"]) == 300
    json_only = _post(served, "/v2/models/iris/infer", orjson.dumps({"inputs": [
        {"name": "x", "datatype": "FP64", "shape": [100, 4], "data": iris}], "outputs": [
        {"name": "predict"}, {"name": "predict_proba"}], "parameters": {"binary_data_output": False}}),
        {"Accept-Encoding": "deflate"})
    assert json_only.headers["content-type"] == "application/json"
    assert json_only.headers["content-encoding"] == "deflate" and json_only.json()["outputs"][0]["data"] == [0, 2] * 50
    small = _post(served, "/v2/models/iris/infer", orjson.dumps({"inputs": [
        {"name": "x", "datatype": "FP64", "shape": [1, 4], "data": iris[0]}]}), {"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers and small.json()["outputs"][0]["data"] == [0]  # too small to pay
    compressed = zlib.compress(body)
    r = _post(served, "/v2/models/iris/infer", compressed, headers | {"Content-Encoding": "deflate"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize(("mutate", "message"), [
    ("sum", r"binary_data_size add up to 40 bytes \(x: 40\), but 32 bytes follow the \d+-byte JSON header"),
    ("multiple", "binary_data_size 30 is not a multiple of 8, the size of one FP64 element"),
    ("shape", r"shape \[1, 3\] holds 3 FP64 elements \(24 bytes\), but binary_data_size is 32 \(4 elements\)"),
    ("header", r"Inference-Header-Content-Length is '\d+', but it must be .* between 1 and the body's \d+ bytes"),
    ("no-header", "Inference-Header-Content-Length header is missing"),
    ("size-without-header", "the request has no Inference-Header-Content-Length header"),
])
def test_binary_sizes_that_do_not_add_up_are_400s_saying_what_is_wrong(served: Served, mutate: str,
                                                                      message: str) -> None:
    tensor, data = _fp64("x", [5.1, 3.5, 1.4, 0.2])
    blobs = [data]
    if mutate == "sum":
        tensor["parameters"]["binary_data_size"] = 40
    elif mutate == "multiple":
        tensor["parameters"]["binary_data_size"] = 30
        blobs = [data[:30]]
    elif mutate == "shape":
        tensor["shape"] = [1, 3]
    body, headers = _binary_request([tensor], blobs)
    if mutate == "header":
        headers["Inference-Header-Content-Length"] = str(len(body) + 10)
    elif mutate == "no-header":
        del headers["Inference-Header-Content-Length"]
        body = body + b"\xff\xfe"
    elif mutate == "size-without-header":
        del headers["Inference-Header-Content-Length"]
        body = orjson.dumps({"inputs": [tensor]})
    r = _post(served, "/v2/models/iris/infer", body, headers)
    assert r.status_code == 400, r.text
    _clean(r)
    assert r.json()["error_type"] == "InputError"
    assert re.search(message, r.json()["error"]), r.json()["error"]


def _census_json(rows: int = 2, **extra: Any) -> dict[str, Any]:
    from tests.census import oip_inputs

    return {"inputs": oip_inputs(census_frame(rows, skip=20000)), **extra}


def test_numbers_as_clients_send_them_and_the_request_id(served: Served) -> None:
    body = _census_json()
    body["inputs"][0]["data"] = [39.0, 40.0]  # age, INT64: integral floats are integers
    r = httpx.post(f"{served.url}/v2/models/census/infer", json=body | {"id": "n-1"})
    assert r.status_code == 200 and r.json()["id"] == "n-1"
    body["inputs"][0]["data"] = [39.0, 5.5]
    r = httpx.post(f"{served.url}/v2/models/census/infer", json=body)
    assert r.status_code == 400 and "input 'age': INT64 data must be integers, but 5.5 has a fraction" in r.text
    for bad in (7, None, ["a"], {"a": 1}, True):
        r = httpx.post(f"{served.url}/v2/models/census/infer", json=_census_json(id=bad))
        assert r.status_code == 400 and r.json()["error"].startswith("id must be a string"), (bad, r.text)
    r = httpx.post(f"{served.url}/v2/models/echo/infer", json={"inputs": [
        {"name": "x", "datatype": "BOOL", "shape": [1, 4], "data": [0, 1, 0.0, 1.0]}]})
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == ["bool|False True False True"]


def test_bodies_over_the_limit_are_413s(served: Served) -> None:
    bomb = gzip.compress(b" " * (64 << 20))  # 64 MiB of spaces in ~64 KiB: valid JSON whitespace, if it got there
    assert len(bomb) < MAX_BODY
    for path in ("/v2/models/census/infer", "/deployments/census/invocations", "/v1/algo/demo/kind"):
        r = _post(served, path, bomb, {"Content-Encoding": "gzip", "Content-Type": "application/json"})
        assert r.status_code == 413, (path, r.text)
        _clean(r)
    r = _post(served, "/v2/models/census/infer", bomb, {"Content-Encoding": "gzip"})
    assert r.json()["error_type"] == "PayloadTooLarge" and "once inflated (gzip)" in r.json()["error"]
    r = _post(served, "/v2/models/census/infer", b" " * (MAX_BODY + 1))  # by its Content-Length
    assert r.status_code == 413 and "by its Content-Length" in r.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked, counted as it streams
        for _ in range(4):
            yield b" " * (MAX_BODY // 2)

    r = httpx.post(f"{served.url}/v2/models/census/infer", content=chunks(), timeout=60)
    assert r.status_code == 413 and r.json()["error_type"] == "PayloadTooLarge"
    r = _post(served, "/v2/models/census/infer", b"x", {"Content-Encoding": "br"})
    assert r.status_code == 415 and r.json()["error_type"] == "UnsupportedMediaType"


def test_no_response_carries_a_stack_trace_or_a_server_path(served: Served) -> None:
    r = httpx.post(f"{served.url}/v2/models/echo/infer", json={"inputs": [
        {"name": "x", "datatype": "INT64", "shape": [1, 2], "data": [1, 666]}]})
    assert r.status_code == 500 and r.json()["error_type"] == "InternalError"
    assert r.json()["error"].startswith("internal error ") and "boom" not in r.text
    _clean(r)
    algo = "/v1/algo/demo/kind"
    for content_type, body, status in [("application/x-www-form-urlencoded", b"a=b", 415),
                                       ("text/plain", b"\xff\xfe", 400),
                                       ("application/json", b"{garbage", 400),
                                       ("application/json", b"\xff\xfe\x00", 400),
                                       (None, b"not json", 400),
                                       ("multipart/form-data; boundary=x", b"--x--", 415)]:
        r = _post(served, algo, body, {"Content-Type": content_type} if content_type else {})
        assert r.status_code == status, (content_type, r.text)
        _clean(r)
        assert r.json()["error"]["error_type"] in ("InputError", "UnsupportedMediaType")
    assert _post(served, algo, b"\x00\x01", {"Content-Type": "application/octet-stream"}).json()["result"] == {
        "type": "bytes"}
    assert _post(served, algo, b"hi", {"Content-Type": "text/plain"}).json()["result"] == {"type": "str"}
    crash = httpx.post(f"{served.url}{algo}", json="crash")
    assert crash.status_code == 500 and crash.json()["error"]["error_type"] == "AlgorithmError"
    trace = crash.json()["error"]["stacktrace"]  # the algorithm's own frames, for its author: nothing of the server
    assert 'File "algo.py", line 3, in apply' in trace and "ZeroDivisionError" in trace
    assert "_worker.py" not in crash.text and "/work" not in crash.text and "site-packages" not in crash.text
    for path, content in [("/v2/models/census/infer", b"\xff" * 10), ("/deployments/census/invocations", b"{"),
                          ("/v2/models/census/infer", b'{"inputs": 5}')]:
        r = _post(served, path, content)
        assert r.status_code == 400, r.text
        _clean(r)


def test_bytes_length_prefixes_over_raw_http(served: Served) -> None:
    frame = census_frame(2, skip=20000)
    inputs, blobs = [], []
    for col in FEATURES:
        if col in CATEGORICAL:
            data = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in frame[col])
            datatype = "BYTES"
        else:
            data = frame[col].to_numpy(dtype="<i8").tobytes()
            datatype = "INT64"
        inputs.append({"name": col, "datatype": datatype, "shape": [2], "parameters": {"binary_data_size": len(data)}})
        blobs.append(data)
    body, headers = _binary_request(inputs, blobs)
    r = _post(served, "/v2/models/census/infer", body, headers)
    expected = served.client.load_model("census-model@production").predict(frame[FEATURES]).tolist()
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == expected
