from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

__all__ = ["ObjectStore"]


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

    def get(self, key: str) -> bytes:
        """Return the object's bytes; raise ``ObjectMissing`` when absent."""
        ...

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` (fewer only if the object is shorter)."""
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
