from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from tusk import __version__
from tusk.api._deps import CallerDep
from tusk.errors import InvalidArgument
from tusk.versioning.records import FsckReport, GcReport

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


@router.post("/gc")
def gc(caller: CallerDep, dry_run: bool = False, grace: float | None = None) -> GcReport:
    """Delete every stored object that nothing refers to and that is older than ``grace`` seconds (default: an
    hour); ``dry_run`` reports what would go and deletes nothing. Safe while writers run. Cluster admins only."""
    caller.require_admin()
    if grace is not None and grace < 0:
        raise InvalidArgument(f"grace must be zero or more seconds, not {grace}")
    return caller.ops.gc(dry_run, grace)
