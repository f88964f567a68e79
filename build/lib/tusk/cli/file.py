from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tusk.cli._state import emit, err, human_size, out, progress_bar, state
from tusk.errors import InvalidArgument
from tusk.transfer import local_tree
from tusk.versioning.refs import parse_file_ref

if TYPE_CHECKING:
    from tusk.versioning.records import DiffEntry, FileInfo

app = typer.Typer(help="Put, get, list, glob, diff, copy and delete files.", no_args_is_help=True)


def _file_row(f: FileInfo) -> list[object]:
    return [f.path, f.kind, human_size(f.size_bytes), f.digest[:16]]


_FILE_COLUMNS = ["path", "type", "size", "digest"]


def _local_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(size for _, _, size in local_tree(path, [])) if path.is_dir() else 0


@app.command("put")
def put(dest: str = typer.Argument(..., metavar="REPO@BRANCH[:PATH]"),
        sources: list[str] = typer.Option(..., "--file", "-f", help="local file or directory, or - for stdin"),
        recursive: bool = typer.Option(False, "--recursive", "-r", help="put directories recursively"),
        append: bool = typer.Option(False, "--append", "-a", help="append instead of overwriting"),
        message: str | None = typer.Option(None, "--message", "-m", help="commit description"),
        no_wait: bool = typer.Option(False, "--no-wait", help="leave triggered jobs queued")) -> None:
    """Put files into a branch, as one commit (or into the branch's open commit).

    Pipelines that read the branch run before this returns, unless --no-wait.
    """
    ref = parse_file_ref(dest)
    total = None if "-" in sources else sum(_local_size(Path(s)) for s in sources if Path(s).exists())
    client = state.client
    client.run_jobs = not no_wait
    with progress_bar(f"put {dest}", total) as progress:
        mod = client.modify(f"{ref.repo}@{ref.ref}", message, progress)
        for src in sources:
            if src == "-":
                if not ref.has_path:
                    raise InvalidArgument("reading stdin needs a destination path: REPO@BRANCH:/path")
                mod.put_stream(ref.path, sys.stdin.buffer, append)
                continue
            local = Path(src)
            if not local.exists():
                raise InvalidArgument(f"no such local file or directory: {src}")
            into_dir = len(sources) > 1 or dest.endswith("/") or not ref.has_path
            target = f"{ref.path.rstrip('/')}/{local.name}" if into_dir else ref.path
            if local.is_dir():
                if not recursive:
                    raise InvalidArgument(f"{src} is a directory; pass -r to put it recursively")
                mod.put_tree(ref.path if ref.has_path and len(sources) == 1 else target, local)
            else:
                mod.put_file(target, local, append)
        commit = mod.land()
    for what in mod.skipped:
        err.print(f"[yellow]warning:[/yellow] skipped {what}")
    if state.json:
        emit({"commit": commit.id if commit else None, "files": len(mod.ops)}, ["commit", "files"])
    elif commit is not None:
        out.print(f"{len(mod.ops)} file(s) committed to {ref.repo}@{ref.ref} as {commit.id}")
    else:
        out.print(f"{len(mod.ops)} file(s) staged in the open commit on {ref.repo}@{ref.ref}")


@app.command("get")
def get(ref: str = typer.Argument(..., metavar="REPO@REF:PATH"),
        output: Path | None = typer.Option(None, "--output", "-o", help="local file or directory to write"),
        recursive: bool = typer.Option(False, "--recursive", "-r")) -> None:
    """Get a file (to stdout or -o), or a directory with -r -o DIR."""
    client = state.client
    info = client.inspect_file(ref)
    if info.kind == "dir" and (not recursive or output is None):
        raise InvalidArgument(f"{ref} is a directory; use -r -o LOCAL_DIR to download it")
    if output is None:
        with progress_bar(f"get {ref}", info.size_bytes) as progress:
            for data in client.iter_file(ref):
                sys.stdout.buffer.write(data)
                if progress:
                    progress(len(data))
        sys.stdout.buffer.flush()
        return
    with progress_bar(f"get {ref}", info.size_bytes) as progress:
        n = client.download(ref, output, progress)
    if not state.json:
        out.print(f"wrote {human_size(n)} to {output}", highlight=False)


@app.command("list")
def list_(ref: str = typer.Argument(..., metavar="REPO@REF[:PATH]")) -> None:
    """List a directory."""
    emit(state.client.list_files(ref), _FILE_COLUMNS, _file_row)


@app.command("glob")
def glob(ref: str = typer.Argument(..., metavar="REPO@REF:PATTERN")) -> None:
    """List files and directories matching a glob pattern (*, ?, [..], **)."""
    emit(state.client.glob_files(ref), _FILE_COLUMNS, _file_row)


@app.command("inspect")
def inspect(ref: str = typer.Argument(..., metavar="REPO@REF:PATH")) -> None:
    """Show a file's size, digest and chunk count."""
    emit(state.client.inspect_file(ref), ["path", "kind", "size_bytes", "digest", "chunks"])


@app.command("diff")
def diff(new: str = typer.Argument(..., metavar="REPO@REF[:PATH]"),
         old: str | None = typer.Argument(None, metavar="[REPO@REF]")) -> None:
    """Files changed between two commits (default: a commit and its parent)."""

    def row(d: DiffEntry) -> list[object]:
        sizes = {"added": human_size(d.new_size), "deleted": human_size(d.old_size),
                 "modified": f"{human_size(d.old_size)} → {human_size(d.new_size)}"}
        return [d.change, d.path, sizes[d.change]]

    emit(state.client.diff_files(new, old), ["change", "path", "size"], row)


@app.command("delete")
def delete(ref: str = typer.Argument(..., metavar="REPO@BRANCH:PATH"),
           message: str | None = typer.Option(None, "--message", "-m")) -> None:
    """Delete a file or directory (as a new commit, or in the open commit)."""
    commit = state.client.delete_file(ref, message)
    if not state.json:
        out.print(f"deleted {ref}" + (f" in commit {commit.id}" if commit else " (staged)"))


@app.command("copy")
def copy(src: str = typer.Argument(..., metavar="REPO@REF:PATH"),
         dest: str = typer.Argument(..., metavar="REPO@BRANCH:PATH"),
         message: str | None = typer.Option(None, "--message", "-m")) -> None:
    """Copy a file or directory by reference (no bytes are duplicated)."""
    commit = state.client.copy_file(src, dest, message)
    if not state.json:
        out.print(f"copied {src} to {dest}" + (f" in commit {commit.id}" if commit else " (staged)"))
