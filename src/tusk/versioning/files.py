"""File operations on commits and branches: put, get, list, glob, diff, delete, copy."""

from __future__ import annotations

import builtins
import contextlib
import io
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select

from tusk.errors import Conflict, FileNotFound, InvalidArgument
from tusk.ids import normalize_path
from tusk.storage.content import ChunkRef, ContentStore, FileNode
from tusk.storage.metadata import StoreIdentityRow
from tusk.transfer import local_tree_stats
from tusk.versioning import refstore
from tusk.versioning.commits import CommitService
from tusk.versioning.context import Context, now
from tusk.versioning.fence import writer_token
from tusk.versioning.loading import Loader
from tusk.versioning.records import CommitInfo, DiffEntry, FileInfo
from tusk.versioning.refs import FileRef
from tusk.versioning.staging import Op
from tusk.versioning.statcache import StatCache, settled, signature
from tusk.versioning.trees import EMPTY_TREE, Entry, file_entry

__all__ = ["FileService", "Modification", "write_file_atomically"]

Progress = Callable[[int], None]


def write_file_atomically(target: Path, chunks: Iterable[bytes], progress: Progress | None = None) -> int:
    """Write ``chunks`` to a temporary name beside ``target``, then rename: an interrupted or failed (corrupt)
    download never leaves a truncated file in place. Returns the bytes written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tusk-partial")
    total = 0
    try:
        with open(tmp, "wb") as fh:
            for data in chunks:
                fh.write(data)
                total += len(data)
                if progress is not None:
                    progress(len(data))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return total


def _byte_range(content: ContentStore, node: FileNode, name: str, start: int, end: int) -> Iterator[bytes]:
    """Bytes ``[start, end)`` of a file, from the chunks that overlap them (verified, as every read is)."""
    chunks: list[ChunkRef] = []
    offset = first = 0
    for chunk in node.chunks:
        if offset + chunk.size > start and offset < end:
            if not chunks:
                first = offset
            chunks.append(chunk)
        offset += chunk.size
    left = max(0, min(end, offset) - start)
    if not left:
        return iter(())

    def pieces() -> Iterator[bytes]:
        nonlocal left
        for data in content.iter_bytes(FileNode(tuple(chunks)), name, start - first):
            piece = data[:left] if len(data) > left else data
            left -= len(piece)
            yield piece
            if not left:
                return

    return pieces()


def _info(path: str, e: Entry) -> FileInfo:
    return FileInfo(path, e.kind, e.size, e.digest, len(e.file.chunks) if e.file else 0)


@dataclass
class Modification(Loader):
    """A batch of file changes to one branch (or open commit), applied atomically.

    Bytes are chunked and stored as you go; nothing becomes visible until the
    batch lands. Used as a context manager: an exception discards the batch.
    """

    files: FileService
    repo: str
    target: str  # branch name or open commit id
    description: str | None = None
    progress: Progress | None = None
    ops: list[Op] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # what put_tree could not put (transfer.local_tree)
    after_land: Callable[[], None] | None = None
    started_at: datetime = field(default_factory=now)
    generation: int | None = None  # the gc generation before the first byte was stored (versioning.fence)
    cached_files: int = 0  # files put_tree took from the stat cache, unread
    # directories put_tree put: (local directory, repo path, signature, whether it was skipped whole), recorded
    # once the batch lands
    _landed_dirs: list[tuple[str, str, str, bool]] = field(default_factory=list)
    _landing_head: str | None = None  # the branch head the skips were checked against
    # the batch's operations when put_tree ended, or None once anything but one put_tree is in it: a directory's
    # digest after landing vouches for its files only if nothing else in the batch could have changed them
    _tree_ops: int | None = None

    def put_bytes(self, path: str, data: bytes, append: bool = False) -> None:
        self._put(path, self.files.ctx.content.write_bytes(data, self.progress), append)

    def put_stream(self, path: str, stream: BinaryIO, append: bool = False) -> None:
        self._put(path, self.files.ctx.content.write_stream(stream, self.progress), append)

    def put_file(self, path: str, source: Path, append: bool = False) -> None:
        """A local file, its new chunks in packs (``ContentStore.write_many``), sealed before this returns."""
        node = self.files.ctx.content.write_many([(str(source), os.path.getsize(source))], self.progress)[0]
        self._put(path, node, append)

    def put_tree(self, path: str, source: Path) -> int:
        """Put every file below a local directory under ``path``; return the count.

        Files the stat cache knows unchanged (``versioning.statcache``) are not read again, and a directory
        whose files are all unchanged, put where the branch still holds what the last put left, is skipped."""
        base = normalize_path(path).rstrip("/")
        began = time.time_ns()
        self._tree_ops = None if self.ops or self._landed_dirs else -1
        walked = list(local_tree_stats(Path(os.path.abspath(source)), self.skipped))
        cache, store = self.files.stat_cache()
        generation = self.generation if self.generation is not None else -1
        dirs = self._dirs(base, walked, began) if cache is not None else {}
        unchanged = self._unchanged_dirs(cache, store, dirs, generation) if cache is not None else set()
        todo = []
        for rel, local, st in walked:
            if unchanged and local.rpartition("/")[0] in unchanged:  # in a directory skipped whole
                if self.progress is not None:
                    self.progress(st.st_size)
            else:
                todo.append((f"{base}/{rel}", local, st))
        known = cache.lookup(store, [(local, st) for _, local, st in todo], generation) if cache else \
            [None] * len(todo)
        unread = [t for t, node in zip(todo, known, strict=True) if node is None]
        written = iter(self.files.ctx.content.write_many(((local, st.st_size) for _, local, st in unread),
                                                         self.progress))
        fresh: list[tuple[str, os.stat_result, FileNode]] = []
        for (target, local, st), node in zip(todo, known, strict=True):
            if node is None:
                node = next(written)
                fresh.append((local, st, node))
            elif self.progress is not None:
                self.progress(st.st_size)
            self._put(target, node, append=False)
        self.cached_files += len(walked) - len(unread)
        if cache is not None and fresh:
            cache.record(store, fresh, generation, began)
        self._landed_dirs += [(d, target, sig, d in unchanged) for d, (target, sig) in dirs.items()
                              if sig is not None]
        if self._tree_ops is not None:
            self._tree_ops = len(self.ops)
        return len(walked)

    @staticmethod
    def _dirs(base: str, walked: list[tuple[str, str, os.stat_result]], began: int
              ) -> dict[str, tuple[str, str | None]]:
        """Each local directory holding files → (its repo path, the signature of its files, None when one of
        them is too young to be trusted: see ``statcache``'s racy files)."""
        grouped: dict[str, tuple[str, list[tuple[str, os.stat_result]]]] = {}
        for rel, local, st in walked:
            directory, _, name = local.rpartition("/")
            group = grouped.get(directory)
            if group is None:
                group = grouped[directory] = (f"{base}/{rel.rpartition('/')[0]}".rstrip("/") or "/", [])
            group[1].append((name, st))
        return {d: (target, signature(files) if all(settled(st, began) for _, st in files) else None)
                for d, (target, files) in grouped.items()}

    def _unchanged_dirs(self, cache: StatCache, store: str, dirs: dict[str, tuple[str, str | None]],
                        generation: int) -> set[str]:
        """The local directories with nothing to put: unchanged since a put that left the branch's directory
        as it still is. Only for a put that lands as its own commit on a branch, first in its batch."""
        if self.ops or not dirs:
            return set()
        landing = self.files.landing_tree(self.repo, self.target)
        if landing is None:
            return set()
        self._landing_head, tree = landing
        recorded = cache.lookup_dirs(store, [(d, target) for d, (target, sig) in dirs.items() if sig], generation)
        unchanged: set[str] = set()
        for d, (target, sig) in dirs.items():
            hit = recorded.get((d, target))
            if hit is None or sig is None or hit[0] != sig:
                continue
            entry = self.files.ctx.trees.lookup(tree, target)
            if entry is not None and entry.kind == "dir" and entry.digest == hit[1]:
                unchanged.add(d)
        return unchanged

    def _record_dirs(self, commit: CommitInfo | None) -> None:
        """After the batch landed as a commit: each directory put, with the digest it has there.

        A skipped directory's digest changes too when a subdirectory of it did; it is recorded again only when
        the commit's parent is the head it was checked against: another writer's commit in between could have
        changed its files, which a skip next time would then leave as they are."""
        pending, self._landed_dirs = self._landed_dirs, []
        cache, store = self.files.stat_cache()
        if cache is None or commit is None or commit.tree is None or not pending or self._tree_ops != len(self.ops):
            return  # (another put, a delete... in the same batch: what it did would be taken as this put's)
        direct = self._landing_head is not None and commit.parent == self._landing_head
        rows = []
        for d, target, sig, skipped in pending:
            if skipped and not direct:
                continue
            entry = self.files.ctx.trees.lookup(commit.tree, target)
            if entry is not None and entry.kind == "dir":
                rows.append((d, target, sig, str(entry.digest)))
        cache.record_dirs(store, rows, self.generation if self.generation is not None else -1)

    @property
    def changes(self) -> int:
        return len(self.ops)

    @property
    def small_file_limit(self) -> int:
        """The largest file ``put_small`` takes: larger ones go through ``put_bytes`` or ``put_stream``."""
        return self.files.ctx.content.small_file_limit

    def put_small(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Put small files (each at most ``content.small_file_limit``) into packs, sealed before this returns."""
        if not items:
            return
        content = self.files.ctx.content
        nodes = content.write_small([data for _, data in items], self.progress)
        content.seal()
        for (path, _), node in zip(items, nodes, strict=True):
            self._put(path, node, append=False)

    def _put(self, path: str, node: FileNode, append: bool) -> None:
        path = normalize_path(path)
        if path == "/":
            raise InvalidArgument("a file needs a path inside the repo, not '/'")
        entry = file_entry(path.rsplit("/", 1)[-1], node)
        self.ops.append(Op("append" if append else "put", path, entry))

    def delete(self, path: str, missing_ok: bool = False) -> None:
        self.ops.append(Op("delete", normalize_path(path), missing_ok=missing_ok))

    def count_children(self, path: str) -> int:
        try:
            return len(self.files.list(FileRef(self.repo, self.target, 0, normalize_path(path), True)))
        except FileNotFound:
            return 0

    def copy(self, src: FileRef, dst_path: str) -> None:
        entry = self.files.lookup(src)
        if entry is None:
            raise FileNotFound(f"cannot copy {src}: no such file or directory")
        dst_path = normalize_path(dst_path)
        name = dst_path.rsplit("/", 1)[-1]
        self.ops.append(Op("put", dst_path, Entry(name, entry.kind, entry.size, entry.digest, entry.file)))

    def land(self) -> CommitInfo | None:
        """Apply the batch: stage into the open commit, or commit to the branch."""
        commit = self.files.apply(self.repo, self.target, self.ops, self.description, self.started_at,
                                  self.generation)
        self._record_dirs(commit)
        if self.after_land is not None:
            self.after_land()
        return commit


class FileService:
    def __init__(self, ctx: Context, commits: CommitService, stat_cache: Path | None = None) -> None:
        self.ctx = ctx
        self.commits = commits
        self._stat_cache = StatCache(stat_cache) if stat_cache is not None else None
        self._store_key: str | None = None

    def stat_cache(self) -> tuple[StatCache | None, str]:
        """The stat cache of ``put -r`` and this store's key in it (its identity and object store)."""
        if self._stat_cache is None:
            return None, ""
        if self._store_key is None:
            with self.ctx.db.read() as s:
                identity = s.scalar(select(StoreIdentityRow.store_id).where(StoreIdentityRow.id == 1))
            self._store_key = f"{identity}:{self.ctx.objects.url}"
        return self._stat_cache, self._store_key

    def landing_tree(self, repo: str, target: str) -> tuple[str, str] | None:
        """The commit (id, tree) a batch to ``target`` would land on as a new commit: the branch head, when
        ``target`` is a branch with a head and no open commit (None otherwise: the batch is staged, or there is
        no head)."""
        with self.ctx.db.read() as s:
            repo_row = self.ctx.repo_row(s, repo)
            head = refstore.head_id(s, repo_row.id, target)
            if head is None or self.commits.open_commit_on(s, repo_row, target) is not None:
                return None
            row = refstore.commit(s, head)
            if row is None or row.state == "open" or row.tree_digest is None:
                return None
            return row.id, row.tree_digest

    # -- writing -------------------------------------------------------------
    def modify(self, repo: str, target: str, description: str | None = None,
               progress: Progress | None = None) -> Modification:
        return Modification(self, repo, target, description, progress, generation=writer_token(self.ctx))

    def apply(self, repo: str, target: str, ops: Sequence[Op], description: str | None = None,
              started_at: datetime | None = None, generation: int | None = None) -> CommitInfo | None:
        """Open commit (by id, or the branch's open commit) → staged; else a new commit."""
        with self.ctx.db.read() as s:
            repo_row = self.ctx.repo_row(s, repo)
            open_id: str | None = None
            is_branch = refstore.branch_exists(s, repo_row.id, target)
            commit_id = self.commits.commit_id(s, repo_row, target) if not is_branch else None
            row = refstore.commit(s, commit_id) if commit_id is not None else None
            if row is not None and row.repo_id == repo_row.id:
                if row.state != "open":
                    raise Conflict(
                        f"commit {target} is finished; write to a branch (e.g. {repo}@{row.branch}) instead"
                    )
                open_id = row.id
            else:
                open_row = self.commits.open_commit_on(s, repo_row, target)
                open_id = open_row.id if open_row is not None else None
        if open_id is not None:
            self.commits.stage(open_id, ops, generation)
            return None
        return self.commits.land(repo, target, ops, description=description or "", started_at=started_at,
                                 generation=generation)

    # -- reading -------------------------------------------------------------
    def _tree(self, ref: FileRef) -> str:
        with self.ctx.db.read() as s:
            repo_row = self.ctx.repo_row(s, ref.repo)
            row = self.commits.resolve_row(s, repo_row, ref.ref, ref.ancestry)
            return self.commits.tree_of(s, row)

    def lookup(self, ref: FileRef) -> Entry | None:
        return self.ctx.trees.lookup(self._tree(ref), ref.path)

    def _file(self, ref: FileRef) -> Entry:
        entry = self.lookup(ref)
        if entry is None:
            raise FileNotFound(f"{ref}: no such file or directory")
        return entry

    def inspect(self, ref: FileRef) -> FileInfo:
        return _info(ref.path, self._file(ref))

    def list(self, ref: FileRef, limit: int | None = None, offset: int = 0) -> builtins.list[FileInfo]:
        """A directory's entries in name order (a file: itself); ``offset`` skips that many, ``limit`` keeps at
        most that many (none or 0: all)."""
        return [_info(p, e) for p, e in self.ctx.trees.list_dir(self._tree(ref), ref.path, offset, limit or None)]

    def walk(self, ref: FileRef) -> Iterator[FileInfo]:
        for p, e in self.ctx.trees.walk(self._tree(ref), ref.path):
            yield _info(p, e)

    def glob(self, ref: FileRef, pattern: str) -> builtins.list[FileInfo]:
        return [_info(p, e) for p, e in self.ctx.trees.glob(self._tree(ref), pattern)]

    def open(self, ref: FileRef) -> BinaryIO:
        entry = self._file(ref)
        if entry.kind != "file" or entry.file is None:
            raise InvalidArgument(f"{ref} is a directory; use `tusk get file -r` or list it")
        return io.BufferedReader(self.ctx.content.open(entry.file, str(ref)), buffer_size=1 << 20)

    def iter_bytes(self, ref: FileRef, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The file's bytes, or bytes ``[start, end)`` of it (clamped to its size, as a slice is), reading only
        the chunks that hold them: a ranged read of a big file costs the range, not the file."""
        entry = self._file(ref)
        if entry.kind != "file" or entry.file is None:
            raise InvalidArgument(f"{ref} is a directory; get it recursively")
        if start < 0 or (end is not None and end < 0):
            raise InvalidArgument(f"{ref}: a byte range is [start, end) with start, end >= 0 (got {start}, {end})")
        if start == 0 and end is None:
            return self.ctx.content.iter_bytes(entry.file, str(ref))
        return _byte_range(self.ctx.content, entry.file, str(ref), start, entry.size if end is None else end)

    def read_bytes(self, ref: FileRef, start: int = 0, end: int | None = None) -> bytes:
        return b"".join(self.iter_bytes(ref, start, end))

    def download(self, ref: FileRef, dest: Path, progress: Progress | None = None) -> int:
        """Write a file or a directory tree to ``dest``; return bytes written.

        Each file is written to a temporary name and renamed (``write_file_atomically``).
        """
        tree = self._tree(ref)
        root = self.ctx.trees.lookup(tree, ref.path)
        if root is None:
            raise FileNotFound(f"{ref}: no such file or directory")
        total = 0
        items = [(ref.path, root)] if root.kind == "file" else list(self.ctx.trees.walk(tree, ref.path))
        for path, entry in items:
            assert entry.file is not None
            rel = path[len(ref.path):].lstrip("/") if root.kind == "dir" else ""
            total += write_file_atomically(dest / rel if rel else dest, self.ctx.content.iter_bytes(
                entry.file, f"{ref.repo}@{ref.ref_text}:{path}"), progress)
        return total

    def diff(self, new: FileRef, old: FileRef | None = None, limit: int | None = None, offset: int = 0
             ) -> builtins.list[DiffEntry]:
        """Changes from ``old`` (default: the parent of ``new``) to ``new``, under new's path, in path order;
        ``offset`` skips that many, ``limit`` keeps at most that many (none or 0: all). The trees are compared
        as the changes are taken, so a page stops the comparison at its end."""
        new_tree = self._tree(new)
        if old is None:
            with self.ctx.db.read() as s:
                repo_row = self.ctx.repo_row(s, new.repo)
                row = self.commits.resolve_row(s, repo_row, new.ref, new.ancestry)
                parent = refstore.commit(s, row.parent_id) if row.parent_id else None
                old_tree = parent.tree_digest if parent is not None and parent.tree_digest else EMPTY_TREE
        else:
            old_tree = self._tree(old)
        prefix = new.path.rstrip("/")
        changes = ((path, a, b) for path, a, b in self.ctx.trees.diff(old_tree, new_tree)
                   if not prefix or path == prefix or path.startswith(prefix + "/"))
        return [DiffEntry(path, "added" if a is None else "deleted" if b is None else "modified",
                          a.size if a else None, b.size if b else None)
                for path, a, b in islice(changes, offset, offset + limit if limit else None)]
