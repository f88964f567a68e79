from __future__ import annotations

import typer

from tusk.cli._state import emit, say, state
from tusk.errors import InvalidArgument
from tusk.ids import short_id

app = typer.Typer(help="Create, list and delete branches.", no_args_is_help=True)


@app.command("create")
def create(ref: str = typer.Argument(..., metavar="REPO@BRANCH"),
           head: str | None = typer.Option(None, "--head", help="commit or branch to point at"),
           trigger_branch: str | None = typer.Option(None, "--trigger-branch", help="branch to follow"),
           trigger_commits: int | None = typer.Option(None, "--trigger-commits", help="move after N commits"),
           trigger_size: str | None = typer.Option(None, "--trigger-size", help="move after this much new data"),
           trigger_cron: str | None = typer.Option(None, "--trigger-cron", help="move at most once per schedule"),
           trigger_all: bool = typer.Option(False, "--trigger-all", help="require every condition, not any")) -> None:
    """Create a branch (or move it with --head); --trigger-* make it follow another branch (deferred processing)."""
    trigger = None
    if trigger_branch is not None:
        from tusk.versioning.triggers import BranchTrigger, parse_size  # SQLAlchemy: only when asked

        trigger = BranchTrigger(trigger_branch, trigger_commits, parse_size(trigger_size) if trigger_size else None,
                                trigger_cron, trigger_all)
    elif any(v is not None for v in (trigger_commits, trigger_size, trigger_cron)):
        raise InvalidArgument("--trigger-commits/--trigger-size/--trigger-cron need --trigger-branch")
    had = None
    if trigger is not None:
        from tusk.versioning.refs import parse_ref

        had = {b.name for b in state.client.list_branches(parse_ref(ref, default_branch=None)[0])}
    info = state.client.create_branch(ref, head, trigger)
    if state.json:
        emit(info, ["repo", "name", "head", "trigger"])
        return
    where = f"{info.repo}@{info.name}"
    say(f"branch {where} → {short_id(info.head) if info.head else '(no commits)'}"
        + (f" (follows {info.trigger})" if info.trigger else ""))
    if trigger is not None and had is not None and trigger.branch not in had:
        say(f"created branch {info.repo}@{trigger.branch}: put new data there; "
            f"{info.name} moves to it when the trigger fires")


@app.command("list")
def list_(repo: str) -> None:
    """List a repo's branches, with the branch each trigger follows and when it moves."""
    emit(state.client.list_branches(repo), ["name", "head", "trigger", "created_at"])


@app.command("delete")
def delete(ref: str = typer.Argument(..., metavar="REPO@BRANCH")) -> None:
    """Delete a branch (its commits stay)."""
    state.client.delete_branch(ref)
    if not state.json:
        say(f"deleted branch {ref}")
