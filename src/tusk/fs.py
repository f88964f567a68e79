"""``tusk://``: Tusk as an fsspec filesystem, so pandas, pyarrow, dask and ``fsspec.open`` read and write repos.

A path is ``tusk://REPO@REF/PATH``: REF is a branch, a commit id (a short one of 6+ characters will do) or an
ancestry ref (``master^``, ``master~2``), parsed as the CLI parses ``REPO@REF``; ``tusk://REPO/PATH`` means
``REPO@master``, and the CLI's own spelling ``REPO@REF:/PATH`` is accepted too. ``tusk://`` alone lists the repos.

The filesystem is a ``tusk.Client``: embedded by default, remote when ``TUSK_ADDRESS`` (or the current
``tusk context``) names a server, or as the storage options say (``address=``, ``token=``, ``home=``).

Reads are pinned: opening a file resolves its ref to a commit once, so a branch that moves while pyarrow reads
row groups cannot mix two versions; each block is a ranged read of only the chunks that hold it. Writes: a file
opened ``wb`` (or ``ab``) on a branch lands as one commit when it is closed (a file never closed, or left by an
exception, lands nothing); inside ``with fs.transaction:`` every file written and removed lands as one commit per
branch when the block ends. Commits and ancestry refs are read-only. See docs/filesystem.md.
"""

from __future__ import annotations

import contextlib
import errno
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Protocol

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem  # type: ignore[import-untyped]
from fsspec.transaction import Transaction  # type: ignore[import-untyped]

from tusk.config import Settings
from tusk.errors import (
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StorageUnavailable,
    Unauthenticated,
    UserError,
)
from tusk.ids import normalize_path
from tusk.sdk import Client
from tusk.versioning.records import CommitInfo, FileInfo
from tusk.versioning.refs import parse_file_ref, parse_ref

__all__ = ["TuskFile", "TuskFileSystem", "TuskTransaction"]

_SDK_PREFIX = re.compile(r"^[\w.-]+@[\w.^~-]+:/\S*: ")
_SPOOL_IN_MEMORY = 8 << 20  # a file being written stays in memory up to this size, then spills to a temporary file


@dataclass(frozen=True)
class _Location:
    """Where a stripped path points: ``head`` is ``REPO@REF`` as written, the prefix of every name below it."""

    head: str
    repo: str
    ref: str  # branch or commit id, without ancestry
    ancestry: int
    path: str  # "/" or "/a/b"

    @property
    def ref_text(self) -> str:
        return self.ref + (f"^{self.ancestry}" if self.ancestry else "")

    @property
    def commit_ref(self) -> str:
        return f"{self.repo}@{self.ref_text}"

    @property
    def target(self) -> str:
        """What the SDK takes: ``repo@ref:/path``."""
        return f"{self.commit_ref}:{self.path}"

    def name(self, path: str) -> str:
        return self.head + (path if path != "/" else "")

    @property
    def url(self) -> str:
        return f"tusk://{self.name(self.path)}"


def _locate(path: str) -> _Location | None:
    """A stripped path's location; None for the root of the filesystem (the list of repos)."""
    if not path:
        return None
    head, _, rest = path.partition("/")
    try:
        repo, ref, ancestry = parse_ref(head)
        file_path = normalize_path("/" + rest)
    except UserError as exc:
        raise ValueError(f"tusk://{path}: {exc}; a path is tusk://REPO@REF/PATH") from None
    return _Location(head, repo, ref, ancestry, file_path)


@contextlib.contextmanager
def _translated(url: str) -> Iterator[None]:
    """Tusk's errors as the built-in ones the Python data stack expects, with Tusk's message and no traceback of
    internals: a missing repo, ref or path is FileNotFoundError, a refused caller PermissionError."""
    try:
        yield
    except NotFound as exc:
        raise FileNotFoundError(errno.ENOENT, _message(url, exc)) from None
    except (PermissionDenied, Unauthenticated) as exc:
        raise PermissionError(errno.EACCES, _message(url, exc)) from None
    except Conflict as exc:
        raise OSError(errno.EEXIST, _message(url, exc)) from None
    except StorageUnavailable as exc:
        raise ConnectionError(_message(url, exc)) from None
    except UserError as exc:
        raise ValueError(_message(url, exc)) from None


def _message(url: str, exc: Exception) -> str:
    """``url: what went wrong``, without the ``repo@ref:/path:`` the SDK's message starts with (the url says it)."""
    return f"{url}: {_SDK_PREFIX.sub('', str(exc), count=1)}"


def _settings(address: str | None, token: str | None, home: str | Path | None, user: str | None) -> Settings:
    settings = Settings.for_home(Path(home)) if home is not None and address is None else Settings.from_env()
    return replace(settings, address=address or settings.address, token=token or settings.token,
                   user=user or settings.user)


class _Batch(Protocol):
    """What a pending change needs of a modification (embedded ``Modification`` or ``HttpModification``)."""

    def put_stream(self, path: str, stream: Any, append: bool = False) -> None: ...
    def delete(self, path: str) -> None: ...
    def copy(self, src: Any, dst_path: str) -> None: ...


class _Pending(Protocol):
    """A change waiting in a transaction: a file written, a path removed or copied."""

    at: _Location

    def stage(self, batch: _Batch) -> None: ...
    def discard(self) -> None: ...


@dataclass
class _Removal:
    at: _Location

    def stage(self, batch: _Batch) -> None:
        batch.delete(self.at.path)

    def discard(self) -> None:
        pass


@dataclass
class _Copy:
    src: str  # repo@ref:/path
    at: _Location

    def stage(self, batch: _Batch) -> None:
        batch.copy(parse_file_ref(self.src), self.at.path)

    def discard(self) -> None:
        pass


class TuskTransaction(Transaction):  # type: ignore[misc]
    """``with fs.transaction:`` as Tusk has it: every file written, removed or copied inside lands as one commit
    per branch when the block ends (nothing lands if it raises); ``commits`` holds the commits made."""

    def __init__(self, fs: TuskFileSystem, **kwargs: Any) -> None:
        super().__init__(fs, **kwargs)
        self.commits: list[CommitInfo] = []

    def complete(self, commit: bool = True) -> None:
        fs: TuskFileSystem = self.fs  # type: ignore[has-type]
        pending: list[_Pending] = list(self.files)
        self.files.clear()
        try:
            if commit:
                self.commits = fs._land(pending)
        finally:
            for item in pending:
                item.discard()
            fs._intrans = False
            fs._transaction = None
            self.fs = None


class TuskFile(AbstractBufferedFile):  # type: ignore[misc]
    """A file of a repo: read by ranges from one pinned commit, or written to a branch and landed on close."""

    def __init__(self, fs: TuskFileSystem, path: str, at: _Location, mode: str = "rb", size: int | None = None,
                 append: bool = False, **kwargs: Any) -> None:
        self.at = at
        self.append = append
        self.landed: CommitInfo | None = None  # the commit a write made (None: staged in an open commit)
        self._spool: IO[bytes] | None = None
        self._discarded = False
        super().__init__(fs, path, mode=mode, size=size, **kwargs)

    # -- reading -------------------------------------------------------------
    def _fetch_range(self, start: int, end: int) -> bytes:
        with _translated(self.at.url):
            data: bytes = self.fs.client.get_file(self.at.target, start, end)
            return data

    # -- writing -------------------------------------------------------------
    def _initiate_upload(self) -> None:
        self._spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115 - lives until it lands

    def _upload_chunk(self, final: bool = False) -> bool:
        assert self._spool is not None
        self._spool.write(self.buffer.getbuffer())
        if final and self.autocommit:
            self.commit()
        return True

    def _taken(self) -> IO[bytes]:
        if self._spool is None:  # closed before anything was flushed: an empty file
            self._initiate_upload()
        assert self._spool is not None
        spool, self._spool = self._spool, None
        spool.seek(0)
        return spool

    def commit(self) -> None:
        """Land the written bytes as one commit on the branch (or stage them in its open commit)."""
        if self._discarded:
            return
        with self._taken() as spool, _translated(self.at.url):
            self.landed = self.fs.client.put_file(self.at.target, spool, append=self.append)

    def stage(self, batch: _Batch) -> None:
        if self._discarded:
            return
        if not self.closed:
            self.close()
        with self._taken() as spool, _translated(self.at.url):
            batch.put_stream(self.at.path, spool, self.append)

    def discard(self) -> None:
        self._discarded = True
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is not None and self.writable():  # an exception: the content is not complete, land nothing
            self.discard()
            self.closed = True
            return
        self.close()

    def __del__(self) -> None:
        if not self.closed and "r" not in self.mode:  # never land a commit from the garbage collector
            self.discard()
            self.closed = True
        super().__del__()


class TuskFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """fsspec over ``tusk.Client``: ``fsspec.filesystem("tusk")``, or any ``tusk://`` URL.

    Storage options: ``address`` and ``token`` (a server; default ``TUSK_ADDRESS``/``TUSK_TOKEN`` or the current
    context), ``home`` (an embedded store there), ``user``, ``run_jobs`` (embedded writes run the jobs they
    trigger before they return; False leaves them queued), or ``client`` (a ``tusk.Client`` to use as is).
    """

    protocol = "tusk"
    root_marker = ""
    transaction_type = TuskTransaction

    def __init__(self, address: str | None = None, token: str | None = None, home: str | Path | None = None,
                 user: str | None = None, run_jobs: bool = True, client: Client | None = None,
                 **kwargs: Any) -> None:
        super().__init__(address=address, token=token, home=home, user=user, run_jobs=run_jobs, client=client,
                         **kwargs)
        self._options = (address, token, home, user)
        self._run_jobs = run_jobs
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Client:
        """The SDK client, opened on first use (so a filesystem unpickled in a Dask worker costs nothing until
        it reads)."""
        with self._lock:
            if self._client is None:
                self._client = Client(settings=_settings(*self._options), run_jobs=self._run_jobs)
            return self._client

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = super()._strip_protocol(path).lstrip("/")
        head, _, rest = path.partition("/")
        if ":" in head:  # the CLI's spelling: repo@ref:/path
            head, _, inner = head.partition(":")
            rest = "/".join(p for p in (inner, rest) if p)
            path = f"{head}/{rest}".rstrip("/")
        return path

    # -- reading -------------------------------------------------------------
    @staticmethod
    def _entry(at: _Location, f: FileInfo) -> dict[str, Any]:
        return {"name": at.name(f.path), "size": f.size_bytes, "type": "file" if f.kind == "file" else "directory",
                "digest": f.digest, "chunks": f.chunks}

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """A directory's entries (a file: just itself); ``tusk://`` lists the repos (each means REPO@master)."""
        at = _locate(self._strip_protocol(path))
        if at is None:
            with _translated("tusk://"):
                entries = [{"name": r.name, "size": r.size_bytes, "type": "directory"}
                           for r in self.client.list_repos()]
        else:
            with _translated(at.url):
                entries = [self._entry(at, f) for f in self.client.list_files(at.target)]
        return entries if detail else [e["name"] for e in entries]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        at = _locate(self._strip_protocol(path))
        if at is None:
            return {"name": "", "size": 0, "type": "directory"}
        with _translated(at.url):
            return self._entry(at, self.client.inspect_file(at.target))

    def ukey(self, path: str) -> str:
        """The content digest: the same bytes have the same key wherever (and in whichever commit) they are."""
        return str(self.info(path)["digest"])

    def checksum(self, path: str) -> int:
        return int(self.ukey(path)[:32], 16)

    def find(self, path: str, maxdepth: int | None = None, withdirs: bool = False, detail: bool = False,
             **kwargs: Any) -> Any:
        """Every file below ``path``, in one listing of the commit's tree (not one call per directory)."""
        at = _locate(self._strip_protocol(path))
        if at is None or maxdepth is not None or withdirs:
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs)
        with _translated(at.url):
            found = {e["name"]: e for e in (self._entry(at, f) for f in self.client.walk_files(at.target))}
        return found if detail else sorted(found)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        """The file's bytes, or ``[start, end)`` of them (negative: from the end), reading only those chunks."""
        at = self._file_location(path)
        with _translated(at.url):
            try:
                if (start is not None and start < 0) or (end is not None and end < 0):
                    size = self.client.inspect_file(at.target).size_bytes
                    start = None if start is None else max(0, size + start) if start < 0 else start
                    end = None if end is None else max(0, size + end) if end < 0 else end
                data: bytes = self.client.get_file(at.target, start or 0, end)
                return data
            except InvalidArgument:
                if self.client.inspect_file(at.target).kind != "file":
                    raise IsADirectoryError(errno.EISDIR, f"{at.url} is a directory") from None
                raise

    def _file_location(self, path: str) -> _Location:
        at = _locate(self._strip_protocol(path))
        if at is None or at.path == "/":
            raise IsADirectoryError(errno.EISDIR, f"tusk://{at.head if at else ''} is a directory, not a file")
        return at

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, autocommit: bool = True,
              cache_options: dict[str, Any] | None = None, **kwargs: Any) -> TuskFile:
        at = self._file_location(path)
        if mode == "rb":
            with _translated(at.url):
                commit = self.client.inspect_commit(at.commit_ref)  # pinned: the branch may move while we read
                pinned = replace(at, ref=commit.id, ancestry=0)
                info = self.client.inspect_file(pinned.target)
            if info.kind != "file":
                raise IsADirectoryError(errno.EISDIR, f"{at.url} is a directory; list it, or open its files")
            return TuskFile(self, self._strip_protocol(path), pinned, "rb", size=info.size_bytes,
                            block_size=block_size, cache_options=cache_options, **kwargs)
        if mode not in ("wb", "ab", "xb"):
            raise ValueError(f"{at.url}: unsupported mode {mode!r}: use 'rb', 'wb', 'ab' or 'xb'")
        self._check_writable(at)
        if mode == "xb" and self.exists(path):
            raise FileExistsError(errno.EEXIST, f"{at.url} exists (mode 'xb' creates a new file only)")
        return TuskFile(self, self._strip_protocol(path), at, "ab" if mode == "ab" else "wb", append=mode == "ab",
                        block_size=block_size, autocommit=autocommit, **kwargs)

    # -- writing -------------------------------------------------------------
    def _check_writable(self, at: _Location) -> None:
        """Refuse a write that could never land, before any byte is buffered: to an ancestry ref or a finished
        commit (both immutable). A branch, an open commit or a new branch (created on landing, as
        ``tusk put file`` creates it) is fine."""
        if at.ancestry:
            raise PermissionError(errno.EROFS, f"{at.url}: {at.ref_text} is an ancestry ref, which is read-only; "
                                  f"write to a branch, e.g. tusk://{at.repo}@{at.ref}{at.path}")
        with _translated(at.url):
            if at.ref in {b.name for b in self.client.list_branches(at.repo)}:
                return
            try:
                commit = self.client.inspect_commit(at.commit_ref)
            except NotFound:
                return
        if commit.state != "open":
            raise PermissionError(errno.EROFS, f"{at.url}: {at.ref} is a commit, and commits are immutable; "
                                  f"write to a branch instead, e.g. tusk://{at.repo}@{commit.branch}{at.path}")

    def _change(self, item: _Pending) -> CommitInfo | None:
        """Land one change now, or keep it for the transaction's commit."""
        if self._intrans:
            self.transaction.files.append(item)
            return None
        landed = self._land([item])
        return landed[0] if landed else None

    def _land(self, pending: list[_Pending]) -> list[CommitInfo]:
        """One commit per branch for the changes, in the order they were made."""
        groups: dict[tuple[str, str], list[_Pending]] = {}
        for item in pending:
            groups.setdefault((item.at.repo, item.at.ref), []).append(item)
        commits = []
        for (repo, ref), items in groups.items():
            with _translated(f"tusk://{repo}@{ref}"):
                batch = self.client.modify(f"{repo}@{ref}")
                for item in items:
                    item.stage(batch)
                landed = batch.land()
            if landed is not None:
                commits.append(landed)
        return commits

    def rm(self, path: str | list[str], recursive: bool = False, maxdepth: int | None = None) -> None:
        """Delete files (and with ``recursive`` directories): one commit per branch, or part of the transaction."""
        found = sorted(self.expand_path(path, recursive=recursive, maxdepth=maxdepth))
        if maxdepth is not None:
            found = [p for p in found if self.isfile(p)]
        removed: list[str] = []
        items: list[_Pending] = []
        for p in found:
            if any(p.startswith(r + "/") for r in removed):
                continue  # inside a directory already removed whole
            at = _locate(p)
            if at is None or at.path == "/":
                raise ValueError(f"tusk://{p}: name a path inside the repo; to delete a branch or a repo use "
                                 "`tusk branch delete` or `tusk repo delete`")
            if not recursive and self.isdir(p):
                raise IsADirectoryError(errno.EISDIR, f"{at.url} is a directory: pass recursive=True to delete it")
            removed.append(p)
            items.append(_Removal(at))
        for checked in {(i.at.repo, i.at.ref): i.at for i in items}.values():
            self._check_writable(checked)
        if self._intrans:
            self.transaction.files.extend(items)
        elif items:
            self._land(items)

    def rm_file(self, path: str) -> None:
        self.rm(path)

    _rm = rm_file

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy by reference (no bytes are duplicated): a commit on path2's branch, or part of the transaction."""
        src = _locate(self._strip_protocol(path1))
        dst = self._file_location(path2)
        if src is None:
            raise ValueError("tusk://: copy a path inside a repo, not the list of repos")
        with _translated(src.url):
            self.client.inspect_file(src.target)
        self._check_writable(dst)
        self._change(_Copy(src.target, dst))

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Nothing to do: a directory exists while a file is under it."""

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Nothing to do: a directory exists while a file is under it."""

    def rmdir(self, path: str) -> None:
        """An empty directory does not exist in a commit; a non-empty one is refused as ``os.rmdir`` refuses it."""
        if self.isdir(path) and self.ls(path, detail=False):
            raise OSError(errno.ENOTEMPTY, f"tusk://{self._strip_protocol(path)}: directory not empty; "
                          "use rm(path, recursive=True)")
