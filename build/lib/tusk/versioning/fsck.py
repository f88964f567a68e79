"""fsck: verify every reachable tree and chunk, and the commit graph; ``repair`` rewrites what it can.

A bad chunk can be repaired from another stored copy of the same bytes (a
pack and a loose copy, two packs); what no copy can supply is named, file by
file, for the user to put again (a put of the same bytes rewrites the chunk:
see ``tusk.storage.content``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sqlalchemy import select

from tusk.errors import IntegrityError, TuskError
from tusk.storage.content import ChunkRef, chunk_key
from tusk.storage.metadata import BranchRow, CommitRow, RepoRow
from tusk.versioning.context import Context
from tusk.versioning.records import FsckProblem, FsckReport
from tusk.versioning.trees import EMPTY_TREE, tree_key

__all__ = ["fsck"]


@dataclass
class _Walk:
    """What one fsck run has seen: every stored location of each chunk, and the bad ones with their files."""

    verify_chunks: bool
    good_trees: set[str] = field(default_factory=set)
    good_chunks: set[str] = field(default_factory=set)  # locations (``_location``) that verified
    copies: dict[str, list[ChunkRef]] = field(default_factory=dict)
    bad: dict[str, list[FsckProblem]] = field(default_factory=dict)


def fsck(ctx: Context, verify_chunks: bool = True, repair: bool = False) -> FsckReport:
    """Walk every finished commit's tree; hash every object once.

    With ``verify_chunks=False`` chunks are only checked for existence and size
    (a stat or HEAD each), which is much cheaper on a remote store. With
    ``repair``, bad chunks are rewritten from any good copy in the store.
    """
    report = FsckReport()
    walk = _Walk(verify_chunks)
    with ctx.db.read() as s:
        repos = {r.id: r.name for r in s.scalars(select(RepoRow))}
        commits = list(s.scalars(select(CommitRow).where(CommitRow.state != "open")))
        ids = {c.id for c in commits} | set(s.scalars(select(CommitRow.id)))
        branches = list(s.scalars(select(BranchRow)))
    for b in branches:
        if b.head_id is not None and b.head_id not in ids:
            report.problems.append(FsckProblem("", repos.get(b.repo_id, "?"), "",
                                               f"branch {b.name} points at missing commit {b.head_id}"))
    for c in commits:
        repo = repos.get(c.repo_id, "?")
        report.commits += 1
        if c.parent_id is not None and c.parent_id not in ids:
            report.problems.append(FsckProblem(c.id, repo, "", f"parent {c.parent_id} is missing"))
        if c.tree_digest is None:
            report.problems.append(FsckProblem(c.id, repo, "", "finished commit has no tree"))
            continue
        _check_dir(ctx, report, c.id, repo, c.tree_digest, "/", walk)
    if repair:
        _repair(ctx, report, walk)
    unrepaired = {id(p) for problems in walk.bad.values() for p in problems}
    report.problems = [replace(p, problem=f"{p.problem}; put this file again from a good copy (`tusk put file "
                                          f"{p.repo}@<branch>:{p.path} -f <local file>`) to repair it")
                       if id(p) in unrepaired else p for p in report.problems]
    return report


def _repair(ctx: Context, report: FsckReport, walk: _Walk) -> None:
    """Rewrite each bad chunk as a loose chunk from a copy that verifies; what is repaired is no problem."""
    for digest in list(walk.bad):
        for ref in [ChunkRef(walk.copies[digest][0].digest, walk.copies[digest][0].size), *walk.copies[digest]]:
            try:
                data = ctx.content.read_copy(ref, digest)
            except TuskError:
                continue
            ctx.objects.put(chunk_key(digest), data)
            ctx.content.unflag(digest)
            fixed = walk.bad.pop(digest)
            report.problems = [p for p in report.problems if all(p is not f for f in fixed)]
            report.repaired += sorted({f"{p.repo}@{p.commit}:{p.path}" for p in fixed})
            break


def _location(ref: ChunkRef) -> str:
    """Where this copy of a chunk is stored: two copies of the same bytes (a pack, a loose chunk) are each
    checked, so a bad one is not hidden by a good one."""
    return f"{ref.pack}@{ref.offset}" if ref.pack else ref.digest


def _check_dir(ctx: Context, report: FsckReport, commit: str, repo: str, digest: str, path: str,
               walk: _Walk) -> None:
    good_trees, good_chunks = walk.good_trees, walk.good_chunks
    if digest in good_trees:
        return
    if digest != EMPTY_TREE and not ctx.objects.exists(tree_key(digest)):
        report.problems.append(FsckProblem(commit, repo, path, f"directory object {digest} is missing"))
        return
    try:
        entries = ctx.trees.load(digest)
    except (IntegrityError, ValueError) as exc:
        report.problems.append(FsckProblem(commit, repo, path, f"directory object {digest} is bad: {exc}"))
        return
    report.trees += 1
    ok = True
    for name, e in sorted(entries.items()):
        child = f"{path.rstrip('/')}/{name}"
        if e.kind == "dir":
            before = len(report.problems)
            _check_dir(ctx, report, commit, repo, e.digest, child, walk)
            ok = ok and len(report.problems) == before
            continue
        assert e.file is not None
        if e.file.digest != e.digest or e.file.size != e.size:
            report.problems.append(FsckProblem(commit, repo, child, "file entry does not match its chunk list"))
            ok = False
        for ref in e.file.chunks:
            where = _location(ref)
            if where in good_chunks:
                continue
            walk.copies.setdefault(ref.digest, []).append(ref)
            try:
                if walk.verify_chunks:
                    ctx.content.read_chunk(ref, child)
                    report.bytes_verified += ref.size
                elif not ctx.content.has_chunk(ref):
                    raise IntegrityError(f"{child}: chunk {ref.digest[:16]}… is missing or the wrong size "
                                         "(corrupt)")
            except IntegrityError as exc:
                ctx.content.flag(ref.digest, str(exc))  # the next put of these bytes rewrites them
                problem = FsckProblem(commit, repo, child, str(exc))
                report.problems.append(problem)
                walk.bad.setdefault(ref.digest, []).append(problem)
                ok = False
                continue
            good_chunks.add(where)
            report.chunks += 1
    if ok:
        good_trees.add(digest)
