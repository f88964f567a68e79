"""tusk.Client: the Python SDK.

Embedded mode runs the services in-process (SQLite + local objects by
default, or whatever ``TUSK_DATABASE_URL`` / ``TUSK_OBJECTS_URL`` name).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

from tusk.config import Settings
from tusk.errors import InvalidArgument, InvalidRef
from tusk.sdk._auth import AuthMethods
from tusk.sdk._images import ImageMethods
from tusk.sdk._pipelines import JobProgress
from tusk.sdk._secrets import SecretMethods
from tusk.sdk._transactions import TransactionMethods
from tusk.services import Services
from tusk.versioning.refs import FileRef, parse_file_ref, parse_ref

if TYPE_CHECKING:
    from tusk.versioning.archive import ArchiveReport
    from tusk.versioning.files import Modification
    from tusk.versioning.records import BranchInfo, CommitInfo, DiffEntry, FileInfo, FsckReport, GcReport, RepoInfo
    from tusk.versioning.triggers import BranchTrigger

__all__ = ["Client", "FileWriter"]

Progress = Callable[[int], None]
Source = bytes | str | Path | BinaryIO


def _settings(home: str | Path | None, settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    return Settings.for_home(Path(home)) if home is not None else Settings.from_env()


def _ref(text: str | FileRef) -> FileRef:
    return text if isinstance(text, FileRef) else parse_file_ref(text)


def _writable(ref: FileRef) -> FileRef:
    if ref.ancestry:
        raise InvalidRef(f"cannot write to {ref}: ancestry refs are read-only; write to a branch")
    return ref


class FileWriter(io.RawIOBase):
    """A file-like writer; the file is committed (or staged) on ``close()``."""

    def __init__(self, client: Client, ref: FileRef, append: bool) -> None:
        super().__init__()
        self._client, self._ref, self._append = client, ref, append
        self._buf = io.BytesIO()
        self.commit: CommitInfo | None = None

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        return self._buf.write(b)

    def close(self) -> None:
        if not self.closed:
            try:
                self._buf.seek(0)
                self.commit = self._client.put_file(self._ref, self._buf, append=self._append)
            finally:
                super().close()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:  # discard: an exception means the content is not complete
            super().close()
            return
        self.close()


class Client(SecretMethods, ImageMethods, TransactionMethods, AuthMethods):
    """Everything the ``tusk`` CLI can do, as methods.

    In embedded mode, jobs triggered by a write run before the write returns
    (``run_jobs=False`` leaves them queued for ``run_pending_jobs()``). A job that
    fails does not fail the write (it landed): ``last_jobs`` holds the jobs the
    write waited for, and ``raise_for_jobs()`` raises ``JobFailed`` if one failed.

    >>> c = Client()
    >>> c.create_repo("images")
    >>> c.put_file("images@master:/cat.png", Path("cat.png"))
    >>> c.get_file("images@master:/cat.png")[:4]
    """

    def __new__(cls, home: str | Path | None = None, settings: Settings | None = None, *args: object,
                **kwargs: object) -> Client:
        if cls is Client and kwargs.get("services") is None and _settings(home, settings).address:
            from tusk.sdk._remote import RemoteClient

            remote: Client = object.__new__(RemoteClient)
            return remote
        return object.__new__(cls)

    def __init__(self, home: str | Path | None = None, settings: Settings | None = None, run_jobs: bool = True,
                 job_progress: JobProgress | None = None, services: Services | None = None) -> None:
        """Embedded: open the services named by ``settings`` (or share ``services``, as the API server does).

        With ``TUSK_ADDRESS`` set (and no ``home``), ``Client()`` is a :class:`RemoteClient` instead.
        """
        settings = services.settings if services is not None else _settings(home, settings)
        self.settings = settings
        self.services = services if services is not None else Services.open(settings)
        self._owns_services = services is None
        self.run_jobs = run_jobs
        self.job_progress = job_progress
        self.last_jobs = []
        self.interrupted = []
        self.active_transaction, self.batched = None, []

    @property
    def remote(self) -> bool:
        return False

    @property
    def runtime_note(self) -> str | None:
        """Why pipelines do not run sandboxed here, if they do not."""
        return self.services.runtime_note

    def close(self) -> None:
        if self._owns_services:
            self.services.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- repos ---------------------------------------------------------------
    def create_repo(self, name: str, description: str = "") -> RepoInfo:
        return self.services.repos.create(name, description)

    def inspect_repo(self, name: str) -> RepoInfo:
        return self.services.repos.inspect(name)

    def list_repos(self) -> list[RepoInfo]:
        return self.services.repos.list()

    def delete_repo(self, name: str, force: bool = False) -> None:
        self.services.repos.delete(name, force)

    # -- branches ------------------------------------------------------------
    def create_branch(self, ref: str, head: str | None = None, trigger: BranchTrigger | None = None) -> BranchInfo:
        """Create a branch (or move it with ``head``); ``trigger`` makes it follow another branch on conditions."""
        repo, branch, anc = parse_ref(ref, default_branch=None)
        if anc:
            raise InvalidRef(f"{ref}: a branch name cannot carry ancestry")
        if trigger is not None:
            if trigger.branch == branch:
                raise InvalidArgument(f"branch {repo}@{branch} cannot follow itself: name another --trigger-branch")
            existing = {b.name: b for b in self.services.branches.list(repo)}
            if branch not in existing or head is not None:
                self.services.branches.create(repo, branch, head)
            if trigger.branch not in existing:  # where new data goes: it starts where the follower is (Pachyderm's way)
                start = head if head is not None else (existing[branch].head if branch in existing else None)
                self.services.branches.create(repo, trigger.branch, start)
            self.services.triggers.set(repo, branch, trigger)
            return next(b for b in self.services.branches.list(repo) if b.name == branch)
        info = self.services.branches.create(repo, branch, head)
        self._after_write()
        return info

    def list_branches(self, repo: str) -> list[BranchInfo]:
        return self.services.branches.list(repo)

    def delete_branch(self, ref: str) -> None:
        repo, branch, _ = parse_ref(ref, default_branch=None)
        self.services.branches.delete(repo, branch)

    # -- commits -------------------------------------------------------------
    def start_commit(self, ref: str, description: str = "") -> CommitInfo:
        repo, branch, anc = parse_ref(ref)
        if anc:
            raise InvalidRef(f"{ref}: start a commit on a branch, not an ancestry ref")
        return self.services.commits.start(repo, branch, description)

    def finish_commit(self, ref: str, description: str | None = None) -> CommitInfo:
        """Finish an open commit named by ``repo@commitid`` or ``repo@branch``."""
        repo, name, _ = parse_ref(ref)
        info = self.services.commits.finish_named(repo, name, description)
        self._after_write()
        return info

    def inspect_commit(self, ref: str) -> CommitInfo:
        repo, name, anc = parse_ref(ref)
        return self.services.commits.inspect(repo, name, anc)

    def inspect_commit_set(self, global_id: str) -> list[CommitInfo]:
        return self.services.commits.inspect_set(global_id)

    def list_commits(self, ref: str, limit: int | None = None, offset: int = 0) -> list[CommitInfo]:
        """Newest first (with a branch: its history); ``offset`` skips that many, for a page."""
        repo, _, branch = ref.partition("@")
        return self.services.commits.list(repo, branch or None, limit, offset)

    def subscribe_commits(self, ref: str, new: bool = False, poll: float = 0.5, timeout: float | None = None,
                          since: str | None = None) -> Iterator[CommitInfo]:
        """Each finished commit of a branch as it lands, oldest first (``pachctl subscribe commit``): the
        commits already there first, unless ``new`` (or only those after the commit ``since``). Ends after
        ``timeout`` seconds, if given."""
        import time

        repo, branch, anc = parse_ref(ref)
        if anc:
            raise InvalidRef(f"{ref}: subscribe to a branch, not an ancestry ref")
        if new and since is not None:
            raise InvalidArgument("--new and --from cannot both be given: --new is from now, --from from a commit")
        after = self.inspect_commit(f"{repo}@{since}").id if since is not None else None
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: set[str] = set()
        first = True
        while True:
            commits = self.list_commits(f"{repo}@{branch}", None if first else 256)
            landed = [c for c in reversed(commits) if c.state != "open" and c.id not in seen]
            seen.update(c.id for c in commits if c.state != "open")
            if first and after is not None:
                ids = [c.id for c in landed]
                landed = landed[ids.index(after) + 1:] if after in ids else []
            if not (first and new):
                yield from landed
            first = False
            if deadline is not None and time.monotonic() >= deadline:
                return
            time.sleep(poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic())))

    def wait_commit(self, ref: str, timeout: float | None = None) -> CommitInfo:
        repo, name, _ = parse_ref(ref)
        return self.services.commits.wait(repo, name, timeout)

    def squash_commit(self, ref: str) -> None:
        repo, name, _ = parse_ref(ref, default_branch=None)
        self.services.commits.squash(repo, name)

    def delete_commit(self, ref: str) -> None:
        repo, name, _ = parse_ref(ref, default_branch=None)
        self.services.commits.delete(repo, name)

    # -- files ---------------------------------------------------------------
    def modify(self, ref: str, description: str | None = None, progress: Progress | None = None
               ) -> Modification:
        """A batch of changes landing as one commit: ``with c.modify("r@master") as m: m.put_bytes(...)``."""
        target = _writable(_ref(ref))
        mod = self.services.files.modify(target.repo, target.ref, description, progress)
        mod.after_land = self._after_write
        return mod

    def put_file(self, dest: str | FileRef, source: Source, *, append: bool = False, recursive: bool = False,
                 description: str | None = None, progress: Progress | None = None) -> CommitInfo | None:
        """Put bytes, a local file, a local directory (``recursive=True``) or a stream at ``dest``.

        Returns the new commit, or None when the change was staged in an open commit.
        """
        ref = _writable(_ref(dest))
        mod = self.modify(str(ref), description, progress)
        if isinstance(source, bytes):
            mod.put_bytes(ref.path, source, append)
        elif isinstance(source, str | Path):
            path = Path(source)
            if path.is_dir():
                if not recursive:
                    raise InvalidArgument(f"{path} is a directory; pass recursive=True (-r) to put it")
                mod.put_tree(ref.path, path)
            elif path.exists():
                mod.put_file(ref.path, path, append)
            else:
                raise InvalidArgument(f"no such local file or directory: {path}")
        else:
            mod.put_stream(ref.path, source, append)
        return mod.land()

    def open(self, ref: str, mode: str = "rb") -> BinaryIO | FileWriter:
        """``rb`` streams a file (verified chunk by chunk); ``wb``/``ab`` write on close."""
        fref = _ref(ref)
        if mode == "rb":
            return self.services.files.open(fref)
        if mode in ("wb", "ab"):
            return FileWriter(self, _writable(fref), append=mode == "ab")
        raise InvalidArgument(f"unsupported mode {mode!r}: use 'rb', 'wb' or 'ab'")

    def get_file(self, ref: str, start: int = 0, end: int | None = None) -> bytes:
        """The file's bytes, or bytes ``[start, end)`` of it (clamped to its size, as a slice is)."""
        return self.services.files.read_bytes(_ref(ref), start, end)

    def iter_file(self, ref: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The file's bytes as they are read, or bytes ``[start, end)`` of it: only the chunks that hold them."""
        return self.services.files.iter_bytes(_ref(ref), start, end)

    def download(self, ref: str, dest: str | Path, progress: Progress | None = None) -> int:
        return self.services.files.download(_ref(ref), Path(dest), progress)

    def inspect_file(self, ref: str) -> FileInfo:
        return self.services.files.inspect(_ref(ref))

    def list_files(self, ref: str, limit: int | None = None, offset: int = 0) -> list[FileInfo]:
        """A directory's entries in name order; ``offset`` skips that many, ``limit`` keeps at most that many."""
        return self.services.files.list(_ref(ref), limit, offset)

    def walk_files(self, ref: str) -> Iterator[FileInfo]:
        return self.services.files.walk(_ref(ref))

    def glob_files(self, ref: str) -> list[FileInfo]:
        fref = parse_file_ref(ref.split(":", 1)[0])
        pattern = ref.split(":", 1)[1] if ":" in ref else "/"
        return self.services.files.glob(fref, pattern)

    def diff_files(self, new: str, old: str | None = None, limit: int | None = None, offset: int = 0
                   ) -> list[DiffEntry]:
        """What changed from ``old`` (default: new's parent) to ``new``, in path order; ``offset`` skips that
        many, ``limit`` keeps at most that many."""
        return self.services.files.diff(_ref(new), _ref(old) if old else None, limit, offset)

    def delete_file(self, ref: str, description: str | None = None) -> CommitInfo | None:
        fref = _writable(_ref(ref))
        if fref.path == "/" and not fref.has_path:
            raise InvalidArgument(f"{ref}: name the path to delete, e.g. {fref.repo}@{fref.ref}:/dir")
        mod = self.modify(f"{fref.repo}@{fref.ref}", description)
        mod.delete(fref.path)
        return mod.land()

    def copy_file(self, src: str, dest: str, description: str | None = None) -> CommitInfo | None:
        """Copy a file or directory by reference: no bytes are duplicated."""
        dref = _writable(_ref(dest))
        mod = self.modify(f"{dref.repo}@{dref.ref}", description)
        mod.copy(_ref(src), dref.path)
        return mod.land()

    # -- maintenance ---------------------------------------------------------
    def fsck(self, verify_chunks: bool = True, repair: bool = False) -> FsckReport:
        """Verify every commit's tree and chunks; ``repair`` rewrites bad chunks from any good stored copy."""
        return self.services.fsck(verify_chunks, repair)

    def gc(self, dry_run: bool = False, grace: float | None = None) -> GcReport:
        """Delete every object nothing refers to that is older than ``grace`` seconds (default: an hour);
        ``dry_run`` only reports. Safe while writers run (docs/decisions/0014-gc.md)."""
        if grace is None:
            return self.services.gc(dry_run)
        return self.services.gc(dry_run, grace)

    def extract(self, dest: str | Path | BinaryIO) -> ArchiveReport:
        """Write the whole store (every metadata row and every object) as one archive to a binary stream, a
        local file or an ``s3://bucket/key`` URL (docs/extract-restore.md)."""
        return self.services.extract(dest)

    def restore(self, src: str | Path | BinaryIO) -> ArchiveReport:
        """Load an archive into this store, which must be empty, then fsck it (``report.fsck``)."""
        return self.services.restore(src)
