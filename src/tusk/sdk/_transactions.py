"""The transaction half of tusk.Client: start, finish, delete, list, inspect, stop and resume transactions.

While ``active_transaction`` is set, the calls a transaction batches (``REQUESTS``: create/delete repo,
start/finish/delete commit, create/delete branch; and create/update pipeline) are added to it, after a dry
run, instead of running; they return what they will return (a started commit with the id it will have).
Every other write is refused, naming the command, so nothing runs outside the transaction by mistake.
Reads run as usual.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from tusk.errors import Conflict, InvalidArgument, InvalidRef
from tusk.versioning.refs import parse_ref
from tusk.versioning.transactions import REQUESTS, Preview, TransactionInfo

if TYPE_CHECKING:
    from tusk.services import Services

__all__ = ["REFUSED", "TransactionMethods"]

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
    def method(self: TransactionMethods, *args: Any, **kwargs: Any) -> Any:
        txn = getattr(self, "active_transaction", None)
        if txn is None:
            return fn(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        if name in PIPELINE_BATCHED:  # each spec of the source, with its code (stored now), is one request
            for request in self._pipeline_requests(name, dict(bound.arguments)):
                self._add_request(txn, request)
                self.batched.append(request)
            return []  # the pipelines exist once the transaction is finished
        if name not in BATCHED:
            raise refusal(REFUSED[name], txn)
        request = _request(name, dict(bound.arguments))
        preview = self._add_request(txn, request)
        self.batched.append(request)
        return preview

    method.__tusk_guarded__ = True  # type: ignore[attr-defined]
    return method


class TransactionMethods:
    services: Services
    active_transaction: str | None  # the transaction this client's batched calls go to (None: they run)
    batched: list[dict[str, Any]]  # the requests this client added to it (the CLI says so on stderr)
    _after_write: Callable[[], None]  # (PipelineMethods': runs the jobs a write caused)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Guard every write on the class (its own or inherited): batched or refused inside a transaction."""
        super().__init_subclass__(**kwargs)
        for name in (*BATCHED, *PIPELINE_BATCHED, *REFUSED):
            fn = getattr(cls, name, None)
            if fn is not None and not getattr(fn, "__tusk_guarded__", False):
                setattr(cls, name, _guard(name, fn))

    def _add_request(self, txn_id: str, request: dict[str, Any]) -> Preview:
        return self.add_transaction_request(txn_id, request)[1]

    def _pipeline_requests(self, name: str, call: dict[str, Any]) -> list[dict[str, Any]]:
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

    def start_transaction(self, activate: bool = True) -> TransactionInfo:
        """Start a transaction and make it this client's active one (``pachctl start transaction``); with
        ``activate=False`` only start it (requests go to it by id: ``add_transaction_request``)."""
        if activate and self.active_transaction is not None:
            raise Conflict(f"cannot start a new transaction: transaction {self.active_transaction} is active; "
                           "finish, delete or stop it first")
        info = self.services.transactions.start()
        if activate:
            self.active_transaction, self.batched = info.id, []
        return info

    def add_transaction_request(self, txn_id: str, request: dict[str, Any]) -> tuple[TransactionInfo, Preview]:
        """Add a request (``{"op": "start_commit", "repo": ..., "branch": ...}``) to transaction ``txn_id`` after a
        dry run: the transaction as it now is, and what the request will return (a started commit, with its id)."""
        return self.services.transactions.add(txn_id, request)

    def _chosen(self, txn_id: str | None) -> str:
        txn = txn_id or self.active_transaction
        if txn is None:
            raise InvalidArgument("no active transaction: name one (`tusk list transaction` shows them) or start "
                                  "one with `tusk start transaction`")
        return txn

    def _forget(self, txn_id: str) -> None:
        if self.active_transaction == txn_id:
            self.active_transaction = None

    def finish_transaction(self, txn_id: str | None = None) -> TransactionInfo:
        """Run a transaction's requests together (the active one by default), then the jobs they trigger."""
        txn = self._chosen(txn_id)
        info = self.services.transactions.finish(txn)
        self._forget(info.id)
        self._after_write()
        return info

    def delete_transaction(self, txn_id: str | None = None) -> TransactionInfo:
        """Discard a transaction (the active one by default): none of its requests runs."""
        txn = self._chosen(txn_id)
        info = self.services.transactions.delete(txn)
        self._forget(info.id)
        return info

    def inspect_transaction(self, txn_id: str | None = None) -> TransactionInfo:
        return self.services.transactions.inspect(self._chosen(txn_id))

    def list_transactions(self) -> list[TransactionInfo]:
        """The transactions not finished or deleted yet, oldest first."""
        return self.services.transactions.list()

    def stop_transaction(self) -> str:
        """Stop adding to the active transaction; it stays, to finish, delete or resume later. Returns its id."""
        txn = self._chosen(None)
        self.active_transaction = None
        return txn

    def resume_transaction(self, txn_id: str) -> TransactionInfo:
        """Make an existing transaction the active one again."""
        info = self.inspect_transaction(txn_id)
        self.active_transaction, self.batched = info.id, []
        return info

    def transaction(self) -> contextlib.AbstractContextManager[TransactionInfo]:
        """``with client.transaction():`` the batched calls in the block run together at its end; an exception
        deletes the transaction instead."""
        return self._transaction_block()

    @contextlib.contextmanager
    def _transaction_block(self) -> Iterator[TransactionInfo]:
        info = self.start_transaction()
        try:
            yield info
        except BaseException:
            with contextlib.suppress(Exception):
                self.delete_transaction(info.id)
            self.active_transaction = None
            raise
        self.finish_transaction(info.id)


def preview_kind(op: str) -> str | None:
    """The record a batched request returns (by name), for a remote client to load the server's answer."""
    return _PREVIEWS.get(op)
