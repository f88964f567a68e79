"""Pipeline code as data: a code directory stored as a content-addressed tree, run from a per-digest cache.

At ``pipeline create/update`` the code directory is stored in the object store
with the same chunks (``chunks/<blake3>``) and directory objects
(``tusk-tree:v1``) as repo files, and the version records the root tree's
digest. Code files are written as loose chunks, never packed, so the digest is
a function of the files alone: a remote client computes it locally
(``hash_code``) and uploads nothing when the server already holds it.

A job never runs a local directory: it materializes the digest into
``$TUSK_HOME/cache/code/<digest>`` (written to a temporary directory, checked,
then renamed), and re-hashes a cached copy before each job, so edits to the
source directory or to the cache change nothing. Bytes that do not match the
digest are an ``IntegrityError`` naming the pipeline and version; the job fails
before any datum runs. See docs/decisions/0009-pipeline-code-as-data.md.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import blake3
import pyfastcdc

from tusk.errors import IntegrityError, InvalidArgument, ObjectCorrupt
from tusk.ids import Digest
from tusk.pipelines.code import code_files
from tusk.storage.content import AVG_CHUNK, ChunkRef, FileNode
from tusk.versioning.context import Context
from tusk.versioning.statcache import settled, signature
from tusk.versioning.trees import EMPTY_TREE, Entry, encode_entries, file_entry, tree_key

__all__ = ["CODE_LIMIT", "CodeStore", "CodeTree", "JobCode", "PipelineCode", "hash_code"]

CODE_LIMIT = 64 << 20  # the same cap as an upload (transfer.tar_directory)
_Layout = dict[str, Union["_Layout", Path]]


@dataclass(frozen=True)
class CodeTree:
    """A code directory as a tree: its root digest, and the chunks it is made of."""

    digest: Digest
    files: int
    size: int
    chunks: frozenset[str] = field(repr=False)


@dataclass(frozen=True)
class PipelineCode:
    """What a pipeline version records about its code.

    ``tree`` is the stored code (EMPTY_TREE for a pipeline created without
    code). None only for versions made before code was stored, or an implicit
    code directory (an embedded dict spec's cwd) too large to store: those run
    in ``directory`` on the host, as before.
    """

    tree: Digest | None
    info: dict[str, Any]  # describe_code of the source directory, plus "tree"
    directory: str = ""  # where the code came from (informational once stored)


@dataclass(frozen=True)
class JobCode:
    """What a job's datums run: the stored tree (materialized on each worker), and its directory on this host."""

    tree: Digest | None
    local: Path
    label: str  # "pipeline NAME version N", for errors
    image: dict[str, Any] | None = None  # the version's image record (tusk.pipelines.images.resolve_image)


def _files(directory: Path, limit: int) -> list[tuple[str, Path, int]]:
    """(relative path, local path, size) of the code files, with the skip rules of uploads and code digests."""
    out: list[tuple[str, Path, int]] = []
    total = 0
    for local in code_files(directory):
        size = local.stat().st_size
        total += size
        if total > limit:
            raise InvalidArgument(f"{directory} holds more than {limit >> 20} MiB; move data out of the "
                                  "code directory (put it in a repo) and try again")
        out.append((local.relative_to(directory).as_posix(), local, size))
    return out


def _layout(files: list[tuple[str, Path, int]]) -> _Layout:
    root: _Layout = {}
    for rel, local, _ in files:
        parts = rel.split("/")
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            assert isinstance(child, dict)
            node = child
        node[parts[-1]] = local
    return root


def _build(layout: _Layout, nodes: dict[Path, FileNode], put_dir: Callable[[Digest, bytes], None]
           ) -> tuple[Digest, int]:
    """The tree of ``layout`` bottom-up, as ``TreeStore.store`` encodes it; ``put_dir`` gets each directory."""
    entries: list[Entry] = []
    for name in sorted(layout):
        child = layout[name]
        if isinstance(child, dict):
            digest, size = _build(child, nodes, put_dir)
            entries.append(Entry(name, "dir", size, digest))
        else:
            entries.append(file_entry(name, nodes[child]))
    data = encode_entries(entries)
    digest = Digest(blake3.blake3(data).hexdigest())
    if digest != EMPTY_TREE:
        put_dir(digest, data)
    return digest, sum(e.size for e in entries)


def _hash_file(path: Path) -> FileNode:
    """The chunks ``ContentStore.write_file`` would write for this file, without writing them."""
    if os.path.getsize(path) == 0:
        return FileNode(())
    cdc = pyfastcdc.FastCDC(avg_size=AVG_CHUNK)
    return FileNode(tuple(ChunkRef(Digest(blake3.blake3(c.data).hexdigest()), len(c.data))
                          for c in cdc.cut_file(str(path))))


def _tree(directory: Path, node_of: Callable[[Path], FileNode], put_dir: Callable[[Digest, bytes], None],
          limit: int) -> CodeTree:
    files = _files(directory, limit)
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="tusk-code") as pool:
        nodes = dict(zip([f[1] for f in files], pool.map(node_of, [f[1] for f in files]), strict=True))
    digest, size = _build(_layout(files), nodes, put_dir)
    chunks = frozenset(c.digest for n in nodes.values() for c in n.chunks)
    return CodeTree(digest, len(files), size, chunks)


def _signature(directory: Path) -> str | None:
    """The stat signature (``statcache.signature``) of the code files in ``directory``, as ``hash_code`` lists
    them, or None while one of them is too young for its stat to be trusted (``statcache.settled``)."""
    began = time.time_ns()
    stats = [(local.relative_to(directory).as_posix(), local.lstat()) for local in code_files(directory)]
    if not all(settled(st, began) for _, st in stats):
        return None
    return signature(stats)


def hash_code(directory: Path, limit: int = CODE_LIMIT) -> CodeTree:
    """The tree digest ``CodeStore.store`` would record for ``directory``, computed locally (nothing is written)."""
    return _tree(directory, _hash_file, lambda digest, data: None, limit)


class CodeStore:
    """Stores code directories as trees, tells whether one is stored, and materializes one by digest."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._present: dict[str, frozenset[str]] = {}  # trees this process found complete: their chunks
        self._lock = threading.Lock()

    def has(self, digest: str) -> bool:
        """Whether the tree and every chunk under it are in the store (and none is known bad)."""
        if digest == EMPTY_TREE:
            return True
        chunks = self._present.get(digest)
        if chunks is None:
            try:
                refs = [ref for _, entry in self.ctx.trees.walk(digest) for ref in
                        (entry.file.chunks if entry.file else ())]
            except IntegrityError:
                return False
            if not all(self.ctx.content.has_chunk(ref) for ref in refs):
                return False
            chunks = frozenset(ref.digest for ref in refs)
        if chunks & self.ctx.content.suspects():  # a read found one bad: a store rewrites it
            self._present.pop(digest, None)
            return False
        self._present[digest] = chunks
        return True

    def store(self, directory: Path, limit: int = CODE_LIMIT) -> CodeTree:
        """Store ``directory`` (hashed locally first: an already stored tree writes nothing) and return its tree."""
        local = hash_code(directory, limit)
        if self.has(local.digest):
            return local

        def put_dir(digest: Digest, data: bytes) -> None:  # always written: this is a first store or a repair
            self.ctx.objects.put(tree_key(digest), data)

        stored = _tree(directory, self.ctx.content.write_file, put_dir, limit)
        self.ctx.objects.flush()  # durable before a version names it
        if stored.digest != local.digest:
            raise InvalidArgument(f"the files in {directory} changed while they were being stored; try again")
        self._present[stored.digest] = stored.chunks
        return stored

    def materialize(self, digest: str, cache: Path, label: str) -> Path:
        """The code tree as a directory in ``cache`` (``cache/<digest>``), checked against its digest.

        A cached copy is re-hashed first and rebuilt when anything in it changed;
        a stored object that fails verification raises ``IntegrityError`` naming
        ``label`` (the pipeline and version).
        """
        target = cache / digest
        with self._lock:
            if target.is_dir():
                with contextlib.suppress(InvalidArgument, OSError):
                    if self._verified(cache, digest, target):
                        return target
                (cache / f".verified-{digest}").unlink(missing_ok=True)
                aside = cache / f".stale-{uuid.uuid4().hex}"
                with contextlib.suppress(OSError):
                    target.rename(aside)
                shutil.rmtree(aside, ignore_errors=True)
            cache.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=cache, prefix=".tmp-"))
            try:
                self._write(digest, staging)
            except IntegrityError as exc:
                shutil.rmtree(staging, ignore_errors=True)
                self._present.pop(digest, None)
                raise IntegrityError(f"{label}: its stored code {digest[:16]}… failed verification, so the job "
                                     f"did not run ({exc}). Store the code again with `tusk pipeline update -f "
                                     "SPEC` from its directory") from None
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            try:
                staging.rename(target)
            except OSError:  # another process materialized it first
                shutil.rmtree(staging, ignore_errors=True)
                if not target.is_dir():
                    raise
            return target

    @staticmethod
    def _verified(cache: Path, digest: str, target: Path) -> bool:
        """Whether the cached copy still holds the tree ``digest``.

        Hashing it every job cost as much as the job when the code directory is large (3 s a job for 20,000
        files), so, as git's index and the put stat cache do, the stats of a copy found right are kept beside
        it (``.verified-<digest>``): a copy whose files' stats are all the same (path, size, inode, device,
        mtime, ctime) is not hashed again. Any write, rename or chmod moves a file's ctime, which no user can
        set back. Stats are kept only once every file is older than ``statcache.RACY_NS``, so a change in the
        same tick as the check cannot hide behind equal stats.
        """
        marker = cache / f".verified-{digest}"
        signature = _signature(target)
        if signature is not None and marker.is_file() and marker.read_bytes() == signature.encode():
            return True
        if hash_code(target).digest != digest:
            return False
        if signature is not None:
            staging = cache / f".tmp-{uuid.uuid4().hex}"
            try:
                staging.write_bytes(signature.encode())
                os.replace(staging, marker)
            except OSError:  # no stats kept (a full disk): the copy is right all the same, hashed again next time
                with contextlib.suppress(OSError):
                    staging.unlink(missing_ok=True)
        return True

    def _write(self, digest: str, staging: Path) -> None:
        os.chmod(staging, 0o755)  # the sandbox reads it as an unprivileged user
        for path, entry in self.ctx.trees.walk(digest):
            assert entry.file is not None
            local = staging / path.lstrip("/")
            if not local.parent.is_dir():
                local.parent.mkdir(parents=True, exist_ok=True)
            with open(local, "wb") as fh:
                for piece in self.ctx.content.iter_bytes(entry.file, f"code {path}"):
                    fh.write(piece)
            # trees keep no file modes: every code file may be run (`cmd: ["./train.sh"]`), as a checkout's
            # scripts usually are; the copy is read-only to the code anyway
            os.chmod(local, 0o755)
        for root, dirs, _ in os.walk(staging):
            for d in dirs:
                os.chmod(Path(root) / d, 0o755)
        got = hash_code(staging).digest
        if got != digest:
            raise ObjectCorrupt(f"the written files hash to {got[:16]}…")
