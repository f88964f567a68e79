"""LocalOperations: the operations of ``tusk.Client`` run in-process, over the services.

The services are those ``settings`` name (SQLite + local objects by default, or whatever
``TUSK_DATABASE_URL`` / ``TUSK_OBJECTS_URL`` say), or ones shared with the caller (the API server's).
Jobs a write triggers run before the write returns, when ``run_jobs`` is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from tusk.config import Settings
from tusk.errors import InvalidArgument, InvalidRef
from tusk.sdk._auth import AuthMethods
from tusk.sdk._images import ImageMethods
from tusk.sdk._operations import Operations, Progress, Source, file_ref, writable
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

__all__ = ["LocalOperations"]


class LocalOperations(SecretMethods, ImageMethods, TransactionMethods, AuthMethods, Operations):
    """The operations over in-process services: opened from ``settings``, or ``services`` shared (and not
    closed here)."""

    def __init__(self, settings: Settings, run_jobs: bool = True, job_progress: JobProgress | None = None,
                 services: Services | None = None) -> None:
        super().__init__(services.settings if services is not None else settings, run_jobs, job_progress)
        self._services = services if services is not None else Services.open(settings)
        self._owns_services = services is None

    @property
    def services(self) -> Services:
        return self._services

    @property
    def remote(self) -> bool:
        return False

    @property
    def runtime_note(self) -> str | None:
        return self.services.runtime_note

    def close(self) -> None:
        if self._owns_services:
            self.services.close()

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
            return self.services.triggers.follow(repo, branch, trigger, head)
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
        target = writable(file_ref(ref))
        mod = self.services.files.modify(target.repo, target.ref, description, progress)
        mod.after_land = self._after_write
        return mod

    def put_file(self, dest: str | FileRef, source: Source, *, append: bool = False, recursive: bool = False,
                 description: str | None = None, progress: Progress | None = None) -> CommitInfo | None:
        """Put bytes, a local file, a local directory (``recursive=True``) or a stream at ``dest``.

        Returns the new commit, or None when the change was staged in an open commit.
        """
        ref = writable(file_ref(dest))
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

    def open_file(self, ref: str) -> BinaryIO:
        return self.services.files.open(file_ref(ref))

    def get_file(self, ref: str, start: int = 0, end: int | None = None) -> bytes:
        """The file's bytes, or bytes ``[start, end)`` of it (clamped to its size, as a slice is)."""
        return self.services.files.read_bytes(file_ref(ref), start, end)

    def iter_file(self, ref: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The file's bytes as they are read, or bytes ``[start, end)`` of it: only the chunks that hold them."""
        return self.services.files.iter_bytes(file_ref(ref), start, end)

    def download(self, ref: str, dest: str | Path, progress: Progress | None = None) -> int:
        return self.services.files.download(file_ref(ref), Path(dest), progress)

    def inspect_file(self, ref: str) -> FileInfo:
        return self.services.files.inspect(file_ref(ref))

    def list_files(self, ref: str, limit: int | None = None, offset: int = 0) -> list[FileInfo]:
        """A directory's entries in name order; ``offset`` skips that many, ``limit`` keeps at most that many."""
        return self.services.files.list(file_ref(ref), limit, offset)

    def walk_files(self, ref: str) -> Iterator[FileInfo]:
        return self.services.files.walk(file_ref(ref))

    def glob_files(self, ref: str) -> list[FileInfo]:
        fref = parse_file_ref(ref.split(":", 1)[0])
        pattern = ref.split(":", 1)[1] if ":" in ref else "/"
        return self.services.files.glob(fref, pattern)

    def diff_files(self, new: str, old: str | None = None, limit: int | None = None, offset: int = 0
                   ) -> list[DiffEntry]:
        """What changed from ``old`` (default: new's parent) to ``new``, in path order; ``offset`` skips that
        many, ``limit`` keeps at most that many."""
        return self.services.files.diff(file_ref(new), file_ref(old) if old else None, limit, offset)

    def delete_file(self, ref: str, description: str | None = None) -> CommitInfo | None:
        fref = writable(file_ref(ref))
        if fref.path == "/" and not fref.has_path:
            raise InvalidArgument(f"{ref}: name the path to delete, e.g. {fref.repo}@{fref.ref}:/dir")
        mod = self.modify(f"{fref.repo}@{fref.ref}", description)
        mod.delete(fref.path)
        return mod.land()

    def copy_file(self, src: str, dest: str, description: str | None = None) -> CommitInfo | None:
        """Copy a file or directory by reference: no bytes are duplicated."""
        dref = writable(file_ref(dest))
        mod = self.modify(f"{dref.repo}@{dref.ref}", description)
        mod.copy(file_ref(src), dref.path)
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
