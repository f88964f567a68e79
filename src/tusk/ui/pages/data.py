"""Data: repos, branches (with triggers and the history of their heads), commits, a file browser at any commit,
previews, downloads and diffs.

Every read is the API route's own function, so a page checks exactly what ``GET /api/v1/...`` checks.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tusk.api._deps import Caller
from tusk.api.routes import branches, commits, files, models, repos
from tusk.errors import BranchNotFound
from tusk.ui._web import PAGE, page, page_of, render
from tusk.ui.preview import IMAGE_TYPES, preview

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_REPO = "/ui/repos/{repo}"


def crumbs(repo: str, ref: str, path: str) -> list[tuple[str, str]]:
    """(label, href) from the commit's root down to ``path``."""
    out = [(f"{repo}@{ref}", f"/ui/repos/{repo}/browse/{ref}/")]
    parts = [p for p in path.strip("/").split("/") if p]
    for i, part in enumerate(parts):
        out.append((part, f"/ui/repos/{repo}/browse/{ref}/" + "/".join(parts[: i + 1])))
    return out


@router.get("/ui/repos")
def repo_list(request: Request) -> Response:
    def build(caller: Caller) -> Response:
        found = page_of(request, lambda at, n: repos.list_repos(caller)[at:at + n])
        return render(request, "data/repos.html", title="Data", pager=found)
    return page(request, build)


@router.get(_REPO)
def repo_page(request: Request, repo: str) -> Response:
    branch = request.query_params.get("branch") or None

    def build(caller: Caller) -> Response:
        info = repos.inspect_repo(repo, caller)
        heads = branches.list_branches(repo, caller)
        history = page_of(request, lambda at, n: commits.list_commits(repo, caller, branch, n, at))
        extra = f"&branch={urllib.parse.quote(branch)}" if branch else ""
        return render(request, "data/repo.html", title=f"Repo {repo}", repo=info, branches=heads,
                      pager=history, pager_extra=extra, branch=branch)
    return page(request, build)


@router.get(_REPO + "/branches/{branch}")
def branch_page(request: Request, repo: str, branch: str) -> Response:
    """A branch: its head and trigger, and every move of its head (commits, promotions, rollbacks, triggers),
    newest first, with who, when, from, to, the kind of move and its note."""
    def build(caller: Caller) -> Response:
        info = next((b for b in branches.list_branches(repo, caller) if b.name == branch), None)
        if info is None:
            raise BranchNotFound(f"repo {repo} has no branch {branch!r}")
        moves = models.model_history(f"{repo}@{branch}", caller)
        return render(request, "data/branch.html", title=f"Branch {repo}@{branch}", repo=repo, branch=info,
                      pager=page_of(request, lambda at, n: moves[at:at + n]))
    return page(request, build)


@router.get(_REPO + "/browse/{ref}/{path:path}")
def browse(request: Request, repo: str, ref: str, path: str) -> Response:
    """A directory's entries, or a file's preview, at a commit (or a branch's head)."""
    def build(caller: Caller) -> Response:
        commit = commits.inspect_commit(repo, ref, caller)
        here = "/" + path.strip("/")
        info = files.inspect_file(repo, ref, here, caller) if here != "/" else None
        common: dict[str, Any] = {"repo": repo, "ref": ref, "commit": commit, "path": here,
                                  "crumbs": crumbs(repo, ref, here)}
        if info is None or info.kind != "file":
            listing = page_of(request, lambda at, n: files.list_files(repo, ref, here, caller, limit=n, offset=at),
                              PAGE * 4)
            return render(request, "data/browse.html", title=f"{repo}@{ref}:{here}", pager=listing, **common)
        shown = preview(here, caller.ops.iter_file(f"{repo}@{ref}:{here}"))
        return render(request, "data/file.html", title=f"{repo}@{ref}:{here}", file=info, preview=shown,
                      **common)
    return page(request, build)


@router.get(_REPO + "/raw/{ref}/{path:path}")
def download(request: Request, repo: str, ref: str, path: str) -> Response:
    """The file's bytes as an attachment; ``?inline=1`` shows an image (never HTML or SVG) in the page."""
    def build(caller: Caller) -> Response:
        streamed = files.get_file(repo, ref, path, caller)
        name = path.rsplit("/", 1)[-1] or "file"
        kind = IMAGE_TYPES.get("." + name.rsplit(".", 1)[-1].lower()) if "." in name else None
        if request.query_params.get("inline") and kind:
            streamed.headers["Content-Type"] = kind
            streamed.headers["Content-Disposition"] = "inline"
        else:
            streamed.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{urllib.parse.quote(name)}"
        streamed.headers["X-Content-Type-Options"] = "nosniff"
        streamed.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return streamed
    return page(request, build)


@router.get(_REPO + "/diff")
def diff(request: Request, repo: str) -> Response:
    """What changed from commit ``old`` (default: the parent of ``new``) to ``new``."""
    new = request.query_params.get("new") or "master"
    old = request.query_params.get("old") or None

    def build(caller: Caller) -> Response:
        target = commits.inspect_commit(repo, new, caller)
        since = f"{repo}@{old}" if old else None
        found = page_of(request, lambda at, n: files.diff_files(repo, new, caller, "/", since, n, at), PAGE * 4)
        extra = f"&new={urllib.parse.quote(new)}" + (f"&old={urllib.parse.quote(old)}" if old else "")
        return render(request, "data/diff.html", title=f"Diff of {repo}", repo=repo, new=new, old=old,
                      commit=target, pager=found, pager_extra=extra)
    return page(request, build)



