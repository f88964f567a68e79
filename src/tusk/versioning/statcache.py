"""The stat cache of ``put -r``: what a local file was stored as, keyed by what ``stat`` said of it.

As git's index and DVC's state database do, a re-put of a tree whose files have not changed reads none of
their bytes. An entry maps (store, absolute path) to the file's size, mtime, ctime, inode and device when it
was read, and to the chunks it was stored as. It is used only when all five are unchanged. A program cannot
set ctime (``utime`` sets mtime and changes ctime), so a file rewritten with its old size and mtime put back
is read again.

**Racy files.** A file changed within the timestamp granularity of its last read may look unchanged. An
entry is kept only for a file whose mtime and ctime are at least ``RACY_NS`` older than the moment the put
began; a younger file is read every time until it is older (git's "racily clean" rule, with a margin wide
enough for the coarsest filesystems' two-second timestamps).

**gc.** An entry names chunks a gc may have deleted since. It keeps the gc generation (``versioning.fence``)
it was made under and is used only under the same one: after a gc the next put reads every file once more.
Within a put, the fence checks what the put adds again before its commit lands.

**Directories.** A directory whose files all have entries (none racy) also gets one: its path and the repo
path it was put at, a signature of its files (name, size, mtime, ctime, inode, device), and the digest the repo
directory had in the commit that put landed. A re-put to a branch whose directory at that path still has
that digest, from a local directory whose signature is unchanged, has nothing to do there: putting those
files again would change nothing (the digest names the whole directory, so it still holds exactly what the
last put left). Its files are then not looked up one by one, nor staged as operations: a re-put of a tree
with one changed file costs the walk, one lookup per directory and the changed directory's files.

**Stores.** Entries are keyed by the store's identity (made when the store was created, migration 0011) and
its object store URL, so a store dropped and made again at the same place never reuses another's chunks.

The cache is an optimisation: when its file cannot be opened or written (a read-only home, a full disk, a
corrupt file), puts read every file, as without it, and the reason is logged.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from tusk.ids import Digest
from tusk.storage.content import ChunkRef, FileNode

__all__ = ["RACY_NS", "StatCache", "settled", "signature"]

RACY_NS = 2_000_000_000  # a file younger than this (mtime or ctime) when a put begins is not cached
_BATCH = 500  # paths per lookup query (SQLite's bound-parameter limit is far above)
_log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    store TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    dev INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    chunks TEXT NOT NULL,
    PRIMARY KEY (store, path)
)
"""

_DIR_SCHEMA = """
CREATE TABLE IF NOT EXISTS dirs (
    store TEXT NOT NULL,
    path TEXT NOT NULL,
    target TEXT NOT NULL,
    signature TEXT NOT NULL,
    generation INTEGER NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (store, path, target)
)
"""

Stat = tuple[int, int, int, int, int]  # size, mtime_ns, ctime_ns, inode, device


def settled(st: os.stat_result, began_ns: int) -> bool:
    """Whether a file is old enough, when a put began at ``began_ns``, for its stat to be trusted (racy files)."""
    limit = began_ns - RACY_NS
    return st.st_mtime_ns < limit and st.st_ctime_ns < limit


def signature(files: Sequence[tuple[str, os.stat_result]]) -> str:
    """What ``stat`` says of a directory's files (name, stat), in name order, as one digest. (The rows are
    marshalled: a format another Python version may change, which only makes every directory look changed.)"""
    rows = sorted((name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev) for name, st in files)
    return hashlib.blake2b(marshal.dumps(rows), digest_size=20).hexdigest()


def stat_key(st: os.stat_result) -> Stat:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev


def _encode(node: FileNode) -> str:
    return ";".join(f"{c.digest},{c.size},{c.pack or ''},{c.offset}" for c in node.chunks)


def _decode(text: str) -> FileNode:
    chunks = []
    for part in text.split(";") if text else ():
        digest, size, pack, offset = part.split(",")
        chunks.append(ChunkRef(Digest(digest), int(size), pack or None, int(offset)))
    return FileNode(tuple(chunks))


class StatCache:
    """One SQLite file per home (``HOME/cache/stat.db``), shared by the processes that put from this machine."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._broken = False

    def _connect(self, again: bool = True) -> sqlite3.Connection | None:
        if self._conn is not None or self._broken:
            return self._conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # losing the newest entries to a crash only costs reads
            conn.execute(_SCHEMA)
            conn.execute(_DIR_SCHEMA)
        except sqlite3.DatabaseError as exc:  # a corrupt or foreign file: start again, once
            if again and ("malformed" in str(exc) or "not a database" in str(exc)):
                _log.warning("the stat cache %s is unreadable (%s): starting a new one", self.path, exc)
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
                return self._connect(again=False)
            self._disable(exc)
            return None
        except (sqlite3.Error, OSError) as exc:
            self._disable(exc)
            return None
        self._conn = conn
        return conn

    def _disable(self, exc: BaseException) -> None:
        _log.warning("the stat cache %s cannot be used (%s): puts read every file", self.path, exc)
        self._broken = True
        self._conn = None

    def lookup(self, store: str, files: Sequence[tuple[str, os.stat_result]], generation: int
               ) -> list[FileNode | None]:
        """For each (absolute path, stat), the node it was stored as, if nothing about it changed since."""
        found: dict[str, tuple[Stat, int, str]] = {}
        with self._lock:
            conn = self._connect()
            if conn is None:
                return [None] * len(files)
            try:
                for at in range(0, len(files), _BATCH):
                    paths = [p for p, _ in files[at:at + _BATCH]]
                    marks = ",".join("?" * len(paths))
                    for row in conn.execute(
                            "SELECT path, size, mtime_ns, ctime_ns, ino, dev, generation, chunks FROM entries "
                            f"WHERE store = ? AND path IN ({marks})", (store, *paths)):
                        found[row[0]] = ((row[1], row[2], row[3], row[4], row[5]), row[6], row[7])
            except sqlite3.Error as exc:
                self._disable(exc)
                return [None] * len(files)
        out: list[FileNode | None] = []
        for path, st in files:
            hit = found.get(path)
            if hit is not None and hit[0] == stat_key(st) and hit[1] == generation:
                out.append(_decode(hit[2]))
            else:
                out.append(None)
        return out

    def record(self, store: str, files: Sequence[tuple[str, os.stat_result, FileNode]], generation: int,
               began_ns: int) -> int:
        """Remember what these files were stored as; files younger than ``RACY_NS`` before ``began_ns`` (when
        the put started walking) are left out. Returns how many entries were written."""
        rows = [(store, path, *stat_key(st), generation, _encode(node)) for path, st, node in files
                if settled(st, began_ns)]
        return self._replace("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def _replace(self, statement: str, rows: Sequence[tuple[object, ...]]) -> int:
        """Write rows in one transaction; how many (0 when the cache cannot be written: it is then disabled)."""
        if not rows:
            return 0
        with self._lock:
            conn = self._connect()
            if conn is None:
                return 0
            try:
                with conn:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany(statement, rows)
            except sqlite3.Error as exc:
                self._disable(exc)
                return 0
        return len(rows)

    def lookup_dirs(self, store: str, dirs: Sequence[tuple[str, str]], generation: int
                    ) -> dict[tuple[str, str], tuple[str, str]]:
        """For (absolute local directory, repo path) pairs, the (signature, repo directory digest) recorded."""
        found: dict[tuple[str, str], tuple[str, str]] = {}
        with self._lock:
            conn = self._connect()
            if conn is None:
                return found
            try:
                for at in range(0, len(dirs), _BATCH):
                    paths = sorted({p for p, _ in dirs[at:at + _BATCH]})
                    marks = ",".join("?" * len(paths))
                    for path, target, sig, digest in conn.execute(
                            "SELECT path, target, signature, digest FROM dirs WHERE store = ? AND generation = ? "
                            f"AND path IN ({marks})", (store, generation, *paths)):
                        found[(path, target)] = (sig, digest)
            except sqlite3.Error as exc:
                self._disable(exc)
                return {}
        return found

    def record_dirs(self, store: str, dirs: Sequence[tuple[str, str, str, str]], generation: int) -> int:
        """Remember (local directory, repo path, signature, repo directory digest) for directories a put landed."""
        return self._replace("INSERT OR REPLACE INTO dirs VALUES (?, ?, ?, ?, ?, ?)",
                             [(store, path, target, sig, generation, digest) for path, target, sig, digest in dirs])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
