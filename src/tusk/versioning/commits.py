"""Commits: open → change → finish, atomically, with compare-and-set on the head.

A finish builds the new tree from the branch head and the commit's ops, makes
the objects durable, then in one transaction moves the head *only if it is
still the commit's parent*. If another writer got there first, the ops are
replayed on the new head and the finish retries, so concurrent writers to one
branch are serialized and none of their commits is lost.
"""

from __future__ import annotations

import builtins
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Integer, delete, literal_column, select, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlalchemy.orm import Session

from tusk.errors import CommitNotFound, Conflict, InvalidRef, ObjectMissing, Timeout
from tusk.ids import ID_PREFIX_MIN, is_id_prefix, new_commit_id, validate_branch_name
from tusk.storage.metadata import (
    BranchRow,
    CommitProvenanceRow,
    CommitRow,
    CommitSetRow,
    RepoRow,
    StagedOpRow,
)
from tusk.versioning import fence, refstore
from tusk.versioning.context import Context, expand_id, now
from tusk.versioning.records import CommitInfo, InputCommit
from tusk.versioning.staging import Op, apply_ops, decode_op_payload, encode_op_payload
from tusk.versioning.trees import EMPTY_TREE, MutableTree

__all__ = ["CommitService"]

_MAX_RETRIES = 1000
# the notifications ``CommitService.held()`` keeps back in this context (a request, a CLI call); None: none held
_HELD: ContextVar[list[tuple[CommitInfo, bool]] | None] = ContextVar("tusk_held_notifications", default=None)
_ONE_CHANGE: ContextVar[str | None] = ContextVar("tusk_one_change", default=None)


class _HeadMoved(Exception):
    pass


class _Fenced(Exception):
    """A gc may have deleted objects since the writer began (``tusk.versioning.fence``)."""


class CommitService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.listeners: list[Callable[[CommitInfo, bool], object]] = []

    def notify(self, commit: CommitInfo, moved: bool = False) -> None:
        """Tell listeners (manifests, triggers, the pipeline engine) that a commit became a branch head.

        ``moved`` is True when an existing commit became the head by a branch
        move (promote, rollback, deferred processing) rather than by landing.
        Inside ``held()`` the news waits until the block ends.
        """
        held = _HELD.get()
        if held is not None:
            held.append((commit, moved))
            return
        for listener in self.listeners:
            listener(commit, moved)

    def notify_as_one(self, news: Sequence[tuple[CommitInfo, bool]], global_id: str) -> None:
        """Deliver ``news`` (what ``held()`` kept) as one change: the branches it moved carry ``global_id``,
        and a pipeline that reads several of them runs once (``one_change`` tells the pipeline engine so)."""
        token = _ONE_CHANGE.set(global_id)
        try:
            for commit, moved in news:
                self.notify(replace(commit, global_id=global_id) if moved else commit, moved)
        finally:
            _ONE_CHANGE.reset(token)

    @staticmethod
    def one_change() -> str | None:
        """The global id of the change being delivered by ``notify_as_one``, if one is."""
        return _ONE_CHANGE.get()

    @contextlib.contextmanager
    def held(self) -> Iterator[list[tuple[CommitInfo, bool]]]:
        """Keep back the notifications of the writes in the block and hand them over, in order, at its end (to
        deliver with ``notify``): a transaction's finish lands all its writes before any pipeline hears of one."""
        held: list[tuple[CommitInfo, bool]] = []
        token = _HELD.set(held)
        try:
            yield held
        finally:
            _HELD.reset(token)

    # -- resolution ----------------------------------------------------------
    @staticmethod
    def commit_id(s: Session, repo: RepoRow, text: str) -> str | None:
        """The commit of ``repo`` whose id is ``text`` or starts with it (``refstore.commit_id``)."""
        return refstore.commit_id(s, repo, text)

    @staticmethod
    def resolve_row(s: Session, repo: RepoRow, ref: str, ancestry: int = 0) -> CommitRow:
        """The commit a ref names (``refstore.resolve_row``)."""
        return refstore.resolve_row(s, repo, ref, ancestry)

    def open_commit_on(self, s: Session, repo: RepoRow, branch: str) -> CommitRow | None:
        return s.scalar(
            select(CommitRow)
            .where(CommitRow.repo_id == repo.id, CommitRow.branch == branch, CommitRow.state == "open")
            .order_by(CommitRow.started_at.desc())
            .limit(1)
        )

    def staged_ops(self, s: Session, commit_id: str) -> list[Op]:
        rows = s.scalars(select(StagedOpRow).where(StagedOpRow.commit_id == commit_id).order_by(StagedOpRow.id))
        return [Op(r.op, r.path, decode_op_payload(r.payload)) for r in rows]  # type: ignore[arg-type]

    def tree_of(self, s: Session, row: CommitRow) -> str:
        """The root tree of a commit; for an open commit, head + its staged ops."""
        if row.state != "open":
            if row.tree_digest is None:
                raise CommitNotFound(f"commit {row.id} has no content ({row.state})")
            return row.tree_digest
        base = self._head_tree(s, row.repo_id, row.branch)
        ops = self.staged_ops(s, row.id)
        if not ops:
            return base
        tree = MutableTree(self.ctx.trees, base)
        apply_ops(tree, self.ctx.content, ops)
        return tree.finish()[0]

    def _head_tree(self, s: Session, repo_id: int, branch: str) -> str:
        head = refstore.head_id(s, repo_id, branch)
        if head is None:
            return EMPTY_TREE
        row = s.get(CommitRow, head)
        return row.tree_digest if row is not None and row.tree_digest else EMPTY_TREE

    # -- lifecycle -----------------------------------------------------------
    def start(self, repo: str, branch: str, description: str = "", origin: str = "user",
              global_id: str | None = None, new_id: str | None = None) -> CommitInfo:
        """Open a commit; it takes the id ``new_id`` when given (one a transaction promised when it was drafted)."""
        validate_branch_name(branch)
        self.ensure_branch(repo, branch)
        with self.ctx.db.write() as s:
            repo_row = self.ctx.repo_row(s, repo)
            branch_row = self.ctx.branch_row(s, repo_row, branch)
            row = self._new_commit_row(s, repo_row, branch, branch_row.head_id, description, origin, global_id,
                                       new_id)
            row.state = "open"
            s.add(row)
            s.flush()
            return self.ctx.commit_info(s, row, repo)

    def _ensure_branch(self, s: Session, repo: RepoRow, branch: str) -> BranchRow:
        row = s.scalar(select(BranchRow).where(BranchRow.repo_id == repo.id, BranchRow.name == branch))
        if row is None:
            row = BranchRow(repo_id=repo.id, name=branch, head_id=None, created_at=now())
            s.add(row)
            s.flush()
        return row

    def ensure_branch(self, repo: str, branch: str) -> None:
        """Create an empty branch if missing; losing a creation race to another writer is fine."""
        try:
            with self.ctx.db.write() as s:
                self._ensure_branch(s, self.ctx.repo_row(s, repo), branch)
        except DBIntegrityError:
            pass

    def _new_commit_row(self, s: Session, repo: RepoRow, branch: str, parent: str | None, description: str,
                        origin: str, global_id: str | None, new_id: str | None = None) -> CommitRow:
        commit_id = new_id or new_commit_id()
        set_id = global_id or commit_id
        if s.get(CommitSetRow, set_id) is None:
            s.add(CommitSetRow(id=set_id, created_at=now()))
            s.flush()  # no relationship() orders the inserts, so the set goes first explicitly
        return CommitRow(
            id=commit_id, repo_id=repo.id, branch=branch, parent_id=parent, origin=origin,
            description=description, state="finished", tree_digest=None, size_bytes=0,
            commit_set_id=set_id, author=self.ctx.user, started_at=now(), finished_at=None,
        )

    def stage(self, commit_id: str, ops: Sequence[Op], generation: int | None = None) -> None:
        """Record ops in an open commit, after checking they apply cleanly (and, when a gc ran since the
        writer's ``generation``, that the chunks they name are still stored)."""
        with self.ctx.db.read() as s:
            row = self.ctx.commit_row(s, commit_id)
            self._require_open(row)
            base = self._head_tree(s, row.repo_id, row.branch)
            tree = MutableTree(self.ctx.trees, base)
            apply_ops(tree, self.ctx.content, [*self.staged_ops(s, commit_id), *ops])
        token = fence.writer_token(self.ctx) if generation is None else generation
        while True:
            try:
                with self.ctx.db.write() as s:
                    if fence.fenced(self.ctx, s, token):
                        raise _Fenced
                    self._require_open(self.ctx.commit_row(s, commit_id))
                    for op in ops:
                        s.add(StagedOpRow(commit_id=commit_id, op=op.kind, path=op.path,
                                          payload=encode_op_payload(op.entry)))
                return
            except _Fenced:
                fence.wait_idle(self.ctx)
                token = fence.writer_token(self.ctx)
                for op in ops:
                    for ref in op.entry.file.chunks if op.entry is not None and op.entry.file is not None else ():
                        if not self.ctx.content.has_chunk(ref):
                            raise ObjectMissing(
                                f"{op.path}: chunk {ref.digest[:16]}… this write reused was deleted by a `tusk gc`"
                                " that ran meanwhile, so nothing was staged; put the file again") from None

    @staticmethod
    def _require_open(row: CommitRow) -> None:
        if row.state != "open":
            raise Conflict(f"commit {row.id} is {row.state}, not open; start a new commit to make changes")

    def finish_named(self, repo: str, name: str, description: str | None = None) -> CommitInfo:
        """Finish the open commit on branch ``name``, or the commit ``name`` names (an id or its prefix)."""
        with self.ctx.db.read() as s:
            repo_row = self.ctx.repo_row(s, repo)
            open_row = self.open_commit_on(s, repo_row, name)
            commit_id = open_row.id if open_row is not None else self.resolve_row(s, repo_row, name).id
        return self.finish(commit_id, description)

    def finish(self, commit_id: str, description: str | None = None, error: str | None = None) -> CommitInfo:
        with self.ctx.db.read() as s:
            row = self.ctx.commit_row(s, commit_id)
            self._require_open(row)
            repo_name = s.get(RepoRow, row.repo_id).name  # type: ignore[union-attr]
            ops = self.staged_ops(s, commit_id)
        return self.land(repo_name, row.branch, ops, commit_id=commit_id, description=description, error=error)

    def land(self, repo: str, branch: str, ops: Sequence[Op], *, commit_id: str | None = None,
             description: str | None = None, origin: str = "user", global_id: str | None = None,
             provenance: Sequence[InputCommit] = (), error: str | None = None,
             job_id: str | None = None, notify: bool = True, started_at: datetime | None = None,
             new_id: str | None = None, generation: int | None = None) -> CommitInfo:
        """Apply ops on the branch head and move the head, atomically.

        With ``commit_id`` the open commit of that id is finished; otherwise a
        new commit is created only at the moment it becomes visible, so a
        writer killed before that leaves nothing behind but unreferenced chunks;
        it takes the id ``new_id`` when given (a job's output commit takes the
        job's id, which its datums were told in ``PACH_OUTPUT_COMMIT_ID``).
        A commit finished with ``error`` is recorded as failed and does not move
        the head. ``provenance`` may name one source commit several times (a
        pipeline that reads one repo under two names): it is recorded once.

        ``generation`` is the gc generation the writer noted before it stored
        the chunks the ops name (``fence.writer_token``; default: now). When a
        gc has run since, the landing waits for it to end and checks that every
        object the commit adds is still stored (``ObjectMissing`` if not).
        """
        validate_branch_name(branch)
        self.ensure_branch(repo, branch)
        token = fence.writer_token(self.ctx) if generation is None else generation
        verify = False
        for _attempt in range(_MAX_RETRIES):
            with self.ctx.db.read() as s:
                repo_row = self.ctx.repo_row(s, repo)
                head = refstore.head_id(s, repo_row.id, branch)
                base: str = EMPTY_TREE
                if head is not None:
                    base = self.ctx.commit_row(s, head).tree_digest or EMPTY_TREE
            tree = MutableTree(self.ctx.trees, base)
            apply_ops(tree, self.ctx.content, list(ops))
            root, size = tree.finish()
            if verify:
                self._require_stored(base, root, repo, branch)
            self.ctx.objects.flush()
            try:
                info = self._publish(repo, branch, head, root, size, commit_id, description, origin, global_id,
                                     provenance, error, job_id, started_at, new_id, token)
            except _HeadMoved:
                continue  # someone else moved the head: replay our ops on the new one
            except _Fenced:  # a gc ran: once it is over, rebuild (rewriting trees it took) and check the chunks
                fence.wait_idle(self.ctx)
                token, verify = fence.writer_token(self.ctx), True
                continue
            if notify and error is None:
                self.notify(info)
            return info
        raise Conflict(f"could not commit to {repo}@{branch}: the head kept moving ({_MAX_RETRIES} attempts)")

    def _require_stored(self, base: str, root: str, repo: str, branch: str) -> None:
        """Every chunk the new tree adds over ``base`` is stored (a gc ran while this commit was written)."""
        for path, _old, new in self.ctx.trees.diff(base, root):
            if new is None or new.file is None:
                continue
            for ref in new.file.chunks:
                if not self.ctx.content.has_chunk(ref):
                    raise ObjectMissing(
                        f"{repo}@{branch}:{path}: chunk {ref.digest[:16]}… this write reused was deleted by a"
                        " `tusk gc` that ran meanwhile, so nothing was committed; put the file again")

    def _publish(self, repo: str, branch: str, head: str | None, root: str, size: int, commit_id: str | None,
                 description: str | None, origin: str, global_id: str | None,
                 provenance: Sequence[InputCommit], error: str | None, job_id: str | None,
                 started_at: datetime | None = None, new_id: str | None = None, token: int = 0) -> CommitInfo:
        """One transaction: check the gc fence, compare-and-set the head and make the commit visible."""
        with self.ctx.db.write() as s:
            if fence.fenced(self.ctx, s, token):
                raise _Fenced
            repo_row = self.ctx.repo_row(s, repo)
            self.ctx.branch_row(s, repo_row, branch)  # BranchNotFound if it was deleted meanwhile
            if commit_id is not None:
                row = self.ctx.commit_row(s, commit_id)
                self._require_open(row)
            else:
                row = self._new_commit_row(s, repo_row, branch, head, "", origin, global_id, new_id)
                row.started_at = started_at or row.started_at  # when the writer began, not when it published
            if error is None:
                if not refstore.compare_and_set_head(s, repo_row.id, branch, head, row.id):  # still our parent?
                    raise _HeadMoved  # rolls this transaction back
                refstore.record_move(s, repo_row.id, branch, head, row.id, self.ctx.user, "commit", now())
            if commit_id is not None:
                s.execute(delete(StagedOpRow).where(StagedOpRow.commit_id == commit_id))
            else:
                s.add(row)
            row.parent_id = head
            row.tree_digest = root
            row.size_bytes = size
            row.finished_at = now()
            row.state = "failed" if error is not None else "finished"
            row.error = error
            row.job_id = job_id
            if description is not None:
                row.description = description
            s.flush()  # the commit row must exist before rows that reference it
            for source in _distinct_sources(provenance):
                src_repo, src_branch, src_commit = source["repo"], source["branch"], source["commit"]
                s.add(CommitProvenanceRow(commit_id=row.id, source_repo=src_repo, source_branch=src_branch,
                                          source_commit_id=src_commit))
            s.flush()
            return self.ctx.commit_info(s, row, repo)

    # -- queries -------------------------------------------------------------
    def tree_at(self, repo: str, ref: str) -> tuple[str, str]:
        """(commit id, root tree) of what ``repo@ref`` names; an open commit's tree is its parent's plus its
        staged changes."""
        with self.ctx.db.read() as s:
            row = self.resolve_row(s, self.ctx.repo_row(s, repo), ref)
            return row.id, self.tree_of(s, row)

    def inspect(self, repo: str, ref: str, ancestry: int = 0) -> CommitInfo:
        with self.ctx.db.read() as s:
            repo_row = self.ctx.repo_row(s, repo)
            return self.ctx.commit_info(s, self.resolve_row(s, repo_row, ref, ancestry), repo)

    def inspect_id(self, commit_id: str) -> CommitInfo:
        with self.ctx.db.read() as s:
            row = s.get(CommitRow, commit_id)
            if row is None:
                raise CommitNotFound(f"commit {commit_id} not found")
            return self.ctx.commit_info(s, row)

    @staticmethod
    def set_id(s: Session, text: str) -> str:
        """The global id (commit set) that is ``text`` or the one that starts with it (6+ hex characters)."""
        return expand_id(s, CommitSetRow.id, text, "global") or text

    def inspect_set(self, global_id: str) -> list[CommitInfo]:
        """Every commit that shares a global id (the commit set); a unique prefix of the id will do."""
        with self.ctx.db.read() as s:
            global_id = self.set_id(s, global_id)
            rows = s.scalars(
                select(CommitRow).where(CommitRow.commit_set_id == global_id).order_by(CommitRow.started_at)
            ).all()
            if not rows:
                raise CommitNotFound(f"no commit or global id {global_id}")
            return [self.ctx.commit_info(s, r) for r in rows]

    def list(self, repo: str, branch: str | None = None, limit: int | None = None, offset: int = 0
             ) -> list[CommitInfo]:
        """Newest first; with a branch, its history (open commit first, then ancestry). ``offset`` skips that
        many, ``limit`` keeps at most that many (none or 0: all): a page costs the page, in SQL."""
        limit = limit or None
        with self.ctx.db.read() as s:
            repo_row = self.ctx.repo_row(s, repo)
            if branch is None:
                q = (select(CommitRow).where(CommitRow.repo_id == repo_row.id)
                     .order_by(CommitRow.started_at.desc(), CommitRow.id.desc()).offset(offset or None).limit(limit))
                return self.ctx.commit_infos(s, list(s.scalars(q)), repo)
            branch_row = self.ctx.branch_row(s, repo_row, branch)
            rows: list[CommitRow] = []
            open_row = self.open_commit_on(s, repo_row, branch)
            if open_row is not None:  # the open commit is the history's first entry
                if offset == 0:
                    rows.append(open_row)
                else:
                    offset -= 1
            want = None if limit is None else limit - len(rows)
            if branch_row.head_id is not None and want != 0:
                rows += self._ancestry(s, branch_row.head_id, offset, want)
            return self.ctx.commit_infos(s, rows, repo)

    @staticmethod
    def _ancestry(s: Session, head: str, offset: int, limit: int | None) -> builtins.list[CommitRow]:
        """``head`` and its ancestors, nearest first, from the ``offset``-th: one recursive query. The walk up
        the parent links runs in the database, one index lookup a step, and stops at the page's end; so a page
        deep in a long history costs a walk to it (microseconds a commit), not the commits before it."""
        zero, one = literal_column("0", Integer), literal_column("1", Integer)  # inline: PostgreSQL types by them
        walk = (select(CommitRow.id.label("id"), CommitRow.parent_id.label("parent"), zero.label("depth"))
                .where(CommitRow.id == head).cte("ancestry", recursive=True))
        step = select(CommitRow.id, CommitRow.parent_id, walk.c.depth + one).join(walk, CommitRow.id == walk.c.parent)
        if limit is not None:
            step = step.where(walk.c.depth + one < offset + limit)
        walk = walk.union_all(step)
        # the page is the depths from ``offset`` on (not OFFSET: the commits skipped are walked through, not read)
        q = select(CommitRow).join(walk, CommitRow.id == walk.c.id).where(walk.c.depth >= offset)
        q = q.order_by(walk.c.depth).limit(limit)
        return list(s.scalars(q))

    def wait(self, repo: str, ref: str, timeout: float | None = None, poll: float = 0.2) -> CommitInfo:
        """Block until the commit is no longer open."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.ctx.db.read() as s:
            commit_id = self.resolve_row(s, self.ctx.repo_row(s, repo), ref).id
        while True:
            with self.ctx.db.read() as s:
                row = self.ctx.commit_row(s, commit_id)
                if row.state != "open":
                    return self.ctx.commit_info(s, row, repo)
            if deadline is not None and time.monotonic() > deadline:
                raise Timeout(f"commit {commit_id} is still open after {timeout}s")
            time.sleep(poll)

    # -- history edits -------------------------------------------------------
    def squash(self, repo: str, commit_id: str) -> None:
        """Remove a commit from history; its children inherit its changes and parent."""
        with self.ctx.db.write() as s:
            repo_row = self.ctx.repo_row(s, repo)
            row = self._history_commit(s, repo_row, commit_id)
            heads = s.scalars(select(BranchRow.name).where(BranchRow.head_id == row.id)).all()
            if heads:
                raise Conflict(
                    f"commit {row.id} is the head of {', '.join(heads)}; use `tusk commit delete` to drop the"
                    " head's changes, or squash an older commit"
                )
            s.execute(update(CommitRow).where(CommitRow.parent_id == row.id).values(parent_id=row.parent_id))
            self._drop(s, row)

    def delete(self, repo: str, commit_id: str) -> None:
        """Delete an open commit, or a head commit and its changes (heads move to its parent)."""
        with self.ctx.db.write() as s:
            repo_row = self.ctx.repo_row(s, repo)
            row = self._history_commit(s, repo_row, commit_id, allow_open=True)
            if row.state != "open":
                child = s.scalar(select(CommitRow.id).where(CommitRow.parent_id == row.id).limit(1))
                if child is not None:
                    raise Conflict(
                        f"commit {row.id} has a child ({child}); only a branch head can be deleted —"
                        " use `tusk commit squash` to remove a commit from the middle of history"
                    )
                for b in s.scalars(select(BranchRow).where(BranchRow.head_id == row.id)):
                    refstore.record_move(s, repo_row.id, b.name, row.id, row.parent_id, self.ctx.user, "delete",
                                         now())
                    b.head_id = row.parent_id
            self._drop(s, row)

    def _history_commit(self, s: Session, repo: RepoRow, ref: str, allow_open: bool = False) -> CommitRow:
        commit_id = self.commit_id(s, repo, ref)
        if commit_id is None:
            if is_id_prefix(ref):
                raise CommitNotFound(f"commit {ref} not found in repo {repo.name!r}")
            raise InvalidRef(f"{ref!r} is not a commit id; history edits take a commit id (or its first"
                             f" {ID_PREFIX_MIN}+ characters), not a branch")
        row = self.ctx.commit_row(s, commit_id, repo)
        if row.state == "open" and not allow_open:
            raise Conflict(f"commit {row.id} is open; finish or delete it first")
        return row

    def _drop(self, s: Session, row: CommitRow) -> None:
        set_id = row.commit_set_id
        s.execute(delete(StagedOpRow).where(StagedOpRow.commit_id == row.id))
        s.execute(delete(CommitProvenanceRow).where(CommitProvenanceRow.commit_id == row.id))
        s.delete(row)
        s.flush()
        if s.scalar(select(CommitRow.id).where(CommitRow.commit_set_id == set_id).limit(1)) is None:
            s.execute(delete(CommitSetRow).where(CommitSetRow.id == set_id))


def _distinct_sources(provenance: Sequence[InputCommit]) -> list[InputCommit]:
    """Each source commit once, in first-seen order: provenance is keyed by (commit, source commit), so a
    pipeline that reads one repo under two names (a cross of ``left`` and ``right`` over ``data``) has one
    source, however many named inputs the job and its datums record."""
    seen: dict[str, InputCommit] = {}
    for source in provenance:
        seen.setdefault(source["commit"], source)
    return list(seen.values())
