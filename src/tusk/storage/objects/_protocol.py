from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["ObjectStat", "ObjectStore"]


@dataclass(frozen=True, slots=True)
class ObjectStat:
    """One stored object as a listing sees it: what ``gc`` needs to judge it (its age, its size)."""

    key: str
    size: int
    modified: float  # seconds since the epoch (mtime, S3 LastModified)


@runtime_checkable
class ObjectStore(Protocol):
    """Immutable blobs addressed by key.

    ``put`` is atomic: a reader sees the whole object or nothing. ``flush`` is the
    durability barrier: once it returns, every earlier ``put`` survives a crash.
    Tusk calls ``flush`` before any metadata that refers to the objects is
    committed, so a commit can never point at bytes that were lost.
    """

    url: str

    def put(self, key: str, data: bytes | memoryview) -> None: ...

    def put_parts(self, key: str, parts: Sequence[bytes | memoryview]) -> None:
        """``put`` of the parts' bytes, in order, as one object, without joining them in memory first where the
        backend can (a pack: views into a large file's mmap)."""
        ...

    def get(self, key: str) -> bytes:
        """Return the object's bytes; raise ``ObjectMissing`` when absent."""
        ...

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` (fewer only if the object is shorter)."""
        ...

    def read_into(self, key: str, offset: int, out: memoryview) -> int:
        """Fill ``out`` with the object's bytes from ``offset``; how many were read (fewer only if the object is
        shorter). A large verified read (a model file) lands in one buffer without a copy per chunk."""
        ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when absent: as cheap as ``exists`` (a stat, a HEAD), so a
        dedup check or ``fsck --fast`` can see a truncated or padded object without reading it."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; deleting an absent key is not an error."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield every key starting with ``prefix``, in no particular order."""
        ...

    def flush(self) -> None: ...

    def scan(self, prefix: str = "") -> Iterator[ObjectStat]:
        """Like ``list``, with each object's size and last-modified time (one listing, no per-object call)."""
        ...

    def delete_many(self, keys: Iterable[str]) -> None:
        """Delete these objects (batched where the backend can); absent keys are not an error."""
        ...

    def scan_temporary(self) -> Iterator[ObjectStat]:
        """What unfinished writes left behind (a local temp file, an S3 multipart upload never completed),
        keyed by an opaque name for ``delete_temporary``."""
        ...

    def delete_temporary(self, key: str) -> None:
        """Remove one leftover that ``scan_temporary`` named (gone already is not an error)."""
        ...
