"""A verified joblib file's arrays are views of its buffer, and everything else loads as joblib loads it."""

from __future__ import annotations

import io
from typing import Any

import joblib
import numpy as np
import pytest

from tusk.models import joblib_in_place
from tusk.models.loaders import load_model
from tusk.models.manifest import ModelEntry
from tusk.storage.buffers import allocate


def _buffer(obj: Any, **dump: Any) -> tuple[bytes, memoryview]:
    out = io.BytesIO()
    joblib.dump(obj, out, **dump)
    blob = out.getvalue()
    view = allocate(len(blob))
    view[:] = blob
    return blob, view


def _in(array: np.ndarray, view: memoryview) -> bool:
    return np.shares_memory(array, np.frombuffer(view, dtype=np.uint8))


def test_every_kind_of_array_loads_equal_to_joblib_and_the_plain_ones_are_views_of_the_buffer() -> None:
    rng = np.random.default_rng(3)
    obj = {
        "c": rng.random((300_000, 4)),  # 9.6 MB, C order
        "f": np.asfortranarray(rng.integers(0, 1 << 30, (1000, 700), dtype=np.int32)),
        "bool": rng.random(100_000) > 0.5,
        "scalar": np.float32(2.5), "zero_d": np.array(7, dtype=np.int16), "empty": np.zeros((0, 3)),
        "big_endian": np.arange(5000, dtype=">f8"),  # a foreign byte order: joblib swaps it, as ever
        "objects": np.array(["a", None, 3], dtype=object),
        "records": np.zeros(10, dtype=[("x", "<i4"), ("y", "<f8")]),
        "nested": [np.arange(10), {"t": (np.ones(3, dtype=np.complex128), "text")}],
        "shared": None,
    }
    obj["shared"] = obj["f"]  # one array reached twice: joblib writes it twice, and loads two
    blob, view = _buffer(obj)
    got = joblib_in_place.load(view, "m.joblib")
    want = joblib.load(io.BytesIO(blob))
    assert got is not None and got.keys() == want.keys()
    for key in ("c", "f", "bool", "zero_d", "empty", "big_endian", "objects", "records"):
        np.testing.assert_array_equal(got[key], want[key])
        assert got[key].dtype == want[key].dtype and got[key].shape == want[key].shape, key
    assert got["scalar"] == want["scalar"] and got["nested"][1]["t"][1] == "text"
    np.testing.assert_array_equal(got["nested"][1]["t"][0], want["nested"][1]["t"][0])
    np.testing.assert_array_equal(got["shared"], want["f"])
    assert (got["shared"] is got["f"]) == (want["shared"] is want["f"])
    assert got["f"].flags.f_contiguous and not got["f"].flags.c_contiguous
    assert got["big_endian"].dtype.isnative  # swapped, as joblib.load swaps it
    for key in ("c", "f", "bool"):  # in place: no copy, writable, aligned
        assert _in(got[key], view), key
        assert got[key].flags.writeable and got[key].flags.aligned, key
    for key in ("big_endian", "objects"):  # read by joblib: copies
        assert not _in(got[key], view), key
    got["c"][0, 0] = -1.0  # the caller handed the buffer over: the array is its memory
    assert np.frombuffer(view, dtype=np.uint8).tobytes() != blob


def test_what_it_cannot_view_is_left_to_joblib() -> None:
    arrays = {"w": np.random.default_rng(0).random(200_000)}
    _, compressed = _buffer(arrays, compress=3)
    assert joblib_in_place.load(compressed, "m.joblib") is None  # not a pickle: joblib.load decompresses it
    words = {"vocabulary": [f"word{i}" for i in range(300_000)], "w": np.arange(1000.0)}
    _, mostly_pickle = _buffer(words)  # arrays under half its bytes: viewing them would pin the whole buffer
    assert joblib_in_place.load(mostly_pickle, "m.joblib") is None


@pytest.mark.parametrize("compress", [0, 3])
def test_the_joblib_loader_views_what_it_can_and_loads_the_rest(compress: int) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    xs = np.random.default_rng(1).random((100_000, 8))
    model = KNeighborsClassifier(n_neighbors=1).fit(xs, (xs[:, 0] > 0.5).astype(int))
    _, view = _buffer(model, compress=compress)
    entry = ModelEntry("/model.joblib", "joblib", ("/model.joblib",))
    loaded = load_model(entry, {"/model.joblib": view}, None)
    assert list(loaded.predict(xs[:200])) == list(model.predict(xs[:200]))
    assert _in(loaded.impl._fit_X, view) == (compress == 0)
