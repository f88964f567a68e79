"""File trees that share structure between commits.

A directory is an immutable object: its sorted entries, encoded as
``tusk-tree:v1`` and stored under the BLAKE3 of those bytes. A file entry holds
its chunk list inline; a directory entry holds its child's digest and the total
size below it. Changing one file rewrites only the directories on its path, so
a commit costs O(depth * directory width), not O(repo).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice, pairwise
from typing import Literal

import blake3

from tusk.errors import Conflict, FileNotFound, ObjectCorrupt
from tusk.ids import Digest
from tusk.storage.content import ChunkRef, FileNode
from tusk.storage.objects import ObjectStore
from tusk.versioning.globs import compile_glob

__all__ = ["EMPTY_TREE", "Entry", "MutableTree", "TreeStore", "compile_glob", "tree_key"]

_TAG = b"tusk-tree:v1\n"
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


class TreeStore:
    """Reads and writes directory objects, with a small decoded cache."""

    def __init__(self, objects: ObjectStore, cache_size: int = 4096) -> None:
        self.objects = objects
        self._cache: OrderedDict[str, dict[str, Entry]] = OrderedDict()
        self._cache_size = cache_size

    def forget(self) -> None:
        """Drop the cache: ``store`` trusts it to skip writes, and a gc may have deleted those objects."""
        self._cache.clear()

    def load(self, digest: str) -> dict[str, Entry]:
        hit = self._cache.get(digest)
        if hit is not None:
            self._cache.move_to_end(digest)
            return hit
        if digest == EMPTY_TREE:
            entries: dict[str, Entry] = {}
        else:
            data = self.objects.get(tree_key(digest))
            if blake3.blake3(data).hexdigest() != digest:
                raise ObjectCorrupt(f"directory object {digest[:16]}… is corrupt; run `tusk fsck`")
            decoded = decode_entries(data)
            if any(a.name >= b.name for a, b in pairwise(decoded)):
                decoded.sort(key=lambda e: e.name)  # (every writer sorts them; ``list_dir`` pages on that order)
            entries = {e.name: e for e in decoded}
        self._cache[digest] = entries
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return entries

    def store(self, entries: dict[str, Entry]) -> tuple[Digest, int]:
        ordered = {k: entries[k] for k in sorted(entries)}
        data = encode_entries(list(ordered.values()))
        digest = Digest(blake3.blake3(data).hexdigest())
        key = tree_key(digest)
        if digest != EMPTY_TREE and digest not in self._cache and not self.objects.exists(key):
            self.objects.put(key, data)
        self._cache[digest] = ordered
        return digest, sum(e.size for e in entries.values())

    # -- queries -------------------------------------------------------------
    def lookup(self, root: str, path: str) -> Entry | None:
        """The entry at ``path`` (normalized), or None; ``/`` is the root dir."""
        if path == "/":
            return Entry("", "dir", sum(e.size for e in self.load(root).values()), Digest(root))
        parts = path.strip("/").split("/")
        digest = root
        entry: Entry | None = None
        for i, part in enumerate(parts):
            entry = self.load(digest).get(part)
            if entry is None:
                return None
            if entry.kind == "file" and i < len(parts) - 1:
                return None
            digest = entry.digest
        return entry

    def list_dir(self, root: str, path: str, offset: int = 0, limit: int | None = None) -> list[tuple[str, Entry]]:
        """A directory's entries in name order, from the ``offset``-th, at most ``limit`` of them.

        A directory is one object, so its first read decodes every entry (then the decoded directory is
        cached); a page past that is a slice of the cached, sorted entries: ``limit`` of them are handed out.
        """
        entry = self.lookup(root, path)
        if entry is None:
            raise FileNotFound(f"no file or directory at {path}")
        if entry.kind == "file":
            return [(path, entry)][offset:offset + limit if limit else None]
        prefix = path.rstrip("/")
        items = self.load(entry.digest).items()  # (in name order: ``load`` and ``store`` keep them so)
        return [(f"{prefix}/{name}", e) for name, e in islice(items, offset, offset + limit if limit else None)]

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

    def diff(self, old: str, new: str, prefix: str = "") -> Iterator[tuple[str, Entry | None, Entry | None]]:
        """(path, old entry, new entry) for each changed file; equal subtrees are skipped."""
        if old == new:
            return
        a, b = self.load(old), self.load(new)
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


@dataclass
class _Dir:
    """A directory being edited: its loaded entries and edited children."""

    entries: dict[str, Entry]
    children: dict[str, _Dir] = field(default_factory=dict)
    dirty: bool = False
    known: tuple[Digest, int] | None = None  # digest and size while unchanged since loaded


class MutableTree:
    """Applies file changes to a base tree and writes only what changed."""

    def __init__(self, trees: TreeStore, base: str) -> None:
        self.trees = trees
        entries = dict(trees.load(base))
        self._root = _Dir(entries, known=(Digest(base), sum(e.size for e in entries.values())))

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
                    child = _Dir({}, dirty=True)
                elif entry.kind == "file":
                    if not create:
                        return None
                    raise Conflict(
                        f"cannot write {full}: {walked} is a file; delete it first to make it a directory"
                    )
                else:
                    child = _Dir(dict(self.trees.load(entry.digest)))
                node.children[part] = child
            if create:
                node.dirty = True
            node = child
        return node

    def replace_root(self, digest: str) -> None:
        entries = dict(self.trees.load(digest))
        self._root = _Dir(entries, known=(Digest(digest), sum(e.size for e in entries.values())))

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
            self._root = _Dir({}, dirty=True)
            return changed
        parent = self._dir(parts[:-1], create=False, full=path)
        if parent is None or (parts[-1] not in parent.entries and parts[-1] not in parent.children):
            return False
        self._dir(parts[:-1], create=True, full=path)  # mark the path dirty
        parent.entries.pop(parts[-1], None)
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
                    node.entries.pop(name, None)
                    del node.children[name]
        return self.trees.store(node.entries)

    def finish(self) -> tuple[Digest, int]:
        """Write the changed directories; return the new root digest and size."""
        return self._write(self._root)
