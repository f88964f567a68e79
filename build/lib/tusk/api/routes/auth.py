from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from tusk.api._deps import CallerDep
from tusk.auth import ADMIN, RoleBinding, TokenInfo
from tusk.auth.tokens import MAX_TTL

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class WhoAmI(BaseModel):
    user: str
    admin: bool
    auth_enabled: bool


class TokenRequest(BaseModel):
    user: str | None = None  # default: the caller; another user's token needs cluster admin
    description: str = Field(default="", max_length=255)
    ttl_seconds: float | None = Field(default=None, gt=0, le=MAX_TTL)


class NewToken(BaseModel):
    token: str  # shown once; only its hash is kept
    info: TokenInfo


class RoleRequest(BaseModel):
    resource: str = Field(min_length=1, max_length=128)  # a repo, deployment/<name>, algorithm/<owner>/<name>, *
    user: str = Field(min_length=1, max_length=255)
    role: str  # reader | writer | owner | admin (on *) | none


@router.get("/whoami")
def whoami(caller: CallerDep) -> WhoAmI:
    return WhoAmI(user=caller.user, admin=caller.state.auth and caller.admin, auth_enabled=caller.state.auth)


@router.post("/tokens", status_code=201)
def create_token(body: TokenRequest, caller: CallerDep) -> NewToken:
    user = body.user or caller.user
    if user != caller.user:
        caller.require_admin()
    info, token = caller.state.tokens.create(user, body.description, body.ttl_seconds)
    return NewToken(token=token, info=info)


@router.get("/tokens")
def list_tokens(caller: CallerDep, user: str | None = None) -> list[TokenInfo]:
    """The caller's tokens (a cluster admin may list anyone's, or everyone's without ``user``)."""
    if user is None and not caller.admin:
        user = caller.user
    if user != caller.user:
        caller.require_admin()
    return caller.state.tokens.list(user)


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: str, caller: CallerDep) -> TokenInfo:
    return caller.state.tokens.revoke(token_id, caller.user, caller.admin)


@router.get("/roles")
def list_roles(caller: CallerDep, resource: str | None = None, user: str | None = None) -> list[RoleBinding]:
    """Bindings the caller may see: their own, those on resources they own, or (admins) all."""
    if caller.admin:
        return caller.state.roles.list(resource, user)
    return [b for b in caller.state.roles.list(resource, user)
            if b.user == caller.user or caller.can(b.resource, "owner")]


@router.put("/roles")
def set_role(body: RoleRequest, caller: CallerDep) -> RoleBinding | None:
    """Give a user a role on a resource (``none`` removes it); needs ownership of it, or cluster admin."""
    caller.require(body.resource, "admin" if body.resource == ADMIN else "owner")
    return caller.state.roles.set(body.resource, body.user, body.role)
