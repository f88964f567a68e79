"""OIP V2 clients that cannot share the dev extra's environment, run against a running Tusk in a child process.

Run by tests/integration/test_oip_more_clients.py with the side install (.venv/kserve-lib) on PYTHONPATH::

    python oip_side_clients.py kserve CASE.json          # KServe's InferenceRESTClient, InferenceGRPCClient
    python oip_side_clients.py open-inference CASE.json  # open-inference-openapi, open-inference-grpc's stub

Each family runs in its own process: KServe's and open-inference-grpc's generated code both register the
``inference`` protobuf package, which one process's descriptor pool takes only once. Every client is built with
its defaults; the one setting changed is KServe's REST protocol, which defaults to KServe's V1 ("v1") and has
to be told "v2" for OIP V2. CASE.json says where the server is and what to send (tensors as JSON lists, with
their datatypes); the script makes every call and prints one JSON object, call → ``{"result": ...}`` or
``{"error": {"type", "status", "message"}}``, for the test to assert on. Nothing here imports Tusk.
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

NUMPY = {"BOOL": np.bool_, "INT64": np.int64, "FP64": np.float64, "FP32": np.float32, "BYTES": np.object_}
CONTENTS = {"BOOL": "bool_contents", "INT64": "int64_contents", "FP64": "fp64_contents", "FP32": "fp32_contents",
            "BYTES": "bytes_contents"}
RAW = {"BOOL": "u1", "INT64": "<i8", "FP64": "<f8", "FP32": "<f4"}

calls: dict[str, Any] = {}


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _error(exc: BaseException) -> dict[str, Any]:
    kind = type(exc)
    status: Any = None
    message = str(exc)
    if hasattr(exc, "code") and callable(exc.code):  # grpc.RpcError
        status, message = exc.code().name, exc.details()
    elif hasattr(exc, "response") and hasattr(exc.response, "status_code"):  # httpx.HTTPStatusError
        status = exc.response.status_code
    elif hasattr(exc, "status_code"):  # open_inference.openapi's ApiError
        status = exc.status_code
    return {"type": f"{kind.__module__}.{kind.__qualname__}", "status": status, "message": message}


def record(name: str, call: Callable[[], Any]) -> None:
    try:
        calls[name] = {"result": _plain(call())}
    except Exception as exc:
        calls[name] = {"error": _error(exc)}


async def arecord(name: str, call: Callable[[], Awaitable[Any]]) -> None:
    try:
        calls[name] = {"result": _plain(await call())}
    except Exception as exc:
        calls[name] = {"error": _error(exc)}


def array(datatype: str, values: list[Any]) -> np.ndarray[Any, Any]:
    return np.array(values, dtype=NUMPY[datatype])


def decode_raw(datatype: str, raw: bytes) -> list[Any]:
    """A raw output tensor's elements (what each client would do itself), flat."""
    if datatype != "BYTES":
        return np.frombuffer(raw, dtype=RAW[datatype]).tolist()
    out, offset = [], 0
    while offset < len(raw):
        (n,) = struct.unpack_from("<I", raw, offset)
        out.append(raw[offset + 4:offset + 4 + n].decode())
        offset += 4 + n
    return out


# -- KServe ----------------------------------------------------------------------------------------------------


def kserve_outputs(response: Any) -> dict[str, Any]:
    """An InferResponse: its identity and each output tensor as numpy decodes it."""
    parameters = {}
    for key, value in (response.parameters or {}).items():
        if hasattr(value, "WhichOneof"):  # gRPC: an InferParameter
            which = value.WhichOneof("parameter_choice")
            value = getattr(value, which) if which else None
        parameters[key] = _plain(value)
    return {"model_name": response.model_name, "model_version": response.model_version, "id": response.id,
            "parameters": parameters,
            "outputs": {o.name: {"datatype": o.datatype, "shape": list(o.shape), "data": o.as_numpy().ravel()}
                        for o in response.outputs}}


async def kserve(case: dict[str, Any]) -> None:
    from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
    from kserve.protocol.infer_type import RequestedOutput

    url = case["url"]

    def inputs(tensors: dict[str, Any], binary: bool = True) -> list[Any]:
        out = []
        for name, (datatype, values) in tensors.items():
            data = array(datatype, values)
            if binary:  # set_data_from_numpy at its default: binary_data=True
                tensor = InferInput(name, list(data.shape), datatype)
                tensor.set_data_from_numpy(data)
            else:  # the other way the SDK offers: a list in the constructor, sent as JSON
                tensor = InferInput(name, list(data.shape), datatype, data=data.ravel().tolist())
            out.append(tensor)
        return out

    census, echo, iris = case["census"], case["echo"], case["iris"]
    bad = {"input-0": ["FP64", [row[:2] for row in iris]]}  # 2 features, not 4

    rest = InferenceRESTClient(RESTConfig(protocol="v2"))  # KServe V1 by default; everything else as it comes
    try:
        await arecord("rest.is_server_live", lambda: rest.is_server_live(url))
        await arecord("rest.is_server_ready", lambda: rest.is_server_ready(url))
        await arecord("rest.is_model_ready(census)", lambda: rest.is_model_ready(url, "census"))
        await arecord("rest.is_model_ready(nope)", lambda: rest.is_model_ready(url, "nope"))

        async def rest_infer(model: str, request: Any) -> Any:
            headers: dict[str, str] = {}
            response = await rest.infer(url, request, model_name=model, response_headers=headers)
            return kserve_outputs(response) | {"content_type": headers.get("content-type")}

        await arecord("rest.infer(census)", lambda: rest_infer(
            "census", InferRequest("census", inputs(census), request_id="k-rest-1")))
        await arecord("rest.infer(census, json inputs)", lambda: rest_infer(
            "census", InferRequest("census", inputs(census, binary=False))))
        await arecord("rest.infer(census, outputs)", lambda: rest_infer("census", InferRequest(
            "census", inputs(census), request_outputs=[
                RequestedOutput("predict_proba"), RequestedOutput("predict", parameters={"binary_data": True})])))
        for key, tensor in echo.items():
            await arecord(f"rest.infer(echo, {key})", lambda t=tensor: rest_infer(
                "echo", InferRequest("echo", inputs({"x": t}))))
        await arecord("rest.infer(nope)", lambda: rest_infer("nope", InferRequest("nope", inputs(bad))))
        await arecord("rest.infer(iris, 2 features)", lambda: rest_infer("iris", InferRequest("iris", inputs(bad))))
    finally:
        await rest.close()

    client = InferenceGRPCClient(case["grpc"])  # defaults: insecure, 60 s timeout, 3 retries on UNAVAILABLE
    try:
        await arecord("grpc.is_server_live", client.is_server_live)
        await arecord("grpc.is_server_ready", client.is_server_ready)
        await arecord("grpc.is_model_ready(census)", lambda: client.is_model_ready("census"))
        await arecord("grpc.is_model_ready(nope)", lambda: client.is_model_ready("nope"))

        async def grpc_infer(request: Any) -> Any:
            return kserve_outputs(await client.infer(request))

        await arecord("grpc.infer(census)", lambda: grpc_infer(
            InferRequest("census", inputs(census), request_id="k-grpc-1")))
        await arecord("grpc.infer(census, json inputs)", lambda: grpc_infer(
            InferRequest("census", inputs(census, binary=False))))
        await arecord("grpc.infer(census, outputs, version)", lambda: grpc_infer(InferRequest(
            "census", inputs(census), request_outputs=[RequestedOutput("predict_proba"), RequestedOutput("predict")],
            model_version=case["version"])))
        for key, tensor in echo.items():
            await arecord(f"grpc.infer(echo, {key})", lambda t=tensor: grpc_infer(
                InferRequest("echo", inputs({"x": t}))))
        await arecord("grpc.infer(nope)", lambda: grpc_infer(InferRequest("nope", inputs(bad))))
        await arecord("grpc.infer(iris, 2 features)", lambda: grpc_infer(InferRequest("iris", inputs(bad))))
    finally:
        await client.close()

    # metadata: the SDK's clients have no call for it; KServe's generated stub does
    import grpc

    async with grpc.aio.insecure_channel(case["grpc"]) as channel:
        stub = GRPCInferenceServiceStub(channel)

        async def server_metadata() -> Any:
            m = await stub.ServerMetadata(pb.ServerMetadataRequest())
            return {"name": m.name, "version": m.version, "extensions": list(m.extensions)}

        async def model_metadata(name: str, version: str = "") -> Any:
            m = await stub.ModelMetadata(pb.ModelMetadataRequest(name=name, version=version))
            return {"name": m.name, "versions": list(m.versions), "platform": m.platform,
                    "inputs": {t.name: t.datatype for t in m.inputs}, "outputs": [t.name for t in m.outputs]}

        await arecord("stub.ServerMetadata", server_metadata)
        await arecord("stub.ModelMetadata(census)", lambda: model_metadata("census"))
        await arecord("stub.ModelMetadata(census, version)", lambda: model_metadata("census", case["version"]))
        await arecord("stub.ModelMetadata(nope)", lambda: model_metadata("nope"))


# -- open-inference-openapi and open-inference-grpc ---------------------------------------------------------------


def open_inference(case: dict[str, Any]) -> None:
    from open_inference.openapi import InferenceRequest, RequestInput, RequestOutput
    from open_inference.openapi.client import OpenInferenceClient

    client = OpenInferenceClient(base_url=case["url"])  # defaults: a 60 s httpx.Client
    census, echo, iris, version = case["census"], case["echo"], case["iris"], case["version"]
    bad = {"input-0": ["FP64", [row[:2] for row in iris]]}

    def request(tensors: dict[str, Any], outputs: list[str] | None = None, request_id: str | None = None) -> Any:
        shaped = {name: (datatype, array(datatype, values)) for name, (datatype, values) in tensors.items()}
        extra: dict[str, Any] = {}
        if outputs is not None:
            extra["outputs"] = [RequestOutput(name=o) for o in outputs]
        if request_id is not None:
            extra["id"] = request_id
        return InferenceRequest(inputs=[RequestInput(name=name, shape=list(a.shape), datatype=datatype,
                                                     data=a.ravel().tolist()) for name, (datatype, a) in
                                        shaped.items()], **extra)

    def answer(response: Any) -> Any:
        doc = response.dict()
        doc["outputs"] = {o.pop("name"): o for o in doc["outputs"]}
        return doc

    record("openapi.check_server_liveness", client.check_server_liveness)
    record("openapi.check_server_readiness", client.check_server_readiness)
    record("openapi.check_model_readiness(census)", lambda: client.check_model_readiness("census"))
    record("openapi.check_model_readiness(nope)", lambda: client.check_model_readiness("nope"))
    record("openapi.check_model_version_readiness(census, version)",
           lambda: client.check_model_version_readiness("census", version))
    record("openapi.read_server_metadata", lambda: client.read_server_metadata().dict())
    record("openapi.read_model_metadata(census)", lambda: client.read_model_metadata("census").dict())
    record("openapi.read_model_version_metadata(census, version)",
           lambda: client.read_model_version_metadata("census", version).dict())
    record("openapi.read_model_metadata(nope)", lambda: client.read_model_metadata("nope").dict())
    record("openapi.model_infer(census)", lambda: answer(client.model_infer(
        "census", request=request(census, request_id="oi-1"))))
    record("openapi.model_infer(census, outputs)", lambda: answer(client.model_infer(
        "census", request=request(census, outputs=["predict_proba", "predict"]))))
    record("openapi.model_version_infer(census, version)", lambda: answer(client.model_version_infer(
        "census", version, request=request(census))))
    for key, tensor in echo.items():
        record(f"openapi.model_infer(echo, {key})", lambda t=tensor: answer(client.model_infer(
            "echo", request=request({"x": t}))))
    record("openapi.model_infer(nope)", lambda: answer(client.model_infer("nope", request=request(bad))))
    record("openapi.model_infer(iris, 2 features)", lambda: answer(client.model_infer("iris", request=request(bad))))

    import grpc
    from open_inference.grpc import protocol as pb
    from open_inference.grpc.service import GRPCInferenceServiceStub

    def typed(name: str, datatype: str, values: list[Any]) -> Any:
        a = array(datatype, values)
        tensor = pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=list(a.shape))
        flat = [v.encode() for v in a.ravel()] if datatype == "BYTES" else a.ravel().tolist()
        getattr(tensor.contents, CONTENTS[datatype]).extend(flat)
        return tensor

    def infer(stub: Any, model: str, tensors: dict[str, Any], outputs: tuple[str, ...] = (), **fields: Any) -> Any:
        r = stub.ModelInfer(pb.ModelInferRequest(
            model_name=model, inputs=[typed(n, d, v) for n, (d, v) in tensors.items()],
            outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name=o) for o in outputs], **fields))
        return {"model_name": r.model_name, "model_version": r.model_version, "id": r.id,
                "outputs": {o.name: {"datatype": o.datatype, "shape": list(o.shape),
                                     "data": decode_raw(o.datatype, r.raw_output_contents[i])}
                            for i, o in enumerate(r.outputs)}}

    with grpc.insecure_channel(case["grpc"]) as channel:
        stub = GRPCInferenceServiceStub(channel)
        record("oigrpc.ServerLive", lambda: stub.ServerLive(pb.ServerLiveRequest()).live)
        record("oigrpc.ServerReady", lambda: stub.ServerReady(pb.ServerReadyRequest()).ready)
        record("oigrpc.ServerMetadata", lambda: list(stub.ServerMetadata(pb.ServerMetadataRequest()).extensions))
        record("oigrpc.ModelReady(census)", lambda: stub.ModelReady(pb.ModelReadyRequest(name="census")).ready)
        record("oigrpc.ModelReady(nope)", lambda: stub.ModelReady(pb.ModelReadyRequest(name="nope")).ready)
        record("oigrpc.ModelMetadata(census)", lambda: list(
            stub.ModelMetadata(pb.ModelMetadataRequest(name="census")).versions))
        record("oigrpc.ModelInfer(census)", lambda: infer(stub, "census", census, id="oig-1"))
        record("oigrpc.ModelInfer(census, outputs, version)", lambda: infer(
            stub, "census", census, ("predict_proba",), model_version=version))
        for key, tensor in echo.items():
            record(f"oigrpc.ModelInfer(echo, {key})", lambda t=tensor: infer(stub, "echo", {"x": t}))
        record("oigrpc.ModelInfer(nope)", lambda: infer(stub, "nope", bad))
        record("oigrpc.ModelInfer(iris, 2 features)", lambda: infer(stub, "iris", bad))


def main() -> None:
    family, case_file = sys.argv[1:3]
    with open(case_file) as fh:
        case = json.load(fh)
    try:
        if family == "kserve":
            asyncio.run(kserve(case))
        else:
            open_inference(case)
    except Exception:  # an import or setup failure: the test shows it
        calls["__setup__"] = {"error": {"type": "setup", "status": None, "message": traceback.format_exc()}}
    print(json.dumps(calls))


if __name__ == "__main__":
    main()
