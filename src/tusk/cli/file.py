from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import typer
from rich.markup import escape

from tusk.cli._state import emit, err, out, progress_bar, say, state
from tusk.errors import InvalidArgument
from tusk.sources import is_url, open_source, read_source_list, url_path
from tusk.transfer import local_tree
from tusk.units import human_size
from tusk.versioning.loading import SPLITS, Loader, is_tar_name
from tusk.versioning.refs import FileRef, parse_file_ref

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
        sources: list[str] = typer.Option([], "--file", "-f",
                                          help="local file or directory, an http(s) URL, or - for stdin"),
        input_file: str | None = typer.Option(None, "--input-file", "-i",
                                              help="a file (or URL, or -) listing one source a line"),
        recursive: bool = typer.Option(False, "--recursive", "-r", help="put directories recursively"),
        append: bool = typer.Option(False, "--append", "-a", help="append instead of overwriting"),
        overwrite: bool = typer.Option(False, "--overwrite", "-o", hidden=True,
                                       help="overwrite (what put does anyway; pachctl 1.x's flag)"),
        untar: bool = typer.Option(False, "--untar", help="unpack .tar, .tar.gz and .tgz sources into PATH"),
        split: str | None = typer.Option(None, "--split", help="split each source into a directory of "
                                         "numbered pieces: line, json or csv"),
        target_datums: int = typer.Option(0, "--target-file-datums", help="with --split: records per piece"),
        target_bytes: int = typer.Option(0, "--target-file-bytes", help="with --split: bytes per piece (at least)"),
        header_records: int = typer.Option(0, "--header-records",
                                           help="with --split: the first N records start every piece"),
        message: str | None = typer.Option(None, "--message", "-m", help="commit description"),
        no_wait: bool = typer.Option(False, "--no-wait", help="leave triggered jobs queued")) -> None:
    """Put files into a branch, as one commit (or into the branch's open commit).

    Sources are local files and directories, http(s) URLs (streamed), or - for stdin; -i names a file
    listing them. --untar unpacks tar archives; --split line|json|csv makes the target a directory of
    pieces named 0000000000000000, 0000000000000001, ... as pachctl does. Pipelines that read the branch
    run before this returns, unless --no-wait.
    """
    ref = parse_file_ref(dest)
    _check_put_flags(split, untar, append and overwrite, target_datums, target_bytes, header_records)
    if input_file is not None:
        sources = [*sources, *read_source_list(input_file, sys.stdin.buffer)]
    if not sources:
        raise InvalidArgument("name what to put: -f FILE (a path, an http(s) URL, or - for stdin) or -i LIST")
    streamed = any(s == "-" or is_url(s) for s in sources)
    # the bar's total costs a walk of every source tree: only where a bar can be shown (issue 18: put -r)
    shown = err.is_terminal and not streamed
    total = sum(_local_size(Path(s)) for s in sources if Path(s).exists()) if shown else None
    client = state.client
    client.run_jobs = not no_wait
    files = 0
    into_dir = len(sources) > 1 or dest.endswith("/") or not ref.has_path
    with progress_bar(f"put {dest}", total) as progress:
        mod = client.modify(f"{ref.repo}@{ref.ref_text}", message, progress)  # (ancestry: refused there)
        for src in sources:
            files += _put_one(mod, ref, src, into_dir, recursive, append, untar, split,
                              (target_datums, target_bytes, header_records), len(sources))
        commit = mod.land()
    for what in mod.skipped:
        err.print(f"[yellow]warning:[/yellow] skipped {escape(what)}")
    if state.json:
        emit({"commit": commit.id if commit else None, "files": files}, ["commit", "files"])
    elif commit is not None:
        say(f"{files} file(s) committed to {ref.repo}@{ref.ref} as {commit.id}")
    else:
        say(f"{files} file(s) staged in the open commit on {ref.repo}@{ref.ref}")


def _check_put_flags(split: str | None, untar: bool, both: bool, target_datums: int, target_bytes: int,
                     header_records: int) -> None:
    if both:
        raise InvalidArgument("--append and --overwrite contradict each other: pass one")
    if split is None:
        for flag, value in (("--target-file-datums", target_datums), ("--target-file-bytes", target_bytes),
                            ("--header-records", header_records)):
            if value:
                raise InvalidArgument(f"{flag} needs --split line|json|csv")
        return
    if split not in SPLITS:
        raise InvalidArgument(f"unknown --split {split!r}: use one of {', '.join(SPLITS)}")
    if untar:
        raise InvalidArgument("--split and --untar cannot be combined: split files, or unpack an archive")


def _put_one(mod: Loader, ref: FileRef, src: str, into_dir: bool, recursive: bool, append: bool, untar: bool,
             split: str | None, limits: tuple[int, int, int], count: int) -> int:
    """Put one source into the batch; return how many files it put."""
    url = is_url(src)
    if src == "-" and not untar and not ref.has_path:
        raise InvalidArgument("reading stdin needs a destination path: REPO@BRANCH:/path")
    name = url_path(src) if url else Path(src).name
    target = f"{ref.path.rstrip('/')}/{name.lstrip('/')}" if into_dir and src != "-" else ref.path
    if untar and (src == "-" or is_tar_name(urlsplit(src).path if url else src)):
        with open_source(src, sys.stdin.buffer) as stream:
            return mod.put_tar(ref.path, stream, where=src)
    if not url and src != "-":
        local = Path(src)
        if not local.exists():
            raise InvalidArgument(f"no such local file or directory: {src}")
        if local.is_dir():
            if split is not None:
                raise InvalidArgument(f"{src} is a directory; --split takes files")
            if not recursive:
                raise InvalidArgument(f"{src} is a directory; pass -r to put it recursively")
            return mod.put_tree(ref.path if ref.has_path and count == 1 else target, local)
        if split is None:
            mod.put_file(target, local, append)
            return 1
    with open_source(src, sys.stdin.buffer) as stream:
        if split is not None:
            datums, size, header = limits
            return mod.put_split(target, stream, split, target_datums=datums, target_bytes=size,
                                 header_records=header, append=append, where=src)
        mod.put_stream(target, stream, append)
        return 1


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
def list_(ref: str = typer.Argument(..., metavar="REPO@REF[:PATH|:GLOB]")) -> None:
    """List a directory, or the files and directories a glob pattern matches (as `glob file`)."""
    _, _, path = ref.partition(":")
    if any(c in path for c in "*?["):  # pachctl lists what a pattern matches
        emit(state.client.glob_files(ref), _FILE_COLUMNS, _file_row)
        return
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
