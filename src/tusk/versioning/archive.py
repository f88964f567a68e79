"""Extract and restore: the whole store (metadata and objects) as one streamed tar archive.

The archive, in member order::

    manifest.json                 format, format version, schema revision, the tables in insert order
    tables/NNN-<table>.jsonl      one JSON object per row, tables in foreign-key order
    objects/<key>                 every object the store holds, in key order
    end.json                      row and object counts, and a SHA-256 over every member before it

Every object is copied, referenced or not: simplest, and always correct (``gc`` can sweep the
unreferenced ones afterwards). Four tables are left out: ``leases`` and ``gc_fence`` are the
coordination state of running servers, ``store_identity`` names the store itself (a restored copy is
another store, so what a machine cached about the original is not trusted for it); the target keeps its own.
And ``secrets``: an archive is a backup anyone may copy, and the values are sealed with a key the archive does
not hold; secrets are made again on the target with ``tusk secret create``.

Restore refuses a target that holds any row, and an archive of another schema revision. It
inserts every row in one write transaction, which commits only after ``end.json`` has
checked out, so a truncated or corrupt archive leaves no metadata behind; the objects it
wrote by then are unreferenced, and ``gc`` sweeps them (a retried restore overwrites them).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO

from sqlalchemy import DateTime, Integer, LargeBinary, String, Table, func, insert, select, text

from tusk.errors import InvalidArgument, ObjectMissing
from tusk.storage.metadata import Base
from tusk.storage.metadata._db import SCHEMA_REVISION
from tusk.versioning.context import Context
from tusk.versioning.fsck import fsck
from tusk.versioning.records import FsckReport, _Record

__all__ = ["FORMAT_VERSION", "ArchiveReport", "extract", "restore"]

FORMAT = "tusk-archive"
FORMAT_VERSION = 1
# servers' coordination state, and the identity a store is given when it is made (a restore makes a new store,
# which keeps its own): not the store's content; and secrets, which no archive carries (see above)
RUNTIME_TABLES = frozenset({"leases", "gc_fence", "store_identity", "secrets"})
_PIECE = 8 << 20  # objects larger than this are copied piece by piece
_BATCH = 1000  # rows per INSERT

Target = str | Path | BinaryIO


@dataclass
class ArchiveReport(_Record):
    """What one extract wrote or one restore loaded (``fsck``: the check a restore ends with)."""

    tables: dict[str, int] = field(default_factory=dict)  # rows per table
    objects: int = 0
    object_bytes: int = 0
    archive_bytes: int = 0
    fsck: FsckReport | None = None

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


def archived_tables() -> list[Table]:
    """Every metadata table an archive holds, parents before children."""
    return [t for t in Base.metadata.sorted_tables if t.name not in RUNTIME_TABLES]


# -- extract --------------------------------------------------------------------------------------------------


class _Counted:
    """A write-only stream that counts what passes through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.written = raw, 0

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.written += len(data)
        return len(data)


class _Pieces(io.RawIOBase):
    """An object read in ``_PIECE`` ranges: a large object is never whole in memory."""

    def __init__(self, ctx: Context, key: str, first: bytes, size: int) -> None:
        super().__init__()
        self._ctx, self._key, self._buf, self._at, self._size = ctx, key, first, len(first), size

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if not self._buf and self._at < self._size:
            self._buf = self._ctx.objects.get_range(self._key, self._at, min(_PIECE, self._size - self._at))
            self._at += len(self._buf)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info


def _encode(table: Table, row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in table.columns:
        value = row[col.name]
        if value is not None and isinstance(col.type, LargeBinary):
            value = base64.b64encode(value).decode()
        elif value is not None and isinstance(col.type, DateTime):
            value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
        out[col.name] = value
    return out


def _decode(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    unknown = set(row) - set(table.columns.keys())
    if unknown:
        raise InvalidArgument(f"the archive's table {table.name} has columns this Tusk does not know: "
                              f"{', '.join(sorted(unknown))}")
    for col in table.columns:
        value = row.get(col.name)
        if value is not None and isinstance(col.type, LargeBinary):
            row[col.name] = base64.b64decode(value)
        elif value is not None and isinstance(col.type, DateTime):
            row[col.name] = datetime.fromisoformat(value)
    return row


def _hash_member(h: Any, name: str) -> None:
    h.update(name.encode() + b"\0")


def write_archive(ctx: Context, raw: IO[bytes]) -> ArchiveReport:
    """Stream the store into ``raw`` as an archive (the module docstring has the layout)."""
    report = ArchiveReport()
    counted = _Counted(raw)
    h = hashlib.sha256()
    tables = archived_tables()
    with tarfile.open(fileobj=counted, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        manifest = json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION,
                               "schema_revision": SCHEMA_REVISION, "objects": "all",
                               "created_at": datetime.now(UTC).isoformat(),
                               "tables": [t.name for t in tables]}, indent=2).encode()
        _hash_member(h, "manifest.json")
        h.update(manifest)
        tar.addfile(_member("manifest.json", len(manifest)), io.BytesIO(manifest))
        with ctx.db.snapshot() as conn:  # every table as of one moment
            for i, table in enumerate(tables):
                name = f"tables/{i:03d}-{table.name}.jsonl"
                _hash_member(h, name)
                n = 0
                with tempfile.TemporaryFile() as spool:  # a tar member's size comes before its bytes
                    # in the same order from every backend: PostgreSQL sorts text by its locale unless told
                    order = [c.collate("C") if not ctx.db.is_sqlite and isinstance(c.type, String) else c
                             for c in table.primary_key.columns]
                    for row in conn.execute(select(table).order_by(*order)).mappings():
                        line = json.dumps(_encode(table, row), separators=(",", ":")).encode() + b"\n"
                        h.update(line)
                        spool.write(line)
                        n += 1
                    size = spool.tell()
                    spool.seek(0)
                    tar.addfile(_member(name, size), spool)
                report.tables[table.name] = n
        # listed after the snapshot: every object it refers to was there, unless a gc ran meanwhile
        for stat in sorted(ctx.objects.scan(""), key=lambda s: s.key):
            try:
                first = ctx.objects.get_range(stat.key, 0, _PIECE) if stat.size > _PIECE \
                    else ctx.objects.get(stat.key)
            except ObjectMissing:
                continue  # deleted since the listing (by gc): nothing referred to it
            size = stat.size if stat.size > _PIECE else len(first)
            name = f"objects/{stat.key}"
            _hash_member(h, name)
            body: IO[bytes] = io.BytesIO(first) if size <= _PIECE else \
                io.BufferedReader(_Pieces(ctx, stat.key, first, size), _PIECE)
            tar.addfile(_member(name, size), _Hashing(body, h))
            report.objects += 1
            report.object_bytes += size
        end = json.dumps({"tables": report.tables, "objects": report.objects, "object_bytes": report.object_bytes,
                          "sha256": h.hexdigest()}, indent=2).encode()
        tar.addfile(_member("end.json", len(end)), io.BytesIO(end))
    report.archive_bytes = counted.written
    return report


class _Hashing:
    """A readable stream that feeds what is read to a hash."""

    def __init__(self, raw: IO[bytes], h: Any) -> None:
        self.raw, self.h = raw, h

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.h.update(data)
        return data


def _s3(url: str, endpoint_url: str | None) -> tuple[Any, str]:
    from urllib.parse import urlparse

    from tusk.storage.objects._s3 import S3ObjectStore

    parsed = urlparse(url)
    head, _, key = parsed.path.strip("/").rpartition("/")
    if not parsed.netloc or not key:
        raise InvalidArgument(f"invalid archive URL {url!r}: expected s3://bucket/path/to/archive.tar")
    return S3ObjectStore(parsed.netloc, head, endpoint_url=endpoint_url), key


def extract(ctx: Context, dest: Target, endpoint_url: str | None = None) -> ArchiveReport:
    """Write the store to ``dest``: a binary stream, a local path or an ``s3://bucket/key`` URL.

    A path or URL gets the whole archive or nothing: a local file is written beside ``dest`` and renamed
    into place, an S3 upload is aborted on failure.
    """
    if not isinstance(dest, str | Path):
        return write_archive(ctx, dest)
    if str(dest).startswith("s3://"):
        store, key = _s3(str(dest), endpoint_url)
        store.ensure_bucket()
        upload = store.open_upload(key)
        try:
            report = write_archive(ctx, upload)
        except BaseException:
            upload.abort()
            raise
        upload.close()
        return report
    path = Path(dest).expanduser()
    if path.is_dir():
        raise InvalidArgument(f"{path} is a directory: name the archive file to write, e.g. {path}/store.tar")
    if not path.parent.is_dir():
        raise InvalidArgument(f"{path.parent} does not exist: create it, or name a file in an existing directory")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            report = write_archive(ctx, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return report


# -- restore --------------------------------------------------------------------------------------------------


def _check_manifest(data: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidArgument("not a Tusk archive: its manifest.json does not say format tusk-archive")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InvalidArgument(f"the archive is format version {version}, newer than this Tusk reads "
                              f"({FORMAT_VERSION}): upgrade Tusk to restore it")
    revision = str(manifest.get("schema_revision"))
    if revision > SCHEMA_REVISION:
        raise InvalidArgument(f"the archive is of schema revision {revision}, newer than this Tusk's "
                              f"({SCHEMA_REVISION}): upgrade Tusk to restore it")
    if revision != SCHEMA_REVISION:
        raise InvalidArgument(f"the archive is of schema revision {revision}, older than this Tusk's "
                              f"({SCHEMA_REVISION}): restore it with the Tusk release that wrote it, then "
                              "upgrade (the upgrade migrates the store)")
    return manifest


def _members(tar: tarfile.TarFile) -> Iterator[tuple[str, IO[bytes]]]:
    for member in tar:
        fh = tar.extractfile(member)
        if fh is None:
            raise InvalidArgument(f"the archive holds {member.name!r}, which is not a file: not a Tusk archive")
        yield member.name, fh


def read_archive(ctx: Context, raw: IO[bytes]) -> ArchiveReport:
    """Load an archive from ``raw`` into this (empty) store; the rows commit only if all of it checks out."""
    report = ArchiveReport()
    tables = {t.name: t for t in archived_tables()}
    h = hashlib.sha256()
    try:
        with tarfile.open(fileobj=raw, mode="r|") as tar:
            members = _members(tar)
            name, fh = next(members, ("", io.BytesIO()))
            if name != "manifest.json":
                raise InvalidArgument("not a Tusk archive: it does not begin with manifest.json")
            data = fh.read()
            manifest = _check_manifest(data)
            _hash_member(h, name)
            h.update(data)
            with ctx.db.write() as s:
                for table in tables.values():
                    if s.execute(select(func.count()).select_from(table)).scalar():
                        raise InvalidArgument(f"the store is not empty (its {table.name} table has rows): restore "
                                              "into a new store (a new TUSK_HOME, or an empty database and "
                                              "objects URL)")
                end: dict[str, Any] | None = None
                for name, fh in members:
                    if end is not None:
                        raise InvalidArgument(f"the archive has {name!r} after end.json: not a Tusk archive")
                    if name == "end.json":
                        end = json.loads(fh.read())
                        continue
                    _hash_member(h, name)
                    if name.startswith("tables/"):
                        table_name = name.removeprefix("tables/").partition("-")[2].removesuffix(".jsonl")
                        if table_name not in tables:
                            raise InvalidArgument(f"the archive's table {table_name!r} is not in this Tusk's "
                                                  "schema")
                        report.tables[table_name] = _load_rows(s, tables[table_name], fh, h)
                    elif name.startswith("objects/"):
                        data = fh.read()
                        h.update(data)
                        ctx.objects.put(name.removeprefix("objects/"), data)
                        report.objects += 1
                        report.object_bytes += len(data)
                    else:
                        raise InvalidArgument(f"the archive holds {name!r}, which a Tusk archive does not")
                _check_end(end, report, h.hexdigest(), manifest)
                ctx.objects.flush()  # the objects are durable before the rows that refer to them commit
                if not ctx.db.is_sqlite:
                    _reset_sequences(s, list(tables.values()))
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise InvalidArgument(f"the archive is truncated or corrupt ({exc}): nothing was restored") from None
    report.fsck = fsck(ctx)
    return report


def _load_rows(s: Any, table: Table, fh: IO[bytes], h: Any) -> int:
    n, batch = 0, []
    for line in fh:
        h.update(line)
        batch.append(_decode(table, json.loads(line)))
        if len(batch) == _BATCH:
            s.execute(insert(table), batch)
            n, batch = n + len(batch), []
    if batch:
        s.execute(insert(table), batch)
        n += len(batch)
    return n


def _check_end(end: dict[str, Any] | None, report: ArchiveReport, digest: str, manifest: dict[str, Any]) -> None:
    if end is None:
        raise InvalidArgument("the archive ends before end.json (it is truncated): nothing was restored")
    missing = [t for t in manifest.get("tables", []) if t not in report.tables]
    if end.get("sha256") != digest or end.get("tables") != report.tables or missing \
            or end.get("objects") != report.objects:
        raise InvalidArgument("the archive does not match its end.json (it is corrupt): nothing was restored")


def _reset_sequences(s: Any, tables: list[Table]) -> None:
    """Rows came with their ids: move each PostgreSQL sequence past them, or the next insert collides."""
    for table in tables:
        pk = list(table.primary_key.columns)
        if len(pk) == 1 and isinstance(pk[0].type, Integer) and pk[0].autoincrement in (True, "auto"):
            col = pk[0].name
            s.execute(text(f'SELECT setval(pg_get_serial_sequence(:t, :c), MAX("{col}")) FROM "{table.name}" '
                           f'HAVING MAX("{col}") IS NOT NULL'), {"t": table.name, "c": col})


def restore(ctx: Context, src: Target, endpoint_url: str | None = None) -> ArchiveReport:
    """Load the archive at ``src`` (a binary stream, a local path or an ``s3://bucket/key`` URL) into this
    empty store, then fsck it (``report.fsck``)."""
    if not isinstance(src, str | Path):
        return read_archive(ctx, src)
    if str(src).startswith("s3://"):
        store, key = _s3(str(src), endpoint_url)
        try:
            body = store.open_download(key)
        except ObjectMissing:
            raise InvalidArgument(f"no such archive: {src}") from None
        try:
            return read_archive(ctx, body)
        finally:
            body.close()
    path = Path(src).expanduser()
    if not path.is_file():
        raise InvalidArgument(f"no such archive file: {path}")
    with open(path, "rb") as fh:
        return read_archive(ctx, fh)
