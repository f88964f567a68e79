"""What routes share: the operations client, the caller and their rights, waiting for triggered jobs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, TypeVar

from fastapi import Depends, Query, Request

from tusk.auth import ADMIN, LEVELS, RoleService, TokenService
from tusk.errors import AmbiguousId, CommitNotFound, RepoNotFound, TuskError
from tusk.sdk import Client
from tusk.versioning.records import CommitInfo

Ref = TypeVar("Ref", bound=Mapping[str, object])  # a record naming a repo: provenance, a job's or a datum's input

__all__ = ["MAX_COUNT", "MAX_SQL_INT", "ApiState", "Caller", "CallerDep", "Limit", "Offset", "Timeout", "Wait",
           "finish_write"]

# Bounds for every integer and duration a request carries: past them SQL drivers overflow (a 500), so the
# API refuses them up front (a 400 naming the parameter).
MAX_SQL_INT = 2**63 - 1
MAX_COUNT = 2**31 - 1  # list limits, trigger commit counts, rollback steps, revisions
MAX_WAIT = 7 * 24 * 3600.0


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
    waited: list[str] = field(default_factory=list)  # the jobs a write waited for: sent back in X-Tusk-Jobs

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
        """Like ``require``; a repo the caller may not read is reported as missing, in the same words whether
        it exists or not, so a 404 is no oracle for which names exist."""
        if not self.state.auth:
            return
        level = self.state.roles.level(self.user, repo)
        if level < LEVELS["reader"]:
            raise RepoNotFound(f"repo {repo!r} not found, or {self.user} is not a reader of it")
        self.state.roles.check(self.user, repo, role, level)

    def readable(self, refs: list[Ref]) -> list[Ref]:
        """The entries (provenance, job inputs, datum inputs) whose ``repo`` the caller may read: what a
        readable record says about other repos is cut to what the caller could see anyway."""
        if not self.state.auth:
            return refs
        return [r for r in refs if self.can(str(r.get("repo", "")), "reader")]

    def commit(self, info: CommitInfo) -> CommitInfo:
        """A commit as the caller may see it: provenance only from repos they read."""
        return info if not self.state.auth else replace(info, provenance=self.readable(info.provenance))

    def unambiguous(self, exc: AmbiguousId, visible: Callable[[str], bool], missing: TuskError) -> str:
        """The one id, among those a short id matched, that the caller may see. With auth on, what the caller
        may not read is no candidate: an ambiguity, and the ids its error lists, reveal nothing unreadable."""
        if not self.state.auth:
            raise exc
        seen = [c for c in exc.candidates if visible(c)]
        if not seen:
            raise missing
        if len(seen) > 1:
            raise AmbiguousId.among(exc.what, exc.prefix, seen)
        return seen[0]

    def global_id(self, text: str) -> str:
        """A global id, or a short one in full among the commit sets the caller may see."""
        try:
            return self.ops.inspect_commit_set(text)[0].global_id
        except CommitNotFound:
            return text  # no commit has it (a job's filter then matches nothing)
        except AmbiguousId as exc:
            return self.unambiguous(exc, lambda g: any(self.can(c.repo, "reader") for c in
                                                       self.ops.inspect_commit_set(g)),
                                    CommitNotFound(f"no commit or global id {text}"))

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
Limit = Annotated[int | None, Query(ge=0, le=MAX_COUNT, description="at most this many (0 or none: all)")]
Offset = Annotated[int, Query(ge=0, le=MAX_COUNT, description="skip this many first (for a page: with limit)")]
Timeout = Annotated[float | None, Query(ge=0, le=MAX_WAIT, description="seconds to wait at most (none: no limit)")]


def finish_write(caller: Caller, wait: bool) -> None:
    """With ``wait``: return once every job this request's writes triggered is done, as an embedded client
    would; other users' jobs are not waited for, and a failed job is the job's failure, not the write's."""
    done = caller.ops.finish_caused_jobs(wait)
    if wait:
        caller.waited = [j.id for j in done if caller.can(j.pipeline, "reader")]  # (the jobs the caller may see)
