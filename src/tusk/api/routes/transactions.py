"""Transactions (``tusk start transaction``): requests drafted here, then run together
(``tusk.versioning.transactions``). Each request is checked with the rights its command needs when it is
added, and again when the transaction is finished, with the finisher's. With auth on, a transaction is its
author's and the cluster admins': another user reads, adds to or finishes it as if it did not exist."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tusk.api._deps import Caller, CallerDep, Wait, finish_write
from tusk.api.routes.pipelines import check_pipeline_inputs, own_pipeline_repos
from tusk.errors import InvalidArgument, NotFound
from tusk.pipelines.spec import PipelineSpec, parse_spec
from tusk.versioning.transactions import TransactionInfo

router = APIRouter(prefix="/api/v1/transactions", tags=["transactions"])


def _pipeline(request: dict[str, Any]) -> PipelineSpec:
    spec = request.get("spec")
    if not isinstance(spec, dict):
        raise InvalidArgument(f"{request.get('op')} in a transaction needs the spec as an object")
    return parse_spec(spec)


def _require(caller: Caller, request: dict[str, Any]) -> None:
    """The rights the request's command needs (those of its route)."""
    op = request.get("op")
    if op == "delete_repo":
        caller.require_repo(str(request.get("name")), "owner")
    elif op in ("create_pipeline", "update_pipeline"):  # as the pipelines' routes check them
        spec = _pipeline(request)
        if op == "update_pipeline" or (spec.update and caller.ops.pipeline_exists(spec.name)):
            caller.require_repo(spec.name, "owner")
        check_pipeline_inputs(caller, spec)
    elif op != "create_repo":
        caller.require_repo(str(request.get("repo")), "writer")


def _mine(caller: Caller, info: TransactionInfo) -> bool:
    """A transaction is its author's (and the cluster admins'): its requests name repos, commits and specs."""
    return not caller.state.auth or caller.admin or info.author == caller.user


def _own(caller: Caller, txn: str) -> TransactionInfo:
    """The caller's transaction ``txn``; another user's reads exactly as a missing one (no oracle for ids)."""
    try:
        info = caller.ops.inspect_transaction(txn)
    except NotFound:
        info = None
    if info is None or not _mine(caller, info):
        raise NotFound(f"no transaction {txn}: it was finished or deleted, or never started (`tusk list "
                       "transaction` shows the open ones; `tusk stop transaction` forgets an active one that is "
                       "gone)")
    return info


@router.post("", status_code=201)
def start_transaction(caller: CallerDep) -> TransactionInfo:
    return caller.ops.start_transaction(activate=False)  # (the server's client is every request's: no state)


@router.get("")
def list_transactions(caller: CallerDep) -> list[TransactionInfo]:
    """The caller's transactions not finished or deleted yet, oldest first (an admin's: everyone's)."""
    return [t for t in caller.ops.list_transactions() if _mine(caller, t)]


@router.get("/{txn}")
def inspect_transaction(txn: str, caller: CallerDep) -> TransactionInfo:
    return _own(caller, txn)


@router.delete("/{txn}")
def delete_transaction(txn: str, caller: CallerDep) -> TransactionInfo:
    """Discard a transaction: none of its requests runs."""
    return caller.ops.delete_transaction(_own(caller, txn).id)


@router.post("/{txn}/requests")
def add_request(txn: str, request: dict[str, Any], caller: CallerDep) -> dict[str, Any]:
    """Add a request (``{"op": "start_commit", "repo": ..., "branch": ...}``) after a dry run; ``result`` is
    what it will return (a started commit, with the id it will have)."""
    _require(caller, request)
    info, preview = caller.ops.add_transaction_request(_own(caller, txn).id, request)
    return {"transaction": info.to_dict(), "result": preview.to_dict() if preview is not None else None}


@router.post("/{txn}/finish")
def finish_transaction(txn: str, caller: CallerDep, wait: Wait = False) -> TransactionInfo:
    """Run every request together; with ``wait``, return once the jobs they trigger are done."""
    draft = _own(caller, txn)
    for request in draft.requests:
        _require(caller, request)
    with caller.ops.holding_job_starts():  # the creator owns what it made before a job runs
        info = caller.ops.finish_transaction(draft.id)
        for request in info.requests:
            if request.get("op") == "create_repo":
                caller.own(str(request["name"]))
            elif request.get("op") == "create_pipeline":
                own_pipeline_repos(caller, _pipeline(request))
    finish_write(caller, wait)
    return info
