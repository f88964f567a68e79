"""File content as content-defined chunks keyed by BLAKE3.

A file is a list of chunks. Chunk boundaries come from FastCDC, so an insertion
in the middle of a large file changes only the chunks around it. A file's digest
is the hash of its chunk list (``tusk-file:v1``), which is a function of the
bytes alone: appends re-chunk from the last boundary, so a file built by
appends has the same chunks (and digest) as the same bytes put at once.

Repair. A put dedups a chunk whose object already exists, so a corrupt object
would never be rewritten by putting the same bytes again. Hashing the stored
object on every dedup hit would double the cost of every re-put, so instead:

- a dedup hit checks the stored object's *size* (``ObjectStore.size``: the same
  stat or HEAD the existence check cost), which catches truncated or padded
  objects for free;
- a chunk proven bad by a read (or by ``fsck``) is *flagged*: a small marker
  object ``suspect/<digest>``, so every process (a CLI put after a failed CLI
  get, a server) knows it. A put of a flagged chunk rewrites it (loose) without
  trusting what is stored, then clears the flag;
- a flagged *packed* chunk cannot be rewritten in place (its pack holds other
  files), so its bytes are written as the loose chunk, and a read whose packed
  copy fails verification falls back to that loose copy. A dedup hit on a pack
  checks that the pack is long enough to hold the chunk (one size check per
  pack), so a truncated pack is repaired the same way.

Packs. Files put from local paths (``write_many``: ``put file -f``, ``put -r``)
store their chunks in packs of about ``PACK_TARGET`` bytes, a small file's
single chunk and a large file's many alike, so a 1 GiB put writes some thirty
objects, not two thousand. Each chunk is still addressed and verified by its
own digest, located through the chunk index, and deduplicated on its own: an
insertion into a packed large file stores only the chunks around it. A pack is
written on a pool thread while later chunks are cut and hashed, and ``seal``
makes the packs durable (one barrier) before the index names them. Streams
(uploads over HTTP, ``put_bytes``, appends) and pipeline workers, which write
concurrently, store loose chunks.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

import blake3
import pyfastcdc

from tusk.errors import ObjectCorrupt, ObjectMissing, TuskError
from tusk.ids import Digest
from tusk.storage.buffers import SeekableReader
from tusk.storage.objects import ObjectStore

__all__ = ["AVG_CHUNK", "PACK_TARGET", "SUSPECT_PREFIX", "ChunkIndex", "ChunkRef", "ContentStore", "FileNode",
           "chunk_key", "pack_key"]

AVG_CHUNK = 512 * 1024
SUSPECT_PREFIX = "suspect/"
_SUSPECT_TTL = 5.0  # seconds a process trusts its copy of the flags written by other processes
_FILE_TAG = b"tusk-file:v1\n"
_IN_FLIGHT = 16
PACK_TARGET = 32 << 20  # seal a pack at this size
_PACK_WRITES = 2  # packs being written at once: bounds the memory a large put holds
_LOOKUP_BATCH = 64  # chunks of a large file looked up in the chunk index at once
_SMALL_BATCH = 512
_PARALLEL_CUT = 32 << 20  # a file this large is cut in two halves at once (``ContentStore._cut_in_halves``)

Progress = Callable[[int], None]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """A chunk: its hash and size, and where it lives when packed.

    Location does not take part in equality: the same bytes are the same
    chunk wherever they are stored.
    """

    digest: Digest
    size: int
    pack: str | None = field(default=None, compare=False)
    offset: int = field(default=0, compare=False)


class ChunkIndex(Protocol):
    """Where packed chunks live, shared by every writer (the metadata database)."""

    def lookup(self, digests: Sequence[str]) -> dict[str, tuple[str, int]]:
        """digest → (pack id, offset) for the digests that are packed somewhere."""
        ...

    def record(self, entries: Sequence[tuple[str, str, int, int]]) -> None:
        """Remember (digest, pack id, offset, size) rows; existing digests are kept."""
        ...


@dataclass(frozen=True, slots=True)
class FileNode:
    chunks: tuple[ChunkRef, ...]

    @property
    def size(self) -> int:
        return sum(c.size for c in self.chunks)

    @property
    def digest(self) -> Digest:
        h = blake3.blake3(_FILE_TAG)
        for c in self.chunks:
            h.update(bytes.fromhex(c.digest))
            h.update(struct.pack(">Q", c.size))
        return Digest(h.hexdigest())


def chunk_key(digest: str) -> str:
    return f"chunks/{digest[:2]}/{digest}"


def pack_key(pack: str) -> str:
    return f"packs/{pack[:2]}/{pack}"


class ContentStore:
    """Writes streams as chunks and reads them back with verification."""

    def __init__(self, objects: ObjectStore, index: ChunkIndex | None = None) -> None:
        self.objects = objects
        self.index = index
        self._cdc = pyfastcdc.FastCDC(avg_size=AVG_CHUNK)
        self._known: set[str] = set()  # loose chunks known to exist
        self._located: dict[str, ChunkRef] = {}  # packed chunks known to exist
        self._pack_id: str | None = None
        self._pack: list[bytes | memoryview] = []  # the open pack's chunks, in order
        self._pack_size = 0
        self._pack_rows: list[tuple[str, str, int, int]] = []
        self._pack_writes: deque[Future[None]] = deque()  # packs written on the pool, awaited by seal()
        self._unindexed: list[tuple[str, str, int, int]] = []  # rows of written packs, indexed by seal()
        self._pack_lock = threading.RLock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tusk-put")
        self._suspect: set[str] = set()  # chunks a read or fsck found bad (see the module docstring)
        self._suspect_read = -_SUSPECT_TTL
        self._suspect_lock = threading.Lock()

    # -- chunks known bad -----------------------------------------------------
    def suspects(self) -> set[str]:
        """The flagged chunks, re-listed from the store at most every few seconds (usually none)."""
        with self._suspect_lock:
            if time.monotonic() - self._suspect_read > _SUSPECT_TTL:
                self._suspect = {k[len(SUSPECT_PREFIX):] for k in self.objects.list(SUSPECT_PREFIX)}
                self._suspect_read = time.monotonic()
            return self._suspect

    def flag(self, digest: str, why: str) -> None:
        """Remember that the stored copy of a chunk failed verification: the next put of it rewrites it."""
        self.objects.put(SUSPECT_PREFIX + digest, why.encode())
        self._suspect.add(digest)

    def unflag(self, digest: str) -> None:
        """The chunk's stored copy is good again (rewritten from verified bytes)."""
        self.objects.delete(SUSPECT_PREFIX + digest)
        self._suspect.discard(digest)

    def forget(self) -> None:
        """Drop what this process remembers about stored chunks: a gc may have deleted some
        (``tusk.versioning.fence``). Chunks of a pack being filled stay: they are not stored yet."""
        with self._pack_lock:
            self._known.clear()
            pending = {d for d, *_ in [*self._pack_rows, *self._unindexed]}
            self._located = {d: r for d, r in self._located.items() if d in pending}

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def stop_threads(self) -> None:
        """End the pool's idle threads (the next read or write starts new ones): a process about to fork must
        run no thread of its own (``tusk.root.prefork``)."""
        old, self._pool = self._pool, ThreadPoolExecutor(max_workers=4, thread_name_prefix="tusk-put")
        old.shutdown(wait=True)

    # -- writing -------------------------------------------------------------
    def _hash_and_store(self, piece: bytes | memoryview) -> ChunkRef:
        """Runs in the pool: BLAKE3 releases the GIL, so hashing overlaps chunking."""
        digest = Digest(blake3.blake3(piece).hexdigest())
        suspect = digest in self.suspects()
        if digest not in self._known or suspect:
            key = chunk_key(digest)
            if suspect or self.objects.size(key) != len(piece):  # missing, truncated, padded, or known bad
                self.objects.put(key, piece)
            if suspect:
                self.unflag(digest)
            self._known.add(digest)
        return ChunkRef(digest, len(piece))

    def _write_chunks(self, pieces: Iterable[bytes | memoryview], progress: Progress | None,
                      packed: bool = False) -> FileNode:
        if packed:
            return self._write_packed(pieces, progress)
        refs: list[ChunkRef] = []
        pending: deque[Future[ChunkRef]] = deque()

        def collect(fut: Future[ChunkRef]) -> None:
            ref = fut.result()
            refs.append(ref)
            if progress is not None:
                progress(ref.size)

        try:
            for piece in pieces:
                pending.append(self._pool.submit(self._hash_and_store, piece))
                while len(pending) > _IN_FLIGHT:
                    collect(pending.popleft())
            while pending:
                collect(pending.popleft())
        finally:
            for fut in pending:
                fut.cancel()
        return FileNode(tuple(refs))

    def _probe(self, piece: bytes | memoryview) -> tuple[Digest, ChunkRef | None, bytes | memoryview]:
        """Runs in the pool: a chunk's digest, and where it is stored already when this process knows or a loose
        copy exists (None: look it up in the chunk index, else pack it). A flagged chunk is rewritten loose."""
        digest = Digest(blake3.blake3(piece).hexdigest())
        if digest in self.suspects():
            self.objects.put(chunk_key(digest), piece)
            self.unflag(digest)
            self._known.add(digest)
            return digest, ChunkRef(digest, len(piece)), piece
        located = self._located.get(digest)
        if located is not None:
            return digest, located, piece
        if digest in self._known or self.objects.size(chunk_key(digest)) == len(piece):
            self._known.add(digest)
            return digest, ChunkRef(digest, len(piece)), piece
        return digest, None, piece

    def _write_packed(self, pieces: Iterable[bytes | memoryview], progress: Progress | None) -> FileNode:
        """A file's chunks, hashed on the pool, each either found stored (known, loose, or in the chunk index)
        or added to the open pack, in the file's order."""
        refs: list[ChunkRef | None] = []
        unplaced: list[tuple[int, Digest, bytes | memoryview]] = []
        pending: deque[Future[tuple[Digest, ChunkRef | None, bytes | memoryview]]] = deque()

        def collect(fut: Future[tuple[Digest, ChunkRef | None, bytes | memoryview]]) -> None:
            digest, ref, piece = fut.result()
            if ref is None:
                unplaced.append((len(refs), digest, piece))
            refs.append(ref)
            if len(unplaced) >= _LOOKUP_BATCH:
                self._place(unplaced, refs)
            if progress is not None:
                progress(len(piece))

        try:
            for piece in pieces:
                pending.append(self._pool.submit(self._probe, piece))
                while len(pending) > _IN_FLIGHT:
                    collect(pending.popleft())
            while pending:
                collect(pending.popleft())
            self._place(unplaced, refs)
        finally:
            for fut in pending:
                fut.cancel()
        placed = [r for r in refs if r is not None]
        assert len(placed) == len(refs)
        return FileNode(tuple(placed))

    def _place(self, unplaced: list[tuple[int, Digest, bytes | memoryview]], refs: list[ChunkRef | None]) -> None:
        """Give each unplaced chunk its stored copy from the chunk index, or a place in the open pack."""
        if not unplaced:
            return
        sizes = {digest: len(piece) for _, digest, piece in unplaced}
        found, broken = self._indexed([d for d in sizes if d not in self._located], sizes)
        with self._pack_lock:
            for i, digest, piece in unplaced:
                ref = self._located.get(digest)
                if ref is None and digest in found:
                    ref = self._located[digest] = found[digest]
                if ref is None and digest in broken and digest not in self._known:
                    self.objects.put(chunk_key(digest), piece)  # its pack is cut short: a loose copy repairs it
                    self._known.add(digest)
                if ref is None and digest in self._known:
                    ref = ChunkRef(digest, len(piece))
                refs[i] = ref if ref is not None else self._pack_add(digest, piece)
        unplaced.clear()

    def _indexed(self, digests: Sequence[str], sizes: dict[Digest, int]) -> tuple[dict[str, ChunkRef], set[str]]:
        """The chunk index's packed copies of these chunks, each checked to fit in its pack (one size check per
        pack); and the chunks whose pack is too short to hold them (truncated), to be written again."""
        if not digests or self.index is None:
            return {}, set()
        held: dict[str, int | None] = {}
        found: dict[str, ChunkRef] = {}
        broken: set[str] = set()
        for digest, (pack, offset) in self.index.lookup(digests).items():
            if pack not in held:
                held[pack] = self.objects.size(pack_key(pack))
            size = sizes[Digest(digest)]
            stored = held[pack]
            if stored is not None and stored >= offset + size:
                found[digest] = ChunkRef(Digest(digest), size, pack, offset)
            else:
                broken.add(digest)
        return found, broken

    def write_stream(self, stream: BinaryIO, progress: Progress | None = None) -> FileNode:
        # views from cut_stream are reused for the next chunk, so each is copied
        return self._write_chunks((bytes(c.data) for c in self._cdc.cut_stream(stream)), progress)

    def _write_one(self, data: bytes, progress: Progress | None) -> FileNode:
        """A file of one chunk (no larger than FastCDC's minimum), on the calling thread: a pool's round trip
        costs more than hashing it (a datum's 20-byte output)."""
        if not data:
            return FileNode(())
        ref = self._hash_and_store(data)
        if progress is not None:
            progress(ref.size)
        return FileNode((ref,))

    def write_bytes(self, data: bytes, progress: Progress | None = None) -> FileNode:
        if len(data) <= self._cdc.min_size:
            return self._write_one(data, progress)
        return self._write_chunks((c.data for c in self._cdc.cut_buf(data)), progress)

    def write_file(self, path: Path, progress: Progress | None = None, packed: bool = False,
                   size: int | None = None) -> FileNode:
        """A local file's chunks; ``packed`` puts new ones in the open pack (``write_many``: ``seal`` it).
        ``size``: what the caller's own stat of the file said (one stat less)."""
        if size is None:
            size = os.path.getsize(path)
        if size == 0:
            return FileNode(())
        if size <= self._cdc.min_size:  # one chunk: read, hashed and stored here, not by way of the pool
            data = _read_small(path, self._cdc.min_size)
            if len(data) > self._cdc.min_size:  # it grew since: chunked as any file
                return self.write_bytes(data, progress)
            return self._write_one(data, progress)
        if size < _PARALLEL_CUT:
            # views into the file's mmap stay valid while referenced: no copy
            return self._write_chunks((c.data for c in self._cdc.cut_file(str(path))), progress, packed)
        with open(path, "rb") as fh:
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        # not closed here: the chunks are views into it, and it goes when the last of them does
        return self._write_chunks(self._cut_in_halves(memoryview(mapped)), progress, packed)

    def _cut_in_halves(self, data: memoryview) -> Iterator[memoryview]:
        """FastCDC's chunks of ``data``, exactly as one pass gives them, with the second half cut on another
        thread meanwhile (cutting is a third of a large put's CPU, and FastCDC releases the GIL).

        A chunk depends only on the bytes from its start, so every chunk of the first half but its last (which
        the half's end may have cut short) is right. The second half is cut as if a chunk began at its start;
        from the first half's last right boundary, this thread cuts on until it reaches a boundary the second
        half also has, and from there the second half's chunks are the one pass's. Should no boundary ever
        match, this thread cuts to the end: the chunks are the same, only slower.
        """
        half = len(data) // 2
        second = self._pool.submit(lambda: [c.offset + c.length + half for c in self._cdc.cut_buf(data[half:])])
        at = 0
        pending: memoryview | None = None
        for chunk in self._cdc.cut_buf(data[:half]):
            if pending is not None:
                yield pending
            pending, at = chunk.data, chunk.offset
        ends = second.result()
        known = {end: i for i, end in enumerate(ends)}
        for chunk in self._cdc.cut_buf(data[at:]):
            end = at + chunk.offset + chunk.length
            yield chunk.data
            if end in known:
                start = end
                for later in ends[known[end] + 1:]:
                    yield data[start:later]
                    start = later
                return

    def write_many(self, files: Iterable[tuple[str, int]], progress: Progress | None = None) -> list[FileNode]:
        """Write many files, given as (path, size), in order.

        Files no larger than FastCDC's minimum chunk are always exactly one
        chunk; they skip the chunker. Every file's new chunks are appended to
        packs of about ``PACK_TARGET`` bytes, so ingesting many small files, or
        one large one, creates a few objects instead of one per chunk. The packs
        are sealed (durable, indexed) before this returns.

        One call at a time per ContentStore: a failing call abandons the open
        pack, which another concurrent call could be filling. (Pipeline workers
        write loose objects and never call this concurrently.)
        """
        nodes: list[FileNode] = []
        small: list[str] = []
        try:
            for path, size in files:
                if size <= self._cdc.min_size:
                    small.append(path)
                    if len(small) >= _SMALL_BATCH:
                        nodes.extend(self._write_small_batch(small, progress))
                        small = []
                    continue
                nodes.extend(self._write_small_batch(small, progress))
                small = []
                nodes.append(self.write_file(Path(path), progress, packed=True))
            nodes.extend(self._write_small_batch(small, progress))
            self.seal()
        except BaseException:
            with self._pack_lock:
                self._abandon_pack()
            raise
        return nodes

    def seal(self) -> None:
        """Write the open pack, make every written pack durable, then index them (no-op when nothing is pending)."""
        with self._pack_lock:
            try:
                self._write_pack()
                while self._pack_writes:
                    self._pack_writes.popleft().result()
                if self._unindexed:
                    self.objects.flush()  # the index must never point at bytes a crash could lose
                    if self.index is not None:
                        self.index.record(self._unindexed)
                    self._unindexed = []
            except BaseException:  # a pack that may not be stored: no later put may dedup into it
                self._abandon_pack()
                raise

    def _write_small_batch(self, paths: list[str], progress: Progress | None) -> list[FileNode]:
        if not paths:
            return []
        # a few slices per thread: enough parallel reads for a cold disk, little overhead for a warm one
        step = max(1, len(paths) // 4)
        slices = [paths[i : i + step] for i in range(0, len(paths), step)]
        datas = [d for part in self._pool.map(_read_all, slices) for d in part]
        limit = self.small_file_limit
        if all(len(d) <= limit for d in datas):
            return self.write_small(datas, progress)
        # a file grew past one chunk since it was listed: chunked as any file, so its chunks are canonical
        return [node for d in datas
                for node in (self.write_small([d], progress) if len(d) <= limit else [self.write_bytes(d, progress)])]

    @property
    def small_file_limit(self) -> int:
        """Files up to this size are one chunk each and go into packs (``write_small``)."""
        return int(self._cdc.min_size)

    def write_small(self, datas: list[bytes], progress: Progress | None = None) -> list[FileNode]:
        """Files no larger than ``small_file_limit``, appended to packs; ``seal()`` before a commit uses them."""
        digests = [Digest(blake3.blake3(d).hexdigest()) for d in datas]
        sizes = {d: len(data) for d, data in zip(digests, datas, strict=True)}
        unknown = [d for d in sizes if d not in self._located]
        found, broken = self._indexed(unknown, sizes)
        nodes = []
        empty = FileNode(())
        bad = self.suspects()
        # packed or not, a good loose copy repairs a flagged chunk, or one whose pack is cut short
        for repaired in [d for d in sizes if d in bad or (d in broken and d not in found)]:
            self.objects.put(chunk_key(repaired), datas[digests.index(repaired)])
            if repaired in bad:
                self.unflag(repaired)
            if repaired in broken:
                self._known.add(repaired)
        with self._pack_lock:  # guards pack state against seal() from another thread
            for digest, ref in found.items():
                self._located[digest] = ref
            for data, digest in zip(datas, digests, strict=True):
                if not data:
                    nodes.append(empty)
                elif digest in broken and digest not in self._located:
                    nodes.append(FileNode((ChunkRef(digest, len(data)),)))
                else:
                    ref = self._located.get(digest) or self._pack_add(digest, data)
                    nodes.append(FileNode((ref,)))
        if progress is not None:
            for data in datas:
                progress(len(data))
        return nodes

    def _pack_add(self, digest: Digest, data: bytes | memoryview) -> ChunkRef:
        """Append a chunk to the open pack (caller holds the pack lock); a full pack goes to be written."""
        if self._pack_id is None:
            self._pack_id = uuid.uuid4().hex
        ref = ChunkRef(digest, len(data), self._pack_id, self._pack_size)
        self._pack.append(data)
        self._pack_size += len(data)
        self._located[digest] = ref
        self._pack_rows.append((digest, self._pack_id, ref.offset, ref.size))
        if self._pack_size >= PACK_TARGET:
            self._write_pack()
        return ref

    def _write_pack(self) -> None:
        """Send the open pack to be stored on the pool; ``seal`` waits for it, flushes and indexes it (caller holds
        the pack lock). At most ``_PACK_WRITES`` are in flight: a large put holds a bounded share of its file."""
        if self._pack_id is None:
            return
        key, parts = pack_key(self._pack_id), self._pack
        self._pack_writes.append(self._pool.submit(self._store_pack, key, parts))
        self._unindexed.extend(self._pack_rows)
        self._pack_id, self._pack, self._pack_size, self._pack_rows = None, [], 0, []
        while len(self._pack_writes) > _PACK_WRITES:
            self._pack_writes.popleft().result()

    def _store_pack(self, key: str, parts: list[bytes | memoryview]) -> None:
        self.objects.put_parts(key, parts)  # no join: the parts are written one after another

    def _abandon_pack(self) -> None:
        """Forget packed chunks that were not sealed (a failed write): they must not be reused. Packs still being
        written are waited for (their objects, never indexed, are garbage for gc)."""
        while self._pack_writes:
            with contextlib.suppress(BaseException):
                self._pack_writes.popleft().result()
        for digest, *_ in [*self._pack_rows, *self._unindexed]:
            self._located.pop(digest, None)
        self._pack_id, self._pack, self._pack_size, self._pack_rows, self._unindexed = None, [], 0, [], []

    def append(self, old: FileNode, added: FileNode, name: str) -> FileNode:
        """Content of ``old`` followed by ``added``, chunked canonically.

        Only the last chunk of ``old`` and the added bytes are read again.
        """
        if not old.chunks:
            return self.rechunk(added, name)
        tail = FileNode(old.chunks[-1:] + added.chunks)
        return FileNode(old.chunks[:-1] + self.rechunk(tail, name).chunks)

    def rechunk(self, node: FileNode, name: str) -> FileNode:
        if len(node.chunks) <= 1 and (not node.chunks or node.chunks[0].size < self._cdc.min_size):
            return node
        return self.write_stream(_ChunkReader(self, node, name))  # type: ignore[arg-type]

    # -- reading -------------------------------------------------------------
    def has_chunk(self, ref: ChunkRef) -> bool:
        """Whether the object holding this chunk exists and is big enough to hold it; no hashing (a loose
        repair copy of a packed chunk counts)."""
        if ref.pack is None:
            return self.objects.size(chunk_key(ref.digest)) == ref.size
        held = self.objects.size(pack_key(ref.pack))
        if held is not None and held >= ref.offset + ref.size:
            return True
        return self.objects.size(chunk_key(ref.digest)) == ref.size

    def read_chunk(self, ref: ChunkRef, name: str, verify: bool = True) -> bytes:
        """The chunk's bytes, verified. A bad copy is flagged (so a put of the same bytes repairs it); a packed
        chunk whose pack copy is bad is read from its loose copy when a repair wrote one."""
        return self._repairable(ref, name, lambda copy: self.read_copy(copy, name, verify))

    def fill_chunk(self, ref: ChunkRef, name: str, out: memoryview, verify: bool = True) -> None:
        """``read_chunk`` into ``out`` (exactly the chunk's size): no bytes object, no copy."""
        def fill(copy: ChunkRef) -> None:
            key, offset = (pack_key(copy.pack), copy.offset) if copy.pack is not None else (chunk_key(copy.digest), 0)
            got = self._stored(copy, name, lambda: self.objects.read_into(key, offset, out))
            self._check(copy, name, got, out, verify)

        self._repairable(ref, name, fill)

    def _repairable(self, ref: ChunkRef, name: str, read: Callable[[ChunkRef], _T]) -> _T:
        try:
            return read(ref)
        except (ObjectCorrupt, ObjectMissing) as exc:
            if ref.pack is not None and self.objects.exists(chunk_key(ref.digest)):
                loose = ChunkRef(ref.digest, ref.size)
                with contextlib.suppress(ObjectCorrupt, ObjectMissing):
                    return read(loose)
            if isinstance(exc, ObjectCorrupt):
                with contextlib.suppress(TuskError):  # best effort: a read-only store still reports the error
                    self.flag(ref.digest, str(exc))
            raise

    def read_copy(self, ref: ChunkRef, name: str, verify: bool = True) -> bytes:
        """The bytes of exactly this stored copy, verified: no fallback, no flagging (what ``fsck`` repairs from)."""
        if ref.pack is not None:
            pack = ref.pack
            data = self._stored(ref, name, lambda: self.objects.get_range(pack_key(pack), ref.offset, ref.size))
        else:
            data = self._stored(ref, name, lambda: self.objects.get(chunk_key(ref.digest)))
        self._check(ref, name, len(data), data, verify)
        return data

    @staticmethod
    def _stored(ref: ChunkRef, name: str, read: Callable[[], _T]) -> _T:
        try:
            return read()
        except ObjectMissing:
            raise ObjectMissing(
                f"{name}: chunk {ref.digest[:16]}… is missing from the object store; put the same file again "
                "to restore it, and run `tusk fsck`"
            ) from None

    @staticmethod
    def _check(ref: ChunkRef, name: str, size: int, data: bytes | memoryview, verify: bool) -> None:
        if size != ref.size or (verify and blake3.blake3(data).hexdigest() != ref.digest):
            raise ObjectCorrupt(
                f"{name}: chunk {ref.digest[:16]}… is corrupt (its bytes do not match their hash);"
                " refusing to return wrong data. Put the same file again to repair it, or run `tusk fsck --repair`"
            )

    def read_into(self, node: FileNode, name: str, out: memoryview, verify: bool = True) -> None:
        """Fill ``out`` (``node.size`` bytes) with the file, its chunks read in parallel straight into their
        places: no bytes object per chunk, no join. ``verify=False`` as for ``iter_bytes``."""
        if len(out) != node.size:
            raise ValueError(f"{name}: a buffer of {len(out)} bytes for a file of {node.size}")
        window: deque[Future[None]] = deque()
        at = 0
        try:
            for ref in node.chunks:
                window.append(self._pool.submit(self.fill_chunk, ref, name, out[at:at + ref.size], verify))
                at += ref.size
                if len(window) > _IN_FLIGHT:
                    window.popleft().result()
            while window:
                window.popleft().result()
        finally:  # on an error, no read may still be writing into ``out`` once this returns
            for pending in window:
                pending.cancel()
            for pending in window:
                with contextlib.suppress(BaseException):
                    pending.result()

    def iter_bytes(self, node: FileNode, name: str, offset: int = 0, verify: bool = True) -> Iterator[bytes]:
        """Yield the file's bytes from ``offset``; each chunk is verified first.

        ``verify=False`` is for callers that hash the whole file against a
        digest of their own (model manifests): the bytes are checked once, not twice.
        """
        if len(node.chunks) == 1:  # one chunk (every small file): read here, no pool round trip
            if offset < node.chunks[0].size:
                data = self.read_chunk(node.chunks[0], name, verify)
                yield data[offset:] if offset else data
            return
        window: deque[Future[bytes]] = deque()
        refs = iter(node.chunks)
        skip = offset
        for ref in refs:
            if skip >= ref.size:
                skip -= ref.size
                continue
            window.append(self._pool.submit(self.read_chunk, ref, name, verify))
            break
        for ref in refs:
            window.append(self._pool.submit(self.read_chunk, ref, name, verify))
            if len(window) > _IN_FLIGHT:
                data = window.popleft().result()
                yield data[skip:] if skip else data
                skip = 0
        while window:
            data = window.popleft().result()
            yield data[skip:] if skip else data
            skip = 0

    def open(self, node: FileNode, name: str) -> _ChunkReader:
        return _ChunkReader(self, node, name)


def _read_small(path: Path | str, limit: int) -> bytes:
    """A small file's bytes, read until its end or past ``limit`` (one that grew is seen to have), by os calls:
    a file object adds an fstat, an isatty and two seeks to a datum's one tiny output."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        parts: list[bytes] = []
        total = 0
        while total <= limit:
            data = os.read(fd, limit + 1 - total)
            if not data:
                break
            parts.append(data)
            total += len(data)
        if total > limit:  # grown past one chunk: the rest of it too
            while data := os.read(fd, 1 << 20):
                parts.append(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)
    finally:
        os.close(fd)


def _read_all(paths: list[str]) -> list[bytes]:
    out = []
    for path in paths:
        with open(path, "rb") as fh:
            out.append(fh.read())
    return out


class _ChunkReader(SeekableReader):
    """A read-only, seekable file object over a file's chunks."""

    def __init__(self, content: ContentStore, node: FileNode, name: str) -> None:
        super().__init__(node.size, name)
        self._content = content
        self._node = node
        self._it: Iterator[bytes] | None = None
        self._buf = b""

    def _moved(self) -> None:
        self._it, self._buf = None, b""

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._it is None:
            self._it = self._content.iter_bytes(self._node, self.name, self._pos)
        while not self._buf:
            try:
                self._buf = next(self._it)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        self._pos += n
        return n
