from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from tusk.errors import InvalidArgument
from tusk.storage.objects._local import LocalObjectStore
from tusk.storage.objects._protocol import ObjectStore

__all__ = ["open_object_store", "register_scheme"]

Opener = Callable[[str, "str | None"], ObjectStore]
_SCHEMES: dict[str, Opener] = {}


def register_scheme(scheme: str, opener: Opener) -> None:
    _SCHEMES[scheme] = opener


def _open_local(url: str, _endpoint: str | None) -> ObjectStore:
    parsed = urlparse(url)
    path = Path(parsed.path if parsed.scheme else url).expanduser()
    return LocalObjectStore(path)


def _open_s3(url: str, endpoint: str | None) -> ObjectStore:
    from tusk.storage.objects._s3 import S3ObjectStore

    parsed = urlparse(url)
    if not parsed.netloc:
        raise InvalidArgument(f"invalid S3 URL {url!r}: expected s3://bucket/prefix")
    store = S3ObjectStore(parsed.netloc, parsed.path, endpoint_url=endpoint)
    store.ensure_bucket()
    return store


register_scheme("file", _open_local)
register_scheme("", _open_local)
register_scheme("s3", _open_s3)


def open_object_store(url: str, endpoint_url: str | None = None) -> ObjectStore:
    scheme = urlparse(url).scheme
    opener = _SCHEMES.get(scheme)
    if opener is None:
        known = ", ".join(sorted(s for s in _SCHEMES if s))
        raise InvalidArgument(f"unknown object store scheme {scheme!r} in {url!r}; known: {known}")
    return opener(url, endpoint_url)
