"""What routes share: the operations client, the caller and their rights, waiting for triggered jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request

from tusk.auth import ADMIN, LEVELS, RoleService, TokenService
from tusk.errors import RepoNotFound
from tusk.sdk import Client

__all__ = ["ApiState", "Caller", "CallerDep", "Wait", "finish_write"]


@dataclass
class ApiState:
    ops: Client  # an embedded client on the server's services; it never runs jobs itself (the scheduler does)
    auth: bool
    tokens: TokenService
    roles: RoleService


@dataclass
class Caller:
    """Who is calling, and a check for each right a route needs (all allowed while auth is off)."""

    user: str
    state: ApiState

    @property
    def ops(self) -> Client:
        return self.state.ops

    @property
    def admin(self) -> bool:
        return not self.state.auth or self.state.roles.is_admin(self.user)

    def can(self, resource: str, role: str) -> bool:
        return not self.state.auth or self.state.roles.level(self.user, resource) >= LEVELS[role]

    def require(self, resource: str, role: str) -> None:
        if self.state.auth:
            self.state.roles.check(self.user, resource, role)

    def require_repo(self, repo: str, role: str) -> None:
        """Like ``require``; a repo the caller may not read is reported as missing (its name leaks nothing)."""
        if not self.state.auth:
            return
        level = self.state.roles.level(self.user, repo)
        if level < LEVELS["reader"]:
            self.ops.inspect_repo(repo)  # a missing repo stays a 404
            raise RepoNotFound(f"repo {repo!r} not found, or {self.user} is not a reader of it")
        self.state.roles.check(self.user, repo, role, level)

    def require_admin(self) -> None:
        self.require(ADMIN, "admin")

    def own(self, resource: str) -> None:
        """Make the caller the owner of what they just created."""
        if self.state.auth:
            self.state.roles.set(resource, self.user, "owner")


def _caller(request: Request) -> Caller:
    caller = request.scope.get("tusk_caller")
    assert isinstance(caller, Caller), "the auth middleware sets the caller"
    return caller


CallerDep = Annotated[Caller, Depends(_caller)]
Wait = Annotated[bool, Query(description="wait until the jobs this write triggers are done")]


def finish_write(caller: Caller, wait: bool) -> None:
    """With ``wait``: return once every triggered job is done, as an embedded client would."""
    if wait:
        caller.ops.services.jobs.drain()
