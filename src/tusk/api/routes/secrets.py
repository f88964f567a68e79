"""Secrets for ``transform.secrets``: their creator and cluster admins see and use them; no route returns a value."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from tusk.api._deps import Caller, CallerDep
from tusk.errors import SecretNotFound
from tusk.pipelines.secrets import SecretInfo, may_read
from tusk.pipelines.spec import PipelineSpec

router = APIRouter(prefix="/api/v1/secrets", tags=["secrets"])


class SecretRequest(BaseModel):
    manifest: dict[str, Any]  # a Kubernetes Secret: metadata.name, data (base64) and/or stringData


def _visible(caller: Caller, info: SecretInfo) -> bool:
    return not caller.state.auth or may_read(info, caller.user, caller.admin)


def _hidden(caller: Caller, name: str) -> SecretNotFound:
    """The same words whether the secret exists or not: a 404 is no oracle for other users' secret names."""
    return SecretNotFound(f"secret {name!r} not found, or {caller.user} may not use it (a secret is its "
                          "creator's and the cluster admins')")


def _readable(caller: Caller, name: str) -> SecretInfo:
    try:
        info = caller.ops.inspect_secret(name)
    except SecretNotFound:
        if caller.state.auth:
            raise _hidden(caller, name) from None
        raise
    if not _visible(caller, info):
        raise _hidden(caller, name)
    return info


def require_secrets(caller: Caller, spec: PipelineSpec) -> None:
    """A pipeline may name a secret only if whoever creates or updates it may use the secret (with auth on;
    each job checks its creator again when it starts)."""
    if caller.state.auth:
        for ref in spec.transform.secrets:
            _readable(caller, ref.name)


@router.post("", status_code=201)
def create_secret(body: SecretRequest, caller: CallerDep) -> SecretInfo:
    """Make a secret from a Kubernetes Secret manifest (``pachctl create secret -f``); the caller is its creator.
    The response shows its keys, never its values."""
    return caller.ops.create_secret(body.manifest)


@router.get("")
def list_secrets(caller: CallerDep) -> list[SecretInfo]:
    """The secrets the caller may use: names, keys, creator and time."""
    return [s for s in caller.ops.list_secrets() if _visible(caller, s)]


@router.get("/{name}")
def inspect_secret(name: str, caller: CallerDep) -> SecretInfo:
    return _readable(caller, name)


@router.delete("/{name}", status_code=204)
def delete_secret(name: str, caller: CallerDep) -> None:
    """Delete a secret (its creator or a cluster admin); refused while a pipeline names it."""
    _readable(caller, name)
    caller.ops.delete_secret(name)
