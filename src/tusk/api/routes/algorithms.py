from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import IO

from fastapi import APIRouter, Request

from tusk.algorithms.registry import AlgorithmVersion, read_descriptor
from tusk.api._body import with_body
from tusk.api._deps import CallerDep
from tusk.errors import PermissionDenied
from tusk.transfer import untar_directory
from tusk.versioning.refs import parse_file_ref

router = APIRouter(prefix="/api/v1/algorithms", tags=["algorithms"])


def resource(name: str) -> str:
    return "algorithm/" + "/".join(name.strip("/").split("/")[:2])


@router.get("")
def list_algorithms(caller: CallerDep, name: str | None = None) -> list[AlgorithmVersion]:
    return [a for a in caller.ops.list_algorithms(name) if caller.can(resource(f"{a.owner}/{a.name}"), "reader")]


@router.post("/{owner}/{name}/{version}", status_code=201, openapi_extra={"requestBody": {
    "required": True, "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}}})
async def publish_algorithm(owner: str, name: str, version: str, request: Request, caller: CallerDep
                            ) -> AlgorithmVersion:
    """Publish a directory (a tar, with its algorithm.yaml) as ``owner/name/version``; versions are immutable.

    The namespace ``owner/`` is that user's: only they (or an admin) publish a new name in it, and own it;
    later versions need its writers. A model algorithm needs reader on the model's repo.
    """
    res = resource(f"{owner}/{name}")
    first = not caller.state.roles.list(res) and not caller.ops.list_algorithms(f"{owner}/{name}")
    if not first:
        caller.require(res, "writer")
    elif caller.state.auth and owner != caller.user and not caller.admin:
        raise PermissionDenied(f"the namespace {owner}/ belongs to {owner}: publish as {caller.user}/{name}, or "
                               f"ask {owner} to publish it and grant you writer on {res}")

    def work(body: IO[bytes]) -> AlgorithmVersion:
        where = Path(tempfile.mkdtemp(prefix="tusk-algo-"))
        try:
            untar_directory(body, where)
            model = read_descriptor(where).model
            if model is not None:
                caller.require_repo(parse_file_ref(model, default_branch=None).repo, "reader")
            published = caller.ops.publish_algorithm(where, f"{owner}/{name}", version)
        finally:
            shutil.rmtree(where, ignore_errors=True)
        if first:
            caller.own(res)
        return published

    return await with_body(request, work)
