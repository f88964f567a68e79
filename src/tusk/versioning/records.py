"""What the versioning services return: plain, serializable values."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal, NotRequired, cast, get_args

from typing_extensions import TypedDict  # (pydantic reads typing_extensions' TypedDict on Python < 3.12)

__all__ = ["BranchInfo", "CommitInfo", "CommitState", "DiffEntry", "FileInfo", "FsckProblem", "FsckReport",
           "GcReport", "InputCommit", "RepoInfo", "checked_state", "commit_state"]


CommitState = Literal["open", "finished", "failed"]


def checked_state(kind: Any, text: str, what: str) -> Any:
    """``text`` as a member of the ``Literal`` type ``kind`` (a state read back from the database). A value no
    version of Tusk writes is an error naming it here, not a surprise in a caller's ``match`` later."""
    if text not in get_args(kind):
        raise ValueError(f"unknown {what} state {text!r}: expected one of {', '.join(get_args(kind))}")
    return text


def commit_state(text: str) -> CommitState:
    return cast(CommitState, checked_state(CommitState, text, "commit"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class _Record:
    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))  # type: ignore[call-overload, no-any-return]


@dataclass(frozen=True)
class RepoInfo(_Record):
    name: str
    description: str
    created_at: datetime
    branches: list[str]
    size_bytes: int


@dataclass(frozen=True)
class BranchInfo(_Record):
    repo: str
    name: str
    head: str | None
    created_at: datetime
    trigger: str | None = None  # "staging: 10 commits or 1.0 MiB": the branch it follows and when it moves


class InputCommit(TypedDict):
    """One input commit, the one record for it everywhere: what a job read (``JobInfo.input_commits``, with the
    input's ``name``), what an output commit was computed from (``CommitInfo.provenance``; the ref store's
    ``sources``), where a datum's input came from (``DatumInput.source``). A dict, so JSON and code that index
    it read it as before."""

    repo: str
    branch: str
    commit: str
    name: NotRequired[str]  # the pipeline input's name (a job's inputs; one repo may be two inputs)


@dataclass(frozen=True)
class CommitInfo(_Record):
    id: str
    repo: str
    branch: str
    parent: str | None
    origin: str
    description: str
    state: CommitState
    size_bytes: int
    global_id: str
    author: str
    started_at: datetime
    finished_at: datetime | None
    tree: str | None
    error: str | None = None
    provenance: list[InputCommit] = field(default_factory=list)


@dataclass(frozen=True)
class FileInfo(_Record):
    path: str
    kind: str  # file | dir
    size_bytes: int
    digest: str
    chunks: int = 0


@dataclass(frozen=True)
class DiffEntry(_Record):
    path: str
    change: str  # added | deleted | modified
    old_size: int | None
    new_size: int | None


@dataclass(frozen=True)
class FsckProblem(_Record):
    commit: str
    repo: str
    path: str
    problem: str


@dataclass
class FsckReport(_Record):
    commits: int = 0
    trees: int = 0
    chunks: int = 0
    bytes_verified: int = 0
    problems: list[FsckProblem] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)  # repo@commit:/path of files a repair made whole again

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class GcReport(_Record):
    """What one ``tusk gc`` found and reclaimed (``dry_run``: would reclaim). Objects are chunks, directory
    objects, packs and ``suspect/`` flags; temporary leftovers of unfinished writes are counted apart."""

    dry_run: bool = False
    grace_seconds: float = 0.0
    generation: int | None = None  # the gc fence generation this run deleted under (None for a dry run)
    objects_scanned: int = 0
    bytes_scanned: int = 0
    objects_live: int = 0
    bytes_live: int = 0
    objects_swept: int = 0
    bytes_swept: int = 0  # reclaimed: swept objects, the dead part of rewritten packs, and temporary leftovers
    objects_young: int = 0  # unreferenced, but younger than the grace period: kept
    bytes_young: int = 0
    packs_rewritten: int = 0  # partly live packs whose live chunks were copied out before the pack was deleted
    bytes_rewritten: int = 0
    temporary_swept: int = 0
    index_rows_dropped: int = 0  # chunk-index rows of packs that are not stored
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
