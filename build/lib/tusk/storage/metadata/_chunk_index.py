from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from tusk.storage.metadata._db import Database
from tusk.storage.metadata.models import ChunkIndexRow

__all__ = ["DbChunkIndex"]

_BATCH = 500


class DbChunkIndex:
    """The packed-chunk index in the metadata database (implements ``ChunkIndex``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def lookup(self, digests: Sequence[str]) -> dict[str, tuple[str, int]]:
        found: dict[str, tuple[str, int]] = {}
        with self.db.read() as s:
            for i in range(0, len(digests), _BATCH):
                rows = s.execute(
                    select(ChunkIndexRow.digest, ChunkIndexRow.pack, ChunkIndexRow.offset).where(
                        ChunkIndexRow.digest.in_(digests[i : i + _BATCH])
                    )
                )
                found.update({d: (p, o) for d, p, o in rows})
        return found

    def record(self, entries: Sequence[tuple[str, str, int, int]]) -> None:
        if not entries:
            return
        stmt = self.db.insert(ChunkIndexRow).on_conflict_do_nothing(index_elements=["digest"])
        rows = [{"digest": d, "pack": p, "offset": o, "size": n} for d, p, o, n in entries]
        with self.db.write() as s:
            s.connection().execute(stmt, rows)  # one executemany, not a compiled multi-VALUES statement
