"""Request bodies as S3 sends them: ``aws-chunked`` decoding, and the checks a body must pass at its end.

Both readers are file objects read by the worker thread that stores the body (``ContentStore.write_stream``
reads them to EOF), so a body of any size streams. A body that fails a check raises at its end, before the
write lands: a wrong signature or checksum never becomes a commit.

An aws-chunked body is ``hex-size[;chunk-signature=SIG]\\r\\n DATA \\r\\n`` repeated, ending with a chunk of
size 0, then (the ``-TRAILER`` modes) trailing headers such as ``x-amz-checksum-crc32`` and, when signed,
``x-amz-trailer-signature``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, cast

from tusk.s3gateway import sigv4
from tusk.s3gateway.errors import S3Error

__all__ = ["CHECKSUM_HEADERS", "CheckedReader", "ChunkSigner", "ChunkedReader", "Expected", "buffered"]

_LINE_MAX = 8192  # a chunk header or trailer line; more is not S3


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes, /) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


def _new_checksum(name: str) -> Any:
    return _Crc32() if name == "crc32" else hashlib.new(name)


# x-amz-checksum-* values this gateway verifies (base64 of the big-endian digest); others (crc32c,
# crc64nvme: no implementation in the standard library) are accepted unverified.
CHECKSUM_HEADERS = {"x-amz-checksum-crc32": "crc32", "x-amz-checksum-sha1": "sha1", "x-amz-checksum-sha256": "sha256"}


@dataclass(frozen=True)
class ChunkSigner:
    """What checks a signed stream's chunk signatures: the request's signing key, date, scope and seed."""

    key: bytes
    amz_date: str
    scope: str
    seed: str


def buffered(raw: io.RawIOBase) -> BinaryIO:
    return cast(BinaryIO, io.BufferedReader(raw, 1 << 20))


class ChunkedReader(io.RawIOBase):
    """The decoded bytes of an aws-chunked body; signatures checked when ``signer`` is given."""

    def __init__(self, raw: IO[bytes], signer: ChunkSigner | None, decoded_length: int | None) -> None:
        super().__init__()
        self._raw = raw
        self._signer = signer
        self._previous = signer.seed if signer else ""
        self._decoded_length = decoded_length
        self._left = 0  # bytes of the current chunk still to read
        self._claimed = ""  # the current chunk's signature
        self._hash: Any = None
        self._total = 0
        self._done = False
        self.trailers: dict[str, str] = {}

    def readable(self) -> bool:
        return True

    def _line(self) -> bytes:
        line = self._raw.readline(_LINE_MAX)
        if not line.endswith(b"\r\n"):
            raise S3Error("IncompleteBody", "the aws-chunked body ended in the middle of a chunk header")
        return line[:-2]

    def _start_chunk(self) -> None:
        header = self._line().decode("latin-1")
        size_text, _, ext = header.partition(";")
        try:
            size = int(size_text.strip(), 16)
        except ValueError:
            raise S3Error("InvalidRequest", f"malformed aws-chunked chunk header {header[:80]!r}") from None
        name, _, value = ext.partition("=")
        if self._signer is not None:
            if name.strip() != "chunk-signature" or not value:
                raise S3Error("SignatureDoesNotMatch", "a chunk of a signed aws-chunked body has no chunk-signature")
            self._claimed = value.strip()
        self._left = size
        self._hash = hashlib.sha256() if self._signer is not None else None
        if size == 0:
            self._end_chunk(final=True)

    def _end_chunk(self, final: bool = False) -> None:
        if self._signer is not None:
            s = self._signer
            expected = sigv4.chunk_signature(s.key, s.amz_date, s.scope, self._previous, self._hash.hexdigest())
            if expected != self._claimed:
                raise S3Error("SignatureDoesNotMatch", "a chunk's signature does not match its bytes: the body was "
                                                       "changed in transit, or signed with another key")
            self._previous = expected
        if final:
            self._read_trailers()
            self._done = True
            if self._decoded_length is not None and self._total != self._decoded_length:
                raise S3Error("IncompleteBody", f"the body decoded to {self._total} bytes, but "
                                                f"x-amz-decoded-content-length says {self._decoded_length}")
        elif self._raw.read(2) != b"\r\n":
            raise S3Error("IncompleteBody", "an aws-chunked chunk is not followed by CRLF")

    def _read_trailers(self) -> None:
        lines: list[bytes] = []
        while line := self._line():
            lines.append(line)
            if len(lines) > 64:
                raise S3Error("InvalidRequest", "too many trailing headers in the aws-chunked body")
        signature = None
        signed = b""
        for line in lines:
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "x-amz-trailer-signature":
                signature = value
            else:
                self.trailers[name] = value
                signed += f"{name}:{value}\n".encode("latin-1")
        if self._signer is not None and self.trailers:
            s = self._signer
            if signature != sigv4.trailer_signature(s.key, s.amz_date, s.scope, self._previous, signed):
                raise S3Error("SignatureDoesNotMatch", "the trailing headers' signature does not match them")

    def readinto(self, b: Any) -> int:
        view = memoryview(b)
        while not self._done:
            if self._left == 0:
                self._start_chunk()
                continue
            n = self._raw.readinto(view[: min(len(view), self._left)])  # type: ignore[attr-defined]
            if not n:
                raise S3Error("IncompleteBody", "the aws-chunked body ended in the middle of a chunk")
            if self._hash is not None:
                self._hash.update(view[:n])
            self._left -= n
            self._total += n
            if self._left == 0:
                self._end_chunk()
            return int(n)
        return 0


@dataclass
class Expected:
    """What a body must be, from the request's headers: its SHA-256 (a signed payload), its MD5
    (Content-MD5), its x-amz-checksum-* values, its length."""

    sha256: str | None = None
    md5: bytes | None = None
    checksums: Mapping[str, str] | None = None
    length: int | None = None
    want_md5: bool = False  # compute the MD5 anyway (a multipart part's ETag)
    trailing: tuple[str, ...] = ()  # x-amz-trailer: the checksum headers an aws-chunked trailer will carry

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], payload: str | None, want_md5: bool = False) -> Expected:
        md5 = None
        if "content-md5" in headers:
            try:
                md5 = base64.b64decode(headers["content-md5"], validate=True)
            except ValueError:
                md5 = b""
            if len(md5) != 16:
                raise S3Error("InvalidDigest", "the Content-MD5 header is not a base64 MD5 digest")
        sha = payload if payload and len(payload) == 64 and all(c in "0123456789abcdef" for c in payload) else None
        if payload and sha is None and payload != sigv4.UNSIGNED and not payload.startswith("STREAMING-"):
            raise S3Error("InvalidArgument", f"x-amz-content-sha256 {payload[:80]!r} is neither a hex SHA-256, "
                                             "UNSIGNED-PAYLOAD nor a STREAMING-... mode")
        length = None
        if "x-amz-decoded-content-length" not in headers and headers.get("content-length", "").isdigit():
            length = int(headers["content-length"])
        checksums = {k: v for k, v in headers.items() if k in CHECKSUM_HEADERS}
        trailing = tuple(n.strip().lower() for n in headers.get("x-amz-trailer", "").split(",") if n.strip())
        return cls(sha, md5, checksums, length, want_md5 or md5 is not None, trailing)


class CheckedReader(io.RawIOBase):
    """Passes a body through while hashing it; at its end raises unless it is what ``expected`` says.

    ``trailers`` gives checksums that arrive after the body (an aws-chunked trailer)."""

    def __init__(self, raw: IO[bytes], expected: Expected,
                 trailers: Callable[[], Mapping[str, str]] = dict) -> None:
        super().__init__()
        self._raw = raw
        self._expected = expected
        self._trailers = trailers
        self._sha = hashlib.sha256() if expected.sha256 else None
        self._md5 = hashlib.md5(usedforsecurity=False) if expected.want_md5 else None
        named = [*(expected.checksums or {}), *expected.trailing]
        self._sums: dict[str, Any] = {CHECKSUM_HEADERS[h]: _new_checksum(CHECKSUM_HEADERS[h])
                                      for h in named if h in CHECKSUM_HEADERS}
        self._checked = False
        self.size = 0
        self.md5_hex = ""
        self.checksums: dict[str, str] = {}  # the verified x-amz-checksum-* values, echoed in the response

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._raw.readinto(b)  # type: ignore[attr-defined]
        if n:
            data = memoryview(b)[:n]
            if self._sha is not None:
                self._sha.update(data)
            if self._md5 is not None:
                self._md5.update(data)
            for checksum in self._sums.values():
                checksum.update(data)
            self.size += n
            return int(n)
        if not self._checked:
            self._checked = True
            self._check()
        return 0

    def _check(self) -> None:
        e = self._expected
        if e.length is not None and self.size != e.length:
            raise S3Error("IncompleteBody", f"the body has {self.size} bytes, but Content-Length says {e.length}")
        if self._sha is not None and self._sha.hexdigest() != e.sha256:
            raise S3Error("XAmzContentSHA256Mismatch", "the body's SHA-256 is not the x-amz-content-sha256 "
                                                       "that was signed")
        if self._md5 is not None:
            digest = self._md5.digest()
            self.md5_hex = digest.hex()
            if e.md5 is not None and digest != e.md5:
                raise S3Error("BadDigest", "the Content-MD5 you specified did not match what we received")
        claims = {**(e.checksums or {}), **{k: v for k, v in self._trailers().items() if k in CHECKSUM_HEADERS}}
        for header, claimed in claims.items():
            checksum = self._sums.get(CHECKSUM_HEADERS[header])
            if checksum is None:
                raise S3Error("InvalidRequest", f"the trailer carries {header}, which x-amz-trailer did not announce")
            actual = base64.b64encode(checksum.digest()).decode()
            if actual != claimed:
                raise S3Error("BadDigest", f"the {header} you specified did not match what we received")
            self.checksums[header] = actual
