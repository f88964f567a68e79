from __future__ import annotations

import builtins
import contextlib
import ctypes
import ctypes.util
import itertools
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tusk.errors import InvalidArgument, ObjectMissing, StorageUnavailable
from tusk.storage.buffers import write_all
from tusk.storage.objects._protocol import ObjectStat

__all__ = ["LocalObjectStore"]

_TMP = ".tmp"


def _libc_function(symbol: str, argtypes: list[type] | None = None) -> Any:
    """A libc function by name, or None where libc has no such function (not Linux)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        function = getattr(ctypes.CDLL(name, use_errno=True), symbol, None)
    except OSError:
        return None
    if function is not None and argtypes is not None:
        function.argtypes = argtypes
    return function


_SYNCFS = _libc_function("syncfs")
# sync_file_range(fd, offset, nbytes, SYNC_FILE_RANGE_WRITE): start writing a file's dirty pages back, return at once
_SYNC_FILE_RANGE = _libc_function("sync_file_range", [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint])
_SYNC_FILE_RANGE_WRITE = 2
# objects at least this large have their writeback started as soon as they are written (a chunk of a large file
# is 128 KiB or more; a datum's small output or a stat-cache-sized object is left to the barrier alone)
EARLY_WRITEBACK = 128 * 1024


class _TempNames:
    """Names for temporary files that no other writer uses: the process's random prefix (drawn again in a
    forked child) and a counter; a uuid4 per write cost a ``getrandom`` call each."""

    def __init__(self) -> None:
        self._renew()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self._prefix = uuid.uuid4().hex
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"


_TEMP_NAMES = _TempNames()  # one per process, for every store in it


class LocalObjectStore:
    """Objects as files under a directory.

    Writes go to ``.tmp/`` and are renamed into place, so a reader never sees a
    partial object. Individual writes are not fsynced: ``flush`` syncs the whole
    filesystem (``syncfs``) once, before metadata referring to the objects is
    committed. One barrier per commit instead of one fsync per chunk keeps
    ingest of many small files fast without giving up durability.

    A large object's writeback is started as soon as it is written
    (``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which waits for nothing), so
    the disk writes a large file's chunks while later ones are still being cut
    and hashed, and the barrier finds little left to wait for: a 1 GiB put's
    ``syncfs`` went from about 0.5 s to a few ms. The barrier is what makes
    objects durable; this only moves the disk's work earlier.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"file://{root}"
        try:
            (root / _TMP).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot create object store at {root}: {exc.strerror}") from exc
        self._root = str(root)
        self._dirs_made: set[str] = set()

    def _path(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/") or key.startswith(_TMP):
            raise InvalidArgument(f"invalid object key {key!r}")
        return f"{self._root}/{key}"

    def put(self, key: str, data: bytes | memoryview) -> None:
        self.put_parts(key, (data,))

    def put_parts(self, key: str, parts: Sequence[bytes | memoryview]) -> None:
        path = self._path(key)
        parent = path.rpartition("/")[0]
        if parent not in self._dirs_made:
            os.makedirs(parent, exist_ok=True)
            self._dirs_made.add(parent)
        tmp = f"{self._root}/{_TMP}/{_TEMP_NAMES.next()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                written = started = 0
                for part in parts:
                    written += write_all(fd, part)
                    if written - started >= EARLY_WRITEBACK and _SYNC_FILE_RANGE is not None:
                        _SYNC_FILE_RANGE(fd, started, written - started, _SYNC_FILE_RANGE_WRITE)
                        started = written
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StorageUnavailable(f"cannot write object {key}: {exc.strerror}") from exc

    def get(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            raise ObjectMissing(f"object {key} is missing from {self.url}") from None

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        try:
            fd = os.open(self._path(key), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ObjectMissing(f"object {key} is missing from {self.url}") from None
        try:  # pread, not a file object: a small file from a pack is 3 system calls, not 7 (no fstat, seek, isatty)
            parts: list[bytes] = []
            while length > 0:
                data = os.pread(fd, length, offset)
                if not data:
                    break
                parts.append(data)
                offset, length = offset + len(data), length - len(data)
            return parts[0] if len(parts) == 1 else b"".join(parts)
        finally:
            os.close(fd)

    def read_into(self, key: str, offset: int, out: memoryview) -> int:
        try:
            fd = os.open(self._path(key), os.O_RDONLY)
        except FileNotFoundError:
            raise ObjectMissing(f"object {key} is missing from {self.url}") from None
        try:
            done = 0
            while done < len(out):
                n = os.preadv(fd, [out[done:]], offset + done)
                if n == 0:
                    break
                done += n
            return done
        finally:
            os.close(fd)

    def exists(self, key: str) -> bool:
        return os.path.exists(self._path(key))

    def size(self, key: str) -> int | None:
        try:
            return os.stat(self._path(key)).st_size
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        head, _, _ = prefix.rpartition("/")
        base = self.root / head if head else self.root
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            if Path(dirpath) == self.root and _TMP in dirnames:
                dirnames.remove(_TMP)
            rel = os.path.relpath(dirpath, self.root)
            for name in filenames:
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    yield key

    def scan(self, prefix: str = "") -> Iterator[ObjectStat]:
        for key in self.list(prefix):
            try:
                st = os.stat(f"{self._root}/{key}")
            except FileNotFoundError:  # deleted since it was listed
                continue
            yield ObjectStat(key, st.st_size, st.st_mtime)

    def delete_many(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.delete(key)

    def scan_temporary(self) -> Iterator[ObjectStat]:
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.root / _TMP):
                with contextlib.suppress(FileNotFoundError):
                    st = entry.stat()
                    yield ObjectStat(f"{_TMP}/{entry.name}", st.st_size, st.st_mtime)

    def delete_temporary(self, key: str) -> None:
        name = key.removeprefix(f"{_TMP}/")
        if not name or "/" in name or name in (".", ".."):
            raise InvalidArgument(f"invalid temporary object {key!r}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.root / _TMP / name)

    def flush(self) -> None:
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if _SYNCFS is not None:
                _SYNCFS(fd)
            else:  # pragma: no cover - non-Linux
                os.sync()
        finally:
            os.close(fd)

    def stale_temp_files(self) -> builtins.list[Path]:
        """Temp files left by killed writers; harmless, removed by ``gc``."""
        return sorted((self.root / _TMP).iterdir())
