from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import IO

from fastapi import APIRouter, Request

from tusk.api._body import with_body
from tusk.api._deps import CallerDep
from tusk.serving.algorithms import AlgorithmVersion
from tusk.transfer import untar_directory

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

    The first publisher of ``owner/name`` owns it; later versions need its writers.
    """
    res = resource(f"{owner}/{name}")
    first = not caller.state.roles.list(res)
    if not first:
        caller.require(res, "writer")

    def work(body: IO[bytes]) -> AlgorithmVersion:
        where = Path(tempfile.mkdtemp(prefix="tusk-algo-"))
        try:
            untar_directory(body, where)
            published = caller.ops.publish_algorithm(where, f"{owner}/{name}", version)
        finally:
            shutil.rmtree(where, ignore_errors=True)
        if first:
            caller.own(res)
        return published

    return await with_body(request, work)
