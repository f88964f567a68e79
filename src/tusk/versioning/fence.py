"""The generation fence between ``gc`` and writers (docs/decisions/0014-gc.md).

A gc deletes only objects nothing referred to when it marked. A writer may
rely on such an object before its commit lands: it wrote a chunk a moment
before the mark, or found one already stored and reused it (dedup). The fence
makes that safe without a lock held across a write:

- ``GcFenceRow.generation`` is odd while a gc may delete (``begin_sweep``
  makes it odd, ``end_sweep`` even again), and changes with every gc;
- a writer notes the generation (``writer_token``) before it stores anything,
  and its landing transaction re-reads it (``fenced``). Unchanged and even:
  no gc deleted anything since the writer began, so all it relies on exists.
  Otherwise the writer waits for the gc to end (``wait_idle``), checks that
  every object it adds is still stored, and tries again with a new token. A
  lost object fails the write, naming it; it never lands a dangling commit.
"""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlalchemy.orm import Session

from tusk.errors import Conflict
from tusk.storage.metadata import GcFenceRow
from tusk.versioning.context import Context, _aware, now

__all__ = ["begin_sweep", "end_sweep", "fenced", "renew_sweep", "wait_idle", "writer_token"]

_ROW = 1


def _row(s: Session) -> GcFenceRow | None:
    return s.get(GcFenceRow, _ROW)


def _active(row: GcFenceRow | None) -> bool:
    return row is not None and row.holder is not None and row.expires_at is not None \
        and _aware(row.expires_at) > now()


def writer_token(ctx: Context) -> int:
    """The generation a writer starts under. When it moved since this process last looked, what the process
    remembers about stored objects (dedup caches) is forgotten: a gc may have deleted them."""
    with ctx.db.read() as s:
        row = _row(s)
        generation = row.generation if row is not None else 0
    if generation != ctx.gc_generation_seen:
        ctx.content.forget()
        ctx.trees.forget()
        ctx.gc_generation_seen = generation
    return generation


def fenced(ctx: Context, s: Session, token: int) -> bool:
    """In a writer's landing transaction: whether a gc may have deleted something since ``token``.

    On PostgreSQL the row is read ``FOR SHARE``, so a gc's ``begin_sweep`` (an UPDATE) is ordered before or
    after this transaction, never beside it; SQLite write transactions are serialized already.
    """
    q = select(GcFenceRow).where(GcFenceRow.id == _ROW)
    if not ctx.db.is_sqlite:
        q = q.with_for_update(read=True)
    row = s.scalar(q)
    generation = row.generation if row is not None else 0
    return generation != token or (generation % 2 == 1 and _active(row))


def wait_idle(ctx: Context, poll: float = 0.2) -> None:
    """Block while a gc holds the fence (a holder that stopped renewing counts as gone)."""
    while True:
        with ctx.db.read() as s:
            if not _active(_row(s)):
                return
        time.sleep(poll)


def begin_sweep(ctx: Context, holder: str, seconds: float) -> int:
    """Take the fence for a gc run and make the generation odd (deletes may happen); ``Conflict`` while another
    gc holds it. Returns the new generation."""
    for _ in range(3):
        try:
            with ctx.db.write() as s:
                row = s.scalar(select(GcFenceRow).where(GcFenceRow.id == _ROW).with_for_update())
                if row is None:
                    row = GcFenceRow(id=_ROW, generation=0)
                    s.add(row)
                elif _active(row) and row.holder != holder:
                    raise Conflict(f"a gc is already running ({row.holder}); wait for it to finish")
                row.generation = row.generation + (1 if row.generation % 2 == 0 else 2)
                row.holder = holder
                row.expires_at = now() + timedelta(seconds=seconds)
                return row.generation
        except DBIntegrityError:  # another gc inserted the row first: look again
            continue
    raise Conflict("could not take the gc fence; try again")


def renew_sweep(ctx: Context, holder: str, seconds: float) -> None:
    """Extend the holder's fence; ``Conflict`` when it lost it (expired and taken): it must stop deleting."""
    with ctx.db.write() as s:
        won = s.execute(update(GcFenceRow).where(GcFenceRow.id == _ROW, GcFenceRow.holder == holder,
                                                 GcFenceRow.expires_at > now())
                        .values(expires_at=now() + timedelta(seconds=seconds))
                        .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    if won != 1:
        raise Conflict(f"gc {holder} lost its fence (it stopped renewing for too long); nothing more was deleted")


def end_sweep(ctx: Context, holder: str) -> None:
    """Release the fence and make the generation even: writers that began during the sweep re-check."""
    with ctx.db.write() as s:
        row = s.scalar(select(GcFenceRow).where(GcFenceRow.id == _ROW).with_for_update())
        if row is None or row.holder != holder:
            return
        row.generation = row.generation + 1
        row.holder = None
        row.expires_at = None
    ctx.content.forget()
    ctx.trees.forget()
    ctx.gc_generation_seen = -1
