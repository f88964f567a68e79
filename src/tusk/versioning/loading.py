"""Loading data the ways ``pachctl put file`` does: split a file into numbered pieces, unpack a tar.

Splitting follows Pachyderm's PutFileSplit: the target path becomes a directory of pieces named by a
16-digit hexadecimal index (``0000000000000000``, ``0000000000000001``, ...). A record is a line (its
newline kept), a top-level JSON value (as written, without the whitespace between values) or a CSV record
(written back as CSV, ``\\n``-terminated). A piece closes when it holds ``target_datums`` records or at least
``target_bytes`` bytes; with neither set, every record is a piece. With ``header_records`` the first records
are a header: Pachyderm keeps it on the directory and shows it at the start of every piece read; Tusk writes
it at the start of every piece, which reads the same.

Both operations work on any batch with ``put_bytes``/``put_stream``/``delete`` (``Modification`` embedded,
``HttpModification`` against a server), through the ``Loader`` mixin.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, BinaryIO, Self

from tusk.errors import InvalidArgument, InvalidPath
from tusk.transfer import member_path

if TYPE_CHECKING:
    from tusk.versioning.records import CommitInfo
    from tusk.versioning.refs import FileRef

__all__ = ["SPLITS", "TAR_SUFFIXES", "Loader", "is_tar_name", "piece_name", "pieces", "records"]

SPLITS = ("line", "json", "csv")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
_READ = 1 << 20


def piece_name(index: int) -> str:
    """The name of a split piece, as Pachyderm writes it (``%016x``)."""
    return f"{index:016x}"


def is_tar_name(name: str) -> bool:
    return name.lower().endswith(TAR_SUFFIXES)


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    while line := stream.readline(_READ):
        yield line


def _json_values(stream: IO[bytes], where: str) -> Iterator[bytes]:
    """Top-level JSON values, one after another (``{..}{..}``, one per line, or separated by whitespace)."""
    decoder = json.JSONDecoder()
    raw = io.TextIOWrapper(stream, encoding="utf-8", errors="strict")
    want = _READ
    try:
        yield from _decode_values(decoder, raw, want, where)
    finally:
        raw.detach()  # the caller closes its stream (stdin, a file, an HTTP body)


def _decode_values(decoder: json.JSONDecoder, raw: io.TextIOWrapper, want: int, where: str) -> Iterator[bytes]:
    buf, eof, pos = "", False, 0
    while True:
        while pos < len(buf) and buf[pos].isspace():
            pos += 1
        if pos >= len(buf):
            if eof:
                return
            buf, pos = buf[pos:] + _read_text(raw, want, where), 0
            eof = pos >= len(buf)
            continue
        try:
            _, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as exc:
            if eof:
                raise InvalidArgument(f"{where} is not a sequence of JSON values: {exc.msg} at character "
                                      f"{exc.pos}") from None
            end = -1
        if end < 0 or (end == len(buf) and not eof):  # incomplete, or a number that may go on: read more
            more = _read_text(raw, want, where)
            eof = not more
            buf, pos = buf[pos:] + more, 0
            want = max(want, len(buf))  # double what is read while one value grows: linear overall
            continue
        yield buf[pos:end].encode()
        pos = end
        if pos > _READ:
            buf, pos = buf[pos:], 0


def _read_text(raw: io.TextIOWrapper, size: int, where: str) -> str:
    try:
        return raw.read(size)
    except UnicodeDecodeError:
        raise InvalidArgument(f"{where} is not UTF-8 text, so it cannot be split as JSON or CSV") from None


def _csv_records(stream: IO[bytes], where: str) -> Iterator[bytes]:
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    try:
        for row in csv.reader(text):
            out.seek(0)
            out.truncate()
            writer.writerow(row)
            yield out.getvalue().encode()
    except UnicodeDecodeError:
        raise InvalidArgument(f"{where} is not UTF-8 text, so it cannot be split as CSV") from None
    except csv.Error as exc:
        raise InvalidArgument(f"{where} is not valid CSV: {exc}") from None
    finally:
        text.detach()


def records(stream: IO[bytes], split: str, where: str = "the source") -> Iterator[bytes]:
    """The records of ``stream``: lines, top-level JSON values or CSV records."""
    if split == "line":
        return _lines(stream)
    if split == "json":
        return _json_values(stream, where)
    if split == "csv":
        return _csv_records(stream, where)
    raise InvalidArgument(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")


def pieces(recs: Iterable[bytes], target_datums: int = 0, target_bytes: int = 0) -> Iterator[bytes]:
    """Records grouped into pieces, as Pachyderm groups them: a piece closes once it holds ``target_datums``
    records or ``target_bytes`` bytes (whichever comes first); with neither, each record is a piece."""
    if target_datums < 0 or target_bytes < 0:
        raise InvalidArgument("--target-file-datums and --target-file-bytes take a number of 0 or more")
    buf: list[bytes] = []
    size = 0
    for rec in recs:
        buf.append(rec)
        size += len(rec)
        if (target_bytes and size >= target_bytes) or (target_datums and len(buf) >= target_datums) \
                or not (target_bytes or target_datums):
            yield b"".join(buf)
            buf, size = [], 0
    if buf and size:
        yield b"".join(buf)


def _tar_members(stream: IO[bytes], where: str) -> Iterator[tuple[str, IO[bytes]]]:
    """(relative path, data) of each regular file in a tar or gzipped tar stream, refusing any member whose
    name or link leaves the directory it is unpacked into."""
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                rel = member_path(member)
                if not member.isfile() or not rel.parts:
                    continue
                data = tar.extractfile(member)
                assert data is not None
                yield "/".join(rel.parts), data
    except tarfile.TarError as exc:
        raise InvalidArgument(f"{where} is not a tar archive (.tar, .tar.gz, .tgz): {exc}") from None
    except InvalidPath as exc:
        raise InvalidPath(f"{where}: {exc.message}; nothing was put") from None


class Loader:
    """A batch of changes landing as one commit: the split and untar operations, over the primitives that
    ``Modification`` (in-process) and ``HttpModification`` (one tar stream to a server) provide."""

    skipped: list[str]  # what put_tree could not put (unreadable or special files), to warn about

    def put_bytes(self, path: str, data: bytes, append: bool = False) -> None:
        raise NotImplementedError

    def put_stream(self, path: str, stream: BinaryIO, append: bool = False) -> None:
        raise NotImplementedError

    def put_file(self, path: str, source: Path, append: bool = False) -> None:
        raise NotImplementedError

    def put_tree(self, path: str, source: Path) -> int:
        raise NotImplementedError

    def delete(self, path: str, missing_ok: bool = False) -> None:
        raise NotImplementedError

    def count_children(self, path: str) -> int:
        """How many entries the directory at ``path`` holds in the target now (0 if it does not exist)."""
        raise NotImplementedError

    @property
    def changes(self) -> int:
        """How many changes the batch holds so far."""
        raise NotImplementedError

    @property
    def small_file_limit(self) -> int:
        """The largest file ``put_small`` packs (0: it packs none, each is put on its own)."""
        return 0

    def put_small(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Put small files (at most ``small_file_limit`` each); packed together where the batch can."""
        for path, data in items:
            self.put_bytes(path, data)

    def copy(self, src: FileRef, dst_path: str) -> None:
        """Copy a file or directory by reference (no bytes are duplicated)."""
        raise NotImplementedError

    def land(self) -> CommitInfo | None:
        """Apply the batch as one commit (None: staged in the open commit)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.land()

    def put_split(self, path: str, stream: IO[bytes], split: str, *, target_datums: int = 0,
                  target_bytes: int = 0, header_records: int = 0, append: bool = False,
                  where: str = "the source") -> int:
        """Split ``stream`` into numbered pieces under the directory ``path``; return how many were put.

        Without ``append`` whatever was at ``path`` is replaced; with it, the pieces are numbered after the
        ones already there (as Pachyderm numbers a split put into an existing split directory).
        """
        if header_records < 0:
            raise InvalidArgument("--header-records takes a number of 0 or more")
        base = "/" + str(PurePosixPath("/", path)).strip("/")
        if base == "/":
            raise InvalidArgument("a split needs a target path (REPO@BRANCH:/path), which becomes a directory")
        start = self.count_children(base) if append else 0
        if not append:
            self.delete(base, missing_ok=True)
        recs = records(stream, split, where)
        header = b""
        if header_records:
            taken = []
            for rec in recs:
                taken.append(rec)
                if len(taken) >= header_records:
                    break
            header = b"".join(taken)
        count = 0
        for piece in pieces(recs, target_datums, target_bytes):
            self.put_bytes(f"{base}/{piece_name(start + count)}", header + piece)
            count += 1
        return count

    def put_tar(self, path: str, stream: IO[bytes], where: str = "the source") -> int:
        """Unpack a tar (or gzipped tar) stream's regular files under the directory ``path``; return the count."""
        base = str(PurePosixPath("/", path)).rstrip("/")
        count = 0
        for rel, data in _tar_members(stream, where):
            self.put_stream(f"{base}/{rel}", data)  # type: ignore[arg-type]
            count += 1
        return count
