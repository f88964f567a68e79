from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from tusk.api._body import with_body
from tusk.api._deps import Caller, CallerDep, Wait, finish_write
from tusk.api.routes.secrets import require_secrets
from tusk.errors import InvalidArgument, NotFound
from tusk.ids import Digest
from tusk.pipelines.codestore import PipelineCode
from tusk.pipelines.records import PipelineInfo
from tusk.pipelines.spec import CronInput, PfsInput, PipelineSpec, parse_spec
from tusk.transfer import untar_directory
from tusk.versioning.trees import EMPTY_TREE

router = APIRouter(tags=["pipelines"])
_ONE = "/api/v1/pipelines/{name}"


_DIGEST = r"^[0-9a-f]{64}$"


class CodeRef(BaseModel):
    digest: str = Field(pattern=_DIGEST)  # the code's tree, stored already (POST /api/v1/code)
    info: dict[str, Any] = Field(default_factory=dict)  # describe_code of the client's directory


class PipelineRequest(BaseModel):
    specs: list[dict[str, Any]] = Field(min_length=1)
    code: CodeRef | None = None
    reprocess: bool = False


class StoredCode(BaseModel):
    digest: str
    files: int | None = None  # how many files an upload held


class Reprocess(BaseModel):
    reprocess: bool = False


class CronRequest(BaseModel):
    input: str | None = None


def _code(caller: Caller, ref: CodeRef | None) -> PipelineCode:
    """The stored code; a pipeline created without code runs in an empty directory (never the server's own)."""
    if ref is None:
        return PipelineCode(EMPTY_TREE, {"dir": None, "digest": None, "files": 0, "git": None, "tree": EMPTY_TREE,
                                         "note": "created without code"})
    if not caller.ops.has_code(ref.digest):
        raise InvalidArgument(f"no stored code {ref.digest[:16]}…; upload the directory first (POST /api/v1/code)")
    return PipelineCode(Digest(ref.digest), ref.info | {"tree": ref.digest}, str(ref.info.get("dir") or ""))


def own_pipeline_repos(caller: Caller, spec: PipelineSpec) -> None:
    """The creator of a pipeline owns its output repo and the cron tick repos made for it."""
    caller.own(spec.name)
    for leaf in spec.input.leaves():
        if isinstance(leaf, CronInput):  # its ticks repo was made for it
            caller.own(leaf.tick_repo(spec.name))


def check_pipeline_inputs(caller: Caller, spec: PipelineSpec) -> None:
    """What creating or updating ``spec`` requires of the caller (a transaction's request checks the same)."""
    _check_inputs(caller, spec)


def _check_inputs(caller: Caller, spec: PipelineSpec) -> None:
    """A pipeline reads its inputs with its creator's rights, and writes its output repo as its owner.

    Cron tick repos are not inputs to check: the pipeline makes them (an existing repo is refused).
    """
    for leaf in spec.input.leaves():
        if isinstance(leaf, PfsInput):
            caller.require_repo(leaf.repo, "reader")
    require_secrets(caller, spec)  # and it uses its secrets with them


@router.get("/api/v1/code/{digest}")
def stored_code(digest: str, caller: CallerDep) -> StoredCode:
    """Whether the code tree ``digest`` is stored (404 if not): a client that hashed its directory uploads only
    code the server does not have."""
    if re.fullmatch(_DIGEST, digest) is None or not caller.ops.has_code(digest):
        raise NotFound(f"no stored code {digest[:16]}…; upload the directory (POST /api/v1/code)")
    return StoredCode(digest=digest)


@router.post("/api/v1/code", status_code=201, openapi_extra={"requestBody": {"required": True, "content": {
    "application/x-tar": {"schema": {"type": "string", "format": "binary"}}}}})
async def upload_code(request: Request, caller: CallerDep) -> StoredCode:
    """Upload a pipeline's code directory (a tar): it is stored as a tree in the object store, and pipelines
    created with its digest run it, on any replica."""
    root = caller.ops.settings.home / "tmp"
    root.mkdir(parents=True, exist_ok=True)

    def work(body: IO[bytes]) -> StoredCode:
        staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=root))
        try:
            count = untar_directory(body, staging)
            digest = caller.ops.store_code(staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return StoredCode(digest=digest, files=count)

    return await with_body(request, work)


@router.get("/api/v1/pipelines")
def list_pipelines(caller: CallerDep) -> list[PipelineInfo]:
    return [p for p in caller.ops.list_pipelines() if caller.can(p.name, "reader")]


@router.post("/api/v1/pipelines", status_code=201)
def create_pipelines(body: PipelineRequest, caller: CallerDep, wait: Wait = False) -> list[PipelineInfo]:
    """Create pipelines (their output repos are named after them, owned by the caller) and run them."""
    specs = [parse_spec(doc, f" (spec {i + 1} of the request)") for i, doc in enumerate(body.specs)]
    for spec in specs:
        if spec.update and caller.ops.pipeline_exists(spec.name):  # "update": true updates it
            caller.require_repo(spec.name, "owner")
        _check_inputs(caller, spec)
    out = []
    with caller.ops.holding_job_starts():  # the creator owns the output repo before a job runs
        for spec in specs:
            out += caller.ops.create_pipeline(spec, wait=False, code=_code(caller, body.code))
            own_pipeline_repos(caller, spec)
    finish_write(caller, wait)
    return out


@router.put("/api/v1/pipelines")
def update_pipelines(body: PipelineRequest, caller: CallerDep, wait: Wait = False) -> list[PipelineInfo]:
    """A new version of each pipeline; ``reprocess`` runs every datum again."""
    specs = [parse_spec(doc, f" (spec {i + 1} of the request)") for i, doc in enumerate(body.specs)]
    for spec in specs:
        caller.require_repo(spec.name, "owner")
        _check_inputs(caller, spec)
    out = []
    with caller.ops.holding_job_starts():  # a new cron input's ticks repo is owned before a job runs
        for spec in specs:
            out += caller.ops.update_pipeline(spec, body.reprocess, wait=False, code=_code(caller, body.code))
            for leaf in spec.input.leaves():
                if isinstance(leaf, CronInput):  # new, or the pipeline's own already: never another's repo
                    caller.own(leaf.tick_repo(spec.name))
    finish_write(caller, wait)
    return out


@router.post("/api/v1/pipelines/dry-run")
def dry_run_datums(body: PipelineRequest, caller: CallerDep) -> list[dict[str, Any]]:
    """The datums the specs would produce on the current inputs; nothing is created."""
    out = []
    for i, doc in enumerate(body.specs):
        spec = parse_spec(doc, f" (spec {i + 1} of the request)")
        _check_inputs(caller, spec)
        out += [{"id": d.id, "inputs": [vars(x) for x in d.inputs]} for d in caller.ops.dry_run_datums(spec)]
    return out


@router.get(_ONE)
def inspect_pipeline(name: str, caller: CallerDep) -> PipelineInfo:
    caller.require_repo(name, "reader")
    return caller.ops.inspect_pipeline(name)


@router.get(_ONE + "/versions")
def pipeline_versions(name: str, caller: CallerDep) -> list[dict[str, Any]]:
    caller.require_repo(name, "reader")
    return caller.ops.pipeline_versions(name)


@router.delete(_ONE, status_code=204)
def delete_pipeline(name: str, caller: CallerDep, keep_repo: bool = False) -> None:
    caller.require_repo(name, "owner")
    caller.ops.delete_pipeline(name, keep_repo)


@router.post(_ONE + "/stop")
def stop_pipeline(name: str, caller: CallerDep) -> PipelineInfo:
    caller.require_repo(name, "owner")
    return caller.ops.stop_pipeline(name)


@router.post(_ONE + "/start")
def start_pipeline(name: str, caller: CallerDep) -> PipelineInfo:
    caller.require_repo(name, "owner")
    return caller.ops.start_pipeline(name)


@router.post(_ONE + "/rerun")
def rerun_pipeline(name: str, body: Reprocess, caller: CallerDep, wait: Wait = False) -> PipelineInfo:
    caller.require_repo(name, "owner")
    info = caller.ops.rerun_pipeline(name, body.reprocess, wait=False)
    finish_write(caller, wait)
    return info


@router.post(_ONE + "/cron")
def run_cron(name: str, body: CronRequest, caller: CallerDep, wait: Wait = False) -> list[dict[str, Any]]:
    """Commit a cron tick now, for every cron input of the pipeline or the one named."""
    caller.require_repo(name, "owner")
    ticks = caller.ops.run_cron(name, body.input, wait=False)
    finish_write(caller, wait)
    return [t.to_dict() for t in ticks]


@router.post("/api/v1/crons/tick")
def tick_due_crons(caller: CallerDep, wait: Wait = False) -> list[dict[str, Any]]:
    """Commit the cron ticks whose schedule has come round (the scheduler does this on its own)."""
    caller.require_admin()
    ticks = caller.ops.tick_due_crons()  # (the API's client runs no jobs: the scheduler does)
    finish_write(caller, wait)
    return [t.to_dict() for t in ticks]
