from __future__ import annotations

import builtins
import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from tusk.errors import ObjectMissing, StorageUnavailable
from tusk.storage.objects._protocol import ObjectStat

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["S3ObjectStore"]


class S3ObjectStore:
    """Objects in an S3 bucket under a prefix (AWS, SeaweedFS, MinIO, ...).

    A single PUT is atomic in S3, and a successful PUT is durable, so ``flush``
    has nothing to do.
    """

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 client: Any = None) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:  # pragma: no cover - depends on extras
            raise StorageUnavailable("the S3 object store needs boto3: pip install 'tusk[s3]'") from exc
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        cfg = Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32)
        self._s3: S3Client = client or boto3.client("s3", endpoint_url=endpoint_url, config=cfg)
        self._errors = self._s3.exceptions

    def _key(self, key: str) -> str:
        return self.prefix + key

    def put(self, key: str, data: bytes | memoryview) -> None:
        self.put_parts(key, (data,))

    MULTIPART_THRESHOLD = 16 << 20
    PART_SIZE = 8 << 20  # S3 wants parts of 5 MiB or more, but the last
    PART_THREADS = 4

    def put_parts(self, key: str, parts: Sequence[bytes | memoryview]) -> None:
        """One PUT, or for an object of ``MULTIPART_THRESHOLD`` bytes or more (a pack) a multipart upload whose
        parts are sent in parallel. Either way the object appears whole or not at all."""
        if sum(len(p) for p in parts) >= self.MULTIPART_THRESHOLD:
            self._put_multipart(key, parts)
            return
        try:
            self._s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=b"".join(parts))
        except self._errors.ClientError as exc:
            raise StorageUnavailable(f"cannot write object {key} to {self.url}: {exc}") from exc

    def _put_multipart(self, key: str, parts: Sequence[bytes | memoryview]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        bodies: builtins.list[builtins.list[memoryview]] = [[]]  # the pieces of each upload part, in order
        filled = 0
        for piece in parts:
            view = memoryview(piece).cast("B")
            while view:
                if filled == self.PART_SIZE:
                    bodies.append([])
                    filled = 0
                take = view[: self.PART_SIZE - filled]
                bodies[-1].append(take)
                filled += len(take)
                view = view[len(take):]
        full = self._key(key)
        upload = None
        try:
            upload = self._s3.create_multipart_upload(Bucket=self.bucket, Key=full)["UploadId"]

            def send(n: int, pieces: builtins.list[memoryview]) -> dict[str, Any]:
                out = self._s3.upload_part(Bucket=self.bucket, Key=full, UploadId=upload, PartNumber=n,
                                           Body=b"".join(pieces))
                return {"ETag": out["ETag"], "PartNumber": n}

            with ThreadPoolExecutor(max_workers=self.PART_THREADS, thread_name_prefix="tusk-s3-part") as pool:
                done = list(pool.map(send, range(1, len(bodies) + 1), bodies))
            self._s3.complete_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload,
                                               MultipartUpload={"Parts": done})  # type: ignore[typeddict-item]
        except BaseException as exc:
            if upload is not None:  # no half object, no parts left to cost space
                with contextlib.suppress(Exception):
                    self._s3.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload)
            if isinstance(exc, self._errors.ClientError):
                raise StorageUnavailable(f"cannot write object {key} to {self.url}: {exc}") from exc
            raise

    def get(self, key: str) -> bytes:
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            return body.read()
        except self._errors.NoSuchKey:
            raise ObjectMissing(f"object {key} is missing from {self.url}") from None
        except self._errors.ClientError as exc:
            raise StorageUnavailable(f"cannot read object {key} from {self.url}: {exc}") from exc

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=self._key(key),
                                       Range=f"bytes={offset}-{offset + length - 1}")["Body"]
            return body.read()
        except self._errors.NoSuchKey:
            raise ObjectMissing(f"object {key} is missing from {self.url}") from None
        except self._errors.ClientError as exc:
            raise StorageUnavailable(f"cannot read object {key} from {self.url}: {exc}") from exc

    def read_into(self, key: str, offset: int, out: memoryview) -> int:
        data = self.get_range(key, offset, len(out))
        out[:len(data)] = data
        return len(data)

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def size(self, key: str) -> int | None:
        try:
            return int(self._s3.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
        except self._errors.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StorageUnavailable(f"cannot reach {self.url}: {exc}") from exc

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=self._key(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        cut = len(self.prefix)
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            for obj in page.get("Contents", []):
                yield obj["Key"][cut:]

    def scan(self, prefix: str = "") -> Iterator[ObjectStat]:
        paginator = self._s3.get_paginator("list_objects_v2")
        cut = len(self.prefix)
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            for obj in page.get("Contents", []):
                yield ObjectStat(obj["Key"][cut:], int(obj["Size"]), obj["LastModified"].timestamp())

    def delete_many(self, keys: Iterable[str]) -> None:
        batch: builtins.list[str] = []
        for key in keys:
            batch.append(key)
            if len(batch) == 1000:  # the most one DeleteObjects call takes
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, keys: builtins.list[str]) -> None:
        try:
            out = self._s3.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": self._key(k)} for k in keys], "Quiet": True})
        except self._errors.ClientError as exc:
            raise StorageUnavailable(f"cannot delete objects from {self.url}: {exc}") from exc
        failed = [e for e in out.get("Errors", []) if e.get("Code") not in ("NoSuchKey", "404")]
        if failed:
            raise StorageUnavailable(f"cannot delete {len(failed)} object(s) from {self.url}: "
                                     f"{failed[0].get('Code')} {failed[0].get('Message')}")

    def scan_temporary(self) -> Iterator[ObjectStat]:
        """Multipart uploads begun under the prefix and never completed or aborted (their parts cost space)."""
        cut = len(self.prefix)
        try:
            paginator = self._s3.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for up in page.get("Uploads", []):
                    yield ObjectStat(f"{up['UploadId']}/{up['Key'][cut:]}", 0, up["Initiated"].timestamp())
        except self._errors.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NotImplemented", "501"):
                return  # a server without multipart listing has nothing to report
            raise StorageUnavailable(f"cannot list unfinished uploads in {self.url}: {exc}") from exc

    def delete_temporary(self, key: str) -> None:
        upload_id, _, rest = key.partition("/")
        try:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=self._key(rest), UploadId=upload_id)
        except self._errors.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchUpload", "404"):
                raise StorageUnavailable(f"cannot abort upload {upload_id} in {self.url}: {exc}") from exc

    def flush(self) -> None:
        return None

    def open_upload(self, key: str, part_size: int = 8 << 20) -> _Upload:
        """A writable stream that lands as one object at ``key`` on ``close()`` (a multipart upload, one part
        in memory at a time); ``abort()`` drops it, so a failed writer leaves no half object behind."""
        return _Upload(self, self._key(key), part_size)

    def open_download(self, key: str) -> Any:
        """A readable stream of the object at ``key`` (read as it is consumed, never whole)."""
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except self._errors.NoSuchKey:
            raise ObjectMissing(f"object {key} is missing from {self.url}") from None
        except self._errors.ClientError as exc:
            raise StorageUnavailable(f"cannot read object {key} from {self.url}: {exc}") from exc

    def ensure_bucket(self) -> None:
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except self._errors.ClientError:
            self._s3.create_bucket(Bucket=self.bucket)


class _Upload:
    """The writer behind ``S3ObjectStore.open_upload``."""

    def __init__(self, store: S3ObjectStore, key: str, part_size: int) -> None:
        self._store, self._key, self._part_size = store, key, part_size
        self._buf = bytearray()
        self._parts: builtins.list[dict[str, Any]] = []
        self._upload_id: str | None = None
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._buf += data
        while len(self._buf) >= self._part_size:
            self._send(bytes(self._buf[:self._part_size]))
            del self._buf[:self._part_size]
        return len(data)

    def _send(self, part: bytes) -> None:
        s3 = self._store._s3
        try:
            if self._upload_id is None:
                self._upload_id = s3.create_multipart_upload(Bucket=self._store.bucket, Key=self._key)["UploadId"]
            n = len(self._parts) + 1
            out = s3.upload_part(Bucket=self._store.bucket, Key=self._key, UploadId=self._upload_id,
                                 PartNumber=n, Body=part)
        except self._store._errors.ClientError as exc:
            self.abort()
            raise StorageUnavailable(f"cannot upload to s3://{self._store.bucket}/{self._key}: {exc}") from exc
        self._parts.append({"ETag": out["ETag"], "PartNumber": n})

    def close(self) -> None:
        if self.closed:
            return
        s3 = self._store._s3
        try:
            if self._upload_id is None:  # small: one PUT
                s3.put_object(Bucket=self._store.bucket, Key=self._key, Body=bytes(self._buf))
            else:
                if self._buf:
                    self._send(bytes(self._buf))
                s3.complete_multipart_upload(Bucket=self._store.bucket, Key=self._key, UploadId=self._upload_id,
                                             MultipartUpload={"Parts": self._parts})  # type: ignore[typeddict-item]
        except self._store._errors.ClientError as exc:
            self.abort()
            raise StorageUnavailable(f"cannot upload to s3://{self._store.bucket}/{self._key}: {exc}") from exc
        self.closed = True

    def abort(self) -> None:
        if self._upload_id is not None and not self.closed:
            with contextlib.suppress(Exception):
                self._store._s3.abort_multipart_upload(Bucket=self._store.bucket, Key=self._key,
                                                       UploadId=self._upload_id)
        self._buf.clear()
        self.closed = True
