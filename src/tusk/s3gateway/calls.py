"""One S3 request as the operations see it: who is calling, the bucket and key, the query, and the checks
every operation shares (the caller's role on the repo, a write to a read-only bucket, a body's integrity)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, BinaryIO

from starlette.responses import Response

from tusk.auth import LEVELS, RoleService
from tusk.errors import InvalidArgument
from tusk.ids import normalize_path
from tusk.s3gateway import sigv4
from tusk.s3gateway.buckets import Bucket, resolve
from tusk.s3gateway.errors import S3Error
from tusk.s3gateway.multipart import Uploads
from tusk.s3gateway.payloads import CheckedReader, ChunkedReader, ChunkSigner, Expected, buffered
from tusk.s3gateway.xmldocs import NS, document
from tusk.sdk import Client

__all__ = ["Call", "Shared", "xml_response"]


@dataclass
class Shared:
    """What every request of one gateway shares."""

    ops: Client  # an embedded client on the gateway's services, as the REST API's (it never runs jobs itself)
    auth: bool
    roles: RoleService
    uploads: Uploads
    # a datum's endpoint (tusk.s3gateway.datums): only these buckets, by name, and only these keys sign
    buckets: Mapping[str, Bucket] | None = None
    keys: Mapping[str, tuple[str, str]] | None = None  # access key id -> (user, secret access key)


@dataclass
class Call:
    shared: Shared
    user: str
    method: str
    bucket_name: str
    key: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lowercase names
    payload: str | None = None  # x-amz-content-sha256 as signed (or as sent, anonymously)
    signer: ChunkSigner | None = None  # a signed aws-chunked body's chunk signatures are checked with this
    _bucket: Bucket | None = field(default=None, repr=False)

    @property
    def ops(self) -> Client:
        return self.shared.ops

    # -- rights ----------------------------------------------------------------
    def readable(self, repo: str) -> bool:
        return not self.shared.auth or self.shared.roles.level(self.user, repo) >= LEVELS["reader"]

    def require(self, repo: str, role: str) -> None:
        """As the REST API: a repo the caller may not read is no bucket at all; a reader may not write."""
        if not self.shared.auth:
            return
        level = self.shared.roles.level(self.user, repo)
        if level < LEVELS["reader"]:
            raise S3Error("NoSuchBucket", f"no bucket {self.bucket_name}, or {self.user} is not a reader of its "
                                          "repo", BucketName=self.bucket_name)
        if level < LEVELS[role]:
            raise S3Error("AccessDenied", f"{self.user} is not a {role} of {repo}; an owner can grant it with "
                                          f"`tusk auth role set {repo} {self.user} {role}`")

    def bucket(self, existing: bool = True) -> Bucket:
        """The bucket of the request, readable by the caller; ``existing``: not a branch yet to be created."""
        if self._bucket is None and self.shared.buckets is not None:
            found = self.shared.buckets.get(self.bucket_name)
            if found is None:
                raise S3Error("NoSuchBucket", f"no bucket {self.bucket_name}: this datum's endpoint serves "
                                              f"{', '.join(sorted(self.shared.buckets)) or 'no input bucket'}",
                              BucketName=self.bucket_name)
            self._bucket = found
            self.require(found.repo, "reader")
        if self._bucket is None:
            self._bucket = resolve(self.ops, self.bucket_name, self.readable)
            self.require(self._bucket.repo, "reader")
        if existing and not self._bucket.exists:
            b = self._bucket
            raise S3Error("NoSuchBucket", f"bucket {b.name}: repo {b.repo} has no branch {b.ref!r} yet; a write "
                                          "creates it, as does CreateBucket", BucketName=b.name)
        return self._bucket

    def writable_bucket(self) -> Bucket:
        """The bucket, if the caller may write to it; a branch that does not exist yet is created by the write."""
        bucket = self.bucket(existing=False)
        bucket.refuse_writes()
        self.require(bucket.repo, "writer")
        return bucket

    def path(self, key: str | None = None) -> str:
        """The key as a path in the repo; InvalidArgument for keys no repo path can be (``a/../b``)."""
        key = self.key if key is None else key
        try:
            path = normalize_path(key)
        except InvalidArgument as exc:
            raise S3Error("InvalidArgument", f"key {key!r}: {exc}") from None
        if path == "/":
            raise S3Error("InvalidArgument", f"key {key!r} names no file")
        return path

    # -- bodies ----------------------------------------------------------------
    def body(self, raw: IO[bytes], want_md5: bool = False) -> tuple[BinaryIO, CheckedReader]:
        """The object's bytes from the request body (aws-chunked decoded) and the reader that checks them at
        their end (SHA-256, Content-MD5, x-amz-checksum-*)."""
        payload = self.payload or ""
        source: IO[bytes] = raw
        chunked = payload.startswith("STREAMING-") or "aws-chunked" in self.headers.get("content-encoding", "")
        decoder = None
        if chunked:
            length = self.headers.get("x-amz-decoded-content-length", "")
            signed = payload in (sigv4.STREAMING_SIGNED, sigv4.STREAMING_SIGNED_TRAILER)
            decoder = ChunkedReader(raw, self.signer if signed else None, int(length) if length.isdigit() else None)
            source = buffered(decoder)
        expected = Expected.from_headers(self.headers, payload, want_md5)
        if decoder is not None:
            expected.length = None  # Content-Length counts the encoding; the decoder checks the decoded length
        checked = CheckedReader(source, expected, (lambda: decoder.trailers) if decoder is not None else dict)
        return buffered(checked), checked


def xml_response(root: ET.Element, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    root.set("xmlns", NS)
    return Response(document(root), status, headers=dict(headers or {}), media_type="application/xml")
