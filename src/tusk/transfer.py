"""Wire formats for moving files between a remote client and the API server, streamed both ways.

A *batch* is an uncompressed tar stream: first ``ops.json`` (the list of
changes, in order), then one member per put, named by its index. The server
reads it front to back and chunks each member as it arrives, so a batch of any
size crosses in constant memory and lands as one commit. A *directory* (a
pipeline's code, an algorithm, an exported model) is a plain tar of its files.
"""

from __future__ import annotations

import errno
import io
import json
import os
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO

from tusk.errors import InvalidArgument, InvalidPath

__all__ = ["JOBS_HEADER", "SKIPPED_DIRS", "SKIPPED_SUFFIXES", "BatchWriter", "Pipe", "local_tree", "local_tree_stats",
           "member_path", "read_batch", "tar_directory", "untar_directory"]

OPS_MEMBER = "ops.json"
JOBS_HEADER = "X-Tusk-Jobs"  # on a response to a write that waited for its jobs: their ids, comma-separated
_PIECE = 1 << 20


class Pipe(io.RawIOBase):
    """A file-like view of a chunk iterator (an HTTP body), read by a worker thread as chunks arrive."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._buf = nxt
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class _Sink(io.RawIOBase):
    """Collects what tarfile writes, so the stream can be yielded piece by piece."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.parts.append(bytes(b))
        return len(b)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def _stream_tar(add: Callable[[tarfile.TarFile], Iterator[None]]) -> Iterator[bytes]:
    sink = _Sink()
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for _ in add(tar):
            if sink.parts:
                yield sink.take()
    yield sink.take()


class _Chunked(io.RawIOBase):
    """Hands tarfile a source in pieces, yielding control between them (for streaming)."""

    def __init__(self, source: IO[bytes]) -> None:
        super().__init__()
        self.source = source

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.source.read(min(len(b), _PIECE))
        b[: len(data)] = data
        return len(data)


def local_tree(source: Path, skipped: list[str]) -> Iterator[tuple[str, Path, int]]:
    """(path relative to ``source``, local path, size) of every regular file below it, sorted, for ``put -r``.

    Symlinks to files and directories are followed, as ``cp -rL`` would. What cannot be put is skipped and
    named in ``skipped`` (the CLI prints each as a warning): a symlink back into a directory being walked (a
    loop), a dangling or self-referential link, FIFOs, sockets, devices, unreadable directories. A FIFO is
    never opened, so a put cannot hang on one.
    """
    for rel, local, st in local_tree_stats(source, skipped):
        yield rel, Path(local), st.st_size


def local_tree_stats(source: Path, skipped: list[str]) -> Iterator[tuple[str, str, os.stat_result]]:
    """As ``local_tree``, with each file's ``stat`` (of what a link leads to) in place of its size, and its local
    path as text (a ``Path`` per file was a third of a 100k-file re-put)."""
    top = os.stat(source)
    yield from _walk_local(str(source), "", {(top.st_dev, top.st_ino)}, skipped)


def _walk_local(local: str, prefix: str, ancestors: set[tuple[int, int]], skipped: list[str]
                ) -> Iterator[tuple[str, str, os.stat_result]]:
    try:
        with os.scandir(local) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        skipped.append(f"{local}: cannot read this directory ({exc.strerror})")
        return
    for e in entries:
        rel = f"{prefix}{e.name}"
        try:
            st = os.stat(e.path)  # follows links: what the entry is, in the end
        except OSError as exc:
            why = "a symlink loop" if exc.errno == errno.ELOOP else "a dangling symlink" \
                if e.is_symlink() else exc.strerror
            skipped.append(f"{e.path}: {why}")
            continue
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in ancestors:
                skipped.append(f"{e.path}: a symlink loop (it leads back to a directory being put)")
                continue
            yield from _walk_local(e.path, f"{rel}/", ancestors | {key}, skipped)
        elif stat.S_ISREG(st.st_mode):
            yield rel, e.path, st
        else:
            kind = "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a socket" \
                if stat.S_ISSOCK(st.st_mode) else "a device or special file"
            skipped.append(f"{e.path}: {kind}, not a regular file")


def _add_file(tar: tarfile.TarFile, name: str, source: IO[bytes], size: int) -> Iterator[None]:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    tar.addfile(info, source)
    yield


@dataclass
class BatchWriter:
    """The client side of a batch: record changes, then stream them with ``chunks()``."""

    ops: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # what put_tree could not put (see local_tree)
    _sources: list[tuple[Path | None, BinaryIO | None, int]] = field(default_factory=list)
    _spooled: list[IO[bytes]] = field(default_factory=list)

    def put_bytes(self, path: str, data: bytes, append: bool = False) -> None:
        self.put_stream(path, io.BytesIO(data), append, len(data))

    def put_file(self, path: str, source: Path, append: bool = False) -> None:
        self.ops.append({"op": "append" if append else "put", "path": path, "data": len(self._sources)})
        self._sources.append((source, None, source.stat().st_size))

    def put_stream(self, path: str, stream: BinaryIO, append: bool = False, size: int | None = None) -> None:
        if size is None:  # tar needs sizes up front: spool an unsized stream (stdin, say) to disk first
            spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed once the batch has been streamed
            while piece := stream.read(_PIECE):
                spool.write(piece)
            size = spool.tell()
            spool.seek(0)
            self._spooled.append(spool)
            stream = spool
        self.ops.append({"op": "append" if append else "put", "path": path, "data": len(self._sources)})
        self._sources.append((None, stream, size))

    def put_tree(self, path: str, source: Path) -> int:
        base = path.rstrip("/")
        count = 0
        for rel, local, _ in local_tree(source, self.skipped):
            self.put_file(f"{base}/{rel}", local)
            count += 1
        return count

    def delete(self, path: str, missing_ok: bool = False) -> None:
        self.ops.append({"op": "delete", "path": path, **({"missing_ok": True} if missing_ok else {})})

    def copy(self, src: str, path: str) -> None:
        self.ops.append({"op": "copy", "src": src, "path": path})

    @property
    def size(self) -> int:
        return sum(size for _, _, size in self._sources)

    def chunks(self) -> Iterator[bytes]:
        def add(tar: tarfile.TarFile) -> Iterator[None]:
            doc = json.dumps(self.ops).encode()
            yield from _add_file(tar, OPS_MEMBER, io.BytesIO(doc), len(doc))
            for index, (local, stream, size) in enumerate(self._sources):
                if local is not None:
                    with open(local, "rb") as fh:
                        yield from _add_file(tar, str(index), _Chunked(fh), size)  # type: ignore[arg-type]
                else:
                    assert stream is not None
                    yield from _add_file(tar, str(index), _Chunked(stream), size)  # type: ignore[arg-type]

        try:
            yield from _stream_tar(add)
        finally:
            for spool in self._spooled:
                spool.close()


class _Member(io.RawIOBase):
    """A batch member's data: a body cut off inside it is the client's error (400), not the server's."""

    def __init__(self, source: IO[bytes], path: str) -> None:
        super().__init__()
        self.source = source
        self.path = path

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            data = self.source.read(len(b))
        except (tarfile.TarError, EOFError) as exc:
            raise InvalidArgument(f"the file batch ends or breaks inside the data for {self.path}: {exc}; "
                                  "send the whole batch again") from None
        b[: len(data)] = data
        return len(data)


def _member_stream(tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> IO[bytes]:
    source = tar.extractfile(member)
    if source is None:
        raise InvalidArgument(f"the batch data for {path} is not a regular file member")
    return io.BufferedReader(_Member(source, path), _PIECE)


def read_batch(stream: IO[bytes]) -> Iterator[tuple[dict[str, Any], IO[bytes] | None, int]]:
    """The server side: (op, data stream or None, its size) in order; consume each stream before the next."""
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            members = iter(tar)
            first = next(members, None)
            if first is None or first.name != OPS_MEMBER:
                raise InvalidArgument(f"a file batch starts with {OPS_MEMBER}")
            head = tar.extractfile(first)
            ops = json.loads(head.read() if head is not None else b"")
            if not isinstance(ops, list) or not all(isinstance(o, dict) and isinstance(o.get("path"), str)
                                                    and o.get("op") in ("put", "append", "delete", "copy")
                                                    for o in ops):
                raise InvalidArgument(f"{OPS_MEMBER} must be a list of {{op: put|append|delete|copy, path}}")
            for op in ops:
                if op["op"] in ("put", "append"):
                    member = next(members, None)
                    if member is None or member.name != str(op.get("data")):
                        raise InvalidArgument(f"the batch has no data for {op['path']}")
                    yield op, _member_stream(tar, member, op["path"]), member.size
                else:
                    yield op, None, 0
    except (tarfile.TarError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"the request body is not a valid file batch: {exc}") from None


# what a code directory leaves out, both when it is shipped and when its digest is taken (pipelines/code.py)
SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", ".venv", "venv", ".git", ".tusk"})
SKIPPED_SUFFIXES = (".pyc", ".pyo")


def tar_directory(directory: Path, limit: int = 64 << 20, skip_hidden: bool = True) -> Iterator[bytes]:
    """A tar stream of the regular files below ``directory`` (hidden and build directories skipped)."""
    total = 0
    files: list[tuple[Path, str, int]] = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not (skip_hidden and d.startswith(".")))
        for name in sorted(names):
            local = Path(root) / name
            if local.is_file() and local.suffix not in SKIPPED_SUFFIXES:
                size = local.stat().st_size
                total += size
                if total > limit:
                    raise InvalidArgument(f"{directory} holds more than {limit >> 20} MiB; move data out of the "
                                          "code directory (put it in a repo) and try again")
                files.append((local, local.relative_to(directory).as_posix(), size))

    def add(tar: tarfile.TarFile) -> Iterator[None]:
        for local, name, size in files:
            with open(local, "rb") as fh:
                yield from _add_file(tar, name, _Chunked(fh), size)  # type: ignore[arg-type]

    return _stream_tar(add)


def untar_directory(stream: IO[bytes], dest: Path) -> int:
    """Extract regular files only, refusing names that escape ``dest``, links pointing out of it, and names
    that clash (``x`` as a file and as a directory); return the file count. Every refusal names the member,
    never a server path."""
    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                rel = member_path(member)
                if not member.isfile() or not rel.parts:
                    continue
                _write_member(tar, member, dest.joinpath(*rel.parts))
                count += 1
    except tarfile.TarError as exc:
        raise InvalidArgument(f"not a valid tar stream: {exc}") from None
    return count


def member_path(member: tarfile.TarInfo) -> PurePosixPath:
    rel = PurePosixPath(member.name)
    if rel.is_absolute() or ".." in rel.parts or "\0" in member.name:
        raise InvalidPath(f"{member.name!r} escapes the directory it is unpacked into")
    # a symlink's target is relative to its directory, a hard link's to the top of the archive
    where = rel.parent if member.issym() else PurePosixPath()
    if (member.issym() or member.islnk()) and _escapes(where, PurePosixPath(member.linkname)):
        raise InvalidPath(f"{member.name!r} links to {member.linkname!r}, out of the directory it is "
                          "unpacked into")
    return rel


def _escapes(where: PurePosixPath, link: PurePosixPath) -> bool:
    """Whether a link at ``where`` (relative to the top) pointing at ``link`` leaves the tree at any step.
    Links are never extracted; one that points out is still refused, as a sign of a hostile archive."""
    if link.is_absolute():
        return True
    depth = len(where.parts)
    for part in link.parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return True
    return False


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        assert source is not None
        with open(target, "wb") as fh:
            while piece := source.read(_PIECE):
                fh.write(piece)
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
        raise InvalidPath(f"{member.name!r} clashes with another member: one name is both a file and a "
                          "directory") from exc
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
        raise InvalidPath(f"{member.name[:80]!r}...: a name in it is too long") from exc
