"""The local object store starts a large object's writeback as soon as it is written (the commit's barrier
then finds little left to wait for); small objects are left to the barrier alone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tusk.storage.objects import _local
from tusk.storage.objects._local import EARLY_WRITEBACK, LocalObjectStore


def test_large_objects_start_their_writeback_and_small_ones_do_not(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if _local._SYNC_FILE_RANGE is None:
        pytest.skip("no sync_file_range in this libc")
    real = _local._SYNC_FILE_RANGE
    started: list[int] = []

    def recording(fd: int, offset: int, nbytes: int, flags: int) -> Any:
        started.append(os.fstat(fd).st_size)
        return real(fd, offset, nbytes, flags)

    monkeypatch.setattr(_local, "_SYNC_FILE_RANGE", recording)
    store = LocalObjectStore(tmp_path / "objects")
    store.put("chunks/aa/small", b"x" * 100)
    store.put("chunks/aa/edge", b"y" * (EARLY_WRITEBACK - 1))
    store.put("chunks/bb/large", memoryview(b"z" * EARLY_WRITEBACK))
    store.flush()
    assert started == [EARLY_WRITEBACK]  # the large one alone, with all its bytes written first
    assert store.get("chunks/bb/large") == b"z" * EARLY_WRITEBACK
    assert store.get("chunks/aa/edge") == b"y" * (EARLY_WRITEBACK - 1)


def test_a_forked_writer_names_its_temporary_files_apart_from_its_parent(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.put("chunks/aa/before", b"before the fork")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the name its next write would take
        os.write(write, _local._TEMP_NAMES.next().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 200).decode()
    os.close(read)
    mine = _local._TEMP_NAMES.next()
    assert child.rpartition("-")[0] != mine.rpartition("-")[0]  # a prefix of its own: no name is ever shared
    store.put("chunks/aa/after", b"after it")
    assert store.get("chunks/aa/after") == b"after it" and list(store.scan_temporary()) == []
