"""OIP V2 gRPC messages ⇄ the OIP request the REST endpoint decodes, so both share one decoder.

A ``ModelInferRequest`` becomes the JSON-shaped body of a REST request: typed
``contents`` become each input's ``data``; ``raw_input_contents`` become the
bytes of the binary tensor data extension (each input's
``parameters.binary_data_size`` is its raw entry's length), whose wire format
is the same. Every check then happens once, in :mod:`tusk.serving.tensors`.
Outputs always go back as ``raw_output_contents``, as Triton sends them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from tusk.errors import InputError
from tusk.serving.binary import BinarySection
from tusk.serving.grpc import grpc_predict_v2_pb2 as pb
from tusk.serving.tensors import encode_binary_output

__all__ = ["infer_response", "metadata_response", "request_body"]

# where each datatype's typed contents go (FP16 and BF16 have none: raw only)
_CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
             "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
             "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
             "FP64": "fp64_contents", "BYTES": "bytes_contents"}
_FIELDS = sorted(set(_CONTENTS.values()))


def _params(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        which = value.WhichOneof("parameter_choice")
        if which is not None:
            out[key] = getattr(value, which)
    return out


def _set_param(target: Any, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_param = value
    elif isinstance(value, int):
        target.int64_param = value
    elif isinstance(value, float):
        target.double_param = value
    elif isinstance(value, str):
        target.string_param = value
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        target.string_param = ",".join(value)  # ignored_inputs: column names
    else:  # detection results: a JSON document
        target.string_param = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _data(tensor: Any) -> list[Any]:
    where = f"input {tensor.name!r}"
    filled = [f for f in _FIELDS if len(getattr(tensor.contents, f))]
    field = _CONTENTS.get(tensor.datatype)
    if field is None:
        if tensor.datatype in ("FP16", "BF16"):
            raise InputError(f"{where}: {tensor.datatype} has no typed contents in OIP gRPC; send it in "
                             "raw_input_contents")
        return []  # an unknown datatype: the decoder names the ones it knows
    if any(f != field for f in filled):
        raise InputError(f"{where}: {tensor.datatype} contents go in contents.{field}, not "
                         f"contents.{', '.join(f for f in filled if f != field)}")
    return list(getattr(tensor.contents, field))


def request_body(request: Any) -> tuple[dict[str, Any], BinarySection | None]:
    """A ``ModelInferRequest`` → (the OIP request body, its binary section or None)."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InputError(f"raw_input_contents has {len(raw)} entries but the request has {len(request.inputs)} "
                         "inputs: send one entry per input, in the order of inputs")
    inputs: list[dict[str, Any]] = []
    for i, tensor in enumerate(request.inputs):
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        params = _params(tensor.parameters)
        if raw:
            if tensor.HasField("contents"):
                raise InputError(f"input {tensor.name!r}: has typed contents, but the request has "
                                 "raw_input_contents; send every input one way or the other")
            params["binary_data_size"] = len(raw[i])
        else:
            entry["data"] = _data(tensor)
        if params:
            entry["parameters"] = params
        inputs.append(entry)
    body: dict[str, Any] = {"inputs": inputs}
    if request.id:
        body["id"] = request.id
    params = _params(request.parameters)
    if params:
        body["parameters"] = params
    if len(request.outputs):
        body["outputs"] = [{"name": o.name, "parameters": _params(o.parameters)} for o in request.outputs]
    binary = BinarySection(memoryview(b"".join(raw)), 0) if raw else None
    return body, binary


def infer_response(model: str, version: str, request_id: str | None, parameters: Mapping[str, Any],
                   names: tuple[str, ...], outputs: Mapping[str, Any]) -> Any:
    """The ``ModelInferResponse``: the outputs asked for, as raw contents."""
    response = pb.ModelInferResponse(model_name=model, model_version=version, id=request_id or "")
    for key, value in parameters.items():
        _set_param(response.parameters[key], value)
    for name in names:
        tensor, blob = encode_binary_output(name, outputs[name])
        response.outputs.add(name=name, datatype=tensor["datatype"], shape=tensor["shape"])
        response.raw_output_contents.append(blob)
    return response


def metadata_response(doc: Mapping[str, Any]) -> Any:
    """The REST model metadata document → ``ModelMetadataResponse`` (its ``parameters`` have no place there)."""
    response = pb.ModelMetadataResponse(name=doc["name"], versions=doc["versions"], platform=doc["platform"])
    for kind in ("inputs", "outputs"):
        for t in doc[kind]:
            getattr(response, kind).add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
    return response
