from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from tusk.api._deps import MAX_COUNT, Caller, CallerDep
from tusk.deployments.registry import DeploymentInfo, DeploymentRevision
from tusk.deployments.spec import DeploymentSpec, parse_deployment_spec
from tusk.errors import AlreadyExists, InvalidArgument
from tusk.versioning.refs import parse_file_ref

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])
_ONE = "/{name}"


class Weights(BaseModel):
    weights: dict[str, float] = Field(min_length=1)


class Revision(BaseModel):
    revision: int | None = Field(default=None, ge=0, le=MAX_COUNT)


def resource(name: str) -> str:
    return f"deployment/{name}"


def _spec(caller: Caller, doc: dict[str, Any]) -> DeploymentSpec:
    """The spec, once the caller is seen to read every model repo it serves, and to write its request log
    when that repo exists already (a deployment is no way into someone else's repo)."""
    spec = parse_deployment_spec(doc)
    for p in [*spec.predictors, *([spec.shadow] if spec.shadow else [])]:
        caller.require_repo(parse_file_ref(p.model).repo, "reader")
    if spec.logging.enabled and spec.log_repo in {r.name for r in caller.ops.list_repos()}:
        caller.require_repo(spec.log_repo, "writer")
    return spec


def _own_log_repo(caller: Caller, spec: DeploymentSpec) -> None:
    """Make the request log's repo now, owned by the deployer (a repo made later would have no owner)."""
    if not spec.logging.enabled:
        return
    try:
        caller.ops.create_repo(spec.log_repo, f"requests and responses of deployment {spec.name}")
    except AlreadyExists:
        return
    caller.own(spec.log_repo)


@router.get("")
def list_deployments(caller: CallerDep) -> list[DeploymentInfo]:
    return [d for d in caller.ops.list_deployments() if caller.can(resource(d.name), "reader")]


@router.post("", status_code=201)
def create_deployment(doc: dict[str, Any], caller: CallerDep) -> DeploymentInfo:
    """Create a deployment from a spec; every model ref must resolve. The caller owns it."""
    spec = _spec(caller, doc)
    info = caller.ops.create_deployment(spec)
    caller.own(resource(info.name))
    _own_log_repo(caller, spec)
    return info


@router.get(_ONE)
def inspect_deployment(name: str, caller: CallerDep) -> DeploymentInfo:
    caller.require(resource(name), "reader")
    return caller.ops.inspect_deployment(name)


@router.put(_ONE)
def update_deployment(name: str, doc: dict[str, Any], caller: CallerDep) -> DeploymentInfo:
    caller.require(resource(name), "writer")
    spec = _spec(caller, doc)
    if spec.name != name:
        raise InvalidArgument(f"the spec is for deployment {spec.name!r}, not {name!r}")
    info = caller.ops.update_deployment(spec)
    _own_log_repo(caller, spec)
    return info


@router.delete(_ONE, status_code=204)
def delete_deployment(name: str, caller: CallerDep) -> None:
    caller.require(resource(name), "owner")
    caller.ops.delete_deployment(name)


@router.post(_ONE + "/rollout")
def rollout(name: str, body: Weights, caller: CallerDep) -> DeploymentInfo:
    """New traffic weights by predictor name; servers pick them up within a poll interval."""
    caller.require(resource(name), "writer")
    return caller.ops.rollout(name, body.weights)


@router.post(_ONE + "/rollback")
def rollback_deployment(name: str, body: Revision, caller: CallerDep) -> DeploymentInfo:
    caller.require(resource(name), "writer")
    return caller.ops.rollback_deployment(name, body.revision)


@router.get(_ONE + "/history")
def deployment_history(name: str, caller: CallerDep) -> list[DeploymentRevision]:
    caller.require(resource(name), "reader")
    return caller.ops.deployment_history(name)
