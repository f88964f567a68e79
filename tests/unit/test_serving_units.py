"""Serving building blocks on their own: routing, the OIP codec (JSON and binary), bodies, batching, specs,
detectors."""

from __future__ import annotations

import asyncio
import collections
import gzip
import random
import struct
import zlib
from typing import Any

import numpy as np
import orjson
import pytest
from starlette.requests import Request

from tests.census import census_frame
from tusk.deployments.spec import Detectors, parse_deployment_spec
from tusk.errors import InputError, InvalidArgument, NotReady, PayloadTooLarge, UnsupportedMediaType
from tusk.serving.batching import Batcher
from tusk.serving.binary import split_request
from tusk.serving.bodies import read_body, response_coding
from tusk.serving.detectors import DeploymentDetectors, DriftMonitor, build_reference
from tusk.serving.routing import choose, key_point, pick
from tusk.serving.tensors import Rows, decode_inputs, encode_binary_output, encode_output, rows_from_json

# -- routing ---------------------------------------------------------------------------------------------------


def test_pick_follows_the_weights() -> None:
    rng = random.Random(7)
    counts = collections.Counter(pick([("stable", 90), ("canary", 10)], rng.random()) for _ in range(20000))
    assert counts["canary"] / 20000 == pytest.approx(0.10, abs=0.01)


def test_a_zero_weight_predictor_gets_nothing_and_a_pin_to_it_is_ignored() -> None:
    weights = [("a", 1.0), ("b", 0.0)]
    assert {pick(weights, p / 100) for p in range(100)} == {"a"}
    assert choose(weights, draw=0.5, pinned="b") == "a"
    assert choose([("a", 1.0), ("b", 1.0)], draw=0.0, pinned="b") == "b"


def test_a_routing_key_always_lands_on_the_same_predictor() -> None:
    weights = [("a", 50.0), ("b", 50.0)]
    assert key_point("user-42") == key_point("user-42")
    landed = {choose(weights, draw=random.random(), key="user-42") for _ in range(50)}
    assert len(landed) == 1
    keys = collections.Counter(choose(weights, draw=0.0, key=f"user-{i}") for i in range(4000))
    assert keys["a"] / 4000 == pytest.approx(0.5, abs=0.04)


# -- OIP codec ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("datatype", "data", "dtype"), [
    ("BOOL", [True, False], np.bool_), ("UINT8", [0, 255], np.uint8), ("UINT16", [1, 2], np.uint16),
    ("UINT32", [1, 2], np.uint32), ("UINT64", [1, 2], np.uint64), ("INT8", [-128, 127], np.int8),
    ("INT16", [1, -2], np.int16), ("INT32", [1, -2], np.int32), ("INT64", [1, -2], np.int64),
    ("FP16", [0.5, 1], np.float16), ("FP32", [0.5, 1.5], np.float32), ("FP64", [0.25, 2], np.float64),
    ("BYTES", ["a", "b"], np.object_),
])
def test_every_oip_datatype_decodes_to_its_numpy_type(datatype: str, data: list[Any], dtype: Any) -> None:
    rows = decode_inputs([{"name": "x", "shape": [2], "datatype": datatype, "data": data}])
    assert rows.columns is not None and rows.columns["x"].dtype == np.dtype(dtype)
    assert rows.columns["x"].tolist() == data


def test_null_is_missing_in_fp_and_bytes_tensors_only() -> None:
    rows = decode_inputs([{"name": "a", "shape": [2], "datatype": "FP64", "data": [1.5, None]},
                          {"name": "b", "shape": [2], "datatype": "BYTES", "data": ["x", None]}])
    assert rows.columns is not None
    assert np.isnan(rows.columns["a"][1]) and rows.columns["b"][0] == "x" and rows.columns["b"][1] != "x"
    with pytest.raises(InputError, match=r"null .* FP and BYTES tensors only, not INT64"):
        decode_inputs([{"name": "c", "shape": [2], "datatype": "INT64", "data": [1, None]}])


def test_nested_and_flat_data_give_the_same_matrix() -> None:
    flat = decode_inputs([{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}])
    nested = decode_inputs([{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2, 3], [4, 5, 6]]}])
    assert flat.array is not None and nested.array is not None
    assert flat.array.tolist() == nested.array.tolist() == [[1, 2, 3], [4, 5, 6]]


@pytest.mark.parametrize(("tensor", "message"), [
    ({"name": "x", "shape": [2], "datatype": "FP128", "data": [1, 2]}, "unknown datatype"),
    ({"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2]}, "holds 3 values, but data has 2"),
    ({"name": "x", "shape": [2], "datatype": "FP64", "data": ["a", "b"]}, "must be numbers, not strings"),
    ({"name": "x", "shape": [2], "datatype": "INT8", "data": [1, 300]}, "outside the range of INT8"),
    ({"name": "x", "shape": [2], "datatype": "INT64", "data": [1.5, 2]}, "must be integers"),
    ({"name": "x", "shape": [2], "datatype": "BOOL", "data": [2, 0]}, r"true/false \(or 0/1\), got 2"),
    ({"name": "x", "shape": [2], "datatype": "BOOL", "data": [0.5, 1]}, r"true/false \(or 0/1\), got 0.5"),
    ({"name": "x", "shape": [2], "datatype": "BOOL", "data": ["yes", "no"]}, "true/false"),
    ({"name": "x", "shape": [2], "datatype": "BYTES", "data": [1, 2]}, "must be strings"),
    ({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3]]}, "ragged"),
    ({"name": "x", "shape": [-1], "datatype": "FP32", "data": [1]}, "non-negative"),
    ({"name": "", "shape": [1], "datatype": "FP32", "data": [1]}, "name must be"),
    ({"name": "x", "shape": [1], "datatype": "FP32"}, "data is missing"),
    ({"name": "x", "shape": [1], "datatype": "FP32", "data": [1], "parameters": {"binary_data_size": 4}},
     "both data and parameters.binary_data_size"),
    ({"name": "x", "shape": [1], "datatype": "FP32", "parameters": {"binary_data_size": 4}},
     "no Inference-Header-Content-Length header"),
    ({"name": "x", "shape": [1], "datatype": "FP32", "parameters": {"binary_data_size": -4}}, "non-negative integer"),
    ({"name": "x", "shape": [1], "datatype": "FP32", "data": [1], "parameters": {"shared_memory_region": "r"}},
     "shared memory extension is not supported"),
    ({"name": "x", "shape": [1], "datatype": "BF16", "data": [1.5]}, "BF16 data must be binary"),
    ({"name": "age", "shape": [2], "datatype": "INT64", "data": [39.0, 5.5]},
     r"input 'age': INT64 data must be integers, but 5.5 has a fraction"),
    ({"name": "x", "shape": [1], "datatype": "INT64", "data": [2.0**63]}, "outside the range of INT64"),
    ({"name": "x", "shape": [1], "datatype": "UINT8", "data": [256.0]}, "256 is outside the range of UINT8"),
    ({"name": "x", "shape": [1], "datatype": "INT8", "data": [-129]}, "-129 is outside the range of INT8"),
    ({"name": "x", "shape": [1], "datatype": "FP16", "data": [70000]}, "70000 is outside the range of FP16"),
    ({"name": "x", "shape": [1], "datatype": "INT32", "data": ["7"]}, "must be numbers"),
])
def test_bad_tensors_are_input_errors_naming_the_input(tensor: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        decode_inputs([tensor])


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(InputError, match="different lengths"):
        decode_inputs([{"name": "a", "shape": [2], "datatype": "FP32", "data": [1, 2]},
                       {"name": "b", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]}])
    with pytest.raises(InputError, match="non-empty list"):
        decode_inputs([])


def test_rows_check_names_missing_columns_reports_unused_ones_and_counts_features() -> None:
    rows = decode_inputs([{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]},
                          {"name": "z", "shape": [1], "datatype": "FP32", "data": [1]}])
    with pytest.raises(InputError, match="lack 1 of the model's features: b"):
        rows.check(["a", "b"], 2)
    assert rows.check(["a"], 1) == ["z"]  # ignored, as column transformers ignore it, and reported
    matrix = decode_inputs([{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}])
    with pytest.raises(InputError, match="expects 4 features per row, got 3"):
        matrix.check(None, 4)


def test_encode_output_is_flat_row_major_with_the_right_datatype() -> None:
    out = encode_output("predict_proba", np.array([[0.25, 0.75], [0.5, 0.5]]))
    assert out == {"name": "predict_proba", "datatype": "FP64", "shape": [2, 2], "data": [0.25, 0.75, 0.5, 0.5]}
    assert encode_output("predict", np.array(["<=50K", ">50K"], dtype=object))["datatype"] == "BYTES"
    assert encode_output("predict", np.array([1, 0], dtype=np.int32))["datatype"] == "INT32"


def test_json_rows_records_columns_and_matrices() -> None:
    records = rows_from_json([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])
    assert records.columns is not None and records.columns["b"].tolist() == ["x", "y"]
    assert rows_from_json({"a": [1.0, 2.0]}).n == 2
    assert rows_from_json([[1, 2], [3, 4]]).array is not None
    with pytest.raises(InputError, match="records"):
        rows_from_json([[1, "a"]])


# -- numbers as clients send them -----------------------------------------------------------------------------


def test_integral_floats_are_integers_and_0_1_are_booleans_nothing_truncated() -> None:
    rows = decode_inputs([{"name": "age", "shape": [3], "datatype": "INT64", "data": [39.0, 40, 2.0**53]},
                          {"name": "ok", "shape": [3], "datatype": "BOOL", "data": [0, 1.0, True]},
                          {"name": "big", "shape": [3], "datatype": "INT64", "data": [2**62 + 1, 2.0, -(2**63)]},
                          {"name": "u", "shape": [3], "datatype": "UINT64", "data": [2**64 - 1, 0, 1.0]}])
    assert rows.columns is not None
    assert rows.columns["age"].dtype == np.int64 and rows.columns["age"].tolist() == [39, 40, 2**53]
    assert rows.columns["ok"].dtype == np.bool_ and rows.columns["ok"].tolist() == [False, True, True]
    assert rows.columns["big"].tolist() == [2**62 + 1, 2, -(2**63)]  # exact: no detour through float64
    assert rows.columns["u"].dtype == np.uint64 and rows.columns["u"].tolist() == [2**64 - 1, 0, 1]
    matrix = decode_inputs([{"name": "x", "shape": [1, 2], "datatype": "INT32", "data": [[1.0, 2.0]]}])
    assert matrix.array is not None and matrix.array.dtype == np.int32 and matrix.array.tolist() == [[1, 2]]


# -- the binary tensor data extension -------------------------------------------------------------------------


def _body(inputs: list[dict[str, Any]], *blobs: bytes) -> tuple[bytes, str]:
    header = orjson.dumps({"inputs": inputs})
    return header + b"".join(blobs), str(len(header))


def _decode(inputs: list[dict[str, Any]], *blobs: bytes) -> Rows:
    body, length = _body(inputs, *blobs)
    request, binary = split_request(body, length)
    return decode_inputs(request["inputs"], binary)


def _bin(name: str, datatype: str, shape: list[int], data: bytes) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": len(data)}}


def _strings(*values: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


@pytest.mark.parametrize("datatype", ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                                      "INT64", "FP16", "FP32", "FP64"])
def test_every_datatype_decodes_from_little_endian_bytes(datatype: str) -> None:
    from tusk.serving.tensors import DATATYPES

    array = np.array([[1, 0], [1, 1]] if datatype == "BOOL" else [[1, 2], [3, 100]], dtype=DATATYPES[datatype])
    data = array.astype(array.dtype.newbyteorder("<")).tobytes()
    rows = _decode([_bin("x", datatype, [2, 2], data)], data)
    assert rows.array is not None and rows.array.dtype == array.dtype and rows.array.tolist() == array.tolist()


def test_bf16_bytes_and_mixed_binary_and_json_inputs() -> None:
    bf16 = np.array([1.5, -2.0], dtype=np.float32).view(np.uint32) >> 16
    words = _strings(b"Private", b"caf\xc3\xa9", b"\xff\xfe")
    halves = np.append(bf16, bf16[:1]).astype("<u2").tobytes()
    rows = _decode([_bin("h", "BF16", [3], halves),
                    {"name": "j", "datatype": "FP64", "shape": [3], "data": [0.5, None, 1]},
                    _bin("w", "BYTES", [3], words)], halves, words)
    assert rows.columns is not None
    assert rows.columns["h"].dtype == np.float32 and rows.columns["h"].tolist() == [1.5, -2.0, 1.5]
    assert rows.columns["j"][0] == 0.5 and np.isnan(rows.columns["j"][1])
    assert rows.columns["w"].tolist() == ["Private", "café", b"\xff\xfe"]  # text as str; other bytes as they came


@pytest.mark.parametrize(("inputs", "blobs", "message"), [
    ([_bin("a", "FP32", [2], b"12345678"), _bin("c", "INT64", [1], b"12345678")], [b"12345678", b"1234"],
     r"add up to 16 bytes \(a: 8, c: 8\), but 12 bytes follow the \d+-byte JSON header"),
    ([{"name": "a", "datatype": "FP32", "shape": [1], "data": [1]}], [b"junk"], "no input has binary_data_size"),
    ([_bin("a", "FP32", [2], b"123456")], [b"123456"],
     "input 'a': binary_data_size 6 is not a multiple of 4, the size of one FP32 element"),
    ([_bin("a", "FP32", [3], b"12345678")], [b"12345678"],
     r"input 'a': shape \[3\] holds 3 FP32 elements \(12 bytes\), but binary_data_size is 8 \(2 elements\)"),
    ([_bin("a", "BOOL", [2], b"\x01\x07")], [b"\x01\x07"], "BOOL element 1 is the byte 7; a BOOL is one byte, 0 or 1"),
    ([_bin("w", "BYTES", [2], _strings(b"ab"))], [_strings(b"ab")], "the shape holds 2 BYTES elements, but .* holds 1"),
    ([_bin("w", "BYTES", [1], b"\x09\x00\x00\x00ab")], [b"\x09\x00\x00\x00ab"],
     "BYTES element 0 says it is 9 bytes, but only 2 are left"),
    ([_bin("w", "BYTES", [1], b"\x01\x00")], [b"\x01\x00"], "its 4-byte length prefix has only 2 bytes left"),
])
def test_binary_sizes_that_do_not_add_up_say_exactly_what_is_wrong(inputs: list[dict[str, Any]], blobs: list[bytes],
                                                                    message: str) -> None:
    with pytest.raises(InputError, match=message):
        _decode(inputs, *blobs)


def test_the_extension_header_must_fit_the_body() -> None:
    body, _ = _body([_bin("a", "FP32", [1], b"1234")], b"1234")
    with pytest.raises(InputError, match=rf"Inference-Header-Content-Length is '{len(body) + 1}'.*body's {len(body)}"):
        split_request(body, str(len(body) + 1))
    with pytest.raises(InputError, match="must be the length in bytes"):
        split_request(body, "ten")
    with pytest.raises(InputError, match=r"the first 5 bytes of the body \(Inference-Header-Content-Length\) are "
                                         "not a JSON request"):
        split_request(body, "5")
    with pytest.raises(InputError, match=r"not UTF-8 text.*Inference-Header-Content-Length header is missing"):
        split_request(body[:-4] + b"\xff\xfe\x00\x01", None)
    with pytest.raises(InputError, match="not valid JSON"):
        split_request(b"{oops", None)


def test_binary_outputs_are_little_endian_with_their_size() -> None:
    tensor, data = encode_binary_output("predict_proba", np.array([[0.25, 0.75], [0.5, 0.5]]))
    assert tensor == {"name": "predict_proba", "datatype": "FP64", "shape": [2, 2],
                      "parameters": {"binary_data_size": 32}}
    assert np.frombuffer(data, "<f8").tolist() == [0.25, 0.75, 0.5, 0.5]
    tensor, data = encode_binary_output("predict", np.array(["<=50K", "café"], dtype=object))
    assert tensor["datatype"] == "BYTES" and data == _strings(b"<=50K", "café".encode())
    assert tensor["parameters"]["binary_data_size"] == len(data)
    assert encode_binary_output("predict", np.array([True, False]))[1] == b"\x01\x00"


# -- bodies: limit and compression ----------------------------------------------------------------------------


def _request(body: bytes, headers: dict[str, str], chunk: int = 1000) -> Request:
    messages = [{"type": "http.request", "body": body[i:i + chunk], "more_body": i + chunk < len(body)}
                for i in range(0, max(len(body), 1), chunk)]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    return Request(scope, receive)


def _read(body: bytes, limit: int = 1 << 20, **headers: str) -> bytes:
    return asyncio.run(read_body(_request(body, {k.replace("_", "-"): v for k, v in headers.items()}), limit))


def test_bodies_inflate_gzip_and_deflate_in_both_of_its_forms() -> None:
    data = b'{"inputs": []} ' * 5000
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert _read(gzip.compress(data), content_encoding="gzip") == data
    assert _read(gzip.compress(data[:10]) + gzip.compress(data[10:]), content_encoding="x-gzip") == data
    assert _read(zlib.compress(data), content_encoding="deflate") == data
    assert _read(raw.compress(data) + raw.flush(), content_encoding="deflate") == data
    assert _read(gzip.compress(zlib.compress(data)), content_encoding="deflate, gzip") == data
    assert _read(data, content_encoding="identity") == data
    assert _read(b"", content_encoding="gzip") == b""


def test_a_body_over_the_limit_is_refused_compressed_or_not() -> None:
    bomb = gzip.compress(b"\0" * (50 << 20))  # 50 MiB of zeros in ~50 KiB
    with pytest.raises(PayloadTooLarge, match=r"once inflated \(gzip\), is over this server's limit of 1 MiB"):
        _read(bomb, content_encoding="gzip")
    with pytest.raises(PayloadTooLarge, match="TUSK_SERVING_MAX_BODY_BYTES"):
        _read(b"x" * 2000, limit=1500)  # no Content-Length: counted as it streams

    async def never() -> dict[str, Any]:
        raise AssertionError("the body was read")

    too_long = Request({"type": "http", "method": "POST", "path": "/", "query_string": b"",
                        "headers": [(b"content-length", b"2000000")]}, never)
    with pytest.raises(PayloadTooLarge, match=r"\(1.907 MiB, by its Content-Length\)"):
        asyncio.run(read_body(too_long, 1 << 20))


def test_bad_compressed_bodies_are_client_errors() -> None:
    with pytest.raises(UnsupportedMediaType, match="Content-Encoding br is not supported"):
        _read(b"x", content_encoding="br")
    with pytest.raises(InputError, match="not valid gzip data"):
        _read(b"not gzip at all", content_encoding="gzip")
    with pytest.raises(InputError, match="truncated gzip stream"):
        _read(gzip.compress(b"hello" * 100)[:-8], content_encoding="gzip")


def test_accept_encoding_picks_gzip_or_deflate() -> None:
    assert response_coding("gzip") == "gzip" and response_coding("deflate") == "deflate"
    assert response_coding("gzip, deflate, br") == "gzip" and response_coding("deflate, gzip;q=0.5") == "deflate"
    assert response_coding(None) is None and response_coding("identity") is None
    assert response_coding("br") is None and response_coding("gzip;q=0") is None


# -- batching -------------------------------------------------------------------------------------------------


def test_batching_returns_each_caller_its_own_rows_and_isolates_a_bad_request() -> None:
    calls: list[int] = []

    def run(rows: Rows, want: frozenset[str]) -> tuple[dict[str, Any], str]:
        assert rows.array is not None
        if (rows.array < 0).any():
            raise ValueError("negative values")
        calls.append(rows.n)
        return {"predict": rows.array[:, 0] * 10}, "model-A"

    async def scenario() -> list[Any]:
        batcher = Batcher(run, max_batch_size=64, max_wait_ms=20)
        sizes = [1 + i % 4 for i in range(40)]  # requests of 1..4 rows, each with its own values
        requests = [Rows(n, array=np.full((n, 2), float(i))) for i, n in enumerate(sizes)]
        requests[17] = Rows(2, array=np.full((2, 2), -1.0))  # one bad request among them
        results = await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)
        await batcher.close()
        return [sizes, results]

    sizes, results = asyncio.run(scenario())
    for i, (n, result) in enumerate(zip(sizes, results, strict=True)):
        if i == 17:
            assert isinstance(result, ValueError)
            continue
        assert result.outputs["predict"].tolist() == [i * 10.0] * n
        assert result.served_by == "model-A"
    assert max(calls) > 4, f"no two requests shared a model call: {calls}"
    assert sum(calls) == sum(sizes) - sizes[17]  # every good row predicted exactly once; the bad ones never


def test_a_lone_request_does_not_wait_when_max_wait_is_zero() -> None:
    async def scenario() -> int:
        batcher = Batcher(lambda rows, want: ({"predict": rows.array}, None), max_batch_size=8)
        out = await asyncio.wait_for(batcher.submit(Rows(1, array=np.ones((1, 1)))), timeout=5)
        await batcher.close()
        return out.batch_rows

    assert asyncio.run(scenario()) == 1


def test_callers_just_answered_are_waited_for_so_steady_clients_share_one_call() -> None:
    """Under steady load the requests that queued during a call do not run on their own while the callers just
    answered are on their way back: four clients end up in one call each round, not two half-size calls."""
    import time as _time

    calls: list[int] = []

    def run(rows: Rows, want: frozenset[str]) -> tuple[dict[str, Any], None]:
        _time.sleep(0.03)
        calls.append(rows.n)
        return {"predict": rows.array}, None

    async def client(batcher: Batcher, start: float) -> None:
        await asyncio.sleep(start)  # the first client's call is running when the others arrive
        for _ in range(6):
            await batcher.submit(Rows(1, array=np.ones((1, 1))))
            await asyncio.sleep(0.002)  # the client's round trip before its next request

    async def scenario() -> None:
        batcher = Batcher(run, max_batch_size=64)
        await asyncio.gather(*(client(batcher, 0.01 * bool(i)) for i in range(4)))
        await batcher.close()

    asyncio.run(scenario())
    assert calls[0] == 1 and calls.count(4) >= 4, calls  # without waiting: 1, 3, 1, 3, ...
    assert sum(calls) == 24


def test_a_lone_client_is_never_kept_waiting_for_company() -> None:
    import time as _time

    def run(rows: Rows, want: frozenset[str]) -> tuple[dict[str, Any], None]:
        _time.sleep(0.05)
        return {"predict": rows.array}, None

    async def scenario() -> tuple[list[int], float]:
        batcher = Batcher(run, max_batch_size=64)
        sizes, started = [], _time.perf_counter()
        for _ in range(5):
            sizes.append((await batcher.submit(Rows(1, array=np.ones((1, 1))))).batch_rows)
        elapsed = _time.perf_counter() - started
        await batcher.close()
        return sizes, elapsed

    sizes, elapsed = asyncio.run(scenario())
    assert sizes == [1] * 5
    assert elapsed < 5 * 0.05 + 0.2, elapsed  # waiting for a second client would add a whole call to each


def test_closing_a_batcher_drains_its_queue_and_fails_what_is_left_clearly() -> None:
    import time as _time

    def slow(rows: Rows, want: frozenset[str]) -> tuple[dict[str, Any], None]:
        _time.sleep(0.05)
        return {"predict": rows.array}, None

    async def scenario(drain: float) -> list[Any]:
        batcher = Batcher(slow, max_batch_size=1)  # one request per call: a queue builds up
        tasks = [asyncio.ensure_future(batcher.submit(Rows(1, array=np.full((1, 1), float(i))))) for i in range(4)]
        await asyncio.sleep(0.01)
        await batcher.close(drain_seconds=drain)
        return await asyncio.gather(*tasks, return_exceptions=True)

    drained = asyncio.run(scenario(10.0))
    assert [r.outputs["predict"].tolist() for r in drained] == [[[0.0]], [[1.0]], [[2.0]], [[3.0]]]
    cut = asyncio.run(scenario(0.0))
    assert any(isinstance(r, NotReady) and "retired" in str(r) for r in cut)  # never a request left hanging


# -- specs ----------------------------------------------------------------------------------------------------


def test_a_deployment_spec_error_names_the_field() -> None:
    with pytest.raises(InvalidArgument, match=r"predictors\.0\.weight"):
        parse_deployment_spec({"name": "d", "predictors": [{"name": "a", "model": "m@master", "weight": -1}]})
    with pytest.raises(InvalidArgument, match=r"batching\.max_batch_sise: unknown field"):
        parse_deployment_spec({"name": "d", "predictors": [{"name": "a", "model": "m@master"}],
                               "batching": {"max_batch_sise": 3}})
    with pytest.raises(InvalidArgument, match="repeated: a"):
        parse_deployment_spec({"name": "d", "predictors": [{"name": "a", "model": "m@x"}, {"name": "a",
                                                                                           "model": "m@y"}]})
    with pytest.raises(InvalidArgument, match=r"detectors\.reference: .*names no file"):
        parse_deployment_spec({"name": "d", "predictors": [{"name": "a", "model": "m@x"}],
                               "detectors": {"reference": "data@master"}})
    with pytest.raises(InvalidArgument, match=r"predictors\.0\.model"):
        parse_deployment_spec({"name": "d", "predictors": [{"name": "a", "model": "no ref here"}]})


# -- detectors ------------------------------------------------------------------------------------------------

FEATURES = ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week", "workclass", "education",
            "marital-status", "occupation", "relationship", "race", "sex", "native-country"]


def test_drift_is_detected_on_shifted_data_and_not_on_the_reference() -> None:
    reference = census_frame(6000)
    fresh = census_frame(1500, skip=10000)  # later rows of the same file: the same distribution
    monitor = DriftMonitor(build_reference(reference, FEATURES), window=1000, every=250, p_value=0.01)
    reports = [monitor.add(fresh.iloc[i:i + 250]) for i in range(0, 1500, 250)]
    ran = [r for r in reports if r is not None]
    assert ran and not any(r.drift for r in ran), [r.p_values for r in ran if r.drift]

    shifted = fresh.copy()
    shifted["age"] = shifted["age"] + 12
    shifted["hours-per-week"] = shifted["hours-per-week"] * 1.3
    monitor = DriftMonitor(build_reference(reference, FEATURES), window=1000, every=250, p_value=0.01)
    ran = [r for r in (monitor.add(shifted.iloc[i:i + 250]) for i in range(0, 1500, 250)) if r is not None]
    assert ran and all(r.drift for r in ran)
    assert ran[-1].p_values["age"] < 1e-6 and ran[-1].p_values["sex"] > ran[-1].threshold


def test_categorical_drift_and_unseen_categories_count() -> None:
    reference = census_frame(6000)
    fresh = census_frame(1000, skip=10000)
    fresh.loc[fresh.index[:300], "workclass"] = "Space-agency"  # a category training never saw
    monitor = DriftMonitor(build_reference(reference, FEATURES), window=1000, every=1000, p_value=0.01)
    report = monitor.add(fresh)
    assert report is not None and report.drift and report.p_values["workclass"] < 1e-6


@pytest.mark.parametrize("method", ["mahalanobis", "isolation_forest"])
def test_outliers_are_flagged_against_the_training_data(method: str) -> None:
    reference = census_frame(4000)
    spec = Detectors.model_validate({"reference": "census@master:/train.csv", "label": "income",
                                     "outlier": {"method": method, "quantile": 0.995}, "drift": None})
    detectors = DeploymentDetectors(spec, reference, "census@abc:/train.csv", FEATURES)
    typical = census_frame(1000, skip=10000)
    flagged = detectors.observe(typical)[0].outlier
    assert flagged is not None and sum(flagged) / len(flagged) < 0.03
    odd = typical.head(5).copy()
    odd["age"], odd["hours-per-week"], odd["capital-gain"] = 95, 99, 99999
    assert all(detectors.observe(odd)[0].outlier or [])


def test_a_pre_fork_parent_shares_only_what_loads_without_starting_threads() -> None:
    """The probe loads in a throwaway child: a load that starts a thread (as OpenMP or onnxruntime do) is
    not shared, and neither is one that fails; the parent itself starts nothing."""
    import threading
    import time

    from tusk.root.prefork import _probe, _threads

    before = _threads()
    assert _probe(lambda: None) == ""
    assert "thread" in _probe(lambda: threading.Thread(target=time.sleep, args=(2,), daemon=True).start())
    assert "failed" in _probe(lambda: 1 / 0)
    assert _threads() <= before  # (OpenBLAS stops its pool before a fork, and starts it again when used)


def test_a_worker_takes_shared_models_and_loads_the_others_itself() -> None:
    from typing import Any, cast

    from tusk.root.prefork import SharedModels

    shared_model, own_model = object(), object()
    shared = SharedModels(cast(Any, None), models={"m@" + "a" * 32: cast(Any, shared_model)})
    loaded: list[str] = []

    def own(ref: str) -> Any:
        loaded.append(ref)
        return own_model

    load = shared.loader(own)
    assert load("m@" + "a" * 32) is shared_model
    assert load("m@" + "b" * 32) is own_model
    assert loaded == ["m@" + "b" * 32]
