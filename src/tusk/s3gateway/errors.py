"""S3 errors: the codes and statuses S3 clients expect, and how Tusk's own errors map onto them.

``S3Error`` is a protocol error of this interface (like an HTTP exception), not a domain error: the
domain raises ``tusk.errors.TuskError``, and ``from_tusk`` turns it into the S3 code a client acts on
(boto3 raises ``ClientError`` with ``Error.Code``; the AWS CLI prints it).
"""

from __future__ import annotations

from tusk.errors import (
    AlreadyExists,
    BranchNotFound,
    CommitNotFound,
    Conflict,
    FileNotFound,
    IntegrityError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RepoNotFound,
    StorageUnavailable,
    Timeout,
    TuskError,
    Unauthenticated,
)

__all__ = ["S3Error", "from_tusk"]

_STATUS = {
    "AccessDenied": 403,
    "AuthorizationHeaderMalformed": 400,
    "BadDigest": 400,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "EntityTooLarge": 400,
    "IncompleteBody": 400,
    "InternalError": 500,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidBucketName": 400,
    "InvalidDigest": 400,
    "InvalidPart": 400,
    "InvalidPartOrder": 400,
    "InvalidRange": 416,
    "InvalidRequest": 400,
    "MalformedXML": 400,
    "MethodNotAllowed": 405,
    "MissingContentLength": 411,
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "NoSuchUpload": 404,
    "NoSuchVersion": 404,
    "NotImplemented": 501,
    "OperationAborted": 409,
    "PreconditionFailed": 412,
    "RequestTimeTooSkewed": 403,
    "RequestTimeout": 400,
    "ServiceUnavailable": 503,
    "SignatureDoesNotMatch": 403,
    "XAmzContentSHA256Mismatch": 400,
}


class S3Error(Exception):
    """An S3 error response: ``code`` (``NoSuchKey``...), its HTTP status, and a message saying what to do."""

    def __init__(self, code: str, message: str, **fields: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = _STATUS.get(code, 400)
        self.fields = fields  # extra elements of the error document: Key, BucketName, RangeRequested...

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def from_tusk(exc: TuskError) -> S3Error:
    """The S3 error for a Tusk error (the message is kept: it says what was wrong and how to fix it)."""
    message = str(exc)
    code = "InternalError"
    if isinstance(exc, FileNotFound):
        code = "NoSuchKey"
    elif isinstance(exc, RepoNotFound | BranchNotFound | CommitNotFound):
        code = "NoSuchBucket"
    elif isinstance(exc, NotFound):
        code = "NoSuchKey"
    elif isinstance(exc, PermissionDenied):
        code = "AccessDenied"
    elif isinstance(exc, Unauthenticated):
        code = "InvalidAccessKeyId"
    elif isinstance(exc, AlreadyExists):
        code = "BucketAlreadyOwnedByYou"
    elif isinstance(exc, Conflict):
        code = "OperationAborted"
    elif isinstance(exc, InvalidArgument):
        code = "InvalidArgument"
    elif isinstance(exc, StorageUnavailable):
        code = "ServiceUnavailable"
    elif isinstance(exc, Timeout):
        code = "RequestTimeout"
    elif isinstance(exc, IntegrityError):
        code = "InternalError"
    elif exc.http_status < 500:
        code = "InvalidRequest"
    return S3Error(code, message)
