"""One buffer filled in place, and the file object loaders read it through."""

from __future__ import annotations

import io
import pickle

from tusk.storage.buffers import MAPPED_FROM, allocate, reader


def test_a_large_buffer_is_a_writable_mapping_and_a_small_one_plain_memory() -> None:
    big, small = allocate(MAPPED_FROM + 10), allocate(10)
    assert len(big) == MAPPED_FROM + 10 and len(small) == 10 and not big.readonly and not small.readonly
    big[-3:] = b"end"
    assert bytes(big[-3:]) == b"end"
    assert len(allocate(0)) == 0


def test_the_reader_reads_seeks_peeks_and_reads_lines_like_a_file() -> None:
    data = b"first line\n" + bytes(range(256)) * 5000 + b"\nlast"
    view = allocate(len(data))
    view[:] = data
    fh = reader(view, "model.bin")
    assert fh.readline() == b"first line\n"
    assert fh.peek(4)[:4] == data[11:15]
    assert fh.read(300) == data[11:311]
    fh.seek(-4, io.SEEK_END)
    assert fh.read() == b"last" and fh.read(10) == b""
    fh.seek(0)
    assert fh.read() == data
    assert isinstance(reader(data), io.BytesIO)  # bytes are shared, not copied


def test_pickle_loads_through_the_reader_as_from_a_file() -> None:
    obj = {"weights": list(range(100_000)), "name": "m"}
    blob = pickle.dumps(obj, protocol=5)
    view = allocate(len(blob))
    view[:] = blob
    assert pickle.load(reader(view)) == obj
    assert pickle.loads(view) == obj
