"""The write operations, each landing as one commit on the bucket's branch (or staged in its open commit):
PutObject, CopyObject, DeleteObject, DeleteObjects, the multipart upload (Create, UploadPart,
UploadPartCopy, Complete, Abort, ListParts), and CreateBucket / DeleteBucket (a branch, and a repo when
none has that name).

A write's response carries the commit it made as ``x-amz-version-id``.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from typing import IO, Any, BinaryIO, cast
from urllib.parse import unquote

from starlette.responses import Response

from tusk.errors import FileNotFound, InvalidArgument, NotFound
from tusk.ids import validate_branch_name
from tusk.s3gateway.buckets import Bucket, resolve, splits
from tusk.s3gateway.calls import Call, xml_response
from tusk.s3gateway.errors import S3Error
from tusk.s3gateway.multipart import Upload
from tusk.s3gateway.payloads import CheckedReader, Expected, buffered
from tusk.s3gateway.reads import etag, parse_range
from tusk.s3gateway.xmldocs import iso, parse, sub
from tusk.versioning.records import CommitInfo, FileInfo

__all__ = ["abort_upload", "complete_upload", "copy_object", "create_bucket", "create_upload", "delete_bucket",
           "delete_object", "delete_objects", "list_parts", "put_object", "upload_part", "upload_part_copy"]

MAX_DELETE = 1000


def _landed(call: Call, bucket: Bucket, commit: CommitInfo | None, path: str) -> tuple[FileInfo, dict[str, str]]:
    """The file a write left, and the response headers naming it: its commit, or none when the write was staged
    in the branch's open commit (read there: a branch's history lists its open commit first)."""
    ref = commit.id if commit is not None else call.ops.list_commits(f"{bucket.repo}@{bucket.ref}", limit=1)[0].id
    info = call.ops.inspect_file(bucket.at(ref, path[1:]))
    headers = {"ETag": etag(info)}
    if commit is not None:
        headers["x-amz-version-id"] = commit.id
    return info, headers


def put_object(call: Call, raw: IO[bytes]) -> Response:
    bucket = call.writable_bucket()
    if call.key.endswith("/"):  # a "folder" marker: directories exist by their files here
        body, checked = call.body(raw)
        if body.read(1):
            raise S3Error("InvalidArgument", f"key {call.key!r} ends in '/', which names a directory: an object "
                                             "needs a file name")
        body.read()
        return Response(status_code=200, headers={"ETag": '"d41d8cd98f00b204e9800998ecf8427e"'})
    path = call.path()
    body, checked = call.body(raw)
    commit = call.ops.put_file(bucket.at(bucket.ref, path[1:]), body)
    _, headers = _landed(call, bucket, commit, path)
    return Response(status_code=200, headers=headers | checked.checksums)


def _copy_source(call: Call) -> tuple[Bucket, str, CommitInfo, FileInfo]:
    """The object ``x-amz-copy-source`` names (``/bucket/key[?versionId=commit]``), readable by the caller."""
    text = call.headers["x-amz-copy-source"]
    text, _, version = text.partition("?versionId=")
    name, _, key = unquote(text).lstrip("/").partition("/")
    if not name or not key:
        raise S3Error("InvalidArgument", "x-amz-copy-source must be BUCKET/KEY (URL-encoded), optionally with "
                                         "?versionId=COMMIT")
    source = resolve(call.ops, name, call.readable)
    call.require(source.repo, "reader")
    if version:
        commit = call.ops.inspect_commit(f"{source.repo}@{version}")
    else:
        head = source.head(call.ops)
        if head is None:
            raise S3Error("NoSuchKey", f"no key {key!r} in bucket {name}", Key=key)
        commit = head
    path = call.path(key)
    try:
        info = call.ops.inspect_file(source.at(commit.id, path[1:]))
    except NotFound:
        info = None
    if info is None or info.kind != "file":
        raise S3Error("NoSuchKey", f"no key {key!r} in bucket {name}", Key=key)
    return source, path, commit, info


def copy_object(call: Call) -> Response:
    """By reference: no byte is read or written, whatever the size."""
    bucket = call.writable_bucket()
    path = call.path()
    source, src_path, src_commit, _ = _copy_source(call)
    commit = call.ops.copy_file(source.at(src_commit.id, src_path[1:]), bucket.at(bucket.ref, path[1:]))
    info, headers = _landed(call, bucket, commit, path)
    root = ET.Element("CopyObjectResult")
    sub(root, "ETag", etag(info))
    sub(root, "LastModified", iso((commit or src_commit).finished_at or src_commit.started_at))
    return xml_response(root, headers={"x-amz-copy-source-version-id": src_commit.id} | headers)


def _existing_file(call: Call, bucket: Bucket, head: CommitInfo | None, path: str) -> bool:
    if head is None:
        return False
    try:
        return call.ops.inspect_file(bucket.at(head.id, path[1:])).kind == "file"
    except NotFound:
        return False


def delete_object(call: Call) -> Response:
    """Deleting a key that is not there succeeds and commits nothing, as in S3; a directory is never deleted."""
    bucket = call.writable_bucket()
    path = call.path()
    headers = {}
    if _existing_file(call, bucket, bucket.head(call.ops), path):
        try:
            commit = call.ops.delete_file(bucket.at(bucket.ref, path[1:]))
        except FileNotFound:  # another writer deleted it first
            commit = None
        if commit is not None:
            headers["x-amz-version-id"] = commit.id
    return Response(status_code=204, headers=headers)


def delete_objects(call: Call, raw: IO[bytes]) -> Response:
    """Up to 1000 keys, deleted in one commit; keys that are not there are reported deleted, as in S3."""
    bucket = call.writable_bucket()
    body, _ = call.body(raw)
    doc = parse(body, "Delete")
    quiet = (doc.findtext("Quiet") or "").strip().lower() == "true"
    keys = [(o.findtext("Key") or "") for o in doc.findall("Object")]
    if not keys or len(keys) > MAX_DELETE:
        raise S3Error("MalformedXML", f"DeleteObjects takes 1 to {MAX_DELETE} keys")
    root = ET.Element("DeleteResult")
    errors: list[tuple[str, str, str]] = []
    deleted: list[str] = []
    mod = call.ops.modify(f"{bucket.repo}@{bucket.ref}")
    head = bucket.head(call.ops)
    doomed: set[str] = set()
    for key in keys:
        try:
            path = call.path(key)
        except S3Error as exc:
            errors.append((key, exc.code, exc.message))
            continue
        if path not in doomed and _existing_file(call, bucket, head, path):
            mod.delete(path)
            doomed.add(path)
        deleted.append(key)
    commit = mod.land() if mod.changes else None
    if not quiet:
        for key in deleted:
            sub(sub(root, "Deleted"), "Key", key)
    for key, code, message in errors:
        e = sub(root, "Error")
        sub(e, "Key", key)
        sub(e, "Code", code)
        sub(e, "Message", message)
    return xml_response(root, headers={"x-amz-version-id": commit.id} if commit is not None else {})


# -- multipart ---------------------------------------------------------------------------------------------
def _upload(call: Call) -> tuple[Bucket, str, Upload]:
    bucket = call.writable_bucket()
    path = call.path()
    return bucket, path, call.shared.uploads.get(call.query["uploadId"], bucket.name, call.key)


def create_upload(call: Call) -> Response:
    bucket = call.writable_bucket()
    call.path()
    upload = call.shared.uploads.create(bucket.name, call.key)
    root = ET.Element("InitiateMultipartUploadResult")
    sub(root, "Bucket", bucket.name)
    sub(root, "Key", call.key)
    sub(root, "UploadId", upload.id)
    return xml_response(root)


def upload_part(call: Call, raw: IO[bytes]) -> Response:
    _, _, upload = _upload(call)
    body, checked = call.body(raw, want_md5=True)
    part = call.shared.uploads.put_part(upload, call.query.get("partNumber", ""), body, lambda: checked.md5_hex)
    return Response(status_code=200, headers={"ETag": f'"{part.etag}"'} | checked.checksums)


def upload_part_copy(call: Call) -> Response:
    """A part from (a range of) another object: its bytes are read from the store into the part."""
    _, _, upload = _upload(call)
    source, src_path, src_commit, info = _copy_source(call)
    start, end = 0, info.size_bytes - 1
    if "x-amz-copy-source-range" in call.headers:
        wanted = parse_range(call.headers["x-amz-copy-source-range"], info.size_bytes)
        if wanted is None:
            raise S3Error("InvalidArgument", "x-amz-copy-source-range must be bytes=FIRST-LAST")
        start, end = wanted
    with cast(BinaryIO, call.ops.open(source.at(src_commit.id, src_path[1:]))) as fh:
        fh.seek(start)
        limited = _Limited(fh, max(0, end - start + 1))
        checked = CheckedReader(buffered(limited), Expected(want_md5=True))
        part = call.shared.uploads.put_part(upload, call.query.get("partNumber", ""), buffered(checked),
                                            lambda: checked.md5_hex)
    root = ET.Element("CopyPartResult")
    sub(root, "ETag", f'"{part.etag}"')
    sub(root, "LastModified", iso(part.modified))
    return xml_response(root, headers={"x-amz-copy-source-version-id": src_commit.id})


class _Limited(io.RawIOBase):
    """The next ``left`` bytes of a file, as a raw reader."""

    def __init__(self, fh: IO[bytes], left: int) -> None:
        super().__init__()
        self._fh, self._left = fh, left

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._left <= 0:
            return 0
        data = self._fh.read(min(len(b), self._left))
        b[: len(data)] = data
        self._left -= len(data)
        return len(data)


def complete_upload(call: Call, raw: IO[bytes]) -> Response:
    """Stream the parts, in order, into one put: one commit."""
    bucket, path, upload = _upload(call)
    body, _ = call.body(raw)
    doc = parse(body, "CompleteMultipartUpload")
    chosen = []
    for part in doc.findall("Part"):
        number = (part.findtext("PartNumber") or "").strip()
        if not number.isdigit():
            raise S3Error("MalformedXML", "each Part needs a PartNumber")
        chosen.append((int(number), (part.findtext("ETag") or "").strip()))
    stream, _ = call.shared.uploads.assemble(upload, chosen)
    with stream:
        commit = call.ops.put_file(bucket.at(bucket.ref, path[1:]), buffered(stream))
    info, headers = _landed(call, bucket, commit, path)
    call.shared.uploads.abort(upload)  # done: its parts are in the store now
    root = ET.Element("CompleteMultipartUploadResult")
    sub(root, "Location", f"/{bucket.name}/{call.key}")
    sub(root, "Bucket", bucket.name)
    sub(root, "Key", call.key)
    sub(root, "ETag", etag(info))
    return xml_response(root, headers=headers)


def abort_upload(call: Call) -> Response:
    _, _, upload = _upload(call)
    call.shared.uploads.abort(upload)
    return Response(status_code=204)


def list_parts(call: Call) -> Response:
    bucket, _, upload = _upload(call)
    try:
        marker = int(call.query.get("part-number-marker", "0") or 0)
        most = min(int(call.query.get("max-parts", "1000")), 1000)
    except ValueError:
        raise S3Error("InvalidArgument", "part-number-marker and max-parts must be integers") from None
    parts = [p for p in call.shared.uploads.parts(upload) if p.number > marker]
    shown = parts[:most]
    root = ET.Element("ListPartsResult")
    sub(root, "Bucket", bucket.name)
    sub(root, "Key", call.key)
    sub(root, "UploadId", upload.id)
    sub(root, "PartNumberMarker", marker)
    if shown:
        sub(root, "NextPartNumberMarker", shown[-1].number)
    sub(root, "MaxParts", most)
    sub(root, "IsTruncated", "true" if len(parts) > len(shown) else "false")
    for p in shown:
        el = sub(root, "Part")
        sub(el, "PartNumber", p.number)
        sub(el, "LastModified", iso(p.modified))
        sub(el, "ETag", f'"{p.etag}"')
        sub(el, "Size", p.size)
    return xml_response(root)


# -- buckets -----------------------------------------------------------------------------------------------
def create_bucket(call: Call) -> Response:
    """``branch.repo``: an empty branch; the repo too when no repo has that name (its creator owns it)."""
    name = call.bucket_name
    candidates = [(ref, repo) for ref, repo in splits(name) if ref and repo]
    if not candidates:
        raise S3Error("InvalidBucketName", f"bucket {name!r}: name it BRANCH.REPO", BucketName=name)
    existing = {r.name for r in call.ops.list_repos()}
    ref, repo = next(((f, r) for f, r in candidates if r in existing), candidates[0])
    try:
        validate_branch_name(ref)
    except InvalidArgument as exc:
        raise S3Error("InvalidBucketName", f"bucket {name!r}: {exc}", BucketName=name) from None
    if repo in existing:
        call.require(repo, "writer")
        if any(b.name == ref for b in call.ops.list_branches(repo)):
            raise S3Error("BucketAlreadyOwnedByYou", f"bucket {name} exists: branch {ref} of {repo}",
                          BucketName=name)
    else:
        call.ops.create_repo(repo)
        if call.shared.auth:
            call.shared.roles.set(repo, call.user, "owner")
    call.ops.create_branch(f"{repo}@{ref}")
    return Response(status_code=200, headers={"Location": f"/{name}"})


def delete_bucket(call: Call) -> Response:
    """Delete the branch (its commits stay, by id); refused while the branch has files, as S3 does."""
    bucket = call.writable_bucket()
    head = bucket.head(call.ops)
    if head is not None and call.ops.list_files(bucket.at(head.id, "")):
        raise S3Error("BucketNotEmpty", f"bucket {bucket.name} is not empty: delete its objects first "
                                        "(`aws s3 rb --force` does)", BucketName=bucket.name)
    call.ops.delete_branch(f"{bucket.repo}@{bucket.ref}")
    return Response(status_code=204)
