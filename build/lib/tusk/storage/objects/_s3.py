from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tusk.errors import ObjectMissing, StorageUnavailable

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
        try:
            self._s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=bytes(data))
        except self._errors.ClientError as exc:
            raise StorageUnavailable(f"cannot write object {key} to {self.url}: {exc}") from exc

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

    def flush(self) -> None:
        return None

    def ensure_bucket(self) -> None:
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except self._errors.ClientError:
            self._s3.create_bucket(Bucket=self.bucket)
