"""The model manifest: which files make a model, their hashes, where the model came from, how it scored.

A manifest is a JSON document with an explicit format tag (``tusk-manifest:v1``).
Its identity is BLAKE3 over ``b"tusk-manifest:v1\\0"`` + the canonical JSON
(sorted keys, no whitespace, UTF-8), so the same manifest always has the same
digest. Each file carries three hashes of its raw bytes: BLAKE3 (what Tusk
checks), sha256 (what MLflow, Hugging Face and most registries use) and md5
(what DVC uses). Loading re-computes size and BLAKE3 before any byte is
deserialized; ``tusk model verify`` checks sha256 as well.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import blake3

from tusk.errors import ModelNotFound, ModelTampered

__all__ = [
    "DESCRIPTOR",
    "EXPLAINER",
    "FORMAT",
    "METRICS",
    "MLMODEL",
    "FileHashes",
    "Hasher",
    "Manifest",
    "ModelEntry",
    "flavor_of",
    "is_model_marker",
    "verify_file",
]

FORMAT = "tusk-manifest:v1"
MLMODEL = "MLmodel"  # an MLflow model directory holds this file
DESCRIPTOR = "tusk-model.yaml"  # names a Python class (``class: module.py:Name``) or overrides a flavor
METRICS = "metrics.json"
EXPLAINER = "explainer.json"  # beside a model file: its explainer (tusk.models.explainers), hashed with it

# file suffix → flavor; the flavors without a loader are still hashed, verified and promoted
_SUFFIXES = {
    ".pkl": "sklearn", ".pickle": "sklearn", ".joblib": "joblib", ".onnx": "onnx",
    ".pt": "torch", ".pth": "torch", ".safetensors": "safetensors", ".h5": "keras", ".keras": "keras",
    ".cbm": "catboost", ".ubj": "xgboost", ".xgb": "xgboost", ".lgb": "lightgbm", ".gguf": "gguf",
}

Role = Literal["model", "artifact", "metrics", "explainer"]


def flavor_of(path: str) -> str | None:
    """The flavor a single model file has by its name, or None if the name is not a model file's."""
    name = path.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    return _SUFFIXES.get(name[dot:].lower()) if dot > 0 else None


def is_model_marker(path: str) -> bool:
    """A path whose presence makes a commit a model commit (a model file, an MLmodel or a descriptor)."""
    name = path.rsplit("/", 1)[-1]
    return name in (MLMODEL, DESCRIPTOR) or flavor_of(path) is not None


_HASH_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tusk-hash")
_PARALLEL_FROM = 64 << 10  # below this, a thread hand-off costs more than the hash


class Hasher:
    """BLAKE3, sha256 and md5 of one stream of bytes, in one pass.

    hashlib and blake3 release the GIL on large buffers, so for big pieces the
    three run at once (sha256 sets the pace) instead of one after another.
    """

    def __init__(self) -> None:
        self._b3 = blake3.blake3()
        self._sha = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def update(self, data: bytes) -> None:
        if len(data) >= _PARALLEL_FROM:
            sha = _HASH_POOL.submit(self._sha.update, data)
            md5 = _HASH_POOL.submit(self._md5.update, data)
            self._b3.update(data)
            sha.result()
            md5.result()
        else:
            self._b3.update(data)
            self._sha.update(data)
            self._md5.update(data)
        self.size += len(data)

    def result(self, path: str, tusk_digest: str, role: Role) -> FileHashes:
        return FileHashes(path=path, size=self.size, blake3=self._b3.hexdigest(), sha256=self._sha.hexdigest(),
                          md5=self._md5.hexdigest(), tusk_digest=tusk_digest, role=role)


@dataclass(frozen=True)
class FileHashes:
    path: str
    size: int
    blake3: str
    sha256: str
    md5: str
    tusk_digest: str  # the file's content address in Tusk (its chunk list), used to reuse hashes across commits
    role: Role

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "blake3": self.blake3, "sha256": self.sha256,
                "md5": self.md5, "tusk_digest": self.tusk_digest, "role": self.role}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FileHashes:
        return cls(path=d["path"], size=int(d["size"]), blake3=d["blake3"], sha256=d["sha256"], md5=d["md5"],
                   tusk_digest=d["tusk_digest"], role=d["role"])


@dataclass(frozen=True)
class ModelEntry:
    """One loadable model: a file (pickle, joblib, onnx) or a directory (MLflow, Python class)."""

    path: str
    flavor: str
    files: tuple[str, ...]  # every file the model needs, all of them hashed in the manifest
    entry_point: str | None = None  # python flavor: ``module.py:ClassName``; xgboost/lightgbm: the file's name
    explainer: str | None = None  # the explainer.json that explains this model (hashed in the manifest too)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "flavor": self.flavor, "files": list(self.files),
                             "entry_point": self.entry_point}
        if self.explainer is not None:  # only when set: manifests written before explainers keep their digest
            d["explainer"] = self.explainer
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelEntry:
        return cls(path=d["path"], flavor=d["flavor"], files=tuple(d["files"]), entry_point=d.get("entry_point"),
                   explainer=d.get("explainer"))


@dataclass(frozen=True)
class Manifest:
    repo: str
    commit: str
    branch: str
    global_id: str
    created_at: str  # ISO 8601, UTC: when the commit was finished
    author: str
    origin: str  # user | auto
    models: tuple[ModelEntry, ...]
    files: tuple[FileHashes, ...]
    metrics: Mapping[str, Any] = field(default_factory=dict)  # metrics.json path → its content
    training: Mapping[str, Any] | None = None  # job, pipeline, spec version, transform, code, inputs, sources
    warnings: tuple[str, ...] = ()  # what the manifest could not make sense of (a bad descriptor, say)
    # files that are an input model's files (gathered by reference): path → {repo, commit, path, manifest}
    upstream: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "repo": self.repo, "commit": self.commit, "branch": self.branch,
            "global_id": self.global_id, "created_at": self.created_at, "author": self.author,
            "origin": self.origin, "models": [m.to_dict() for m in self.models],
            "files": [f.to_dict() for f in self.files], "metrics": dict(self.metrics),
            "training": dict(self.training) if self.training is not None else None,
            "warnings": list(self.warnings),
            "upstream": {k: dict(v) for k, v in self.upstream.items()},
        }

    def canonical(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @property
    def digest(self) -> str:
        return blake3.blake3(FORMAT.encode() + b"\0" + self.canonical()).hexdigest()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Manifest:
        if d.get("format") != FORMAT:
            raise ModelTampered(f"not a Tusk model manifest (format {d.get('format')!r}, expected {FORMAT!r})")
        return cls(repo=d["repo"], commit=d["commit"], branch=d["branch"], global_id=d["global_id"],
                   created_at=d["created_at"], author=d["author"], origin=d["origin"],
                   models=tuple(ModelEntry.from_dict(m) for m in d["models"]),
                   files=tuple(FileHashes.from_dict(f) for f in d["files"]), metrics=d.get("metrics") or {},
                   training=d.get("training"), warnings=tuple(d.get("warnings") or ()),
                   upstream=d.get("upstream") or {})

    @classmethod
    def loads(cls, text: str | bytes) -> Manifest:
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError) as e:
            raise ModelTampered(f"the model manifest is unreadable ({e}); it was altered or is not a manifest") from e

    def file(self, path: str) -> FileHashes:
        for f in self.files:
            if f.path == path:
                return f
        raise ModelTampered(f"{path} is not listed in the manifest of {self.repo}@{self.commit}")

    def model(self, path: str | None = None) -> ModelEntry:
        """The model at ``path`` or, with no path, the only model of the commit."""
        if path is None:
            if len(self.models) == 1:
                return self.models[0]
            listed = ", ".join(m.path for m in self.models)
            raise ModelNotFound(f"{self.repo}@{self.commit} holds {len(self.models)} models ({listed}); "
                                     f"name one, e.g. {self.repo}@{self.commit[:12]}:{self.models[0].path}")
        norm = "/" + path.strip("/")
        for m in self.models:
            if m.path == norm:
                return m
        listed = ", ".join(m.path for m in self.models) or "none"
        raise ModelNotFound(f"no model at {norm} in {self.repo}@{self.commit}; models: {listed}")


def verify_file(expected: FileHashes, pieces: Iterable[bytes | memoryview], sha256: bool = False) -> None:
    """Hash the file's bytes as they arrive, in order; ModelTampered, naming the file, unless they are what the
    manifest says. A caller deserializes nothing before this returns.

    Loading checks size and BLAKE3 (multithreaded for large files); ``sha256``
    (``tusk model verify``) checks the second hash too, at sha256's speed.
    """
    b3 = blake3.blake3(max_threads=blake3.blake3.AUTO if expected.size > (8 << 20) else 1)
    sha = hashlib.sha256() if sha256 else None
    size = 0
    for piece in pieces:
        b3.update(piece)
        if sha is not None:
            sha.update(piece)
        size += len(piece)
    got_b3 = b3.hexdigest()
    ok = size == expected.size and got_b3 == expected.blake3
    if ok and sha is not None:
        ok = sha.hexdigest() == expected.sha256
    if not ok:
        raise ModelTampered(
            f"model file {expected.path} does not match its manifest (expected {expected.size} bytes, blake3 "
            f"{expected.blake3[:16]}…; found {size} bytes, blake3 {got_b3[:16]}…): refusing to load it. "
            "Restore the file or load a commit whose manifest matches")
