from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from tusk import __version__
from tusk.api._deps import CallerDep
from tusk.versioning.records import FsckReport

router = APIRouter(prefix="/api/v1", tags=["admin"])


@router.get("/health")
def health(request: Request) -> dict[str, Any]:
    """Liveness and what this server runs; needs no token."""
    scheduler = getattr(request.app.state, "scheduler", None)
    return {"status": "ok", "version": __version__, "auth": request.app.state.api.auth,
            "scheduler": scheduler.status() if scheduler is not None else None}


@router.post("/fsck")
def fsck(caller: CallerDep, verify_chunks: bool = True, repair: bool = False) -> FsckReport:
    """Check every commit's tree (and with ``verify_chunks`` every chunk's hash; without, its size); with
    ``repair``, rewrite bad chunks from good stored copies. Cluster admins only."""
    caller.require_admin()
    return caller.ops.fsck(verify_chunks, repair)
