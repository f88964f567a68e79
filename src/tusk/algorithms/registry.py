"""Algorithms: versioned Python functions or models, published as ``owner/name/X.Y.Z`` and called with ``.pipe``.

A directory with an ``algorithm.yaml`` is an algorithm::

    entrypoint: clean.py:apply          # apply(input) or apply(input, ctx); or, instead:
    model: census-model@production:/income/model.joblib   # pinned to its commit at publish time
    description: ...
    permissions:
      call: [demo/normalize, "demo/tokenize/1.*"]        # fnmatch patterns on owner/name[/version]
    cache: true                         # memoize results by input hash

``tusk algo publish DIR owner/name --version 1.2.0`` stores the directory in
the ``algorithms`` repo under ``/owner/name/1.2.0/`` (one commit per publish;
a version is never overwritten) and records the version. A call resolves
``1.2.0`` exactly, ``1.2`` to the newest 1.2.x, ``1`` to the newest 1.x,
``latest`` (or nothing) to the newest of all.

A function algorithm runs in a warm process of its own, in the pipelines'
sandbox (``tusk.algorithms.process``): the server never imports its code,
and the code reaches nothing of the store. It calls another algorithm through
``ctx.algo("owner/name/1").pipe(x)``, which the server decides: only if its
``permissions.call`` names it (anything else is PermissionDenied), and only
with the rights of whoever made the outer call (``authorize``).
Errors are typed: InputError (400) for input the algorithm refuses,
AlgorithmError (500, with the algorithm's stack trace) when its code raises,
AlgorithmNotFound (404), PermissionDenied (403).
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import blake3
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import select

from tusk.algorithms.process import AlgorithmProcess
from tusk.config import Limits
from tusk.documents import describe_validation_error, parse_documents
from tusk.errors import (
    AlgorithmError,
    AlgorithmNotFound,
    AlreadyExists,
    InputError,
    InvalidArgument,
    PermissionDenied,
    TuskError,
)
from tusk.models.loaders import LoadedModel
from tusk.models.registry import ModelService
from tusk.serving.tensors import rows_from_json
from tusk.storage.metadata import AlgorithmVersionRow
from tusk.versioning.commits import CommitService
from tusk.versioning.context import Context, _aware, now
from tusk.versioning.files import FileService
from tusk.versioning.refs import FileRef, parse_file_ref
from tusk.versioning.repos import RepoService

__all__ = ["AlgoResponse", "AlgorithmHandle", "AlgorithmService", "AlgorithmSpec", "AlgorithmVersion", "Authorize",
           "read_descriptor"]

REPO = "algorithms"
DESCRIPTOR = "algorithm.yaml"
MAX_DEPTH = 16
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_ENTRY = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_./-]*\.py):([A-Za-z_][A-Za-z0-9_]*)$")


class Permissions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    call: list[str] = Field(default_factory=list)


class AlgorithmSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    entrypoint: str | None = Field(default=None, pattern=_ENTRY.pattern)
    model: str | None = None
    description: str = ""
    permissions: Permissions = Field(default_factory=Permissions)
    cache: bool = False
    cache_size: int = Field(default=1024, ge=1)

    @model_validator(mode="after")
    def _one_kind(self) -> AlgorithmSpec:
        if (self.entrypoint is None) == (self.model is None):
            raise ValueError("name exactly one of entrypoint (file.py:function) and model (repo@ref:/path)")
        return self


@dataclass(frozen=True)
class AlgorithmVersion:
    owner: str
    name: str
    version: str
    commit: str
    spec: AlgorithmSpec
    actor: str
    created_at: datetime

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}/{self.version}"

    @property
    def prefix(self) -> str:
        return f"/{self.owner}/{self.name}/{self.version}"


@dataclass(frozen=True)
class AlgoResponse:
    result: Any
    metadata: dict[str, Any]


def _split(ref: str) -> tuple[str, str, str | None]:
    parts = ref.strip("/").split("/")
    if len(parts) not in (2, 3) or not all(_PART.match(p) for p in parts[:2]):
        raise InvalidArgument(f"invalid algorithm {ref!r}: use owner/name or owner/name/version "
                              "(letters, digits, '_' and '-')")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def _version_key(v: str) -> tuple[int, int, int]:
    m = _VERSION.match(v)
    if not m:
        raise InvalidArgument(f"invalid version {v!r}: use X.Y.Z, e.g. 1.2.0")
    return int(m[1]), int(m[2]), int(m[3])


def _matches(wanted: str | None, key: tuple[int, int, int]) -> bool:
    """``None``/latest: any; ``1``: 1.x.y; ``1.2``: 1.2.x; ``1.2.3``: exactly."""
    if wanted in (None, "latest"):
        return True
    assert wanted is not None
    parts = wanted.split(".")
    if len(parts) > 3 or not all(p.isdigit() for p in parts):
        raise InvalidArgument(f"invalid version {wanted!r}: use X.Y.Z, X.Y, X or latest")
    return all(int(p) == k for p, k in zip(parts, key, strict=False))


class AlgorithmHandle:
    """What ``client.algo(ref)`` returns: ``.pipe(x)`` calls the algorithm."""

    def __init__(self, service: AlgorithmService, ref: str, caller: AlgorithmVersion | None = None,
                 depth: int = 0) -> None:
        self._service = service
        self.ref = ref
        self._caller = caller
        self._depth = depth

    def pipe(self, data: Any) -> AlgoResponse:
        return self._service.call(self.ref, data, caller=self._caller, depth=self._depth)

    def __repr__(self) -> str:
        return f"<algorithm {self.ref}>"


# Checks a right on a resource (``algorithm/<owner>/<name>``, a repo), raising PermissionDenied or a NotFound:
# (resource, role, user), where user None is whoever made the outer call. None: nothing to check (embedded use,
# serving without auth).
Authorize = Callable[[str, str, str | None], None]


@dataclass
class _Loaded:
    version: AlgorithmVersion
    process: AlgorithmProcess | None
    model: LoadedModel | None
    cache: OrderedDict[str, Any] = field(default_factory=OrderedDict)


class AlgorithmService:
    def __init__(self, ctx: Context, commits: CommitService, repos: RepoService, files: FileService,
                 models: ModelService, scratch: Path, env: dict[str, str] | None = None,
                 limits: Limits | None = None) -> None:
        self.ctx = ctx
        self.commits = commits
        self.repos = repos
        self.files = files
        self.models = models
        self.scratch = scratch / "algorithms"
        self.env = dict(env or {})
        self.limits = limits
        self._loaded: dict[str, _Loaded] = {}
        self._lock = threading.RLock()
        self.denials = 0  # nested calls refused by permissions.call or by the caller's rights

    # -- publishing ------------------------------------------------------------
    def publish(self, directory: Path, name: str, version: str) -> AlgorithmVersion:
        owner, algo, extra = _split(name)
        if extra is not None:
            raise InvalidArgument(f"give the version with --version, not in the name ({name})")
        major, minor, patch = _version_key(version)
        spec = read_descriptor(directory)
        if spec.entrypoint is not None:
            file = spec.entrypoint.split(":", 1)[0]
            target = (directory / file).resolve()
            if not target.is_relative_to(directory.resolve()) or not target.is_file():
                raise InvalidArgument(f"{DESCRIPTOR}: entrypoint file {file} is not inside {directory}")
        if spec.model is not None:  # pin to the commit it names now: a version never changes behaviour
            ref = parse_file_ref(spec.model, default_branch=None)
            manifest = self.models.manifest(spec.model)
            manifest.model(ref.path if ref.has_path else None)
            spec = spec.model_copy(update={"model": str(FileRef(ref.repo, manifest.commit, 0, ref.path,
                                                                   ref.has_path))})
        with self.ctx.db.read() as s:
            if s.scalar(select(AlgorithmVersionRow.id).where(
                    AlgorithmVersionRow.owner == owner, AlgorithmVersionRow.name == algo,
                    AlgorithmVersionRow.major == major, AlgorithmVersionRow.minor == minor,
                    AlgorithmVersionRow.patch == patch)) is not None:
                raise AlreadyExists(f"{owner}/{algo}/{version} is already published; versions are immutable, "
                                    "publish a new one")
        with contextlib.suppress(AlreadyExists):
            self.repos.create(REPO, "published algorithms: /owner/name/version/")
        prefix = f"/{owner}/{algo}/{version}"
        mod = self.files.modify(REPO, "master")
        mod.put_tree(prefix, directory)  # chunks stored now; a commit of its own (never staged into an open one)
        commit = self.commits.land(REPO, "master", mod.ops, description=f"publish {owner}/{algo}/{version}").id
        try:
            with self.ctx.db.write() as s:
                s.add(AlgorithmVersionRow(owner=owner, name=algo, major=major, minor=minor, patch=patch,
                                          commit_id=commit, spec=spec.model_dump_json(), actor=self.ctx.user,
                                          created_at=now()))
        except Exception as exc:  # a concurrent publish of the same version won the unique constraint
            raise AlreadyExists(f"{owner}/{algo}/{version} is already published") from exc
        return self.resolve(f"{owner}/{algo}/{version}")

    # -- finding ---------------------------------------------------------------
    @staticmethod
    def _version(row: AlgorithmVersionRow) -> AlgorithmVersion:
        return AlgorithmVersion(row.owner, row.name, f"{row.major}.{row.minor}.{row.patch}", row.commit_id,
                                AlgorithmSpec.model_validate_json(row.spec), row.actor, _aware(row.created_at))

    def list(self, name: str | None = None) -> list[AlgorithmVersion]:
        """Published versions, by name then newest version first."""
        with self.ctx.db.read() as s:
            q = select(AlgorithmVersionRow)
            if name is not None:
                owner, algo, _ = _split(name) if "/" in name else (name, None, None)
                q = q.where(AlgorithmVersionRow.owner == owner)
                if algo is not None:
                    q = q.where(AlgorithmVersionRow.name == algo)
            rows = [self._version(r) for r in s.scalars(q)]
        return sorted(rows, key=lambda v: (v.owner, v.name, tuple(-k for k in _version_key(v.version))))

    def resolve(self, ref: str) -> AlgorithmVersion:
        owner, algo, wanted = _split(ref)
        with self.ctx.db.read() as s:
            rows = list(s.scalars(select(AlgorithmVersionRow).where(AlgorithmVersionRow.owner == owner,
                                                                    AlgorithmVersionRow.name == algo)))
        if not rows:
            raise AlgorithmNotFound(f"no algorithm {owner}/{algo} is published")
        fitting = [r for r in rows if _matches(wanted, (r.major, r.minor, r.patch))]
        if not fitting:
            have = ", ".join(sorted((f"{r.major}.{r.minor}.{r.patch}" for r in rows), key=_version_key))
            raise AlgorithmNotFound(f"{owner}/{algo} has no version matching {wanted} (published: {have})")
        return self._version(max(fitting, key=lambda r: (r.major, r.minor, r.patch)))

    # -- calling ---------------------------------------------------------------
    def algo(self, ref: str) -> AlgorithmHandle:
        return AlgorithmHandle(self, ref)

    def call(self, ref: str, data: Any, caller: AlgorithmVersion | None = None, depth: int = 0,
             authorize: Authorize | None = None) -> AlgoResponse:
        """Call ``ref``; ``caller`` is the algorithm making a nested call, ``authorize`` the outer caller's rights."""
        started = time.perf_counter()
        if depth > MAX_DEPTH:
            raise AlgorithmError(f"algorithm calls nest deeper than {MAX_DEPTH} levels (a cycle?) at {ref}")
        version = self.resolve(ref)
        if caller is not None:
            allowed = caller.spec.permissions.call
            names = (f"{version.owner}/{version.name}", version.full_name)
            if not any(fnmatch.fnmatchcase(n, pattern) for pattern in allowed for n in names):
                self.denials += 1
                raise PermissionDenied(
                    f"{caller.full_name} may not call {version.full_name}: add it to permissions.call in its "
                    f"{DESCRIPTOR} (it allows: {', '.join(allowed) or 'nothing'})")
            if authorize is not None:
                try:
                    authorize(f"algorithm/{version.owner}/{version.name}", "reader", None)
                except TuskError:
                    self.denials += 1
                    raise
        if authorize is not None and version.spec.model is not None:
            # the algorithm reads its model with its publisher's rights, as they are now
            authorize(parse_file_ref(version.spec.model, default_branch=None).repo, "reader", version.actor)
        loaded = self._load(version)
        key = self._cache_key(version, data) if version.spec.cache else None
        if key is not None:
            with self._lock:
                if key in loaded.cache:
                    loaded.cache.move_to_end(key)
                    return AlgoResponse(loaded.cache[key], self._metadata(version, started, cached=True))
        result = self._run(loaded, data, depth, authorize)
        if key is not None:
            with self._lock:
                loaded.cache[key] = result
                while len(loaded.cache) > version.spec.cache_size:
                    loaded.cache.popitem(last=False)
        return AlgoResponse(result, self._metadata(version, started, cached=False))

    @staticmethod
    def _metadata(version: AlgorithmVersion, started: float, cached: bool) -> dict[str, Any]:
        return {"algorithm": f"{version.owner}/{version.name}", "version": version.version,
                "commit": version.commit, "duration": round(time.perf_counter() - started, 6), "cached": cached}

    @staticmethod
    def _cache_key(version: AlgorithmVersion, data: Any) -> str | None:
        try:
            body = data if isinstance(data, bytes) else orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return None  # not hashable as JSON: not cached
        return blake3.blake3(version.full_name.encode() + b"\0" + version.commit.encode() + b"\0" + body).hexdigest()

    def _run(self, loaded: _Loaded, data: Any, depth: int, authorize: Authorize | None) -> Any:
        version = loaded.version
        if loaded.process is None:  # a model algorithm
            assert loaded.model is not None
            return _predict(loaded.model, data, version.full_name)

        def nested(ref: str, inner: Any) -> tuple[Any, dict[str, Any]]:
            response = self.call(ref, inner, caller=version, depth=depth + 1, authorize=authorize)
            return response.result, response.metadata

        return loaded.process.call(data, nested)

    def _load(self, version: AlgorithmVersion) -> _Loaded:
        key = f"{version.full_name}@{version.commit}"
        with self._lock:
            loaded = self._loaded.get(key)
            if loaded is not None:
                return loaded
            model = self.models.load(version.spec.model) if version.spec.model else None
            process = None
            if version.spec.entrypoint is not None:
                directory = self.scratch / version.commit / version.owner / version.name / version.version
                if not (directory / DESCRIPTOR).exists():
                    self.files.download(FileRef(REPO, version.commit, 0, version.prefix, True), directory)
                process = AlgorithmProcess(directory, version.spec.entrypoint, version.full_name, self.env,
                                           self.limits)
            loaded = self._loaded[key] = _Loaded(version, process, model)
            return loaded

    def close(self) -> None:
        """Stop the algorithms' processes."""
        with self._lock:
            for loaded in self._loaded.values():
                if loaded.process is not None:
                    loaded.process.close()
            self._loaded.clear()


def read_descriptor(directory: Path) -> AlgorithmSpec:
    """The directory's ``algorithm.yaml``, validated (errors name the field)."""
    path = directory / DESCRIPTOR
    if not path.is_file():
        raise InvalidArgument(f"{directory} has no {DESCRIPTOR} (entrypoint: file.py:function, or model: ref)")
    docs = parse_documents(path.read_text(), True, f" in {path}")
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise InvalidArgument(f"{path}: expected one mapping")
    try:
        return AlgorithmSpec.model_validate(docs[0])
    except ValidationError as exc:
        raise InvalidArgument(describe_validation_error(exc, "algorithm descriptor", f" in {path}")) from None


def _predict(model: LoadedModel, data: Any, name: str) -> Any:
    """A model algorithm's input: a list of records (objects), a list of rows, or {column: [values]}."""
    rows = rows_from_json(data, f"{name} input")
    names = model.feature_names
    rows.check(names, model.n_features)
    try:
        return model.predict(rows.model_input(names)).tolist()
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise InputError(f"{name}: the model rejected the input: {exc}") from exc
