"""File trees that share structure between commits.

A directory is an immutable object: its sorted entries, encoded as
``tusk-tree:v1`` and stored under the BLAKE3 of those bytes. A file entry holds
its chunk list inline; a directory entry holds its child's digest and the total
size below it. Changing one file rewrites only the directories on its path.

A directory of more than ``PARTS_ABOVE`` entries is stored in parts: each part
an ordinary ``tusk-tree:v1`` object of a run of its entries, and the directory's
object a ``tusk-tree-parts:v1`` index of them (each part's last name, entry
count, size and digest). A part ends after each entry whose name hashes to a
boundary (1 in ``_PART_MEAN``), so where parts end depends on the names alone:
the same entries give the same objects however they were written, and a change
rewrites the one part it falls in (with its neighbour when a boundary name goes)
and the index. A commit costs O(depth * part size + parts), not O(directory).
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice, pairwise
from typing import Literal, TypeVar

import blake3

from tusk.errors import Conflict, FileNotFound, ObjectCorrupt
from tusk.ids import Digest
from tusk.storage.content import ChunkRef, FileNode
from tusk.storage.objects import ObjectStore
from tusk.versioning.globs import compile_glob

__all__ = ["EMPTY_TREE", "PARTS_ABOVE", "Entry", "MutableTree", "TreeStore", "compile_glob", "tree_key"]

_TAG = b"tusk-tree:v1\n"
_PARTS_TAG = b"tusk-tree-parts:v1\n"
PARTS_ABOVE = 2048  # a directory of more entries than this is stored in parts
_PART_MEAN = 512  # entries per part, on average
Kind = Literal["file", "dir"]


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    kind: Kind
    size: int
    digest: Digest
    file: FileNode | None = None  # set for files


_ONE_BYTE = [bytes((i,)) for i in range(0x80)]


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _ONE_BYTE[n]
    if n < 0x4000:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_entries(entries: list[Entry]) -> bytes:
    parts = [_TAG, _varint(len(entries))]
    add = parts.append
    fromhex = bytes.fromhex
    for e in entries:
        name = e.name.encode()
        add(_varint(len(name)))
        add(name)
        add(b"f" if e.kind == "file" else b"d")
        add(_varint(e.size))
        add(fromhex(e.digest))
        if e.kind == "file":
            assert e.file is not None
            add(_varint(len(e.file.chunks)))
            for c in e.file.chunks:
                add(fromhex(c.digest))
                add(_varint(c.size))
                if c.pack is None:
                    add(b"\x00")
                else:
                    add(b"\x01")
                    add(fromhex(c.pack))
                    add(_varint(c.offset))
    return b"".join(parts)


def decode_entries(data: bytes) -> list[Entry]:
    """The entries of a ``tusk-tree:v1`` object, in one pass over its bytes with one hex conversion (a flat
    directory of 20,000 files is one 2 MB object, read by every commit and job that touches it)."""
    if not data.startswith(_TAG):
        raise ValueError("not a tusk-tree:v1 object")
    view = memoryview(data)
    hexed = data.hex()  # digests are slices of it: one conversion, not three per file
    end = len(data)
    pos = len(_TAG)

    def varint() -> int:
        nonlocal pos
        b = data[pos]
        pos += 1
        if b < 0x80:
            return b
        result, shift = b & 0x7F, 7
        while True:
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7

    try:
        count = varint()
        entries: list[Entry] = []
        append = entries.append
        for _ in range(count):
            n = varint()
            name = str(view[pos : pos + n], "utf-8")
            pos += n
            tag = data[pos]
            pos += 1
            size = varint()
            digest = Digest(hexed[2 * pos : 2 * pos + 64])
            pos += 32
            if tag == 0x66:  # b"f"
                chunks: list[ChunkRef] = []
                for _ in range(varint()):
                    chunk = Digest(hexed[2 * pos : 2 * pos + 64])
                    pos += 32
                    csize = varint()
                    packed = data[pos]
                    pos += 1
                    if packed:
                        pack = hexed[2 * pos : 2 * pos + 32]
                        pos += 16
                        chunks.append(ChunkRef(chunk, csize, pack, varint()))
                    else:
                        chunks.append(ChunkRef(chunk, csize))
                append(Entry(name, "file", size, digest, FileNode(tuple(chunks))))
            else:
                append(Entry(name, "dir", size, digest))
    except IndexError:
        raise ValueError("truncated") from None
    if pos > end:
        raise ValueError("truncated")
    return entries


def tree_key(digest: str) -> str:
    return f"trees/{digest[:2]}/{digest}"


EMPTY_TREE = Digest(blake3.blake3(encode_entries([])).hexdigest())


def file_entry(name: str, node: FileNode) -> Entry:
    return Entry(name, "file", node.size, node.digest, node)


def _ends_part(name: str) -> bool:
    """Whether a part of a large directory ends after this name (1 name in ``_PART_MEAN``)."""
    return int.from_bytes(blake3.blake3(name.encode()).digest(4), "little") % _PART_MEAN == 0


@dataclass(frozen=True, slots=True)
class _Part:
    last: str  # the name of its last entry
    count: int
    size: int
    digest: Digest


@dataclass(frozen=True, slots=True)
class _Parts:
    """The index of a directory stored in parts, in name order."""

    parts: tuple[_Part, ...]
    lasts: tuple[str, ...]  # each part's last name, for bisection

    @property
    def count(self) -> int:
        return sum(p.count for p in self.parts)

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)

    def find(self, name: str) -> int:
        """The part that holds ``name`` or would (the last part for names past every part's end)."""
        return min(bisect.bisect_left(self.lasts, name), len(self.parts) - 1)


def _encode_parts(parts: list[_Part]) -> bytes:
    out = [_PARTS_TAG, _varint(len(parts))]
    for p in parts:
        name = p.last.encode()
        out += [_varint(len(name)), name, _varint(p.count), _varint(p.size), bytes.fromhex(p.digest)]
    return b"".join(out)


def _varint_at(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    result = shift = 0
    for i in range(pos, len(data)):
        result |= (data[i] & 0x7F) << shift
        if data[i] < 0x80:
            return result, i + 1
        shift += 7
    raise IndexError


def _decode_parts(data: bytes) -> _Parts:
    try:
        parts = []
        count, pos = _varint_at(data, len(_PARTS_TAG))
        for _ in range(count):
            n, pos = _varint_at(data, pos)
            last = data[pos : pos + n].decode()
            pos += n
            entries, pos = _varint_at(data, pos)
            size, pos = _varint_at(data, pos)
            digest = data[pos : pos + 32]
            if len(digest) != 32:
                raise IndexError
            pos += 32
            parts.append(_Part(last, entries, size, Digest(digest.hex())))
    except (IndexError, UnicodeDecodeError):
        raise ValueError("truncated") from None
    if pos != len(data) or not parts or any(a.last >= b.last for a, b in pairwise(parts)):
        raise ValueError("a bad index of parts")
    return _Parts(tuple(parts), tuple(p.last for p in parts))


def _split(names: list[str]) -> list[list[str]]:
    """Sorted names in runs, each ending after a boundary name (the last run wherever the names end)."""
    runs: list[list[str]] = [[]]
    for name in names:
        runs[-1].append(name)
        if _ends_part(name):
            runs.append([])
    return [r for r in runs if r]


def _applied(entries: dict[str, Entry], changes: dict[str, Entry | None]) -> dict[str, Entry]:
    """``entries`` with each change made in place (None: the entry removed)."""
    for name, e in changes.items():
        if e is None:
            entries.pop(name, None)
        else:
            entries[name] = e
    return entries


_T = TypeVar("_T")


class _Missing:
    """Not in a cache."""


_MISSING = _Missing()


class TreeStore:
    """Reads and writes directory objects, with a small decoded cache."""

    def __init__(self, objects: ObjectStore, cache_size: int = 4096) -> None:
        self.objects = objects
        self._cache: OrderedDict[str, dict[str, Entry]] = OrderedDict()
        self._indexes: OrderedDict[str, _Parts | None] = OrderedDict()  # None: a directory in one object
        self._cache_size = cache_size

    def forget(self) -> None:
        """Drop the cache: ``store`` trusts it to skip writes, and a gc may have deleted those objects."""
        self._cache.clear()
        self._indexes.clear()

    def _remember(self, digest: str, entries: dict[str, Entry] | None, parts: _Parts | None) -> None:
        # (worker threads share the caches: an entry another thread just pushed out is no error)
        if entries is not None:
            self._cache[digest] = entries
            if len(self._cache) > self._cache_size:
                with contextlib.suppress(KeyError):
                    self._cache.popitem(last=False)
        self._indexes[digest] = parts
        if len(self._indexes) > self._cache_size:
            with contextlib.suppress(KeyError):
                self._indexes.popitem(last=False)

    @staticmethod
    def _recall(cache: OrderedDict[str, _T], digest: str) -> _T | _Missing:
        """A cached value, marked as just used; ``_MISSING`` if it is not there (or went meanwhile)."""
        value = cache.get(digest, _MISSING)
        if value is not _MISSING:
            with contextlib.suppress(KeyError):
                cache.move_to_end(digest)
        return value

    def parts(self, digest: str) -> _Parts | None:
        """The index of a directory stored in parts; None for one stored whole (then it is read, and cached)."""
        known = self._recall(self._indexes, digest)
        if not isinstance(known, _Missing):
            return known
        if digest == EMPTY_TREE:
            return None
        data = self._read(digest)
        if data.startswith(_PARTS_TAG):
            index = _decode_parts(data)
            self._remember(digest, None, index)
            return index
        self._remember(digest, self._decoded(data), None)
        return None

    def _read(self, digest: str) -> bytes:
        """A directory object's bytes, checked against its digest."""
        data = self.objects.get(tree_key(digest))
        if blake3.blake3(data).hexdigest() != digest:
            raise ObjectCorrupt(f"directory object {digest[:16]}… is corrupt; run `tusk fsck`")
        return data

    def part_digests(self, digest: str) -> list[Digest]:
        """The objects a directory's entries are stored in, beside its own (none for one stored whole)."""
        index = self.parts(digest)
        return [] if index is None else [p.digest for p in index.parts]

    @staticmethod
    def _decoded(data: bytes) -> dict[str, Entry]:
        decoded = decode_entries(data)
        if any(a.name >= b.name for a, b in pairwise(decoded)):
            decoded.sort(key=lambda e: e.name)  # (every writer sorts them; ``list_dir`` pages on that order)
        return {e.name: e for e in decoded}

    def load(self, digest: str) -> dict[str, Entry]:
        """Every entry of a directory, in name order (the dict is shared: do not change it)."""
        hit = self._recall(self._cache, digest)
        if not isinstance(hit, _Missing):
            return hit
        if digest == EMPTY_TREE:
            return {}
        index = self.parts(digest)
        if index is None:
            whole = self._cache.get(digest)
            if whole is None:  # (read, then pushed out of the cache by a smaller one)
                whole = self._decoded(self._read(digest))
                self._remember(digest, whole, None)
            return whole
        entries: dict[str, Entry] = {}
        for p in index.parts:
            entries.update(self._part(p))
        self._remember(digest, entries, index)
        return entries

    def _part(self, part: _Part) -> dict[str, Entry]:
        """One part's entries, checked against what the index says of it."""
        if self.parts(part.digest) is not None:
            raise ObjectCorrupt(f"directory part {part.digest[:16]}… is an index, not a part; run `tusk fsck`")
        entries = self.load(part.digest)
        if len(entries) != part.count or not entries or next(reversed(entries)) != part.last:
            raise ObjectCorrupt(f"directory part {part.digest[:16]}… does not match its index; run `tusk fsck`")
        return entries

    def entry(self, digest: str, name: str) -> Entry | None:
        """One entry of a directory (of one directory stored in parts, only its part is read)."""
        hit = self._cache.get(digest)
        if hit is not None:
            return hit.get(name)
        index = self.parts(digest)
        if index is None:
            return self.load(digest).get(name)
        i = bisect.bisect_left(index.lasts, name)
        return None if i == len(index.parts) else self._part(index.parts[i]).get(name)

    def size(self, digest: str) -> int:
        """The total size of the files below a directory."""
        index = self.parts(digest)
        return index.size if index is not None else sum(e.size for e in self.load(digest).values())

    def store(self, entries: dict[str, Entry]) -> tuple[Digest, int]:
        """Write a directory of these entries (in parts when there are many) and return its digest and size."""
        ordered = {k: entries[k] for k in sorted(entries)}
        if len(ordered) <= PARTS_ABOVE:
            return self._store_whole(ordered)
        parts = [self._store_part({name: ordered[name] for name in run}) for run in _split(list(ordered))]
        digest, index = self._store_index(parts)
        self._remember(digest, ordered, index)
        return digest, index.size

    def store_edited(self, base: str, changes: dict[str, Entry | None]) -> tuple[Digest, int]:
        """Write ``base`` (a directory stored in parts) with these entries set (None: removed): only the
        parts the changes fall in are read and written, and a neighbour where a part's boundary name goes."""
        index = self.parts(base)
        if index is None:
            return self.store(_applied(dict(self.load(base)), changes))
        by_part: dict[int, dict[str, Entry | None]] = {}
        for name, e in changes.items():
            by_part.setdefault(index.find(name), {})[name] = e
        parts: list[_Part] = []
        k, n = 0, len(index.parts)
        while k < n:
            if k not in by_part:
                parts.append(index.parts[k])
                k += 1
                continue
            run: dict[str, Entry] = {}
            while True:  # a run of parts, until it ends with a boundary name (or the directory ends)
                _applied(run, {**self._part(index.parts[k]), **by_part.get(k, {})})
                k += 1
                names = sorted(run)
                if k == n or (names and _ends_part(names[-1])):
                    break
            parts += [self._store_part({name: run[name] for name in r}) for r in _split(names)]
        if sum(p.count for p in parts) <= PARTS_ABOVE:  # small enough again: one object, as ``store`` makes it
            whole: dict[str, Entry] = {}
            for p in parts:
                whole.update(self._part(p))
            return self._store_whole(whole)
        digest, index = self._store_index(parts)
        return digest, index.size

    def _store_whole(self, ordered: dict[str, Entry]) -> tuple[Digest, int]:
        data = encode_entries(list(ordered.values()))
        digest = Digest(blake3.blake3(data).hexdigest())
        self._put(digest, data)
        self._remember(digest, ordered, None)
        return digest, sum(e.size for e in ordered.values())

    def _store_part(self, ordered: dict[str, Entry]) -> _Part:
        digest, size = self._store_whole(ordered)
        return _Part(next(reversed(ordered)), len(ordered), size, digest)

    def _store_index(self, parts: list[_Part]) -> tuple[Digest, _Parts]:
        data = _encode_parts(parts)
        digest = Digest(blake3.blake3(data).hexdigest())
        self._put(digest, data)
        index = _Parts(tuple(parts), tuple(p.last for p in parts))
        self._remember(digest, None, index)
        return digest, index

    def _put(self, digest: Digest, data: bytes) -> None:
        key = tree_key(digest)
        known = digest in self._cache or digest in self._indexes
        if digest != EMPTY_TREE and not known and not self.objects.exists(key):
            self.objects.put(key, data)

    # -- queries -------------------------------------------------------------
    def lookup(self, root: str, path: str) -> Entry | None:
        """The entry at ``path`` (normalized), or None; ``/`` is the root dir."""
        if path == "/":
            return Entry("", "dir", self.size(root), Digest(root))
        parts = path.strip("/").split("/")
        digest = root
        entry: Entry | None = None
        for i, part in enumerate(parts):
            entry = self.entry(digest, part)
            if entry is None:
                return None
            if entry.kind == "file" and i < len(parts) - 1:
                return None
            digest = entry.digest
        return entry

    def list_dir(self, root: str, path: str, offset: int = 0, limit: int | None = None) -> list[tuple[str, Entry]]:
        """A directory's entries in name order, from the ``offset``-th, at most ``limit`` of them.

        A directory stored whole is decoded (and cached) on its first read, and a page is a slice of its
        sorted entries; of one stored in parts, only the parts the page falls in are read.
        """
        entry = self.lookup(root, path)
        if entry is None:
            raise FileNotFound(f"no file or directory at {path}")
        if entry.kind == "file":
            return [(path, entry)][offset:offset + limit if limit else None]
        prefix = path.rstrip("/")
        index = self.parts(entry.digest)
        if index is None:
            items: Iterable[Entry] = self.load(entry.digest).values()  # (in name order, as ``store`` keeps them)
        else:
            skipped = 0
            first = 0
            while first < len(index.parts) and skipped + index.parts[first].count <= offset:
                skipped += index.parts[first].count
                first += 1
            offset -= skipped
            items = (e for p in index.parts[first:] for e in self._part(p).values())
        return [(f"{prefix}/{e.name}", e) for e in islice(items, offset, offset + limit if limit else None)]

    def walk(self, root: str, path: str = "/", dirs: bool = False) -> Iterator[tuple[str, Entry]]:
        """Every file below ``path`` in sorted order (and directories if asked)."""
        entry = self.lookup(root, path)
        if entry is None:
            return
        if entry.kind == "file":
            yield path, entry
            return
        yield from self._walk(entry.digest, path.rstrip("/"), dirs)

    def _walk(self, digest: str, prefix: str, dirs: bool, max_depth: int | None = None
              ) -> Iterator[tuple[str, Entry]]:
        for name, e in self.load(digest).items():  # (in name order)
            p = f"{prefix}/{name}"
            if e.kind == "dir":
                if dirs:
                    yield p, e
                if max_depth is None or max_depth > 1:
                    yield from self._walk(e.digest, p, dirs, None if max_depth is None else max_depth - 1)
            else:
                yield p, e

    def glob(self, root: str, pattern: str) -> Iterator[tuple[str, Entry]]:
        """Files and directories matching a glob (``*``, ``?``, ``[...]``, ``**``)."""
        for path, entry, _ in self.glob_groups(root, pattern):
            yield path, entry

    def glob_groups(self, root: str, pattern: str) -> Iterator[tuple[str, Entry, tuple[str, ...]]]:
        """Glob matches with their capture groups (for ``join_on`` / ``group_by``)."""
        if pattern.strip("/") == "":
            top = self.lookup(root, "/")
            assert top is not None
            yield "/", top, ()
            return
        rx = compile_glob(pattern)
        depth = _fixed_depth(pattern)
        for p, e in self._walk(root, "", dirs=True, max_depth=depth):
            m = rx.match(p)
            if m is not None:
                yield p, e, m.groups()

    def glob_changes(self, old: str, new: str, pattern: str
                     ) -> Iterator[tuple[str, Entry | None, Entry | None, tuple[str, ...]]]:
        """The glob matches of two trees that differ, in ``glob_groups``' order: (path, old entry or None, new
        entry or None, capture groups). A match whose entry changed is a changed file or one of its directories,
        so only the paths on the diff are looked at, not every match. An empty tree has no match, not even
        ``/``: as a job sees it, an empty input has no datum."""
        if pattern.strip("/") == "":
            if old != new:
                yield "/", None if old == EMPTY_TREE else self.lookup(old, "/"), \
                    None if new == EMPTY_TREE else self.lookup(new, "/"), ()
            return
        rx = compile_glob(pattern)
        depth = _fixed_depth(pattern)
        seen: set[str] = set()
        for path, _, _ in self.diff(old, new):
            parts = path.strip("/").split("/")
            for i in range(1, len(parts) + 1 if depth is None else min(len(parts), depth) + 1):
                seen.add("/" + "/".join(parts[:i]))
        for path in sorted(seen, key=lambda p: p.split("/")):  # (depth first, by name: as a walk goes)
            m = rx.match(path)
            if m is None:
                continue
            a, b = self.lookup(old, path), self.lookup(new, path)
            if a is not None and b is not None and a.kind == b.kind and a.digest == b.digest:
                continue
            yield path, a, b, m.groups()

    def diff(self, old: str, new: str, prefix: str = "") -> Iterator[tuple[str, Entry | None, Entry | None]]:
        """(path, old entry, new entry) for each changed file; equal subtrees (and equal parts of two
        directories stored in parts) are skipped."""
        if old == new:
            return
        a, b = self._differing(old, new)
        for name in _merged(a, b):
            ea, eb = a.get(name), b.get(name)
            p = f"{prefix}/{name}"
            if ea is not None and eb is not None and ea.digest == eb.digest and ea.kind == eb.kind:
                continue
            if ea is not None and eb is not None and ea.kind == eb.kind == "dir":
                yield from self.diff(ea.digest, eb.digest, p)
                continue
            if ea is not None:
                if ea.kind == "dir":
                    for sp, se in self._walk(ea.digest, p, False):
                        yield sp, se, None
                elif eb is None or eb.kind == "dir":
                    yield p, ea, None
            if eb is not None:
                if eb.kind == "dir":
                    for sp, se in self._walk(eb.digest, p, False):
                        yield sp, None, se
                else:
                    yield p, (ea if ea is not None and ea.kind == "file" else None), eb

    def _differing(self, old: str, new: str) -> tuple[dict[str, Entry], dict[str, Entry]]:
        """The entries of two directories, less those in parts both share (a name is in one part of each: one
        in a shared part has the same entry in both)."""
        ia, ib = self.parts(old), self.parts(new)
        if ia is None or ib is None:
            return self.load(old), self.load(new)
        shared = {p.digest for p in ia.parts} & {p.digest for p in ib.parts}
        a: dict[str, Entry] = {}
        b: dict[str, Entry] = {}
        for p in ia.parts:
            if p.digest not in shared:
                a.update(self._part(p))
        for p in ib.parts:
            if p.digest not in shared:
                b.update(self._part(p))
        return a, b


def _merged(a: Iterable[str], b: Iterable[str]) -> Iterator[str]:
    """The names of two directories (each in name order), in name order, each once: as they are asked for."""
    last = None
    for name in heapq.merge(a, b):
        if name != last:
            yield name
            last = name


def _fixed_depth(pattern: str) -> int | None:
    """How many path components a glob can match (None with ``**``): bounds the tree walk."""
    if "**" in pattern:
        return None
    return len([p for p in pattern.strip("/").split("/") if p])


class _Listing:
    """A directory's entries while it is edited: all of them, or for one stored in parts, its digest and the
    changes made (so only the parts they fall in are read, and written)."""

    __slots__ = ("_base", "_changes", "_count", "_entries", "_trees")

    def __init__(self, trees: TreeStore, base: str | None) -> None:
        self._trees = trees
        index = trees.parts(base) if base is not None else None
        self._base = base if index is not None else None
        self._entries = None if index is not None else dict(trees.load(base)) if base is not None else {}
        self._changes: dict[str, Entry | None] = {}
        self._count = index.count if index is not None else 0

    def get(self, name: str) -> Entry | None:
        if self._entries is not None:
            return self._entries.get(name)
        if name in self._changes:
            return self._changes[name]
        assert self._base is not None
        return self._trees.entry(self._base, name)

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def __setitem__(self, name: str, entry: Entry) -> None:
        if self._entries is not None:
            self._entries[name] = entry
            return
        if self.get(name) is None:
            self._count += 1
        self._changes[name] = entry

    def pop(self, name: str) -> None:
        if self._entries is not None:
            self._entries.pop(name, None)
        elif self.get(name) is not None:
            self._count -= 1
            self._changes[name] = None

    def __bool__(self) -> bool:
        return bool(self._entries) if self._entries is not None else self._count > 0

    def store(self) -> tuple[Digest, int]:
        if self._entries is not None:
            return self._trees.store(self._entries)
        assert self._base is not None
        return self._trees.store_edited(self._base, self._changes)


@dataclass
class _Dir:
    """A directory being edited: its entries and edited children."""

    entries: _Listing
    children: dict[str, _Dir] = field(default_factory=dict)
    dirty: bool = False
    known: tuple[Digest, int] | None = None  # digest and size while unchanged since loaded


class MutableTree:
    """Applies file changes to a base tree and writes only what changed."""

    def __init__(self, trees: TreeStore, base: str) -> None:
        self.trees = trees
        self.replace_root(base)

    def _dir(self, parts: list[str], create: bool, full: str) -> _Dir | None:
        node = self._root
        walked = ""
        for part in parts:
            walked += "/" + part
            child = node.children.get(part)
            if child is None:
                entry = node.entries.get(part)
                if entry is None:
                    if not create:
                        return None
                    child = _Dir(_Listing(self.trees, None), dirty=True)
                elif entry.kind == "file":
                    if not create:
                        return None
                    raise Conflict(
                        f"cannot write {full}: {walked} is a file; delete it first to make it a directory"
                    )
                else:
                    child = _Dir(_Listing(self.trees, entry.digest))
                node.children[part] = child
            if create:
                node.dirty = True
            node = child
        return node

    def replace_root(self, digest: str) -> None:
        self._root = _Dir(_Listing(self.trees, digest), known=(Digest(digest), self.trees.size(digest)))

    def get(self, path: str) -> Entry | None:
        parts = path.strip("/").split("/")
        parent = self._dir(parts[:-1], create=False, full=path)
        if parent is None:
            return None
        if parts[-1] in parent.children:
            self._flush_dir(parent, parts[-1])
        return parent.entries.get(parts[-1])

    def _flush_dir(self, parent: _Dir, name: str) -> None:
        child = parent.children[name]
        if child.dirty:
            digest, size = self._write(child)
            parent.entries[name] = Entry(name, "dir", size, digest)

    def put(self, path: str, entry: Entry) -> None:
        parts = path.strip("/").split("/")
        if not parts or parts == [""]:
            raise Conflict("cannot replace the root directory with a file; give a path inside the repo")
        parent = self._dir(parts[:-1], create=True, full=path)
        assert parent is not None
        name = parts[-1]
        existing = parent.entries.get(name)
        if existing is not None and existing.kind == "dir" and entry.kind == "file":
            raise Conflict(f"cannot write file {path}: a directory exists there; delete it first")
        parent.children.pop(name, None)
        parent.entries[name] = Entry(name, entry.kind, entry.size, entry.digest, entry.file)
        parent.dirty = True

    def delete(self, path: str) -> bool:
        parts = path.strip("/").split("/")
        if parts == [""]:
            changed = bool(self._root.entries)
            self._root = _Dir(_Listing(self.trees, None), dirty=True)
            return changed
        parent = self._dir(parts[:-1], create=False, full=path)
        if parent is None or (parts[-1] not in parent.entries and parts[-1] not in parent.children):
            return False
        self._dir(parts[:-1], create=True, full=path)  # mark the path dirty
        parent.entries.pop(parts[-1])
        parent.children.pop(parts[-1], None)
        parent.dirty = True
        return True

    def _write(self, node: _Dir) -> tuple[Digest, int]:
        if not node.dirty and node.known is not None:
            return node.known
        for name, child in list(node.children.items()):
            if child.dirty:
                digest, size = self._write(child)
                child.dirty = False
                if child.entries:
                    node.entries[name] = Entry(name, "dir", size, digest)
                else:  # empty directories vanish, as in Pachyderm
                    node.entries.pop(name)
                    del node.children[name]
        return node.entries.store()

    def finish(self) -> tuple[Digest, int]:
        """Write the changed directories; return the new root digest and size."""
        return self._write(self._root)
