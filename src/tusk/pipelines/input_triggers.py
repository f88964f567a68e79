"""Input triggers (``input.pfs.trigger``): a pipeline that runs on an input only when a trigger fires.

As in Pachyderm, the input's branch becomes a trigger branch of the input
repo: it follows the trigger's ``branch`` (default ``master``) and moves to
that branch's head only when the trigger fires (``commits``, ``size``,
``cron_spec``; all of them with ``all``, any one otherwise). The pipeline reads
the trigger branch, so it runs when the branch moves. Firing is the branch
triggers' own (``tusk.versioning.triggers``); this module only names the
branch, checks it, and sets its trigger in the transaction that creates or
updates the pipeline, so a refused spec leaves no branch behind.

The branch, as pachd names it (``SetInputDefaults``, src/internal/ppsutil of
pachyderm/pachyderm): ``pfs.branch`` when the spec sets it; otherwise
``<pipeline>-trigger-<n>``, ``n`` counting from 1 per input repo, in the order
Pachyderm visits the inputs (the children of each cross, union, join and group
sorted by their ``name``). The stored spec carries the branch so named, and
the trigger's branch, as ``inspect pipeline`` shows them in Pachyderm.

An existing branch is taken as it is when it holds the same trigger. Another
trigger is replaced only on a branch this pipeline owns (one it named, or its
current version reads with a trigger) and no other pipeline reads with a
trigger; a plain branch becomes a trigger branch only while it follows the
trigger's branch (it is empty, or its head is in that branch's history). Deleting
the pipeline leaves the branch and its trigger, as Pachyderm does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from sqlalchemy.orm import Session

from tusk.errors import Conflict, InvalidArgument
from tusk.ids import validate_branch_name
from tusk.pipelines.spec import Input, PfsInput, PipelineSpec, Trigger
from tusk.schedules import cron_interval
from tusk.versioning import refstore
from tusk.versioning.branches import describe_trigger
from tusk.versioning.context import Context
from tusk.versioning.triggers import BranchTrigger, parse_size, set_branch_trigger, trigger_of

__all__ = ["claim_trigger_branches", "resolve_input_triggers", "trigger_inputs"]

DEFAULT_FOLLOWS = "master"  # the branch a trigger follows when it names none (Pachyderm's default)
_HISTORY_LIMIT = 1_000_000


def trigger_inputs(spec: PipelineSpec) -> list[tuple[str, PfsInput]]:
    """Each pfs input with a trigger, with its path in the spec (``input.cross[1].pfs``)."""
    return [(where, pfs) for where, pfs in _pfs_inputs(spec.input, "input") if pfs.trigger is not None]


def _pfs_inputs(inp: Input, where: str) -> Iterator[tuple[str, PfsInput]]:
    if inp.pfs is not None:
        yield f"{where}.pfs", inp.pfs
        return
    for kind in ("cross", "union", "join", "group"):
        for i, child in enumerate(getattr(inp, kind) or ()):
            yield from _pfs_inputs(child, f"{where}.{kind}[{i}]")


def _pachyderm_order(inp: Input) -> tuple[str, list[PfsInput]]:
    """The pfs inputs in the order pachd numbers trigger branches: ``SortInput`` (children sorted, stably, by
    ``InputName``: a pfs input's own ``name`` as written, "" if none; a combinator's first child's) and then
    ``VisitInput`` (depth first). Returns the input's sort name and its pfs inputs in that order."""
    if inp.pfs is not None:
        return inp.pfs.name or "", [inp.pfs]
    if inp.cron is not None:
        return inp.cron.name, []
    children = inp.cross or inp.union or inp.join or inp.group or []
    ordered = sorted((_pachyderm_order(child) for child in children), key=lambda named: named[0])
    return (ordered[0][0] if ordered else ""), [pfs for _, leaves in ordered for pfs in leaves]


def _generated_names(spec: PipelineSpec) -> dict[int, str]:
    """``<pipeline>-trigger-<n>`` for each trigger input without a branch of its own, by ``id`` of its pfs."""
    counts: dict[str, int] = {}
    names = {}
    for pfs in _pachyderm_order(spec.input)[1]:
        if pfs.trigger is not None and "branch" not in pfs.model_fields_set:
            counts[pfs.repo] = counts.get(pfs.repo, 0) + 1
            names[id(pfs)] = f"{spec.name}-trigger-{counts[pfs.repo]}"
    return names


def resolve_input_triggers(spec: PipelineSpec) -> PipelineSpec:
    """The spec with each trigger input's branch named and its trigger's branch set, as pachd fills them in;
    a trigger that cannot work is refused here, naming its field (InvalidArgument)."""
    if not trigger_inputs(spec):
        return spec
    names = _generated_names(spec)
    paths = {id(pfs): where for where, pfs in _pfs_inputs(spec.input, "input")}

    def resolve(pfs: PfsInput) -> PfsInput:
        where, trigger = paths[id(pfs)], pfs.trigger
        assert trigger is not None
        branch = names.get(id(pfs), pfs.branch)
        follows = trigger.branch or None
        if id(pfs) in names:
            try:
                validate_branch_name(branch)
            except InvalidArgument:
                raise InvalidArgument(f"pipeline {spec.name}: {where}.trigger: the trigger branch Tusk names for "
                                      f"this input, {branch!r}, is not a valid branch name (too long?): set "
                                      f"{where}.branch to the branch it should be") from None
            follows = follows or DEFAULT_FOLLOWS
        elif follows is None:
            raise InvalidArgument(f"pipeline {spec.name}: {where}.trigger.branch: name the branch this trigger "
                                  f"follows (as in Pachyderm, it is {DEFAULT_FOLLOWS} only when {where}.branch is "
                                  "not set)")
        if follows == branch:
            raise InvalidArgument(f"pipeline {spec.name}: {where}.trigger: branch {branch!r} cannot follow itself: "
                                  f"drop {where}.branch (the trigger branch is then {spec.name}-trigger-N, as in "
                                  "Pachyderm) or name another branch there")
        to_branch_trigger(trigger.model_copy(update={"branch": follows}), f"pipeline {spec.name}: {where}.trigger")
        return pfs.model_copy(update={"branch": branch, "trigger": trigger.model_copy(update={"branch": follows})})

    def walk(inp: Input) -> Input:
        if inp.pfs is not None:
            return inp if inp.pfs.trigger is None else inp.model_copy(update={"pfs": resolve(inp.pfs)})
        if inp.cron is not None:
            return inp
        kind = next(k for k in ("cross", "union", "join", "group") if getattr(inp, k) is not None)
        return inp.model_copy(update={kind: [walk(child) for child in getattr(inp, kind)]})

    return spec.model_copy(update={"input": walk(spec.input)})


def to_branch_trigger(trigger: Trigger, where: str) -> BranchTrigger:
    """A spec's trigger as a branch trigger: ``size`` as ``tusk branch create --trigger-size`` reads it,
    ``cron_spec`` as ``--trigger-cron``; a zero or empty condition is unset, as in Pachyderm."""
    if trigger.commits is not None and trigger.commits < 0:
        raise InvalidArgument(f"{where}.commits: {trigger.commits} is negative; give a count of commits, e.g. 10")
    size = None
    if trigger.size:
        try:
            size = parse_size(trigger.size)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{where}.size: {exc.message}") from None
    if trigger.cron_spec:
        try:
            cron_interval(trigger.cron_spec)
        except ValueError as exc:
            raise InvalidArgument(f"{where}.cron_spec: {exc}") from None
    commits, cron = trigger.commits or None, trigger.cron_spec or None
    if commits is None and size is None and cron is None:
        raise InvalidArgument(f"{where}: a trigger needs at least one of commits, size, cron_spec (e.g. "
                              "\"commits\": 10), or it never fires")
    return BranchTrigger(branch=trigger.branch or DEFAULT_FOLLOWS, commits=commits, size=size, cron=cron,
                         all=trigger.all)


def claim_trigger_branches(s: Session, ctx: Context, spec: PipelineSpec, current: PipelineSpec | None,
                           others: Iterable[PipelineSpec]) -> None:
    """Create or update the trigger branch of each trigger input of the (resolved) ``spec``, in the caller's
    transaction. ``current``: the pipeline's current version (an update); ``others``: every other pipeline."""
    mine = {(pfs.repo, pfs.branch) for _, pfs in trigger_inputs(current)} if current is not None else set()
    theirs = {(pfs.repo, pfs.branch): other.name for other in others for _, pfs in trigger_inputs(other)}
    generated = re.compile(rf"{re.escape(spec.name)}-trigger-\d+")
    done: dict[tuple[str, str], BranchTrigger] = {}
    for where, pfs in trigger_inputs(spec):
        field = f"pipeline {spec.name}: {where}.trigger"
        assert pfs.trigger is not None
        trigger = to_branch_trigger(pfs.trigger, field)
        key, ref = (pfs.repo, pfs.branch), f"{pfs.repo}@{pfs.branch}"
        if key in done:
            if done[key] != trigger:
                raise Conflict(f"{field}: another input of this spec gives branch {ref} another trigger; give "
                               "both the same trigger, or each its own pfs.branch")
            continue
        done[key] = trigger
        repo = ctx.repo_row(s, pfs.repo)
        row = refstore.branch(s, repo.id, pfs.branch)
        _check_loop(s, repo.id, pfs.branch, trigger.branch, field)
        if row is not None:
            existing = trigger_of(row)
            if existing == trigger:
                continue
            if existing is not None:
                owner = theirs.get(key)
                if owner is not None or not (key in mine or generated.fullmatch(pfs.branch)):
                    who = f"pipeline {owner} reads it with that trigger" if owner else "it is not this pipeline's"
                    raise Conflict(f"{field}: branch {ref} exists with another trigger ({describe_trigger(row)}) "
                                   f"and {who}: give this input the same trigger, or another pfs.branch (or "
                                   f"`tusk branch delete {ref}` first)")
            elif not _follows(s, repo.id, row.head_id, trigger.branch):
                raise Conflict(f"{field}: branch {ref} exists with commits of its own, not {trigger.branch}'s: a "
                               f"trigger branch only follows {trigger.branch}; name a new branch in pfs.branch "
                               "(or drop pfs.branch to let Tusk name one)")
        set_branch_trigger(s, repo.id, pfs.branch, trigger)


def _follows(s: Session, repo_id: int, head: str | None, branch: str) -> bool:
    """Whether a branch at ``head`` is empty, or at a commit of ``branch``'s history."""
    return head is None or head in refstore.ancestry(s, refstore.head_id(s, repo_id, branch), _HISTORY_LIMIT)


def _check_loop(s: Session, repo_id: int, branch: str, follows: str, field: str) -> None:
    """Refuse a trigger whose chain of followed branches comes back to ``branch`` (Pachyderm: "triggers
    cannot form a loop")."""
    rows = refstore.trigger_follows(s, repo_id)
    seen: set[str] = set()
    cur: str | None = follows
    while cur is not None and cur not in seen:
        if cur == branch:
            raise InvalidArgument(f"{field}: branch {branch} would follow {follows}, which follows {branch} in "
                                  "turn: triggers cannot form a loop; follow another branch")
        seen.add(cur)
        cur = rows.get(cur)
