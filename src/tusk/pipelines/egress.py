"""Pachyderm's ``egress``: each output commit's files copied to an object store once its job succeeds.

``"egress": {"URL": "s3://bucket/dir"}`` (or 2.x's ``object_storage.url``)
writes every file of the output commit to ``dir/<path>``, as Pachyderm does:
files are put (overwriting the same keys), nothing is deleted there. Tusk
reaches ``s3://`` with its own S3 settings (``TUSK_S3_ENDPOINT_URL`` or
``AWS_ENDPOINT_URL``, and the usual AWS credentials), as Pachyderm egresses
with its storage credentials; ``file:///dir`` writes to a directory of the
machine the job runs on. A copy that fails fails the job (its output commit
has landed; the job's reason says where egress stopped).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from tusk.errors import InvalidArgument, TuskError
from tusk.storage.content import FileNode
from tusk.versioning.context import Context
from tusk.versioning.trees import Entry

__all__ = ["SCHEMES", "check_url", "egress_commit"]

SCHEMES = ("s3", "file")


def check_url(url: str) -> None:
    """Refuse an egress URL Tusk cannot write to, saying why (at pipeline create)."""
    scheme = urlparse(url).scheme
    if scheme not in SCHEMES:
        raise InvalidArgument(f"egress URL {url!r}: {scheme or 'no'} scheme is not supported: use s3://BUCKET/DIR "
                              "(any S3-compatible store, with Tusk's S3 settings) or file:///DIR")
    if scheme == "s3" and not urlparse(url).netloc:
        raise InvalidArgument(f"egress URL {url!r} names no bucket: use s3://BUCKET/DIR")
    if scheme == "file" and not urlparse(url).path.startswith("/"):
        raise InvalidArgument(f"egress URL {url!r}: a file URL needs an absolute path (file:///DIR)")


def _files(ctx: Context, tree: str) -> Iterator[tuple[str, Entry]]:
    for path, entry in ctx.trees.walk(tree, "/"):
        if entry.kind == "file":
            yield path.lstrip("/"), entry


def _node(entry: Entry) -> FileNode:
    assert entry.file is not None, "a file entry carries its chunks"
    return entry.file


def egress_commit(ctx: Context, tree: str, url: str, s3_endpoint: str | None) -> int:
    """Copy the files of ``tree`` to ``url``; the number of files written. ``TuskError`` when it fails."""
    check_url(url)
    parsed = urlparse(url)
    count = 0
    try:
        if parsed.scheme == "file":
            root = Path(parsed.path)
            root.mkdir(parents=True, exist_ok=True)
            for rel, entry in _files(ctx, tree):
                target = root / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, prefix=".tusk-egress-") as out:
                    for block in ctx.content.iter_bytes(_node(entry), rel):
                        out.write(block)
                os.replace(out.name, target)
                count += 1
            return count
        try:
            import boto3
        except ImportError:
            raise InvalidArgument("egress to s3:// needs boto3: pip install 'tusk[s3]'") from None
        client = boto3.client("s3", endpoint_url=s3_endpoint or None)
        prefix = parsed.path.strip("/")
        for rel, entry in _files(ctx, tree):
            key = f"{prefix}/{rel}" if prefix else rel
            with tempfile.SpooledTemporaryFile(max_size=64 << 20) as body:
                for block in ctx.content.iter_bytes(_node(entry), rel):
                    body.write(block)
                body.seek(0)
                client.upload_fileobj(body, parsed.netloc, key)
            count += 1
        return count
    except TuskError:
        raise
    except Exception as exc:  # the target refused or could not be reached: the job's reason says so
        raise InvalidArgument(f"egress to {url} stopped after {count} file(s): {type(exc).__name__}: {exc}") from None
