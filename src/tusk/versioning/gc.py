"""gc: mark every object something still refers to, sweep the rest (docs/decisions/0014-gc.md).

Mark. The roots are every reference the metadata database holds: each
commit's tree (every commit, finished, failed or open: history stays
readable), the staged ops of open commits, each pipeline version's stored
code, and the output trees of datum runs and the datum cache (a skipped datum
reuses its tree). Branch heads, commit sets, model manifests, deployments and
algorithm versions all name commits, so they are covered by their commits. The
walk loads each directory once and collects its chunk references; a packed
reference keeps both its pack and the chunk's loose copy (the repair copy,
``tusk.storage.content``).

Sweep. Under the gc fence (``tusk.versioning.fence``), objects that no root
reached and that are older than the grace period are deleted: loose chunks,
directory objects, packs, ``suspect/`` flags, and what unfinished writes left
(temp files, unfinished multipart uploads). A pack that is partly live and
mostly dead is rewritten: its live chunks are written as loose chunks (reads
of a packed reference fall back to the loose copy) and the pack goes, so the
space really returns. Chunk-index rows of deleted packs go first, so no new
put dedups into them.

The store is listed *before* the mark, so an object written after the listing
is never a candidate; a reference landed after the fence was raised is checked
by its writer (the fence); the grace period spares writes in flight.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import blake3
from sqlalchemy import delete, select

from tusk.errors import IntegrityError, TuskError
from tusk.storage.content import SUSPECT_PREFIX, ChunkRef, chunk_key
from tusk.storage.metadata import (
    ChunkIndexRow,
    CommitRow,
    DatumCacheRow,
    DatumRunRow,
    PipelineVersionRow,
    RepoRow,
    StagedOpRow,
)
from tusk.storage.objects import ObjectStat
from tusk.versioning import fence
from tusk.versioning.context import Context
from tusk.versioning.records import GcReport
from tusk.versioning.staging import decode_op_payload
from tusk.versioning.trees import EMPTY_TREE

__all__ = ["DEFAULT_GRACE", "collect_garbage"]

DEFAULT_GRACE = 3600.0  # seconds an unreferenced object is spared: longer than a put is expected to take
FENCE_SECONDS = 60.0  # the fence lapses this long after the last renewal (a killed gc stops holding it)
REWRITE_DEAD_FRACTION = 0.25  # rewrite a partly live pack once this share of its bytes is dead
_BATCH = 500
_KINDS = ("chunks/", "trees/", "packs/", SUSPECT_PREFIX)

Log = Callable[[str], None]


@dataclass
class _Marks:
    """What the roots reach: tree digests, loose chunk digests, and the live ranges of each pack."""

    trees: set[str] = field(default_factory=set)
    chunks: set[str] = field(default_factory=set)
    packs: dict[str, dict[int, ChunkRef]] = field(default_factory=dict)  # pack → offset → chunk

    def chunk(self, ref: ChunkRef) -> None:
        self.chunks.add(ref.digest)
        if ref.pack is not None:
            self.packs.setdefault(ref.pack, {})[ref.offset] = ref


def collect_garbage(ctx: Context, dry_run: bool = False, grace: float = DEFAULT_GRACE,
                    log: Log | None = None) -> GcReport:
    """Mark from every root, then sweep what is unreferenced and older than ``grace`` seconds.

    ``dry_run`` reports what would go and deletes nothing (and takes no
    fence). A second gc while one runs is ``Conflict``.
    """
    if grace < 0:
        raise ValueError("the grace period cannot be negative")
    started = time.monotonic()
    report = GcReport(dry_run=dry_run, grace_seconds=grace)
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    keeper = None
    if not dry_run:
        report.generation = fence.begin_sweep(ctx, holder, FENCE_SECONDS)
        keeper = _Keeper(ctx, holder)
    try:
        cutoff = time.time() - grace
        listed = [stat for prefix in _KINDS for stat in ctx.objects.scan(prefix)]  # before the mark: see above
        temporary = list(ctx.objects.scan_temporary())
        marks = _mark(ctx)
        _Sweep(ctx, report, marks, cutoff, dry_run, holder, log).run(listed, temporary)
    finally:
        if keeper is not None:
            keeper.stop()
            fence.end_sweep(ctx, holder)
    report.seconds = round(time.monotonic() - started, 3)
    return report


class _Keeper:
    """Renews the fence in the background while a gc lists and marks (which can take long on a big store);
    the sweep itself also renews before each batch of deletes, and stops if the fence was lost."""

    def __init__(self, ctx: Context, holder: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(ctx, holder), name="tusk-gc-fence", daemon=True)
        self._thread.start()

    def _loop(self, ctx: Context, holder: str) -> None:
        while not self._stop.wait(FENCE_SECONDS / 6):
            try:
                fence.renew_sweep(ctx, holder, FENCE_SECONDS)
            except TuskError:
                return  # lost: the sweep's own renewal raises before it deletes anything more

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# -- mark ------------------------------------------------------------------------------------------------
def _mark(ctx: Context) -> _Marks:
    marks = _Marks()
    roots: list[tuple[str, str]] = []  # (tree digest, what refers to it: for errors)
    with ctx.db.read() as s:
        repos: dict[int, str] = {i: n for i, n in s.execute(select(RepoRow.id, RepoRow.name))}
        for cid, repo_id, tree in s.execute(select(CommitRow.id, CommitRow.repo_id, CommitRow.tree_digest)):
            if tree:
                roots.append((tree, f"commit {repos.get(repo_id, '?')}@{cid}"))
        for cid, payload in s.execute(select(StagedOpRow.commit_id, StagedOpRow.payload)):
            entry = decode_op_payload(payload)
            if entry is None:
                continue
            if entry.file is not None:
                for ref in entry.file.chunks:
                    marks.chunk(ref)
            elif entry.kind == "dir":
                roots.append((entry.digest, f"open commit {cid}"))
        for pid, version, tree in s.execute(select(PipelineVersionRow.pipeline_id, PipelineVersionRow.version,
                                                   PipelineVersionRow.code_tree)):
            if tree:
                roots.append((tree, f"code of pipeline {pid} version {version}"))
        for job, datum, tree in s.execute(select(DatumRunRow.job_id, DatumRunRow.datum_id, DatumRunRow.output_tree)):
            if tree:
                roots.append((tree, f"output of datum {datum} of job {job}"))
        for h, tree in s.execute(select(DatumCacheRow.hash, DatumCacheRow.output_tree)):
            roots.append((tree, f"datum cache entry {h[:16]}"))
    for digest, owner in roots:
        _walk(ctx, marks, digest, owner)
    return marks


def _walk(ctx: Context, marks: _Marks, root: str, owner: str) -> None:
    stack = [root]
    while stack:
        digest = stack.pop()
        if digest == EMPTY_TREE or digest in marks.trees:
            continue
        try:
            entries = ctx.trees.load(digest)
            parts = ctx.trees.part_digests(digest)  # (a large directory's entries are in objects of their own)
        except (TuskError, ValueError) as exc:
            # without this directory its children are unknown: deleting anything could lose live data
            raise IntegrityError(f"gc stopped before deleting anything: directory object {digest[:16]}… of "
                                 f"{owner} cannot be read ({exc}); run `tusk fsck`, then gc again") from None
        marks.trees.add(digest)
        marks.trees.update(parts)
        for e in entries.values():
            if e.kind == "dir":
                stack.append(e.digest)
            elif e.file is not None:
                for ref in e.file.chunks:
                    marks.chunk(ref)


# -- sweep -----------------------------------------------------------------------------------------------
class _Sweep:
    def __init__(self, ctx: Context, report: GcReport, marks: _Marks, cutoff: float, dry_run: bool,
                 holder: str, log: Log | None) -> None:
        self.ctx, self.report, self.marks = ctx, report, marks
        self.cutoff, self.dry_run, self.holder, self.log = cutoff, dry_run, holder, log

    def run(self, listed: list[ObjectStat], temporary: list[ObjectStat]) -> None:
        doomed: list[ObjectStat] = []
        rewrites: list[tuple[ObjectStat, dict[int, ChunkRef]]] = []
        for stat in listed:
            self.report.objects_scanned += 1
            self.report.bytes_scanned += stat.size
            live = self._live(stat)
            if live is True:
                self.report.objects_live += 1
                self.report.bytes_live += stat.size
            elif stat.modified > self.cutoff:
                self.report.objects_young += 1
                self.report.bytes_young += stat.size
            elif live is False:
                doomed.append(stat)
            else:  # a partly live pack: rewrite it
                rewrites.append((stat, live))
        dead_packs = [s.key.rsplit("/", 1)[-1] for s in doomed if s.key.startswith("packs/")]
        dead_packs += [s.key.rsplit("/", 1)[-1] for s, _ in rewrites]
        if not self.dry_run:
            self._drop_index(dead_packs)
        for stat, live in rewrites:
            self._rewrite(stat, live)
        self._delete([s.key for s in doomed])
        for stat in doomed:
            self.report.objects_swept += 1
            self.report.bytes_swept += stat.size
        for stat in temporary:
            if stat.modified > self.cutoff:
                continue
            self.report.temporary_swept += 1
            self.report.bytes_swept += stat.size
            if not self.dry_run:
                self._renew()
                self.ctx.objects.delete_temporary(stat.key)

    def _live(self, stat: ObjectStat) -> bool | dict[int, ChunkRef]:
        """True (keep), False (unreferenced), or a pack's live chunks when rewriting it would return space."""
        kind, _, rest = stat.key.partition("/")
        name = rest.rsplit("/", 1)[-1]
        if kind == "chunks":
            return name in self.marks.chunks
        if kind == "trees":
            return name in self.marks.trees
        if kind == "suspect":
            return rest in self.marks.chunks
        live = self.marks.packs.get(name)
        if not live:
            return False
        used = sum(ref.size for ref in live.values())
        return live if stat.size and (stat.size - used) / stat.size >= REWRITE_DEAD_FRACTION else True

    def _rewrite(self, stat: ObjectStat, live: dict[int, ChunkRef]) -> None:
        """Copy a pack's live chunks out as loose chunks, then delete the pack (unless a chunk fails to verify:
        then the pack stays whole, for fsck)."""
        moved = 0
        copies: list[tuple[str, bytes]] = []
        for ref in live.values():
            if self._has_loose(ref):
                continue
            data = self.ctx.objects.get_range(stat.key, ref.offset, ref.size)
            if len(data) != ref.size or blake3.blake3(data).hexdigest() != ref.digest:
                self._say(f"kept pack {stat.key}: chunk {ref.digest[:16]}… in it is corrupt; run `tusk fsck`")
                self.report.objects_live += 1
                self.report.bytes_live += stat.size
                return
            copies.append((chunk_key(ref.digest), data))
            moved += ref.size
        if not self.dry_run:
            for key, data in copies:
                self._renew()
                self.ctx.objects.put(key, data)
            self.ctx.objects.flush()  # the loose copies are durable before the pack goes
            self._delete([stat.key])
        self.report.packs_rewritten += 1
        self.report.bytes_rewritten += moved
        self.report.objects_swept += 1
        self.report.bytes_swept += stat.size - moved

    def _has_loose(self, ref: ChunkRef) -> bool:
        return self.ctx.objects.size(chunk_key(ref.digest)) == ref.size

    def _drop_index(self, packs: list[str]) -> None:
        """Forget where chunks of these packs were, before the packs go: a new put must not dedup into them."""
        for i in range(0, len(packs), _BATCH):
            with self.ctx.db.write() as s:
                s.execute(delete(ChunkIndexRow).where(ChunkIndexRow.pack.in_(packs[i : i + _BATCH])))
        # rows of packs that are not stored at all (nothing can read them)
        with self.ctx.db.read() as s:
            indexed = set(s.scalars(select(ChunkIndexRow.pack).distinct()))
        stored = {k.rsplit("/", 1)[-1] for k in self.ctx.objects.list("packs/")}
        orphans = sorted(indexed - stored - set(self.marks.packs))
        for i in range(0, len(orphans), _BATCH):
            with self.ctx.db.write() as s:
                s.execute(delete(ChunkIndexRow).where(ChunkIndexRow.pack.in_(orphans[i : i + _BATCH])))
        self.report.index_rows_dropped += len(orphans)

    def _delete(self, keys: Iterable[str]) -> None:
        if self.dry_run:
            return
        batch: list[str] = []
        for key in keys:
            batch.append(key)
            if len(batch) >= _BATCH:
                self._renew()
                self.ctx.objects.delete_many(batch)
                batch = []
        if batch:
            self._renew()
            self.ctx.objects.delete_many(batch)

    def _renew(self) -> None:
        """Before each batch of deletes: renew the fence, and stop at once if it lapsed (writers then no longer
        wait for this gc, so it must not delete anything more)."""
        fence.renew_sweep(self.ctx, self.holder, FENCE_SECONDS)

    def _say(self, text: str) -> None:
        self.report.notes.append(text)
        if self.log is not None:
            self.log(text)

