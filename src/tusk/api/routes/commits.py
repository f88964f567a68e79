from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from tusk.api._deps import CallerDep, Limit, Offset, Timeout, Wait, finish_write
from tusk.errors import CommitNotFound
from tusk.versioning.records import CommitInfo

router = APIRouter(tags=["commits"])
_COMMIT = "/api/v1/repos/{repo}/commits/{ref}"


class NewCommit(BaseModel):
    branch: str = "master"
    description: str = ""


class Finish(BaseModel):
    description: str | None = None


@router.get("/api/v1/repos/{repo}/commits")
def list_commits(repo: str, caller: CallerDep, branch: str | None = None, limit: Limit = None, offset: Offset = 0
                 ) -> list[CommitInfo]:
    """Newest first; with ``branch``, its history (open commit first, then ancestry). A page: ``offset`` and
    ``limit``."""
    caller.require_repo(repo, "reader")
    ref = f"{repo}@{branch}" if branch else repo
    return [caller.commit(c) for c in caller.ops.list_commits(ref, limit, offset)]


@router.post("/api/v1/repos/{repo}/commits", status_code=201)
def start_commit(repo: str, body: NewCommit, caller: CallerDep) -> CommitInfo:
    caller.require_repo(repo, "writer")
    return caller.ops.start_commit(f"{repo}@{body.branch}", body.description)


@router.get(_COMMIT)
def inspect_commit(repo: str, ref: str, caller: CallerDep) -> CommitInfo:
    """``ref``: a commit id, a branch, or either with ancestry (``master^2``)."""
    caller.require_repo(repo, "reader")
    return caller.commit(caller.ops.inspect_commit(f"{repo}@{ref}"))


@router.post(_COMMIT + "/finish")
def finish_commit(repo: str, ref: str, body: Finish, caller: CallerDep, wait: Wait = False) -> CommitInfo:
    caller.require_repo(repo, "writer")
    info = caller.ops.finish_commit(f"{repo}@{ref}", body.description)
    finish_write(caller, wait)
    return caller.commit(info)


@router.post(_COMMIT + "/wait")
def wait_commit(repo: str, ref: str, caller: CallerDep, timeout: Timeout = None) -> CommitInfo:
    caller.require_repo(repo, "reader")
    return caller.commit(caller.ops.wait_commit(f"{repo}@{ref}", timeout))


@router.post(_COMMIT + "/squash", status_code=204)
def squash_commit(repo: str, ref: str, caller: CallerDep) -> None:
    caller.require_repo(repo, "writer")
    caller.ops.squash_commit(f"{repo}@{ref}")


@router.delete(_COMMIT, status_code=204)
def delete_commit(repo: str, ref: str, caller: CallerDep) -> None:
    caller.require_repo(repo, "writer")
    caller.ops.delete_commit(f"{repo}@{ref}")


@router.get("/api/v1/commitsets/{global_id}")
def inspect_commit_set(global_id: str, caller: CallerDep) -> list[CommitInfo]:
    """Every commit sharing a global id that the caller may read; a set with none is reported as missing, in
    the words of a missing one."""
    try:
        commits = [caller.commit(c) for c in caller.ops.inspect_commit_set(caller.global_id(global_id))
                   if caller.can(c.repo, "reader")]
    except CommitNotFound:
        commits = []
    if not commits:
        raise CommitNotFound(f"no commit or global id {global_id}")
    return commits
