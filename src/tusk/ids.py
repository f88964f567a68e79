"""Typed identifiers and canonical, versioned hashing.

Content addresses are BLAKE3 digests of explicit byte encodings (``tusk-tree:v1``
and friends), never of ``json.dumps``; a change of encoding gets a new version tag.
"""

from __future__ import annotations

import re
import uuid
from typing import NewType

import blake3

from tusk.errors import InvalidArgument, InvalidPath

__all__ = [
    "ID_PREFIX_MIN",
    "SHORT_ID",
    "BranchName",
    "CommitId",
    "Digest",
    "RepoName",
    "digest_bytes",
    "is_commit_id",
    "is_id_prefix",
    "new_commit_id",
    "normalize_path",
    "short_id",
    "validate_branch_name",
    "validate_repo_name",
]

RepoName = NewType("RepoName", str)
BranchName = NewType("BranchName", str)
CommitId = NewType("CommitId", str)
Digest = NewType("Digest", str)

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")
_COMMIT_ID = re.compile(r"^[0-9a-f]{32}$")
_ID_PREFIX = re.compile(r"^[0-9a-f]{6,32}$")

ID_PREFIX_MIN = 6  # a commit, job or datum id may be given by any unique prefix this long or longer
SHORT_ID = 8  # tables print ids this long: resolution takes 6+, so a printed id is always a valid argument


def validate_repo_name(name: str) -> RepoName:
    if not _NAME.match(name) or name.endswith("."):
        raise InvalidArgument(
            f"invalid repo name {name!r}: use 1-63 letters, digits, '_', '-' or '.', not starting with '-' or '.'"
        )
    return RepoName(name)


def validate_branch_name(name: str) -> BranchName:
    if not _NAME.match(name) or _COMMIT_ID.match(name):
        raise InvalidArgument(
            f"invalid branch name {name!r}: use 1-63 letters, digits, '_', '-' or '.'"
            " (and not something that looks like a commit id)"
        )
    return BranchName(name)


def new_commit_id() -> CommitId:
    return CommitId(uuid.uuid4().hex)


def is_commit_id(text: str) -> bool:
    return bool(_COMMIT_ID.match(text))


def is_id_prefix(text: str) -> bool:
    """Could ``text`` be a (short) commit, job or datum id: 6 to 32 lowercase hex characters?"""
    return bool(_ID_PREFIX.match(text))


def short_id(full: str) -> str:
    """The form tables print: the first ``SHORT_ID`` characters (git shows 7; we take 8)."""
    return full[:SHORT_ID] if is_commit_id(full) else full


def digest_bytes(data: bytes | memoryview) -> Digest:
    return Digest(blake3.blake3(data).hexdigest())


def normalize_path(path: str) -> str:
    """Return ``/a/b`` for any spelling of a path inside a repo; refuse escapes.

    ``..`` is refused outright rather than resolved: a path that mentions the
    parent directory is almost always a mistake when addressing repo content.
    """
    if "\x00" in path:
        raise InvalidPath(f"invalid path {path!r}: NUL bytes are not allowed")
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidPath(f"invalid path {path!r}: '..' would escape the repo; use a path inside the repo")
    return "/" + "/".join(parts)
