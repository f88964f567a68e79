from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from tusk.api._deps import MAX_COUNT, MAX_SQL_INT, CallerDep, Wait, finish_write
from tusk.versioning.records import BranchInfo
from tusk.versioning.triggers import BranchTrigger

router = APIRouter(prefix="/api/v1/repos/{repo}/branches", tags=["branches"])


class Trigger(BaseModel):
    branch: str
    all: bool = False
    size: int | None = Field(default=None, ge=0, le=MAX_SQL_INT)
    commits: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    cron: str | None = None


class NewBranch(BaseModel):
    name: str
    head: str | None = None
    trigger: Trigger | None = None


@router.get("")
def list_branches(repo: str, caller: CallerDep) -> list[BranchInfo]:
    caller.require_repo(repo, "reader")
    return caller.ops.list_branches(repo)


@router.post("", status_code=201)
def create_branch(repo: str, body: NewBranch, caller: CallerDep, wait: Wait = False) -> BranchInfo:
    """Create a branch, or move it to ``head``; a ``trigger`` makes it follow another branch on conditions."""
    caller.require_repo(repo, "writer")
    trigger = BranchTrigger(**body.trigger.model_dump()) if body.trigger else None
    info = caller.ops.create_branch(f"{repo}@{body.name}", body.head, trigger)
    finish_write(caller, wait)
    return info


@router.delete("/{branch}", status_code=204)
def delete_branch(repo: str, branch: str, caller: CallerDep) -> None:
    caller.require_repo(repo, "writer")
    caller.ops.delete_branch(f"{repo}@{branch}")
