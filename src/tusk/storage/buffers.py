"""Large in-memory files: one buffer filled in place, and a file object over it.

A verified model load reads a file of hundreds of MB into memory before
deserializing it. Joining chunk-sized ``bytes`` into one object costs a copy
of every byte into freshly faulted 4 KiB pages; on small machines the page
faults are most of a load's time (measured: 0.25 s to fill 360 MiB that way,
0.04 s in huge pages). ``allocate`` maps private anonymous memory and asks for
transparent huge pages (as numpy does for its large arrays; a shared mapping,
Python's default, cannot have them), and chunks are read straight into their
slices of it (``ContentStore.read_into``). ``reader`` gives loaders that take
a file object (joblib) that buffer without copying it whole again
(``io.BytesIO`` copies any buffer that is not ``bytes``).
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os

__all__ = ["MAPPED_FROM", "SeekableReader", "allocate", "byte_view", "reader", "write_all"]

MAPPED_FROM = 4 << 20  # below this, an ordinary bytearray: a mapping per small file is not worth it
_HUGE = getattr(mmap, "MADV_HUGEPAGE", None)  # Linux


def write_all(fd: int, data: bytes | memoryview) -> int:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may take fewer); how many that was."""
    view = memoryview(data)
    total = len(view)
    while view:
        view = view[os.write(fd, view):]
    return total


def byte_view(view: memoryview) -> memoryview:
    """``view`` as one flat run of bytes (indexing gives ints, ``len`` counts bytes)."""
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def allocate(size: int) -> memoryview:
    """A writable buffer of ``size`` bytes (contents unspecified until written)."""
    if size < MAPPED_FROM:
        return memoryview(bytearray(size))
    try:
        mapped = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except (OSError, AttributeError, ValueError):  # no anonymous maps here, or no room for one: plain memory
        return memoryview(bytearray(size))
    if _HUGE is not None:
        with contextlib.suppress(OSError):  # THP off ("never"): ordinary pages, still one copy
            mapped.madvise(_HUGE)
    return memoryview(mapped)  # the view keeps the mapping alive; it is unmapped when the last view goes


class SeekableReader(io.RawIOBase):
    """A read-only, seekable raw file of ``size`` bytes; a subclass reads (``readinto``) from ``self._pos``, and
    hears of a seek in ``_moved`` (``ContentStore.open``'s reader restarts its chunk stream there)."""

    def __init__(self, size: int, name: str) -> None:
        super().__init__()
        self._size = size
        self._pos = 0
        self.name = name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        self._moved()
        return self._pos

    def _moved(self) -> None:
        pass


class _ViewFile(SeekableReader):
    def __init__(self, view: memoryview, name: str) -> None:
        super().__init__(len(view), name)
        self._view = byte_view(view)

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        target = memoryview(b).cast("B")
        n = max(0, min(len(target), self._size - self._pos))
        target[:n] = self._view[self._pos:self._pos + n]
        self._pos += n
        return n


def reader(data: bytes | memoryview, name: str = "") -> io.BufferedReader | io.BytesIO:
    """A read-only, seekable file object over ``data``; ``bytes`` are shared, not copied, either way."""
    if isinstance(data, bytes):
        return io.BytesIO(data)  # shares an immutable bytes object until written
    return io.BufferedReader(_ViewFile(data, name), buffer_size=1 << 20)
