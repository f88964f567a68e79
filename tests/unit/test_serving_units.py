"""Serving building blocks on their own: routing, the OIP codec, batching, specs, detectors."""

from __future__ import annotations

import asyncio
import collections
import random
from typing import Any

import numpy as np
import pytest

from tests.census import census_frame
from tusk.errors import InputError, InvalidArgument, NotReady
from tusk.serving.batching import Batcher
from tusk.serving.detectors import DeploymentDetectors, DriftMonitor, build_reference
from tusk.serving.routing import choose, key_point, pick
from tusk.serving.spec import Detectors, parse_deployment_spec
from tusk.serving.tensors import Rows, decode_inputs, encode_output, rows_from_json

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
    ({"name": "x", "shape": [2], "datatype": "BOOL", "data": [1, 0]}, "true/false"),
    ({"name": "x", "shape": [2], "datatype": "BYTES", "data": [1, 2]}, "must be strings"),
    ({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3]]}, "ragged"),
    ({"name": "x", "shape": [-1], "datatype": "FP32", "data": [1]}, "non-negative"),
    ({"name": "", "shape": [1], "datatype": "FP32", "data": [1]}, "name must be"),
    ({"name": "x", "shape": [1], "datatype": "FP32"}, "data is missing"),
    ({"name": "x", "shape": [1], "datatype": "FP32", "data": [1], "parameters": {"binary_data_size": 4}},
     "binary tensor extension"),
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
