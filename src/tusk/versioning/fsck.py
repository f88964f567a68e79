"""fsck: verify every reachable tree and chunk, and the commit graph."""

from __future__ import annotations

from sqlalchemy import select

from tusk.errors import IntegrityError
from tusk.storage.metadata import BranchRow, CommitRow, RepoRow
from tusk.versioning.context import Context
from tusk.versioning.records import FsckProblem, FsckReport
from tusk.versioning.trees import EMPTY_TREE, tree_key

__all__ = ["fsck"]


def fsck(ctx: Context, verify_chunks: bool = True) -> FsckReport:
    """Walk every finished commit's tree; hash every object once.

    With ``verify_chunks=False`` chunks are only checked for existence, which
    is much cheaper on a remote store.
    """
    report = FsckReport()
    good_trees: set[str] = set()
    good_chunks: set[str] = set()
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
        _check_dir(ctx, report, c.id, repo, c.tree_digest, "/", good_trees, good_chunks, verify_chunks)
    return report


def _check_dir(ctx: Context, report: FsckReport, commit: str, repo: str, digest: str, path: str,
               good_trees: set[str], good_chunks: set[str], verify_chunks: bool) -> None:
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
            _check_dir(ctx, report, commit, repo, e.digest, child, good_trees, good_chunks, verify_chunks)
            ok = ok and len(report.problems) == before
            continue
        assert e.file is not None
        if e.file.digest != e.digest or e.file.size != e.size:
            report.problems.append(FsckProblem(commit, repo, child, "file entry does not match its chunk list"))
            ok = False
        for ref in e.file.chunks:
            if ref.digest in good_chunks:
                continue
            try:
                if verify_chunks:
                    ctx.content.read_chunk(ref, child)
                    report.bytes_verified += ref.size
                elif not ctx.content.has_chunk(ref):
                    raise IntegrityError(f"{child}: chunk {ref.digest} is missing")
            except IntegrityError as exc:
                report.problems.append(FsckProblem(commit, repo, child, str(exc)))
                ok = False
                continue
            good_chunks.add(ref.digest)
            report.chunks += 1
    if ok:
        good_trees.add(digest)
