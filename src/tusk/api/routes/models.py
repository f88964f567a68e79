from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from tusk.api._deps import MAX_COUNT, CallerDep, Limit, Wait, finish_write
from tusk.models.records import BranchMove, ModelInfo
from tusk.models.registry import MOVE_NOTE_MAX
from tusk.transfer import tar_directory
from tusk.versioning.refs import parse_file_ref, parse_ref

router = APIRouter(prefix="/api/v1/models", tags=["models"])


def _note() -> Any:
    return Field(default=None, max_length=MOVE_NOTE_MAX,
                 description="why, in one line of plain text (no control characters); kept in the branch's history")


class Promotion(BaseModel):
    ref: str  # repo@commit-or-branch[:/path]
    to: str  # the branch to point at it (staging, production, ...)
    note: str | None = _note()


class Rollback(BaseModel):
    ref: str  # repo@branch
    steps: int = Field(default=1, le=MAX_COUNT)
    note: str | None = _note()


@router.get("")
def list_models(caller: CallerDep, repo: str | None = None, limit: Limit = None) -> list[ModelInfo]:
    if repo is not None:
        caller.require_repo(repo, "reader")
    return [m for m in caller.ops.list_models(repo, limit) if caller.can(m.repo, "reader")]


@router.get("/manifest")
def model_manifest(ref: str, caller: CallerDep) -> dict[str, Any]:
    """The manifest of ``repo@ref``: file hashes, training provenance, metrics, creation time."""
    caller.require_repo(parse_file_ref(ref).repo, "reader")
    return caller.ops.model_manifest(ref).to_dict()


@router.post("/verify")
def verify_model(ref: str, caller: CallerDep) -> dict[str, Any]:
    """Re-hash every file of the model commit against its manifest (409-free: a mismatch is a 500 ModelTampered)."""
    caller.require_repo(parse_file_ref(ref).repo, "reader")
    return caller.ops.verify_model(ref).to_dict()


@router.get("/export", response_class=StreamingResponse, responses={200: {"content": {
    "application/x-tar": {"schema": {"type": "string", "format": "binary"}}}}})
def export_model(ref: str, caller: CallerDep) -> StreamingResponse:
    """The model's files and ``tusk-manifest.json`` as a tar, verified before they are sent."""
    caller.require_repo(parse_file_ref(ref).repo, "reader")
    where = Path(tempfile.mkdtemp(prefix="tusk-export-"))
    try:
        caller.ops.export_model(ref, where)
    except BaseException:
        shutil.rmtree(where, ignore_errors=True)
        raise

    def stream() -> Iterator[bytes]:
        try:
            yield from tar_directory(where, limit=1 << 62, skip_hidden=False)
        finally:
            shutil.rmtree(where, ignore_errors=True)

    return StreamingResponse(stream(), media_type="application/x-tar")


@router.post("/promote")
def promote_model(body: Promotion, caller: CallerDep, wait: Wait = False) -> BranchMove:
    caller.require_repo(parse_file_ref(body.ref).repo, "writer")
    move = caller.ops.promote_model(body.ref, body.to, body.note)
    finish_write(caller, wait)
    return move


@router.post("/rollback")
def rollback_model(body: Rollback, caller: CallerDep, wait: Wait = False) -> BranchMove:
    caller.require_repo(parse_ref(body.ref, default_branch=None)[0], "writer")
    move = caller.ops.rollback_model(body.ref, body.steps, body.note)
    finish_write(caller, wait)
    return move


@router.get("/history")
def model_history(ref: str, caller: CallerDep) -> list[BranchMove]:
    """Every move of ``repo@branch``, newest first, with who, when, its kind (``reason``) and its ``note``."""
    caller.require_repo(parse_ref(ref, default_branch=None)[0], "reader")
    return caller.ops.model_history(ref)
