from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from tusk.cli._state import emit, err, out, progress_bar, say, state
from tusk.errors import InvalidArgument
from tusk.transfer import local_tree
from tusk.units import human_size
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
        mod = client.modify(f"{ref.repo}@{ref.ref_text}", message, progress)  # (ancestry: refused there)
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
        err.print(f"[yellow]warning:[/yellow] skipped {escape(what)}")
    if state.json:
        emit({"commit": commit.id if commit else None, "files": len(mod.ops)}, ["commit", "files"])
    elif commit is not None:
        say(f"{len(mod.ops)} file(s) committed to {ref.repo}@{ref.ref} as {commit.id}")
    else:
        say(f"{len(mod.ops)} file(s) staged in the open commit on {ref.repo}@{ref.ref}")


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
        say(f"wrote {human_size(n)} to {output}", highlight=False)


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
         old: str | None = typer.Argument(None, metavar="[REPO@REF]"),
         patch: bool = typer.Option(False, "--patch", "-p", help="show a unified diff of each changed text file"),
         ) -> None:
    """Files changed between two commits (default: a commit and its parent)."""

    def row(d: DiffEntry) -> list[object]:
        sizes = {"added": human_size(d.new_size), "deleted": human_size(d.old_size),
                 "modified": f"{human_size(d.old_size)} → {human_size(d.new_size)}"}
        return [d.change, d.path, sizes[d.change]]

    entries = state.client.diff_files(new, old)
    if not patch or state.json:
        emit(entries, ["change", "path", "size"], row)
        return
    nref = parse_file_ref(new)
    after = state.client.inspect_commit(f"{nref.repo}@{nref.ref_text}")  # both sides fixed before any read
    before = state.client.inspect_commit(old).id if old else after.parent
    for d in entries:
        a = state.client.get_file(f"{nref.repo}@{before}:{d.path}") if d.change != "added" and before else b""
        b = state.client.get_file(f"{nref.repo}@{after.id}:{d.path}") if d.change != "deleted" else b""
        for line in unified_patch(d.path, a, b):
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else None
            out.print(escape(line), style=style, highlight=False, soft_wrap=True)


PATCH_LIMIT = 1 << 20  # larger files are summarized, as binary ones are


def unified_patch(path: str, a: bytes, b: bytes) -> list[str]:
    """A unified diff of one file's two versions, or one line saying they differ (binary or large)."""
    import difflib

    def text(data: bytes) -> list[str] | None:
        if len(data) > PATCH_LIMIT or b"\0" in data:
            return None
        try:
            return data.decode().splitlines()
        except UnicodeDecodeError:
            return None

    old, new = text(a), text(b)
    if old is None or new is None:
        return [f"Binary files a{path} and b{path} differ ({human_size(len(a))} → {human_size(len(b))})"]
    return list(difflib.unified_diff(old, new, f"a{path}", f"b{path}", lineterm=""))


@app.command("delete")
def delete(ref: str = typer.Argument(..., metavar="REPO@BRANCH:PATH"),
           message: str | None = typer.Option(None, "--message", "-m")) -> None:
    """Delete a file or directory (as a new commit, or in the open commit)."""
    commit = state.client.delete_file(ref, message)
    if not state.json:
        say(f"deleted {ref}" + (f" in commit {commit.id}" if commit else " (staged)"))


@app.command("copy")
def copy(src: str = typer.Argument(..., metavar="REPO@REF:PATH"),
         dest: str = typer.Argument(..., metavar="REPO@BRANCH:PATH"),
         message: str | None = typer.Option(None, "--message", "-m")) -> None:
    """Copy a file or directory by reference (no bytes are duplicated)."""
    commit = state.client.copy_file(src, dest, message)
    if not state.json:
        say(f"copied {src} to {dest}" + (f" in commit {commit.id}" if commit else " (staged)"))
