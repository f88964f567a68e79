"""ListObjects: a commit's files as S3 keys, in S3's order, a page at a time.

S3 lists keys in byte order, where ``a.txt`` comes before ``a/b``; a tree walk visits ``a/`` first. Sorting
each directory's entries by name, with ``/`` appended to directories, walks the keys in byte order, so a
page needs neither the whole listing nor a sort of it. The walk starts at the deepest directory the prefix
names and skips directories wholly before the marker; with the delimiter ``/`` a directory is one
CommonPrefix and is never entered.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tusk.errors import FileNotFound, InvalidArgument
from tusk.s3gateway.errors import S3Error
from tusk.versioning.records import FileInfo

__all__ = ["Page", "decode_token", "encode_token", "list_page"]

ListDir = Callable[[str], list[FileInfo]]  # "/dir" → its entries (FileInfo.path is absolute)


@dataclass
class Page:
    contents: list[FileInfo] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    last: str = ""  # the last key or CommonPrefix returned: where the next page starts


def _walk(list_dir: ListDir, directory: str, prefix: str, after: str, collapse: bool
          ) -> Iterator[tuple[str, FileInfo | None]]:
    """(key, file) for each file, or (prefix/, None) for each directory ``collapse`` rolls up, in key order."""
    try:
        entries = list_dir("/" + directory)
    except (FileNotFound, InvalidArgument):  # no such directory, or a file: nothing below it
        return
    for e in sorted(entries, key=lambda e: e.path[1:] + ("/" if e.kind == "dir" else "")):
        key = e.path[1:]
        if e.kind != "dir":
            if key.startswith(prefix) and key > after:
                yield key, e
            continue
        sub = key + "/"
        if not (sub.startswith(prefix) or prefix.startswith(sub)):
            continue
        if after >= sub and not after.startswith(sub):
            continue  # every key below sorts before the marker
        if collapse and sub.startswith(prefix):
            if sub != after:
                yield sub, None
            continue
        yield from _walk(list_dir, key, prefix, after, collapse)


def list_page(list_dir: ListDir, prefix: str = "", delimiter: str = "", after: str = "", max_keys: int = 1000
              ) -> Page:
    """The keys after ``after`` under ``prefix``, at most ``max_keys`` of them (CommonPrefixes count)."""
    page = Page()
    start = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
    seen_prefix = None
    for key, info in _walk(list_dir, start, prefix, after, collapse=delimiter == "/"):
        common = key if info is None else None
        if info is not None and delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                common = key[: cut + len(delimiter)]
        if common is not None:
            if common in (seen_prefix, after):
                continue
            seen_prefix = common
        if len(page.contents) + len(page.prefixes) >= max_keys:
            page.truncated = True
            break
        if common is not None:
            page.prefixes.append(common)
            page.last = common
        else:
            assert info is not None
            page.contents.append(info)
            page.last = key
    return page


def encode_token(commit: str, last: str) -> str:
    """A continuation token: where the next page starts, and the commit the listing reads, so that every page
    of one listing shows the same commit even while its branch moves."""
    raw = json.dumps({"v": 1, "c": commit, "k": last}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_token(token: str) -> tuple[str, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data.get("v") != 1:
            raise ValueError
        return str(data["c"]), str(data["k"])
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise S3Error("InvalidArgument", "the continuation token is not one this server gave out; start the "
                                         "listing again without it") from None
