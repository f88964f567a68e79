"""``tusk start|finish|delete|list|inspect|stop|resume transaction`` (pachctl's verbs; ``tusk transaction start``
too). The active transaction is kept in the config file, per store, as pachctl keeps it in its context."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from tusk.cli._state import emit, out, say, state

if TYPE_CHECKING:
    from tusk.versioning.transactions import TransactionInfo

app = typer.Typer(help="Batch commits and branches so they land together: start, finish, delete, list, inspect, "
                       "stop and resume transactions.", no_args_is_help=True)

_COLUMNS = ["id", "started", "author", "requests", "active"]


def _row(t: TransactionInfo) -> list[object]:
    return [t.id, t.started_at.strftime("%Y-%m-%d %H:%M:%S"), t.author, len(t.requests),
            "yes" if t.id == state.client.active_transaction else ""]


@app.command("start")
def start() -> None:
    """Start a transaction: later `start commit`, `finish commit`, `delete commit`, `create branch`, `delete
    branch`, `create repo` and `delete repo` are added to it instead of running, until `finish transaction`."""
    client = state.client
    info = client.start_transaction()
    state.save_transaction(client)
    if state.json:
        emit(info, _COLUMNS, _row)
    else:
        say(f"started new transaction: {info.id}")


@app.command("finish")
def finish(txn: str | None = typer.Argument(None, metavar="[ID]", help="default: the active transaction")) -> None:
    """Run a transaction's requests together; the commits it starts share one global id (its id)."""
    client = state.client
    info = client.finish_transaction(txn)
    state.save_transaction(client)  # (no longer active, if it was)
    if state.json:
        emit(info, ["id", "author", "requests"], lambda t: [t.id, t.author, len(t.requests)])
    else:
        say(f"Completed transaction with {len(info.requests)} requests: {info.id}")


@app.command("delete")
def delete(txn: str | None = typer.Argument(None, metavar="[ID]", help="default: the active transaction")) -> None:
    """Discard a transaction: none of its requests runs."""
    client = state.client
    info = client.delete_transaction(txn)
    state.save_transaction(client)
    if not state.json:
        say(f"deleted transaction {info.id} ({len(info.requests)} requests discarded)")


@app.command("list")
def list_() -> None:
    """List the transactions not finished or deleted yet."""
    emit(state.client.list_transactions(), _COLUMNS, _row)


@app.command("inspect")
def inspect(txn: str | None = typer.Argument(None, metavar="[ID]", help="default: the active transaction")) -> None:
    """Show a transaction and the requests it will run, in order."""
    from tusk.versioning.transactions import describe

    info = state.client.inspect_transaction(txn)
    if state.json:
        emit(info, _COLUMNS, _row)
        return
    active = " (active)" if info.id == state.client.active_transaction else ""
    say(f"Transaction  {info.id}{active}")
    say(f"Started      {info.started_at.strftime('%Y-%m-%d %H:%M:%S')} by {info.author}")
    say(f"Requests     {len(info.requests)}")
    for n, request in enumerate(info.requests, 1):
        out.print(f"  {n}. ", end="")
        say(describe(request))


@app.command("stop")
def stop() -> None:
    """Stop adding to the active transaction: it stays, to finish, delete or `resume transaction` later."""
    client = state.client
    txn = client.stop_transaction()
    state.save_transaction(client)
    if not state.json:
        say(f"Cleared active transaction: {txn}")


@app.command("resume")
def resume(txn: str = typer.Argument(..., metavar="ID")) -> None:
    """Make an existing transaction the active one again."""
    client = state.client
    if client.active_transaction is not None:
        client.stop_transaction()
    info = client.resume_transaction(txn)
    state.save_transaction(client)
    if not state.json:
        say(f"Resuming existing transaction with {len(info.requests)} requests: {info.id}")
