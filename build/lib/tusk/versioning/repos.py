from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlalchemy.orm import Session

from tusk.errors import AlreadyExists, Conflict
from tusk.ids import validate_repo_name
from tusk.storage.metadata import BranchRow, CommitRow, CommitSetRow, RepoRow, RoleBindingRow
from tusk.versioning.context import Context, _aware, now
from tusk.versioning.records import RepoInfo

__all__ = ["RepoService"]


class RepoService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def create(self, name: str, description: str = "") -> RepoInfo:
        validate_repo_name(name)
        try:
            with self.ctx.db.write() as s:
                if s.scalar(select(RepoRow.id).where(RepoRow.name == name)) is not None:
                    raise AlreadyExists(f"repo {name!r} already exists")
                # a new repo: no grant on an earlier repo of this name carries over (stores from before
                # deletes removed bindings may still hold some)
                s.execute(delete(RoleBindingRow).where(RoleBindingRow.resource == name))
                s.add(RepoRow(name=name, description=description, created_at=now()))
        except DBIntegrityError:
            raise AlreadyExists(f"repo {name!r} already exists") from None
        return self.inspect(name)

    def inspect(self, name: str) -> RepoInfo:
        with self.ctx.db.read() as s:
            repo = self.ctx.repo_row(s, name)
            return self._info(s, repo)

    def list(self) -> list[RepoInfo]:
        with self.ctx.db.read() as s:
            return [self._info(s, r) for r in s.scalars(select(RepoRow).order_by(RepoRow.name))]

    def _info(self, s: Session, repo: RepoRow) -> RepoInfo:
        branches = s.scalars(select(BranchRow).where(BranchRow.repo_id == repo.id).order_by(BranchRow.name)).all()
        size = 0
        master = next((b for b in branches if b.name == "master"), branches[0] if branches else None)
        if master is not None and master.head_id:
            head = s.get(CommitRow, master.head_id)
            size = head.size_bytes if head else 0
        return RepoInfo(repo.name, repo.description, _aware(repo.created_at), [b.name for b in branches], size)

    def delete(self, name: str, force: bool = False) -> None:
        """Delete a repo's metadata and its role bindings (whoever next creates the name owns a new repo, with
        nobody else's grants); its chunks stay until ``tusk gc``."""
        with self.ctx.db.write() as s:
            repo = self.ctx.repo_row(s, name)
            open_commits = s.scalars(
                select(CommitRow.id).where(CommitRow.repo_id == repo.id, CommitRow.state == "open")
            ).all()
            if open_commits and not force:
                raise Conflict(
                    f"repo {name!r} has {len(open_commits)} open commit(s); finish them or use --force"
                )
            sets = set(s.scalars(select(CommitRow.commit_set_id).where(CommitRow.repo_id == repo.id)))
            s.execute(delete(CommitRow).where(CommitRow.repo_id == repo.id))
            s.execute(delete(BranchRow).where(BranchRow.repo_id == repo.id))
            s.execute(delete(RoleBindingRow).where(RoleBindingRow.resource == name))
            s.delete(repo)
            s.flush()
            for set_id in sets:
                if s.scalar(select(CommitRow.id).where(CommitRow.commit_set_id == set_id).limit(1)) is None:
                    s.execute(delete(CommitSetRow).where(CommitSetRow.id == set_id))
