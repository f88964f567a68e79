"""Request and response bodies of the serving endpoints: the size limit, and gzip/deflate both ways.

A request body is read as it streams in. The limit (``TUSK_SERVING_MAX_BODY_BYTES``,
64 MiB by default) holds for the bytes on the wire and, with ``Content-Encoding:
gzip`` or ``deflate``, for what they inflate to: inflating stops as soon as the
output passes the limit, so a zip bomb costs the server at most the limit in
memory. A ``Content-Length`` over the limit is refused before a byte is read.

``deflate`` is the zlib format (RFC 9110, and what tritonclient sends); a raw
deflate stream, which some clients send instead, is recognised by its missing
zlib header. Responses are compressed when ``Accept-Encoding`` asks for gzip or
deflate (:func:`response_coding`).
"""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import orjson
from starlette.requests import Request

from tusk.errors import InputError, PayloadTooLarge, UnsupportedMediaType

__all__ = ["compress", "parse_json", "read_body", "response_coding"]

_GZIP = 16 + zlib.MAX_WBITS
_CODINGS = ("gzip", "x-gzip", "deflate")


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.4g} {unit}"
    return f"{n} bytes"


def _too_large(limit: int, what: str) -> PayloadTooLarge:
    return PayloadTooLarge(f"{what} is over this server's limit of {_size(limit)} per request body: send fewer "
                           "rows per request, or ask the operator to raise TUSK_SERVING_MAX_BODY_BYTES")


class _Inflater:
    """One content coding, undone incrementally; never holds more than ``limit`` bytes of output."""

    def __init__(self, coding: str, limit: int) -> None:
        self.coding = "gzip" if coding == "x-gzip" else coding
        self.limit = limit
        self.total = 0  # bytes of output so far
        self._z: Any = None
        self._head = b""  # deflate: the first bytes, until they show whether there is a zlib header

    def _start(self, data: bytes) -> bytes:
        if self.coding == "gzip":
            self._z = zlib.decompressobj(_GZIP)
            return data
        data = self._head + data
        if len(data) < 2:
            self._head = data
            return b""
        zlib_header = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
        self._z = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
        return data

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        if self._z is None:
            data = self._start(data)
            if self._z is None:
                return b""
        out: list[bytes] = []
        try:
            while data:
                if self._z.eof:  # gzip allows several members one after the other; deflate does not
                    if self.coding != "gzip":
                        raise InputError("the request body has data after the end of its deflate stream")
                    self._z = zlib.decompressobj(_GZIP)
                chunk = self._z.decompress(data, self.limit - self.total + 1)
                self.total += len(chunk)
                if self.total > self.limit:
                    raise _too_large(self.limit, f"the request body, once inflated ({self.coding}),")
                out.append(chunk)
                rest = self._z.unconsumed_tail or self._z.unused_data
                if not chunk and len(rest) >= len(data):  # no progress: wait for more input
                    break
                data = rest
        except zlib.error as exc:
            raise InputError(f"the request body is not valid {self.coding} data ({exc}), although its "
                             f"Content-Encoding says {self.coding}") from None
        return b"".join(out)

    def finish(self) -> bytes:
        if self._z is None:
            if self._head:
                raise InputError(f"the request body is not valid {self.coding} data (it is {len(self._head)} byte)")
            return b""  # an empty body is empty in any coding
        if not self._z.eof:
            raise InputError(f"the request body is a truncated {self.coding} stream: it ends before the "
                             "compressed data does")
        return b""


def _inflaters(header: str | None, limit: int) -> list[_Inflater]:
    """The codings to undo, in the order to undo them (the last one applied first)."""
    codings = [c.strip().lower() for c in (header or "").split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    unknown = [c for c in codings if c not in _CODINGS]
    if unknown:
        raise UnsupportedMediaType(f"Content-Encoding {', '.join(unknown)} is not supported here: send the body "
                                   "as is, or compressed with gzip or deflate")
    return [_Inflater(c, limit) for c in reversed(codings)]


async def read_body(request: Request, limit: int) -> bytes:
    """The whole request body, decompressed; PayloadTooLarge as soon as it (or its inflated form) passes
    ``limit`` bytes, UnsupportedMediaType for a coding other than gzip and deflate."""
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, f"the request body ({_size(int(declared))}, by its Content-Length)")
    stages = _inflaters(request.headers.get("content-encoding"), limit)
    parts: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(limit, "the request body")
        for stage in stages:
            chunk = stage.feed(chunk)
        if chunk:
            parts.append(chunk)
    for i, stage in enumerate(stages):
        tail = stage.finish()
        for later in stages[i + 1:]:
            tail = later.feed(tail)
        if tail:
            parts.append(tail)
    return b"".join(parts)


def parse_json(raw: bytes, binary_extension: bool = False) -> Any:
    """The JSON document of a request; ``binary_extension``: say so when the body looks binary (not UTF-8)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if binary_extension:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(
                    "the request body is not JSON: it holds bytes that are not UTF-8 text, as binary tensor "
                    "data does, but the Inference-Header-Content-Length header is missing; with the binary "
                    "tensor data extension it must give the length of the JSON part that comes first") from None
        raise InputError(f"the request body is not valid JSON: {exc}") from None


def response_coding(accept_encoding: str | None) -> str | None:
    """gzip or deflate, whichever ``Accept-Encoding`` prefers (gzip on a tie), or None for no compression."""
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for part in accept_encoding.split(","):
        name, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights["gzip" if name.lower() == "x-gzip" else name.lower()] = q
    best, best_q = None, 0.0
    for coding in ("gzip", "deflate"):
        q = weights.get(coding, weights.get("*", 0.0))
        if q > best_q:
            best, best_q = coding, q
    return best


def compress(data: bytes, coding: str) -> bytes:
    """``data`` in ``coding`` (gzip, or deflate in the zlib format); fast rather than small."""
    if coding == "gzip":
        return gzip.compress(data, compresslevel=1, mtime=0)
    return zlib.compress(data, 1)
