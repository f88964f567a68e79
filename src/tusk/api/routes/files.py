from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import IO, Annotated, Any, BinaryIO, cast

from fastapi import APIRouter, Body, Header, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from tusk.api._body import with_body
from tusk.api._deps import CallerDep, Limit, Offset, Wait, finish_write
from tusk.errors import InvalidArgument
from tusk.sdk._operations import file_ref as _ref
from tusk.transfer import read_batch
from tusk.versioning.records import CommitInfo, DiffEntry, FileInfo

router = APIRouter(prefix="/api/v1/repos/{repo}/commits/{ref}", tags=["files"])

_SMALL_BATCH = 2048
_OCTETS = {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}


class Landed(BaseModel):
    """The commit a write made, or null when it was staged in an open commit."""

    commit: CommitInfo | None
    files: int = 0


class CopyRequest(BaseModel):
    src: str  # repo@ref:/path
    path: str


def _file(repo: str, ref: str, path: str) -> str:
    return f"{repo}@{ref}:/{path.lstrip('/')}"


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """A ``Range: bytes=A-B`` (or ``A-``, or ``-N``: the last N) as ``[start, end)``; None for a header to ignore
    (another unit, several ranges, malformed: RFC 9110 serves the whole file); ``(size, size)`` when unsatisfiable."""
    unit, _, spec = header.partition("=")
    first, dash, last = spec.strip().partition("-")
    if unit.strip().lower() != "bytes" or "," in spec or not dash:
        return None
    try:
        if not first:
            n = int(last)
            return (max(0, size - n), size) if n > 0 and size else (size, size)
        start, end = int(first), int(last) + 1 if last else size
    except ValueError:
        return None
    if start >= size:
        return size, size
    return (start, min(end, size)) if start < end else None


_RANGED: dict[int | str, dict[str, Any]] = {
    200: _OCTETS, 206: {"description": "The bytes the Range asked for", **_OCTETS},
    416: {"description": "The Range starts at or past the end of the file"}}
RangeHeader = Annotated[str | None, Header(alias="range", description="bytes=START-END (inclusive), START- or -N")]


@router.get("/files/{path:path}", responses=_RANGED, response_class=StreamingResponse)
def get_file(repo: str, ref: str, path: str, caller: CallerDep, byte_range: RangeHeader = None) -> Response:
    """The file's bytes, streamed (verified chunk by chunk as they are read); with ``Range``, only those bytes
    (206), read from only the chunks that hold them."""
    caller.require_repo(repo, "reader")
    target = _file(repo, ref, path)
    info = caller.ops.inspect_file(target)
    if info.kind != "file":
        raise InvalidArgument(f"{target} is a directory; list it, or get its files one by one")
    size = info.size_bytes
    headers = {"Accept-Ranges": "bytes", "X-Tusk-Digest": info.digest}
    wanted = _byte_range(byte_range, size) if byte_range is not None else None
    if wanted is not None and wanted[0] >= size:
        message = f"{target} is {size} bytes: the range {byte_range!r} starts at or past its end"
        return JSONResponse({"error": message, "error_type": "InvalidArgument"}, 416,
                            headers={"Content-Range": f"bytes */{size}"})
    start, end = wanted if wanted is not None else (0, size)
    chunks = caller.ops.iter_file(target, start, end) if wanted is not None else caller.ops.iter_file(target)
    first = next(chunks, b"")  # a bad first chunk is still a clean error response, not a cut-off stream

    def body() -> Iterator[bytes]:
        yield first
        yield from chunks

    if wanted is not None:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return StreamingResponse(body(), status_code=206 if wanted is not None else 200,
                             media_type="application/octet-stream",
                             headers=headers | {"Content-Length": str(end - start)})


@router.get("/stat/{path:path}")
def inspect_file(repo: str, ref: str, path: str, caller: CallerDep) -> FileInfo:
    caller.require_repo(repo, "reader")
    return caller.ops.inspect_file(_file(repo, ref, path))


@router.get("/tree/{path:path}")
def list_files(repo: str, ref: str, path: str, caller: CallerDep, recursive: bool = False, limit: Limit = None,
               offset: Offset = 0) -> list[FileInfo]:
    """A directory's entries in name order, or with ``recursive`` every file below it. A page: ``offset`` and
    ``limit``."""
    caller.require_repo(repo, "reader")
    target = _file(repo, ref, path)
    if recursive:
        return list(itertools.islice(caller.ops.walk_files(target), offset, offset + limit if limit else None))
    return caller.ops.list_files(target, limit, offset)


@router.get("/glob")
def glob_files(repo: str, ref: str, caller: CallerDep, pattern: str = "/") -> list[FileInfo]:
    caller.require_repo(repo, "reader")
    return caller.ops.glob_files(f"{repo}@{ref}:{pattern}")


@router.get("/diff")
def diff_files(repo: str, ref: str, caller: CallerDep, path: str = "/", old: str | None = None,
               limit: Limit = None, offset: Offset = 0) -> list[DiffEntry]:
    """Changes from ``old`` (``repo@ref[:/path]``; default: the parent commit) to this commit, under ``path``,
    in path order. A page: ``offset`` and ``limit``."""
    caller.require_repo(repo, "reader")
    if old is not None:
        caller.require_repo(_ref(old).repo, "reader")
    return caller.ops.diff_files(_file(repo, ref, path), old, limit, offset)


@router.put("/files/{path:path}", openapi_extra={"requestBody": {"required": True, **_OCTETS}})
async def put_file(repo: str, ref: str, path: str, request: Request, caller: CallerDep, append: bool = False,
                   description: str | None = None, wait: Wait = False) -> Landed:
    """Write the body to the file as one commit (or stage it in the branch's open commit), streamed."""
    caller.require_repo(repo, "writer")
    target = _file(repo, ref, path)

    def work(body: IO[bytes]) -> Landed:
        landed = Landed(commit=caller.ops.put_file(target, cast(BinaryIO, body), append=append,
                                                   description=description), files=1)
        finish_write(caller, wait)
        return landed

    return await with_body(request, work)


@router.post("/batch", openapi_extra={"requestBody": {"required": True, "content": {
    "application/x-tar": {"schema": {"type": "string", "format": "binary"}}}}})
async def apply_batch(repo: str, ref: str, request: Request, caller: CallerDep,
                      description: str | None = None, wait: Wait = False) -> Landed:
    """Apply a tar batch (``ops.json``, then one member per put) as one commit; see ``tusk.transfer``."""
    caller.require_repo(repo, "writer")

    def work(body: IO[bytes]) -> Landed:
        mod = caller.ops.modify(f"{repo}@{ref}", description)
        small: list[tuple[str, bytes]] = []  # packed together, as a local `put file -r` would
        limit = mod.small_file_limit
        for op, data, size in read_batch(body):
            if op["op"] == "put" and data is not None and size <= limit:
                small.append((op["path"], data.read()))
                if len(small) >= _SMALL_BATCH:
                    mod.put_small(small)
                    small = []
                continue
            mod.put_small(small)
            small = []
            if op["op"] == "delete":
                mod.delete(op["path"], missing_ok=op.get("missing_ok") is True)
            elif op["op"] == "copy":
                src = _ref(str(op.get("src", "")))
                caller.require_repo(src.repo, "reader")
                mod.copy(src, op["path"])
            else:
                assert data is not None
                mod.put_stream(op["path"], cast(BinaryIO, data), op["op"] == "append")
        mod.put_small(small)
        landed = Landed(commit=mod.land(), files=mod.changes)
        finish_write(caller, wait)
        return landed

    return await with_body(request, work)


@router.delete("/files/{path:path}")
def delete_file(repo: str, ref: str, path: str, caller: CallerDep, description: str | None = None,
                wait: Wait = False) -> Landed:
    caller.require_repo(repo, "writer")
    landed = Landed(commit=caller.ops.delete_file(_file(repo, ref, path), description), files=1)
    finish_write(caller, wait)
    return landed


@router.post("/copy")
def copy_file(repo: str, ref: str, body: Annotated[CopyRequest, Body()], caller: CallerDep,
              description: str | None = None, wait: Wait = False) -> Landed:
    """Copy a file or directory by reference (no bytes are duplicated) to ``path`` in this branch."""
    caller.require_repo(repo, "writer")
    caller.require_repo(_ref(body.src).repo, "reader")
    landed = Landed(commit=caller.ops.copy_file(body.src, _file(repo, ref, body.path), description), files=1)
    finish_write(caller, wait)
    return landed

