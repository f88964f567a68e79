"""Bucket ``out`` of a datum's endpoint (``s3_out``): a write-only bucket whose objects are files of the datum's
output directory, ingested with it when the code ends, as ``/pfs/out`` is (so they land in the job's output
commit, with its provenance).

As Pachyderm's sidecar does, it takes PutObject (CopyObject from an input bucket too), DeleteObject and
HeadBucket, and refuses reads: the output is read from the output commit once the job lands it. Multipart
uploads are not served (clients upload smaller objects with PutObject: boto3 below its 8 MB threshold).

The directory is one the user code may write too (``/pfs/out``): every write walks it from its root with
``O_NOFOLLOW`` descriptors, so a symlink the code left there never takes a write outside it.
"""

from __future__ import annotations

import contextlib
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, cast
from urllib.parse import unquote

from starlette.responses import Response

from tusk.s3gateway.buckets import Bucket
from tusk.s3gateway.calls import Call, xml_response
from tusk.s3gateway.errors import S3Error
from tusk.s3gateway.xmldocs import sub

__all__ = ["OUT_BUCKET", "DatumScope", "route_out"]

OUT_BUCKET = "out"
_PIECE = 1 << 20


@dataclass(frozen=True)
class DatumScope:
    """What one datum's endpoint serves: its input buckets (read-only commits), its key, its output directory."""

    inputs: Mapping[str, Bucket]
    keys: Mapping[str, tuple[str, str]]  # access key id -> (user, secret access key)
    out: Path | None  # None: no s3_out


def _write_only(call: Call) -> Response:
    raise S3Error("AccessDenied", f"bucket {OUT_BUCKET} is write-only, as in Pachyderm: read the output from the "
                                  "output commit once the job lands it")


def _head_bucket(call: Call) -> Response:
    return Response(status_code=200, headers={"x-amz-bucket-region": "us-east-1"})


@contextlib.contextmanager
def _parent(root: Path, path: str, create: bool) -> Iterator[tuple[int, str] | None]:
    """A descriptor of the directory of ``path`` (``/a/b/f``) under ``root``, walked without following links,
    and the file's name; None when a directory is missing and not ``create``d."""
    parts = path.strip("/").split("/")
    fds = [os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)]
    try:
        for part in parts[:-1]:
            try:
                fds.append(os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fds[-1]))
            except FileNotFoundError:
                if not create:
                    yield None
                    return
                os.mkdir(part, 0o755, dir_fd=fds[-1])
                fds.append(os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fds[-1]))
            except OSError:
                raise S3Error("InvalidArgument", f"key {path[1:]!r}: {part} is not a directory of the output "
                                                 "(a file, or a link)") from None
        yield fds[-1], parts[-1]
    finally:
        for fd in reversed(fds):
            os.close(fd)


def _store(root: Path, path: str, chunks: Callable[[], bytes]) -> None:
    with _parent(root, path, create=True) as found:
        assert found is not None
        fd, name = found
        try:
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644, dir_fd=fd)
        except OSError as exc:
            raise S3Error("InvalidArgument", f"key {path[1:]!r} cannot be written in the output: "
                                             f"{exc.strerror}") from None
        with os.fdopen(out, "wb") as fh:
            while data := chunks():
                fh.write(data)


def _put_object(root: Path) -> Callable[[Call, IO[bytes]], Response]:
    def put(call: Call, raw: IO[bytes]) -> Response:
        body, checked = call.body(raw, want_md5=True)
        if call.key.endswith("/"):  # a "folder" marker: directories exist by their files
            if body.read(1):
                raise S3Error("InvalidArgument", f"key {call.key!r} ends in '/', which names a directory")
            body.read()
            return Response(status_code=200, headers={"ETag": '"d41d8cd98f00b204e9800998ecf8427e"'})
        _store(root, call.path(), lambda: body.read(_PIECE))
        return Response(status_code=200, headers={"ETag": f'"{checked.md5_hex}"'} | checked.checksums)
    return put


def _copy_object(root: Path) -> Callable[[Call], Response]:
    """From an input bucket of the datum (``x-amz-copy-source: /input/key``) into the output."""
    def copy(call: Call) -> Response:
        text = call.headers["x-amz-copy-source"].partition("?versionId=")[0]
        name, _, key = unquote(text).lstrip("/").partition("/")
        source = (call.shared.buckets or {}).get(name)
        if source is None or not key:
            raise S3Error("InvalidArgument", "x-amz-copy-source must name an input bucket of this datum and a key "
                                             f"({', '.join(sorted(call.shared.buckets or {}))})")
        src = call.path(key)
        try:
            fh = cast(BinaryIO, call.ops.open(source.at(source.ref, src[1:])))
        except Exception:
            raise S3Error("NoSuchKey", f"no key {key!r} in bucket {name}", Key=key) from None
        with fh:
            _store(root, call.path(), lambda: fh.read(_PIECE))
        result = ET.Element("CopyObjectResult")
        sub(result, "ETag", '""')
        return xml_response(result)
    return copy


def _delete_object(root: Path) -> Callable[[Call], Response]:
    def delete(call: Call) -> Response:
        path = call.path()
        with _parent(root, path, create=False) as found:
            if found is not None:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
                    os.unlink(found[1], dir_fd=found[0])
        return Response(status_code=204)
    return delete


def route_out(call: Call, root: Path) -> tuple[Callable[[Call], Response] | None,
                                               Callable[[Call, IO[bytes]], Response] | None]:
    """The operation a request to bucket ``out`` asks for (writing into ``root``)."""
    m, q = call.method, call.query
    if not call.key:
        if m == "HEAD":
            return _head_bucket, None
        if m == "GET" and "location" in q:
            return (lambda c: xml_response(ET.Element("LocationConstraint"))), None
        return _write_only, None
    if "uploads" in q or "uploadId" in q or "partNumber" in q:
        raise S3Error("NotImplemented", f"multipart uploads to bucket {OUT_BUCKET} are not served: upload each "
                                        "object with one PutObject (boto3: a TransferConfig with a "
                                        "multipart_threshold above the object's size)")
    if m == "PUT":
        if "x-amz-copy-source" in call.headers:
            return _copy_object(root), None
        return None, _put_object(root)
    if m == "DELETE":
        return _delete_object(root), None
    return _write_only, None
