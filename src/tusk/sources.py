"""Where ``tusk put file`` reads from: a local path, ``-`` (stdin), or an http(s) URL, streamed with httpx.

A URL is fetched by the client, as ``pachctl put file -f URL`` reads it, and its body is streamed into the
write: nothing is held whole in memory.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from tusk.errors import InvalidArgument
from tusk.transfer import Pipe

__all__ = ["is_url", "open_source", "read_source_list", "url_path"]

_SCHEMES = ("http", "https")
TIMEOUT = 60.0


def is_url(text: str) -> bool:
    """``scheme://...``: http(s) is fetched; another scheme is refused by ``open_source``, not read as a path."""
    return "://" in text and text.split("://", 1)[0].isalpha()


def url_path(url: str) -> str:
    """Where a URL lands when no target path is named: its path, as pachctl puts it (``/data/a.csv``)."""
    path = unquote(urlsplit(url).path).strip("/")
    if not path:
        raise InvalidArgument(f"{url} has no path to name the file by: name one, REPO@BRANCH:/path")
    return "/" + path


@contextmanager
def open_source(source: str, stdin: BinaryIO) -> Iterator[BinaryIO]:
    """A readable binary stream of ``source`` (a local file, ``-``, or an http(s) URL)."""
    if source == "-":
        yield stdin
        return
    if is_url(source):
        scheme = source.split("://", 1)[0].lower()
        if scheme not in _SCHEMES:
            raise InvalidArgument(f"cannot read {source}: Tusk fetches http:// and https:// URLs; "
                                  f"copy {scheme}:// data to a local file first")
        import httpx

        try:
            with httpx.stream("GET", source, follow_redirects=True, timeout=TIMEOUT) as response:
                if response.status_code >= 400:
                    raise InvalidArgument(f"cannot fetch {source}: the server answered {response.status_code} "
                                          f"{response.reason_phrase}")
                yield io.BufferedReader(Pipe(response.iter_bytes()), 1 << 20)
        except httpx.HTTPError as exc:
            raise InvalidArgument(f"cannot fetch {source}: {exc or type(exc).__name__}") from None
        return
    path = Path(source)
    if not path.is_file():
        why = "is a directory; pass -r to put it recursively" if path.is_dir() else "does not exist"
        raise InvalidArgument(f"{source} {why}")
    with open(path, "rb") as fh:
        yield fh


def read_source_list(source: str, stdin: BinaryIO) -> list[str]:
    """``-i FILE``: one source a line (local paths or URLs); blank lines are skipped."""
    with open_source(source, stdin) as stream:
        try:
            text = stream.read().decode()
        except UnicodeDecodeError:
            raise InvalidArgument(f"{source} (given with -i) is not a text file of one source a line") from None
    return [line.strip() for line in text.splitlines() if line.strip()]
