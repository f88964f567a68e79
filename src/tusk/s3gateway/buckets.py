"""Bucket names, Pachyderm's way: ``branch.repo`` is a branch (read-write), ``commit.repo`` one commit
(read-only; any unique prefix of 6+ characters of its id).

Repo and branch names may both contain dots, so ``a.b.c`` is read as branch ``a`` of repo ``b.c`` first
(Pachyderm splits at the first dot), then as ``a.b`` of ``c``: the first split naming a repo and a branch or
commit in it wins. A branch that does not exist yet is a bucket only to writes, which create it, as
``tusk put file`` does; reads of it are NoSuchBucket.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from tusk.errors import AmbiguousId, InvalidArgument, NotFound
from tusk.ids import is_id_prefix, validate_branch_name
from tusk.s3gateway.errors import S3Error
from tusk.sdk import Client
from tusk.versioning.records import CommitInfo

__all__ = ["Bucket", "list_buckets", "resolve", "splits"]


@dataclass(frozen=True)
class Bucket:
    name: str
    repo: str
    ref: str  # the branch, or the full commit id
    writable: bool  # a branch; a commit bucket is read-only
    exists: bool = True  # False: a branch the first write will create
    seen_head: str | None = None  # the branch's head when the bucket was resolved (one lookup per request)

    def at(self, ref: str, key: str) -> str:
        """``repo@ref:/key``."""
        return f"{self.repo}@{ref}:/{key}"

    def head(self, ops: Client) -> CommitInfo | None:
        """The commit reads see (None: a branch with no commits yet)."""
        if self.writable:
            head = self.seen_head
            if head is None and self.exists:
                branch = next((b for b in ops.list_branches(self.repo) if b.name == self.ref), None)
                head = branch.head if branch is not None else None
            return ops.inspect_commit(f"{self.repo}@{head}") if head is not None else None
        return ops.inspect_commit(f"{self.repo}@{self.ref}")

    def refuse_writes(self) -> None:
        if not self.writable:
            raise S3Error("AccessDenied", f"bucket {self.name} is commit {self.ref} of {self.repo}, which is "
                                          f"read-only: write to a branch bucket, BRANCH.{self.repo}")


def splits(name: str) -> Iterator[tuple[str, str]]:
    """(ref, repo) for each dot of ``name``, left to right."""
    for i, c in enumerate(name):
        if c == ".":
            yield name[:i], name[i + 1:]


def resolve(ops: Client, name: str, readable: Callable[[str], bool]) -> Bucket:
    """The bucket ``name`` is; NoSuchBucket when no split names a repo the caller may read and a ref in it."""
    repos: list[tuple[str, str]] = []  # (ref, repo) of the splits that name a readable repo
    for ref, repo in splits(name):
        if not ref or not repo or not readable(repo):
            continue
        try:
            branches = {b.name: b.head for b in ops.list_branches(repo)}
        except NotFound:
            continue
        if ref in branches:
            return Bucket(name, repo, ref, writable=True, seen_head=branches[ref])
        repos.append((ref, repo))
        if is_id_prefix(ref):
            try:
                return Bucket(name, repo, ops.inspect_commit(f"{repo}@{ref}").id, writable=False)
            except AmbiguousId as exc:
                raise S3Error("InvalidBucketName", f"bucket {name}: {exc}", BucketName=name) from None
            except NotFound:
                continue
    for ref, repo in repos:
        try:
            validate_branch_name(ref)
        except InvalidArgument:
            continue
        return Bucket(name, repo, ref, writable=True, exists=False)
    raise S3Error("NoSuchBucket", f"no bucket {name}: buckets are BRANCH.REPO or COMMIT.REPO, of a repo you may "
                                  "read", BucketName=name)


def list_buckets(ops: Client, readable: Callable[[str], bool]) -> list[tuple[str, datetime]]:
    """(name, creation date) of every branch bucket the caller may read; commit buckets are not listed."""
    out: list[tuple[str, datetime]] = []
    for repo in ops.list_repos():
        if readable(repo.name):
            out.extend((f"{b.name}.{repo.name}", b.created_at) for b in ops.list_branches(repo.name))
    return sorted(out)
