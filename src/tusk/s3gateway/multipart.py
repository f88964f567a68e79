"""Multipart uploads, spooled to disk until they complete.

Each upload is a directory under the spool (``$TUSK_HOME/tmp/s3-uploads``): ``upload.json`` (bucket, key,
when) and one file per part, written under a temporary name and renamed, with its MD5 (the part's ETag)
beside it. CompleteMultipartUpload streams the chosen parts, in order, into one put: the object lands as
one commit, chunked exactly as a single put of the same bytes would be. Abort removes the directory, and
nothing of the upload was ever in the store.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from tusk.s3gateway.errors import S3Error

__all__ = ["MAX_PART", "MAX_PARTS", "Part", "Upload", "Uploads"]

MAX_PARTS = 10_000  # S3's limits
MAX_PART = 5 << 30
_COPY = 1 << 20


@dataclass(frozen=True)
class Part:
    number: int
    size: int
    etag: str  # the part's MD5, hex
    modified: datetime


@dataclass(frozen=True)
class Upload:
    id: str
    bucket: str
    key: str
    initiated: datetime
    directory: Path

    def part_path(self, number: int) -> Path:
        return self.directory / f"part-{number:05d}"


class _Concatenation(io.RawIOBase):
    """The parts' bytes, one file after another."""

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__()
        self._paths = list(paths)
        self._fh: IO[bytes] | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while True:
            if self._fh is None:
                if not self._paths:
                    return 0
                self._fh = open(self._paths.pop(0), "rb")  # noqa: SIM115  (closed when exhausted or on close)
            n = self._fh.readinto(b)  # type: ignore[attr-defined]
            if n:
                return int(n)
            self._fh.close()
            self._fh = None

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        super().close()


class Uploads:
    def __init__(self, spool: Path) -> None:
        self.spool = spool

    def create(self, bucket: str, key: str) -> Upload:
        upload_id = secrets.token_hex(16)
        directory = self.spool / upload_id
        directory.mkdir(parents=True)
        initiated = datetime.now(UTC)
        (directory / "upload.json").write_text(json.dumps({"bucket": bucket, "key": key,
                                                           "initiated": initiated.isoformat()}))
        return Upload(upload_id, bucket, key, initiated, directory)

    def get(self, upload_id: str, bucket: str, key: str) -> Upload:
        """The upload of that id for that bucket and key; NoSuchUpload otherwise (completed or aborted)."""
        directory = self.spool / upload_id
        try:
            if not all(c in "0123456789abcdef" for c in upload_id) or len(upload_id) != 32:
                raise FileNotFoundError
            meta = json.loads((directory / "upload.json").read_text())
        except (FileNotFoundError, ValueError):
            raise S3Error("NoSuchUpload", f"no upload {upload_id[:64]}: it was completed or aborted, or never "
                                          "started; start a new one with CreateMultipartUpload") from None
        if meta["bucket"] != bucket or meta["key"] != key:
            raise S3Error("NoSuchUpload", f"upload {upload_id} is of {meta['bucket']}/{meta['key']}, not "
                                          f"{bucket}/{key}")
        return Upload(upload_id, bucket, key, datetime.fromisoformat(meta["initiated"]), directory)

    @staticmethod
    def _number(text: str) -> int:
        if not text.isdigit() or not 1 <= int(text) <= MAX_PARTS:
            raise S3Error("InvalidArgument", f"partNumber must be an integer between 1 and {MAX_PARTS}")
        return int(text)

    def put_part(self, upload: Upload, number_text: str, body: IO[bytes], md5: Any) -> Part:
        """Write a part from ``body``; ``md5()`` gives its MD5 hex once the body is read. Replaces a part
        of the same number, as S3 does."""
        number = self._number(number_text)
        target = upload.part_path(number)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
        size = 0
        try:
            with open(tmp, "wb") as fh:
                while chunk := body.read(_COPY):
                    size += len(chunk)
                    if size > MAX_PART:
                        raise S3Error("EntityTooLarge", "a part is at most 5 GiB")
                    fh.write(chunk)
            etag = str(md5())
            target.with_suffix(".md5").write_text(etag)  # before the part: a listed part always has its ETag
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return Part(number, size, etag, datetime.now(UTC))

    def parts(self, upload: Upload) -> list[Part]:
        out = []
        for path in sorted(upload.directory.glob("part-?????")):
            try:
                etag = path.with_suffix(".md5").read_text()
                stat = path.stat()
            except FileNotFoundError:
                continue
            out.append(Part(int(path.name[5:]), stat.st_size, etag,
                            datetime.fromtimestamp(stat.st_mtime, UTC)))
        return out

    def assemble(self, upload: Upload, chosen: Sequence[tuple[int, str]]) -> tuple[io.RawIOBase, int]:
        """The bytes of the parts ``chosen`` (number, ETag), in ascending order, as S3 requires, and their size."""
        if not chosen:
            raise S3Error("MalformedXML", "CompleteMultipartUpload names no part")
        have = {p.number: p for p in self.parts(upload)}
        numbers = [n for n, _ in chosen]
        if numbers != sorted(set(numbers)):
            raise S3Error("InvalidPartOrder", "the parts must be listed in ascending order of PartNumber, once each")
        for number, etag in chosen:
            part = have.get(number)
            if part is None or etag.strip('"') != part.etag:
                raise S3Error("InvalidPart", f"part {number} was not uploaded, or its ETag is not {etag}")
        return _Concatenation([upload.part_path(n) for n in numbers]), sum(have[n].size for n in numbers)

    def abort(self, upload: Upload) -> None:
        shutil.rmtree(upload.directory, ignore_errors=True)
