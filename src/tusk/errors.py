"""One exception hierarchy for Tusk.

Every error a user can cause is a ``TuskError`` whose message says what was wrong
and, where it helps, how to fix it. Each class carries the HTTP status the API
maps it to and the exit code the CLI returns::

    TuskError                      500  exit 1
    ├── UserError                  400  exit 2
    │   ├── InvalidArgument        400
    │   │   ├── InvalidRef         400   bad `repo@ref:/path` syntax or ancestry
    │   │   ├── AmbiguousId        400   a short id (6+ hex characters) that matches several commits, jobs or
    │   │   │                            datums: the message lists them
    │   │   ├── InvalidPath        400   `..` escaping the repo, empty names, NUL bytes
    │   │   └── InputError         400   an inference payload or algorithm input the model cannot take
    │   ├── NotFound               404
    │   │   ├── RepoNotFound
    │   │   ├── BranchNotFound
    │   │   ├── CommitNotFound
    │   │   ├── FileNotFound
    │   │   ├── ModelNotFound          no model manifest at that commit
    │   │   ├── DeploymentNotFound
    │   │   ├── PipelineNotFound
    │   │   ├── JobNotFound            no such job (or datum of it)
    │   │   ├── AlgorithmNotFound      no such owner/name, or no version matching the request
    │   │   ├── SecretNotFound         no such secret, or (auth on) one the caller may not use
    │   │   └── ImageNotFound          no imported image has that name, tag or id (`tusk image import`)
    │   ├── Unauthenticated        401   no token, or an unknown, revoked or expired one (auth on)
    │   ├── PermissionDenied       403   the caller's role does not allow it; an algorithm calling one it did
    │   │                                not declare
    │   ├── ModelUnloadable    400   no loader for the flavor, or its library is not installed
    │   ├── PayloadTooLarge        413   a request body (or what it inflates to) over the server's limit
    │   ├── UnsupportedMediaType   415   a Content-Type or Content-Encoding the endpoint does not take
    │   ├── AlreadyExists          409
    │   └── Conflict               409   directory/file clash, commit not open, head moved
    ├── IntegrityError             500  exit 3   stored bytes do not match their hash
    │   ├── ObjectMissing
    │   ├── ObjectCorrupt
    │   └── ModelTampered              a model file does not match its manifest: refused before loading
    ├── AlgorithmError             500           an algorithm's own code raised
    ├── StorageUnavailable         503  exit 4   object store / database unreachable, or its driver
    │   │                                        (an extra: boto3, psycopg) not installed
    │   └── NotReady                             a deployment whose models are still loading
    ├── Timeout                    504  exit 5
    └── JobFailed                       exit 6   a job the call waited for failed (its write still stands);
                                                 raised by ``Client.raise_for_jobs()``, never by the write

The CLI exits 130 after Ctrl-C, saying what was committed and what was not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AlgorithmError",
    "AlgorithmNotFound",
    "AlreadyExists",
    "AmbiguousId",
    "BranchNotFound",
    "CommitNotFound",
    "Conflict",
    "DeploymentNotFound",
    "FileNotFound",
    "ImageNotFound",
    "InputError",
    "IntegrityError",
    "InvalidArgument",
    "InvalidPath",
    "InvalidRef",
    "JobFailed",
    "JobNotFound",
    "ModelNotFound",
    "ModelTampered",
    "ModelUnloadable",
    "NotFound",
    "NotReady",
    "ObjectCorrupt",
    "ObjectMissing",
    "PayloadTooLarge",
    "PermissionDenied",
    "PipelineNotFound",
    "RepoNotFound",
    "SecretNotFound",
    "StorageUnavailable",
    "Timeout",
    "TuskError",
    "Unauthenticated",
    "UnsupportedMediaType",
    "UserError",
]


class TuskError(Exception):
    http_status = 500
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UserError(TuskError):
    http_status = 400
    exit_code = 2


class InvalidArgument(UserError):
    pass


class InvalidRef(InvalidArgument):
    pass


class AmbiguousId(InvalidArgument):
    """A prefix of an id that more than one commit, job or datum starts with."""

    SHOWN = 5  # the message lists this many of the ids

    def __init__(self, message: str, candidates: Sequence[str] = (), what: str = "", prefix: str = "") -> None:
        super().__init__(message)
        self.candidates, self.what, self.prefix = list(candidates), what, prefix

    @classmethod
    def among(cls, what: str, prefix: str, candidates: Sequence[str], scope: str = "") -> AmbiguousId:
        """``what`` (commit, job, ...) ids ``candidates`` all start with ``prefix``."""
        shown = ", ".join(candidates[: cls.SHOWN]) + (", ..." if len(candidates) > cls.SHOWN else "")
        return cls(f"{what} id prefix {prefix} is ambiguous{scope}: it matches {shown}; give more characters",
                   candidates, what, prefix)


class InvalidPath(InvalidArgument):
    pass


class InputError(InvalidArgument):
    pass


class NotFound(UserError):
    http_status = 404


class RepoNotFound(NotFound):
    pass


class BranchNotFound(NotFound):
    pass


class CommitNotFound(NotFound):
    pass


class FileNotFound(NotFound):
    pass


class ModelNotFound(NotFound):
    pass


class DeploymentNotFound(NotFound):
    pass


class PipelineNotFound(NotFound):
    pass


class JobNotFound(NotFound):
    pass


class AlgorithmNotFound(NotFound):
    pass


class SecretNotFound(NotFound):
    pass


class ImageNotFound(NotFound):
    pass


class ModelUnloadable(UserError):
    pass


class PayloadTooLarge(UserError):
    http_status = 413


class UnsupportedMediaType(UserError):
    http_status = 415


class PermissionDenied(UserError):
    http_status = 403


class Unauthenticated(UserError):
    http_status = 401


class AlreadyExists(UserError):
    http_status = 409


class Conflict(UserError):
    http_status = 409


class IntegrityError(TuskError):
    exit_code = 3


class ObjectMissing(IntegrityError):
    pass


class ObjectCorrupt(IntegrityError):
    pass


class ModelTampered(IntegrityError):
    pass


class AlgorithmError(TuskError):
    pass


class StorageUnavailable(TuskError):
    http_status = 503
    exit_code = 4


class NotReady(StorageUnavailable):
    pass


class Timeout(TuskError):
    http_status = 504
    exit_code = 5


class JobFailed(TuskError):
    """Jobs a call waited for ended failed (``failure``, ``unrunnable`` or ``killed``); ``jobs`` holds their
    ``JobInfo``. The write that triggered them landed: this reports the jobs, it does not undo the write."""

    exit_code = 6

    def __init__(self, message: str, jobs: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.jobs = list(jobs)
