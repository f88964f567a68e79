"""Transactions, as pachctl has them: requests drafted one by one, then run together.

``start`` makes a transaction record; each ``add`` checks a request against the
store as it is plus the requests before it (a dry run) and appends it, telling
what it will return (``start commit``: the id the commit will have); ``finish``
checks the whole draft again, runs it, and only then tells the pipelines. So:

- every commit the transaction starts shares one global id, the transaction's
  id (``tusk list commit ID`` shows them all);
- a pipeline that reads several of them runs once, over all of them, when the
  last one is finished (``JobService.on_commit`` waits for a set's open commits);
- branches the transaction moves trigger one job per pipeline, as one change.

Batched, as in Pachyderm: create/delete repo, start/finish/delete commit,
create/delete branch (``REQUESTS``), and create/update pipeline (``RequestKind``s
the composition root adds: ``tusk.pipelines.transacted``). Everything else is
refused while a transaction is active, by the client (``tusk.sdk``), naming the
command.

A request that passed its dry run can still fail at the finish if another
writer changed the store meanwhile; the finish says which request failed and
which ran before it (Pachyderm asks for the transaction to be deleted and made
again in that case; here the record is gone either way).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tusk.errors import (
    AlreadyExists,
    BranchNotFound,
    CommitNotFound,
    Conflict,
    InvalidArgument,
    NotFound,
    RepoNotFound,
    TuskError,
)
from tusk.ids import is_id_prefix, new_commit_id, validate_branch_name, validate_repo_name
from tusk.storage.metadata import RepoRow, TransactionRow
from tusk.versioning import refstore
from tusk.versioning.branches import BranchService
from tusk.versioning.commits import CommitService
from tusk.versioning.context import Context, _aware, expand_id, now
from tusk.versioning.records import BranchInfo, CommitInfo, RepoInfo, _Record
from tusk.versioning.refs import parse_ref
from tusk.versioning.repos import RepoService

__all__ = ["REQUESTS", "RequestKind", "TransactionInfo", "TransactionService"]

# request kind → the pachctl command it is (what `inspect transaction` shows, what a refusal names)
REQUESTS = {"create_repo": "create repo", "delete_repo": "delete repo", "start_commit": "start commit",
            "finish_commit": "finish commit", "delete_commit": "delete commit", "create_branch": "create branch",
            "delete_branch": "delete branch"}
# the fields each kind of request takes (besides ``op``); ``commit`` of start_commit is assigned, not given
_FIELDS = {"create_repo": {"name", "description"}, "delete_repo": {"name", "force"},
           "start_commit": {"repo", "branch", "description"}, "finish_commit": {"repo", "ref", "description"},
           "delete_commit": {"repo", "ref"}, "create_branch": {"repo", "branch", "head"},
           "delete_branch": {"repo", "branch"}}

Preview = RepoInfo | CommitInfo | BranchInfo | None


@dataclass(frozen=True)
class RequestKind:
    """A request a layer above versioning batches (create/update pipeline: ``tusk.pipelines.transacted``),
    made by the composition root (``TransactionService.kinds_factory``): its pachctl command, its fields,
    its dry run against the draft (which may note what it makes in ``draft.repos_made`` and
    ``draft.made``) and what running it does."""

    command: str
    fields: frozenset[str]
    check: Callable[[_Draft, dict[str, Any]], Preview]
    run: Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class TransactionInfo(_Record):
    id: str
    author: str
    started_at: datetime
    requests: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False  # set on what ``finish`` returns: the requests ran


def describe(request: dict[str, Any]) -> str:
    """A request as the command it is: ``start commit images@master``."""
    op = str(request.get("op"))
    verb = REQUESTS.get(op, op.replace("_", " "))
    if op in ("create_repo", "delete_repo"):
        return f"{verb} {request.get('name')}"
    if op in ("create_pipeline", "update_pipeline"):
        spec = request.get("spec")
        return f"{verb} {((spec or {}).get('pipeline') or {}).get('name') if isinstance(spec, dict) else '?'}"
    if op in ("start_commit", "create_branch", "delete_branch"):
        what = f"{verb} {request.get('repo')}@{request.get('branch')}"
        if op == "start_commit" and request.get("commit"):
            what += f" (commit {request['commit']})"
        if op == "create_branch" and request.get("head"):
            what += f" --head {request['head']}"
        return what
    return f"{verb} {request.get('repo')}@{request.get('ref')}"


class _Draft:
    """What the store will look like once the requests so far have run: the dry run's state."""

    def __init__(self, s: Session, commits: CommitService, txn_id: str,
                 kinds: dict[str, RequestKind] | None = None) -> None:
        self.s, self.commits, self.txn_id = s, commits, txn_id
        self.kinds = kinds or {}
        self.made: set[str] = set()  # what registered kinds' requests make (``pipeline:NAME``)
        self.repos_made: dict[str, bool] = {}  # name → exists once the requests so far have run
        self.branches: dict[tuple[str, str], bool] = {}
        self.started: dict[str, dict[str, Any]] = {}  # commit id → its start_commit request
        self.closed: set[str] = set()  # commits the draft finishes or deletes

    def repo_exists(self, name: str) -> bool:
        if name in self.repos_made:
            return self.repos_made[name]
        return self.s.scalar(select(RepoRow.id).where(RepoRow.name == name)) is not None

    def require_repo(self, name: str) -> RepoRow | None:
        """The repo's row (None when the draft creates it), or ``RepoNotFound``."""
        if not self.repo_exists(name):
            raise RepoNotFound(f"repo {name!r} not found")
        if name in self.repos_made:
            return None
        return self.s.scalar(select(RepoRow).where(RepoRow.name == name))

    def branch_exists(self, repo: str, branch: str) -> bool:
        if (repo, branch) in self.branches:
            return self.branches[(repo, branch)]
        row = self.require_repo(repo)
        return row is not None and refstore.branch_exists(self.s, row.id, branch)

    def drafted_commit(self, repo: str, ref: str) -> str | None:
        """A commit the draft starts that ``ref`` names: by id (or 6+ characters of it), or by its branch."""
        mine = [c for c, r in self.started.items() if r["repo"] == repo and c not in self.closed]
        by_id = [c for c in mine if c == ref or (is_id_prefix(ref) and c.startswith(ref))]
        if by_id:
            return by_id[0]
        by_branch = [c for c in mine if self.started[c]["branch"] == ref]
        return by_branch[-1] if by_branch else None

    def apply(self, request: dict[str, Any]) -> Preview:
        """Check one request against the draft, note what it changes, and say what it will return."""
        op = request["op"]
        s = self.s
        if op in self.kinds:
            return self.kinds[op].check(self, request)
        if op == "create_repo":
            name = request["name"]
            validate_repo_name(name)
            if self.repo_exists(name):
                raise AlreadyExists(f"repo {name!r} already exists")
            self.repos_made[name] = True
            return RepoInfo(name, request.get("description") or "", now(), [], 0)
        if op == "delete_repo":
            self.require_repo(request["name"])
            self.repos_made[request["name"]] = False
            self.branches = {k: v for k, v in self.branches.items() if k[0] != request["name"]}
            return None
        repo = request["repo"]
        repo_row = self.require_repo(repo)
        if op == "start_commit":
            branch = request["branch"]
            validate_branch_name(branch)
            head = None
            if repo_row is not None and self.branches.get((repo, branch), True):
                head = refstore.head_id(s, repo_row.id, branch)
            self.branches[(repo, branch)] = True
            commit_id = request.setdefault("commit", new_commit_id())
            self.started[commit_id] = request
            return CommitInfo(commit_id, repo, branch, head, "user", request.get("description") or "", "open", 0,
                              self.txn_id, self.commits.ctx.user, now(), None, None)
        if op in ("finish_commit", "delete_commit"):
            ref = request["ref"]
            drafted = self.drafted_commit(repo, ref)
            if drafted is not None:
                self.closed.add(drafted)
                request.setdefault("commit", drafted)
                r = self.started[drafted]
                return None if op == "delete_commit" else CommitInfo(
                    drafted, repo, r["branch"], None, "user", request.get("description") or r.get("description") or "",
                    "open", 0, self.txn_id, self.commits.ctx.user, now(), None, None)
            if repo_row is None:
                raise CommitNotFound(f"no open commit {ref!r} in repo {repo!r}")
            row = self.commits.open_commit_on(s, repo_row, ref) if op == "finish_commit" else None
            if row is None:
                if op == "delete_commit":
                    commit_id = self.commits.commit_id(s, repo_row, ref)
                    if commit_id is None:
                        raise CommitNotFound(f"commit {ref} not found in repo {repo!r}")
                    row = self.commits.ctx.commit_row(s, commit_id, repo_row)
                else:
                    row = self.commits.resolve_row(s, repo_row, ref)
            if row.id in self.closed:
                raise Conflict(f"commit {row.id} is already finished or deleted earlier in this transaction")
            if op == "finish_commit" and row.state != "open":
                raise Conflict(f"commit {row.id} is {row.state}, not open; start a new commit to make changes")
            self.closed.add(row.id)
            request.setdefault("commit", row.id)
            return None if op == "delete_commit" else self.commits.ctx.commit_info(s, row, repo)
        branch = request["branch"]
        if op == "create_branch":
            validate_branch_name(branch)
            head_id: str | None = None
            if request.get("head"):
                h_repo, h_ref, h_anc = parse_ref(request["head"] if "@" in request["head"]
                                                 else f"{repo}@{request['head']}")
                if h_repo != repo:
                    raise Conflict(f"--head {request['head']} is in repo {h_repo!r}, not {repo!r}")
                if self.drafted_commit(repo, h_ref) is not None:
                    raise Conflict(f"--head {request['head']}: that commit is started in this transaction and is "
                                   "still open; a branch can point only at a finished commit")
                if repo_row is None:
                    raise CommitNotFound(f"no commit {h_ref!r} in repo {repo!r} (it is made in this transaction)")
                target = self.commits.resolve_row(s, repo_row, h_ref, h_anc)
                if target.state != "finished":
                    raise Conflict(f"cannot point a branch at commit {target.id}: it is {target.state}")
                head_id = target.id
            elif self.branch_exists(repo, branch):
                raise AlreadyExists(f"branch {repo}@{branch} already exists; pass --head to move it")
            self.branches[(repo, branch)] = True
            return BranchInfo(repo, branch, head_id, now())
        if op == "delete_branch":
            if not self.branch_exists(repo, branch):
                raise BranchNotFound(f"branch {branch!r} not found in repo {repo!r}")
            if any(r["repo"] == repo and r["branch"] == branch and c not in self.closed
                   for c, r in self.started.items()):
                raise Conflict(f"branch {repo}@{branch} has a commit this transaction starts; finish or delete it "
                               "first")
            self.branches[(repo, branch)] = False
            return None
        raise InvalidArgument(f"unknown transaction request {op!r}: one of {', '.join(sorted(REQUESTS))}")


def _checked(request: dict[str, Any], kinds: dict[str, RequestKind]) -> dict[str, Any]:
    op = request.get("op")
    if isinstance(op, str) and op in kinds:
        kind = kinds[op]
        extra, absent = set(request) - kind.fields - {"op"}, kind.fields - set(request)
        if extra or absent:
            raise InvalidArgument(f"{kind.command} in a transaction takes {', '.join(sorted(kind.fields))}"
                                  f"{'; not ' + ', '.join(sorted(extra)) if extra else ''}")
        return dict(request)
    if op not in _FIELDS:
        raise InvalidArgument(f"a transaction cannot hold {op!r}: it batches {', '.join(REQUESTS.values())}")
    unknown = set(request) - _FIELDS[op] - {"op"}
    if unknown:
        raise InvalidArgument(f"{REQUESTS[op]} in a transaction takes no {', '.join(sorted(unknown))}")
    missing = {f for f in _FIELDS[op] if f not in ("description", "force", "head")} - set(request)
    if missing:
        raise InvalidArgument(f"{REQUESTS[op]} in a transaction needs {', '.join(sorted(missing))}")
    for name, value in request.items():
        optional = name in ("description", "head") and value is None
        if not (optional or (isinstance(value, bool) if name == "force" else isinstance(value, str))):
            raise InvalidArgument(f"{REQUESTS[op]} in a transaction: {name} must be "
                                  f"{'true or false' if name == 'force' else 'a string'}, not {value!r}")
    return dict(request)


class TransactionService:
    def __init__(self, ctx: Context, repos: RepoService, commits: CommitService, branches: BranchService) -> None:
        self.ctx, self.repos, self.commits, self.branches = ctx, repos, commits, branches
        # requests of the layers above, made on first use (the composition root sets the factory: pipelines'
        # create and update), so a command that touches no transaction imports none of them
        self.kinds_factory: Callable[[], dict[str, RequestKind]] | None = None
        self._kinds: dict[str, RequestKind] | None = None

    @property
    def kinds(self) -> dict[str, RequestKind]:
        if self._kinds is None:
            self._kinds = self.kinds_factory() if self.kinds_factory is not None else {}
        return self._kinds

    def _row(self, s: Session, txn_id: str, for_update: bool = False) -> TransactionRow:
        """The transaction ``txn_id`` names (6+ characters of its id will do); ``for_update`` locks its row (on
        PostgreSQL; a SQLite writer holds the database), so two adds, or two finishes, do not interleave."""
        full = expand_id(s, TransactionRow.id, txn_id, "transaction") if is_id_prefix(txn_id) else None
        row = s.get(TransactionRow, full or txn_id, with_for_update=for_update)
        if row is None:
            raise NotFound(f"no transaction {txn_id}: it was finished or deleted, or never started "
                           "(`tusk list transaction` shows the open ones; `tusk stop transaction` forgets an "
                           "active one that is gone)")
        return row

    @staticmethod
    def _info(row: TransactionRow) -> TransactionInfo:
        return TransactionInfo(row.id, row.author, _aware(row.started_at), json.loads(row.requests))

    def start(self) -> TransactionInfo:
        with self.ctx.db.write() as s:
            row = TransactionRow(id=new_commit_id(), author=self.ctx.user, started_at=now(), requests="[]")
            s.add(row)
            s.flush()
            return self._info(row)

    def inspect(self, txn_id: str) -> TransactionInfo:
        with self.ctx.db.read() as s:
            return self._info(self._row(s, txn_id))

    def list(self) -> list[TransactionInfo]:
        """The transactions not yet finished or deleted, oldest first."""
        with self.ctx.db.read() as s:
            return [self._info(r) for r in s.scalars(select(TransactionRow).order_by(TransactionRow.started_at))]

    def delete(self, txn_id: str) -> TransactionInfo:
        """Discard a transaction: none of its requests runs."""
        with self.ctx.db.write() as s:
            row = self._row(s, txn_id, for_update=True)
            info = self._info(row)
            s.delete(row)
            return info

    def add(self, txn_id: str, request: dict[str, Any]) -> tuple[TransactionInfo, Preview]:
        """Append a request after a dry run of the whole draft with it; returns the transaction and what the
        request will return when the transaction runs (a started commit with the id it will have)."""
        request = _checked(request, self.kinds)
        with self.ctx.db.write() as s:
            row = self._row(s, txn_id, for_update=True)
            draft = _Draft(s, self.commits, row.id, self.kinds)
            requests = json.loads(row.requests)
            for earlier in requests:
                draft.apply(earlier)
            preview = draft.apply(request)
            requests.append(request)
            row.requests = json.dumps(requests)
            return self._info(row), preview

    def finish(self, txn_id: str) -> TransactionInfo:
        """Run every request, in order, then tell the pipelines: the commits it starts share the transaction's
        global id; the branches it moves (and the commits it finishes) trigger each pipeline once."""
        with self.ctx.db.write() as s:
            row = self._row(s, txn_id, for_update=True)
            info = self._info(row)
            draft = _Draft(s, self.commits, row.id, self.kinds)
            for request in info.requests:  # the dry run again: the store may have changed since the adds
                draft.apply(request)
            s.delete(row)
        done, failed = 0, None
        with self.commits.held() as news:
            try:
                for request in info.requests:
                    self._run(info.id, request)
                    done += 1
            except TuskError as exc:  # the store changed since the dry run (another writer got there first)
                ran = "; ".join(describe(r) for r in info.requests[:done]) or "none"
                failed = Conflict(f"transaction {info.id} failed at request {done + 1} "
                                  f"({describe(info.requests[done])}): {exc.message}. Requests that ran before it: "
                                  f"{ran}")
                failed.__cause__ = exc
        self.commits.notify_as_one(news, info.id)  # (what ran, even then); the branches moved: one change
        if failed is not None:
            raise failed
        return replace(info, finished=True)

    def _run(self, txn_id: str, request: dict[str, Any]) -> None:
        op = request["op"]
        if op in self.kinds:
            self.kinds[op].run(txn_id, request)
        elif op == "create_repo":
            self.repos.create(request["name"], request.get("description") or "")
        elif op == "delete_repo":
            self.repos.delete(request["name"], bool(request.get("force")))
        elif op == "start_commit":
            self.commits.start(request["repo"], request["branch"], request.get("description") or "",
                               global_id=txn_id, new_id=request["commit"])
        elif op == "finish_commit":
            self.commits.finish(request["commit"], request.get("description"))
        elif op == "delete_commit":
            self.commits.delete(request["repo"], request["commit"])
        elif op == "create_branch":
            self.branches.create(request["repo"], request["branch"], request.get("head"))
        elif op == "delete_branch":
            self.branches.delete(request["repo"], request["branch"])
