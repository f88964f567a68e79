"""One conformance suite that every ObjectStore backend must pass."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import S3_BUCKET
from tusk.errors import ObjectMissing
from tusk.storage.objects import LocalObjectStore, ObjectStore, open_object_store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield open_object_store(f"file://{tmp_path / 'objects'}")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        yield open_object_store(f"s3://{S3_BUCKET}/conformance-{uuid.uuid4().hex[:10]}/some/prefix", endpoint)


def test_satisfies_protocol(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)


def test_put_get_roundtrip_binary(store: ObjectStore) -> None:
    data = bytes(range(256)) * 1000
    store.put("chunks/aa/one", data)
    assert store.get("chunks/aa/one") == data
    assert store.exists("chunks/aa/one")


def test_empty_object(store: ObjectStore) -> None:
    store.put("chunks/00/empty", b"")
    assert store.get("chunks/00/empty") == b""


def test_missing_object_raises_object_missing(store: ObjectStore) -> None:
    assert not store.exists("chunks/ff/nothing")
    with pytest.raises(ObjectMissing, match="nothing"):
        store.get("chunks/ff/nothing")


def test_overwrite_replaces_whole_object(store: ObjectStore) -> None:
    store.put("trees/ab/x", b"first version, longer")
    store.put("trees/ab/x", b"second")
    assert store.get("trees/ab/x") == b"second"


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put("chunks/cd/gone", b"x")
    store.delete("chunks/cd/gone")
    store.delete("chunks/cd/gone")
    assert not store.exists("chunks/cd/gone")


def test_list_by_prefix(store: ObjectStore) -> None:
    for key in ["chunks/aa/1", "chunks/ab/2", "trees/aa/3"]:
        store.put(key, b"v")
    assert sorted(store.list("chunks/")) == ["chunks/aa/1", "chunks/ab/2"]
    assert sorted(store.list("chunks/aa")) == ["chunks/aa/1"]
    assert sorted(store.list("")) == ["chunks/aa/1", "chunks/ab/2", "trees/aa/3"]


def test_concurrent_writers_of_same_key_leave_one_whole_value(store: ObjectStore) -> None:
    values = [bytes([i]) * 200_000 for i in range(8)]
    threads = [threading.Thread(target=store.put, args=("chunks/ee/same", v)) for v in values]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("chunks/ee/same") in values


def test_flush_is_callable(store: ObjectStore) -> None:
    store.put("chunks/11/a", b"durable")
    store.flush()
    assert store.get("chunks/11/a") == b"durable"


def test_local_writes_are_atomic_via_rename(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "o")
    store.put("chunks/aa/k", b"data")
    assert store.stale_temp_files() == []
    assert (tmp_path / "o" / "chunks" / "aa" / "k").read_bytes() == b"data"


def test_keys_cannot_escape_the_store(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "o")
    with pytest.raises(Exception, match="invalid object key"):
        store.put("../outside", b"x")


def test_get_range(store: ObjectStore) -> None:
    data = bytes(range(256)) * 100
    store.put("packs/ab/p", data)
    assert store.get_range("packs/ab/p", 0, 10) == data[:10]
    assert store.get_range("packs/ab/p", 1000, 300) == data[1000:1300]
    assert store.get_range("packs/ab/p", len(data) - 5, 5) == data[-5:]
    assert store.get_range("packs/ab/p", 10, 0) == b""
    with pytest.raises(ObjectMissing):
        store.get_range("packs/ab/none", 0, 1)


def test_read_into_fills_a_slice_of_a_larger_buffer(store: ObjectStore) -> None:
    data = bytes(range(256)) * 100
    store.put("packs/ab/q", data)
    buf = bytearray(b"-" * 400)
    assert store.read_into("packs/ab/q", 1000, memoryview(buf)[100:400]) == 300
    assert buf[:100] == b"-" * 100 and buf[100:] == data[1000:1300]
    assert store.read_into("packs/ab/q", len(data) - 5, memoryview(buf)[:5]) == 5 and buf[:5] == data[-5:]
    short = bytearray(10)
    assert store.read_into("packs/ab/q", len(data) - 4, memoryview(short)) == 4  # the object ends first
    assert short[:4] == data[-4:]
    with pytest.raises(ObjectMissing):
        store.read_into("packs/ab/none", 0, memoryview(bytearray(1)))


def test_size_without_reading(store: ObjectStore) -> None:
    assert store.size("sized/missing") is None
    store.put("sized/a", b"12345")
    assert store.size("sized/a") == 5
    store.put("sized/a", b"")
    assert store.size("sized/a") == 0


def test_scan_gives_size_and_age(store: ObjectStore) -> None:
    import time

    before = time.time() - 5  # S3 stamps whole seconds, and its clock is not ours
    store.put("chunks/aa/one", b"12345")
    store.put("chunks/ab/two", b"")
    store.put("trees/aa/three", b"x")
    stats = {s.key: s for s in store.scan("chunks/")}
    assert sorted(stats) == ["chunks/aa/one", "chunks/ab/two"]
    assert stats["chunks/aa/one"].size == 5 and stats["chunks/ab/two"].size == 0
    assert all(before <= s.modified <= time.time() + 5 for s in stats.values())


def test_delete_many(store: ObjectStore) -> None:
    keys = [f"chunks/{i:02x}/k{i}" for i in range(30)]
    for key in keys:
        store.put(key, b"v")
    store.delete_many([*keys[:20], "chunks/ff/never-there"])
    assert sorted(store.list("chunks/")) == sorted(keys[20:])
    store.delete_many([])


def test_leftovers_of_unfinished_writes_can_be_listed_and_removed(store: ObjectStore, tmp_path: Path) -> None:
    if isinstance(store, LocalObjectStore):
        (store.root / ".tmp" / "killed-writer").write_bytes(b"partial")
    else:
        from tusk.storage.objects._s3 import S3ObjectStore

        assert isinstance(store, S3ObjectStore)
        store._s3.create_multipart_upload(Bucket=store.bucket, Key=store.prefix + "chunks/aa/partial")
    left = list(store.scan_temporary())
    assert len(left) == 1 and left[0].modified > 0
    assert list(store.list("")) == []  # not an object
    store.delete_temporary(left[0].key)
    store.delete_temporary(left[0].key)  # gone already: not an error
    assert list(store.scan_temporary()) == []


def test_an_object_the_size_of_a_pack_lands_whole_from_a_view(store: ObjectStore) -> None:
    data = bytes(range(256)) * (37 << 12) + b"tail"  # ~37 MiB: past S3's multipart threshold, parts in parallel
    store.put("packs/cd/big", memoryview(data))
    assert store.size("packs/cd/big") == len(data)
    assert store.get("packs/cd/big") == data
    edge = 8 << 20  # across a part boundary
    assert store.get_range("packs/cd/big", edge - 3, 6) == data[edge - 3 : edge + 3]
    assert [s.key for s in store.scan_temporary() if "packs/cd/big" in s.key] == []  # no upload left open


def test_a_failed_multipart_put_leaves_no_object_and_no_parts(s3_endpoint: str) -> None:
    from botocore.exceptions import ClientError

    from tusk.errors import StorageUnavailable
    from tusk.storage.objects._s3 import S3ObjectStore

    store = open_object_store(f"s3://{S3_BUCKET}/conformance-{uuid.uuid4().hex[:10]}", s3_endpoint)
    assert isinstance(store, S3ObjectStore)
    real = store._s3.upload_part

    def flaky(**kwargs: object) -> object:
        if kwargs["PartNumber"] == 2:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "disk on fire"}}, "UploadPart")
        return real(**kwargs)  # type: ignore[arg-type]

    store._s3.upload_part = flaky  # type: ignore[method-assign]
    with pytest.raises(StorageUnavailable, match="packs/ef/p"):
        store.put("packs/ef/p", b"x" * (20 << 20))
    assert store.size("packs/ef/p") is None
    assert list(store.scan_temporary()) == []
