from __future__ import annotations

from collections.abc import Sequence

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
        """Every repo by name: three queries (repos, branches, the sizes of branch heads), however many."""
        with self.ctx.db.read() as s:
            repos = s.scalars(select(RepoRow).order_by(RepoRow.name)).all()
            branches: dict[int, list[BranchRow]] = {}
            for b in s.scalars(select(BranchRow).order_by(BranchRow.repo_id, BranchRow.name)):
                branches.setdefault(b.repo_id, []).append(b)
            heads = select(BranchRow.head_id).where(BranchRow.head_id.is_not(None))
            sized = select(CommitRow.id, CommitRow.size_bytes).where(CommitRow.id.in_(heads))
            sizes = {c: n for c, n in s.execute(sized)}
            return [_repo_info(r, branches.get(r.id, []), sizes) for r in repos]

    def _info(self, s: Session, repo: RepoRow) -> RepoInfo:
        branches = s.scalars(select(BranchRow).where(BranchRow.repo_id == repo.id).order_by(BranchRow.name)).all()
        head = _sized(branches)
        sizes = {c: n for c, n in s.execute(select(CommitRow.id, CommitRow.size_bytes).where(CommitRow.id == head))}
        return _repo_info(repo, branches, sizes)

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


def _sized(branches: Sequence[BranchRow]) -> str | None:
    """The commit whose size is the repo's: master's head, or the first branch's."""
    master = next((b for b in branches if b.name == "master"), branches[0] if branches else None)
    return master.head_id if master is not None else None


def _repo_info(repo: RepoRow, branches: Sequence[BranchRow], sizes: dict[str, int]) -> RepoInfo:
    head = _sized(branches)
    return RepoInfo(repo.name, repo.description, _aware(repo.created_at), [b.name for b in branches],
                    sizes.get(head, 0) if head else 0)
