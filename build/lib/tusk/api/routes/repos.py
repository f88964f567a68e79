from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from tusk.api._deps import CallerDep
from tusk.versioning.records import RepoInfo

router = APIRouter(prefix="/api/v1/repos", tags=["repos"])


class NewRepo(BaseModel):
    name: str = Field(max_length=255)
    description: str = ""


@router.get("")
def list_repos(caller: CallerDep) -> list[RepoInfo]:
    return [r for r in caller.ops.list_repos() if caller.can(r.name, "reader")]


@router.post("", status_code=201)
def create_repo(body: NewRepo, caller: CallerDep) -> RepoInfo:
    info = caller.ops.create_repo(body.name, body.description)
    caller.own(body.name)
    return info


@router.get("/{repo}")
def inspect_repo(repo: str, caller: CallerDep) -> RepoInfo:
    caller.require_repo(repo, "reader")
    return caller.ops.inspect_repo(repo)


@router.delete("/{repo}", status_code=204)
def delete_repo(repo: str, caller: CallerDep, force: bool = False) -> None:
    caller.require_repo(repo, "owner")
    caller.ops.delete_repo(repo, force)
