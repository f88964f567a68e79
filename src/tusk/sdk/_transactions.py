"""Transactions: which client calls a transaction batches, and the in-process transport's transaction methods.

``tusk.Client`` keeps which transaction is active (``guard_writes``). While ``active_transaction`` is set,
the calls a transaction batches (``REQUESTS``: create/delete repo, start/finish/delete commit, create/delete
branch; and create/update pipeline) are added to it, after a dry run, instead of running; they return what
they will return (a started commit with the id it will have). Every other write is refused, naming the
command, so nothing runs outside the transaction by mistake. Reads run as usual.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from tusk.errors import Conflict, InvalidRef
from tusk.sdk._operations import Operations
from tusk.versioning.refs import parse_ref
from tusk.versioning.transactions import REQUESTS, Preview, TransactionInfo

if TYPE_CHECKING:
    from tusk.sdk._client import Client

__all__ = ["REFUSED", "TransactionMethods", "guard_writes", "refusal"]

C = TypeVar("C")

# the writes a transaction cannot hold: refused by name while one is active (method → the command it is)
REFUSED = {
    "modify": "put file", "put_file": "put file", "delete_file": "delete file", "copy_file": "copy file",
    "squash_commit": "squash commit", "gc": "gc", "restore": "restore",
    "edit_pipeline": "edit pipeline",
    "rerun_pipeline": "rerun pipeline", "delete_pipeline": "delete pipeline", "stop_pipeline": "stop pipeline",
    "start_pipeline": "start pipeline", "run_cron": "run cron", "tick_due_crons": "run cron",
    "stop_job": "stop job", "promote_model": "model promote", "rollback_model": "model rollback",
    "create_deployment": "deploy create", "update_deployment": "deploy update", "rollout": "deploy rollout",
    "rollback_deployment": "deploy rollback", "delete_deployment": "deploy delete",
    "publish_algorithm": "algo publish", "create_token": "auth create-token", "revoke_token": "auth revoke",
    "set_role": "auth set", "activate_auth": "auth activate",
}
BATCHED = frozenset(REQUESTS)
# batched too, as transaction requests of the pipelines layer (tusk.pipelines.transacted): a spec and its code
PIPELINE_BATCHED = frozenset({"create_pipeline", "update_pipeline"})
_PREVIEWS = {"create_repo": "RepoInfo", "start_commit": "CommitInfo", "finish_commit": "CommitInfo",
             "create_branch": "BranchInfo"}


def refusal(command: str, txn_id: str) -> Conflict:
    return Conflict(f"`tusk {command}` cannot run inside transaction {txn_id}: a transaction batches only "
                    f"{', '.join(REQUESTS.values())}, create pipeline and update pipeline. Finish it first "
                    "(`tusk finish transaction`), or set it aside (`tusk stop transaction`; "
                    "`tusk resume transaction ID` takes it up again)")


def _request(name: str, call: dict[str, Any]) -> dict[str, Any]:
    """The transaction request a batched call is."""
    if name in ("create_repo", "delete_repo"):
        if name == "create_repo":
            return {"op": name, "name": call["name"], "description": call.get("description") or ""}
        return {"op": name, "name": call["name"], "force": bool(call.get("force"))}
    repo, ref, anc = parse_ref(call["ref"], default_branch=None if name != "start_commit" else "master")
    if anc:
        raise InvalidRef(f"{call['ref']}: {REQUESTS[name]} takes a branch or a commit id, not an ancestry ref")
    if name == "start_commit":
        return {"op": name, "repo": repo, "branch": ref, "description": call.get("description") or ""}
    if name == "finish_commit":
        return {"op": name, "repo": repo, "ref": ref, "description": call.get("description")}
    if name == "delete_commit":
        return {"op": name, "repo": repo, "ref": ref}
    if name == "create_branch":
        if call.get("trigger") is not None:
            raise Conflict("`tusk create branch --trigger-branch` cannot run inside a transaction: a transaction "
                           "batches a branch's head, not its trigger; set the trigger before or after it")
        return {"op": name, "repo": repo, "branch": ref, "head": call.get("head")}
    return {"op": name, "repo": repo, "branch": ref}


def _guard(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, or, while the client has an active transaction, its request added there (batched) or its refusal."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def method(self: Client, *args: Any, **kwargs: Any) -> Any:
        txn = self.active_transaction
        if txn is None:
            return fn(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        if name in PIPELINE_BATCHED:  # each spec of the source, with its code (stored now), is one request
            for request in self.transport.pipeline_requests(name, dict(bound.arguments)):
                self.transport.add_transaction_request(txn, request)
                self.batched.append(request)
            return []  # the pipelines exist once the transaction is finished
        if name not in BATCHED:
            raise refusal(REFUSED[name], txn)
        request = _request(name, dict(bound.arguments))
        preview = self.transport.add_transaction_request(txn, request)[1]
        self.batched.append(request)
        return preview

    return method


def guard_writes(cls: type[C]) -> type[C]:
    """Guard every write of the client class: batched or refused while a transaction is active."""
    for name in (*BATCHED, *PIPELINE_BATCHED, *REFUSED):
        setattr(cls, name, _guard(name, getattr(cls, name)))
    return cls


class TransactionMethods(Operations):
    """The in-process transport's transactions (``LocalOperations``)."""

    _after_write: Callable[[], None]  # (PipelineMethods': runs the jobs a write caused)

    def pipeline_requests(self, name: str, call: dict[str, Any]) -> list[dict[str, Any]]:
        """The transaction requests of ``create_pipeline``/``update_pipeline`` called with ``call``: one per spec
        of the source, each with the code stored now (``code``: an upload the server has, as outside one)."""
        import json
        from pathlib import Path

        from tusk.pipelines.transacted import pipeline_request
        from tusk.sdk._pipelines import _specs

        source = call["source"]
        specs, code_dir = _specs(source)
        code = call.get("code") or self.services.pipelines.store_code(
            code_dir, implicit=not isinstance(source, str | Path))
        return [pipeline_request(name, json.loads(spec.canonical_json()) | ({"update": True} if spec.update else {}),
                                 code, bool(call.get("reprocess")) or spec.reprocess) for spec in specs]

    def start_transaction(self) -> TransactionInfo:
        return self.services.transactions.start()

    def add_transaction_request(self, txn_id: str, request: dict[str, Any]) -> tuple[TransactionInfo, Preview]:
        return self.services.transactions.add(txn_id, request)

    def finish_transaction(self, txn_id: str) -> TransactionInfo:
        info = self.services.transactions.finish(txn_id)
        self._after_write()
        return info

    def delete_transaction(self, txn_id: str) -> TransactionInfo:
        return self.services.transactions.delete(txn_id)

    def inspect_transaction(self, txn_id: str) -> TransactionInfo:
        return self.services.transactions.inspect(txn_id)

    def list_transactions(self) -> list[TransactionInfo]:
        return self.services.transactions.list()


def preview_kind(op: str) -> str | None:
    """The record a batched request returns (by name), for a remote client to load the server's answer."""
    return _PREVIEWS.get(op)
