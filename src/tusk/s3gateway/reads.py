"""The read operations: ListBuckets, HeadBucket, GetBucketLocation, ListObjects (v1 and v2), HeadObject and
GetObject (with Range).

An object's ETag is its Tusk digest, and its Last-Modified and ``x-amz-version-id`` are those of the commit
the read sees: a bucket's branch head, or its commit. ``versionId`` reads another commit of the same repo.
"""

from __future__ import annotations

import mimetypes
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC
from email.utils import format_datetime
from typing import BinaryIO, cast
from urllib.parse import quote

from starlette.responses import Response, StreamingResponse

from tusk.errors import NotFound
from tusk.s3gateway.buckets import Bucket, list_buckets
from tusk.s3gateway.calls import Call, xml_response
from tusk.s3gateway.errors import S3Error
from tusk.s3gateway.listing import Page, decode_token, encode_token, list_page
from tusk.s3gateway.xmldocs import iso, sub
from tusk.versioning.records import CommitInfo, FileInfo

__all__ = ["etag", "get_bucket_location", "get_bucket_versioning", "get_object", "head_bucket", "list_buckets_op",
           "list_objects", "object_commit", "parse_range"]

_PIECE = 1 << 20
REGION = "us-east-1"


def etag(info: FileInfo) -> str:
    return f'"{info.digest}"'


def list_buckets_op(call: Call) -> Response:
    root = ET.Element("ListAllMyBucketsResult")
    owner = sub(root, "Owner")
    sub(owner, "ID", call.user)
    sub(owner, "DisplayName", call.user)
    buckets = sub(root, "Buckets")
    listed = list_buckets(call.ops, call.readable) if call.shared.buckets is None else [  # a datum's: its own
        (b.name, call.ops.inspect_commit(f"{b.repo}@{b.ref}").started_at) for b in call.shared.buckets.values()]
    for name, created in listed:
        b = sub(buckets, "Bucket")
        sub(b, "Name", name)
        sub(b, "CreationDate", iso(created))
    return xml_response(root)


def head_bucket(call: Call) -> Response:
    call.bucket()
    return Response(status_code=200, headers={"x-amz-bucket-region": REGION})


def get_bucket_location(call: Call) -> Response:
    call.bucket()
    return xml_response(ET.Element("LocationConstraint"))  # empty: us-east-1, as S3 says it


def get_bucket_versioning(call: Call) -> Response:
    """Every commit is a version, but S3's versioning API (ListObjectVersions...) is not served: say it is off."""
    call.bucket()
    return xml_response(ET.Element("VersioningConfiguration"))


def _commit_for(call: Call, bucket: Bucket, version: str | None) -> CommitInfo | None:
    if not version or version == "null":
        return bucket.head(call.ops)
    try:
        commit = call.ops.inspect_commit(f"{bucket.repo}@{version}")
    except NotFound:
        raise S3Error("NoSuchVersion", f"no commit {version} in repo {bucket.repo}") from None
    if not bucket.writable and commit.id != bucket.ref:
        raise S3Error("InvalidArgument", f"bucket {bucket.name} is commit {bucket.ref}: read {version} through "
                                         f"{version}.{bucket.repo}")
    return commit


def list_objects(call: Call, v2: bool) -> Response:
    bucket = call.bucket()
    q = call.query
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    try:
        max_keys = min(int(q.get("max-keys", "1000")), 1000)
    except ValueError:
        raise S3Error("InvalidArgument", "max-keys must be an integer") from None
    if max_keys < 0:
        raise S3Error("InvalidArgument", "max-keys must not be negative")
    encode = q.get("encoding-type") == "url"
    if q.get("encoding-type") not in (None, "url"):
        raise S3Error("InvalidArgument", "encoding-type must be url")
    token = q.get("continuation-token") if v2 else None
    if token is not None:
        commit_id, after = decode_token(token)
        commit: CommitInfo | None = _commit_for(call, bucket, commit_id)
    else:
        after = q.get("start-after", "") if v2 else q.get("marker", "")
        commit = bucket.head(call.ops)
    if commit is None:  # a branch with no commits: an empty bucket
        page = Page()
    else:
        ref = commit.id
        page = list_page(lambda d: call.ops.list_files(bucket.at(ref, d.lstrip("/"))), prefix, delimiter, after,
                         max_keys)

    def text(value: str) -> str:
        return quote(value, safe="/") if encode else value

    root = ET.Element("ListBucketResult")
    sub(root, "Name", bucket.name)
    sub(root, "Prefix", text(prefix))
    if v2:
        if "start-after" in q:
            sub(root, "StartAfter", text(q["start-after"]))
        if token is not None:
            sub(root, "ContinuationToken", token)
        sub(root, "KeyCount", len(page.contents) + len(page.prefixes))
    else:
        sub(root, "Marker", text(q.get("marker", "")))
    sub(root, "MaxKeys", max_keys)
    if delimiter:
        sub(root, "Delimiter", text(delimiter))
    if encode:
        sub(root, "EncodingType", "url")
    sub(root, "IsTruncated", "true" if page.truncated else "false")
    if page.truncated and commit is not None:
        if v2:
            sub(root, "NextContinuationToken", encode_token(commit.id, page.last))
        else:
            sub(root, "NextMarker", text(page.last))
    modified = iso(commit.finished_at or commit.started_at) if commit is not None else ""
    for info in page.contents:
        c = sub(root, "Contents")
        sub(c, "Key", text(info.path[1:]))
        sub(c, "LastModified", modified)
        sub(c, "ETag", etag(info))
        sub(c, "Size", info.size_bytes)
        sub(c, "StorageClass", "STANDARD")
        if not v2 or q.get("fetch-owner") == "true":
            owner = sub(c, "Owner")
            sub(owner, "ID", commit.author if commit else "")
            sub(owner, "DisplayName", commit.author if commit else "")
    for p in page.prefixes:
        sub(sub(root, "CommonPrefixes"), "Prefix", text(p))
    return xml_response(root)


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` → (start, end inclusive); None for what S3 ignores (several ranges, another unit)."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if not first:  # the last N bytes
            n = int(last)
            if n <= 0 or size == 0:
                raise S3Error("InvalidRange", "the requested range is not satisfiable",
                              RangeRequested=header, ActualObjectSize=str(size))
            return max(0, size - n), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None  # a malformed Range is ignored, as S3 does
    if start >= size:
        raise S3Error("InvalidRange", "the requested range is not satisfiable", RangeRequested=header,
                      ActualObjectSize=str(size))
    if start > end:
        return None
    return start, min(end, size - 1)


def object_commit(call: Call) -> tuple[Bucket, CommitInfo, FileInfo]:
    """The bucket, the commit read and the object's file; NoSuchKey for a missing key or a directory."""
    bucket = call.bucket()
    path = call.path()
    commit = _commit_for(call, bucket, call.query.get("versionId"))
    missing = S3Error("NoSuchKey", f"no key {call.key!r} in bucket {bucket.name}", Key=call.key)
    if commit is None:
        raise missing
    try:
        info = call.ops.inspect_file(bucket.at(commit.id, path[1:]))
    except NotFound:
        raise missing from None
    if info.kind != "file":
        raise missing
    return bucket, commit, info


def _object_headers(commit: CommitInfo, info: FileInfo, key: str) -> dict[str, str]:
    modified = (commit.finished_at or commit.started_at).astimezone(UTC)
    return {"ETag": etag(info), "Last-Modified": format_datetime(modified, usegmt=True), "Accept-Ranges": "bytes",
            "x-amz-version-id": commit.id, "Content-Type": mimetypes.guess_type(key)[0] or "binary/octet-stream"}


def _tags(text: str) -> set[str]:
    return {t.strip() for t in text.split(",")}


def _preconditions(call: Call, info: FileInfo) -> Response | None:
    match, none_match = call.headers.get("if-match"), call.headers.get("if-none-match")
    if match is not None and not ({etag(info), "*"} & _tags(match)):
        raise S3Error("PreconditionFailed", "the object's ETag is not the one If-Match names", Condition="If-Match")
    if none_match is not None and {etag(info), "*"} & _tags(none_match):
        return Response(status_code=304, headers={"ETag": etag(info)})
    return None


def get_object(call: Call, head: bool) -> Response:
    bucket, commit, info = object_commit(call)
    headers = _object_headers(commit, info, call.key)
    unchanged = _preconditions(call, info)
    if unchanged is not None:
        return unchanged
    size = info.size_bytes
    start, end, status = 0, size - 1, 200
    if "range" in call.headers:
        wanted = parse_range(call.headers["range"], size)
        if wanted is not None:
            start, end = wanted
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    length = end - start + 1 if size else 0
    headers["Content-Length"] = str(length)
    if head:
        return Response(status_code=status, headers=headers)
    fh = cast(BinaryIO, call.ops.open(bucket.at(commit.id, info.path[1:])))
    try:
        fh.seek(start)
        first = fh.read(min(_PIECE, length)) if length else b""  # a bad first chunk is still an error response
    except BaseException:
        fh.close()
        raise

    def body() -> Iterator[bytes]:
        left = length - len(first)
        try:
            yield first
            while left > 0:
                data = fh.read(min(_PIECE, left))
                if not data:
                    break
                left -= len(data)
                yield data
        finally:
            fh.close()

    content_type = headers.pop("Content-Type")
    return StreamingResponse(body(), status_code=status, headers=headers, media_type=content_type)
