from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest

from tusk.errors import ObjectCorrupt, ObjectMissing
from tusk.storage.content import ContentStore, chunk_key
from tusk.storage.objects import LocalObjectStore


def _rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(LocalObjectStore(tmp_path / "objects"))


def _stored_bytes(cs: ContentStore) -> int:
    root = cs.objects.root  # type: ignore[attr-defined]
    return sum(p.stat().st_size for p in (root / "chunks").rglob("*") if p.is_file())


def test_roundtrip_and_identical_content_stored_once(store: ContentStore) -> None:
    data = _rand(5 << 20, 1)
    a = store.write_bytes(data)
    before = _stored_bytes(store)
    b = store.write_bytes(data)
    assert a == b and a.digest == b.digest
    assert _stored_bytes(store) == before == len(data)
    assert b"".join(store.iter_bytes(a, "f")) == data


def test_insertion_in_the_middle_stores_only_a_few_new_chunks(store: ContentStore) -> None:
    base = _rand(64 << 20, 2)
    store.write_bytes(base)
    before = _stored_bytes(store)
    mid = len(base) // 2
    changed = base[:mid] + _rand(1 << 20, 3) + base[mid:]
    node = store.write_bytes(changed)
    added = _stored_bytes(store) - before
    assert (1 << 20) <= added <= 3 << 20, added
    assert b"".join(store.iter_bytes(node, "f")) == changed


def test_append_is_canonical(store: ContentStore) -> None:
    first, second = _rand(3 << 20, 4), _rand(2 << 20, 5)
    appended = store.append(store.write_bytes(first), store.write_bytes(second), "f")
    whole = store.write_bytes(first + second)
    assert appended.chunks == whole.chunks
    assert appended.digest == whole.digest


def test_file_and_stream_chunk_identically(store: ContentStore, tmp_path: Path) -> None:
    data = _rand(2 << 20, 6)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    with open(path, "rb") as fh:
        assert store.write_file(path) == store.write_stream(fh) == store.write_bytes(data)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert store.write_file(empty).size == 0


def test_corrupt_chunk_is_an_error_naming_the_file(store: ContentStore) -> None:
    node = store.write_bytes(_rand(100_000, 7))
    path = store.objects.root / chunk_key(node.chunks[0].digest)  # type: ignore[attr-defined]
    raw = bytearray(path.read_bytes())
    raw[10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ObjectCorrupt, match=re.escape("images@master:/cat.png")):
        b"".join(store.iter_bytes(node, "images@master:/cat.png"))


def test_missing_chunk_is_an_error_naming_the_file(store: ContentStore) -> None:
    node = store.write_bytes(_rand(1000, 8))
    os.unlink(store.objects.root / chunk_key(node.chunks[0].digest))  # type: ignore[attr-defined]
    store._known.clear()
    with pytest.raises(ObjectMissing, match="r@m:/x"):
        store.read_chunk(node.chunks[0], "r@m:/x")


def test_read_into_fills_one_buffer_and_checks_every_chunk(store: ContentStore) -> None:
    data = _rand(5 << 20, 11)
    node = store.write_bytes(data)
    assert len(node.chunks) > 3
    out = memoryview(bytearray(len(data)))
    store.read_into(node, "f", out)
    assert out == data
    with pytest.raises(ValueError, match="a buffer of 10 bytes"):
        store.read_into(node, "f", memoryview(bytearray(10)))
    ref = node.chunks[2]
    path = store.objects.root / chunk_key(ref.digest)  # type: ignore[attr-defined]
    raw = bytearray(path.read_bytes())
    raw[5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ObjectCorrupt, match=re.escape("models@master:/m.bin")):
        store.read_into(node, "models@master:/m.bin", memoryview(bytearray(len(data))))
    assert ref.digest in store.suspects()  # flagged, so a put of the same bytes repairs it
    store.read_into(node, "f", memoryview(bytearray(len(data))), verify=False)  # a caller hashing the whole


def test_seekable_reader(store: ContentStore) -> None:
    data = _rand(3 << 20, 9)
    node = store.write_bytes(data)
    fh = store.open(node, "f")
    fh.seek(1_500_000)
    assert fh.read(100) == data[1_500_000:1_500_100]
    fh.seek(-10, os.SEEK_END)
    assert fh.read() == data[-10:]


def test_write_many_matches_single_writes(store: ContentStore, tmp_path: Path) -> None:
    sizes = [0, 1, 1000, store._cdc.min_size, store._cdc.min_size + 1, 3 << 20, 10]
    paths = []
    for i, size in enumerate(sizes):
        p = tmp_path / f"f{i}"
        p.write_bytes(_rand(size, 100 + i))
        paths.append(p)
    seen: list[int] = []
    many = store.write_many([(str(p), p.stat().st_size) for p in paths], seen.append)
    assert many == [store.write_file(p) for p in paths]
    assert sum(seen) == sum(sizes)


@pytest.mark.parametrize("shape", ["random", "zeros", "repeats"])
def test_a_large_file_cut_in_halves_has_the_chunks_of_one_pass(store: ContentStore, tmp_path: Path,
                                                                shape: str) -> None:
    import pyfastcdc

    from tusk.storage import content

    size = content._PARALLEL_CUT + 777_777
    data = {"random": lambda: _rand(size, 11), "zeros": lambda: bytes(size),
            "repeats": lambda: (_rand(3 << 20, 12) * (size // (3 << 20) + 1))[:size]}[shape]()
    path = tmp_path / "large.bin"
    path.write_bytes(data)
    node = store.write_file(path)  # cut in halves, the second on a pool thread
    one_pass = [c.length for c in pyfastcdc.FastCDC(avg_size=content.AVG_CHUNK).cut_buf(data)]
    assert [c.size for c in node.chunks] == one_pass
    assert node == store.write_bytes(data)  # the same chunks, so the same digest and dedup, as any other put
    assert b"".join(store.iter_bytes(node, "large.bin")) == data


def test_a_failed_pack_write_leaves_nothing_to_dedup_into(store: ContentStore, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    data = _rand(5 << 20, 31)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    real = store.objects.put_parts

    def full_disk(key: str, parts: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.objects, "put_parts", full_disk)
    with pytest.raises(OSError):
        store.write_many([(str(src), len(data))])
    monkeypatch.setattr(store.objects, "put_parts", real)
    (node,) = store.write_many([(str(src), len(data))])  # the same chunks again: packed anew, not found
    assert {ref.pack for ref in node.chunks} != {None} and len({ref.pack for ref in node.chunks}) == 1
    out = bytearray(node.size)
    store.read_into(node, "big.bin", memoryview(out))
    assert bytes(out) == data
    assert _stored_bytes(store) == 0  # no loose chunk: one pack holds the file


def test_a_small_file_that_grew_since_it_was_listed_is_chunked_as_any_file(store: ContentStore,
                                                                          tmp_path: Path) -> None:
    data = _rand(3 << 20, 41)
    grown = tmp_path / "grown.bin"
    grown.write_bytes(data)
    (node,) = store.write_many([(str(grown), 10)])  # listed at 10 bytes, 3 MiB when read
    assert node == store.write_bytes(data) and len(node.chunks) > 1
