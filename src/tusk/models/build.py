"""Build the manifest of a commit: find its model files, hash them, read its metrics, trace its training.

The cost follows the change, as a commit's does: with a parent manifest, only the
files the commit changed are hashed (unchanged files keep their hashes, matched
by content address), and a commit to a repo that holds no model costs one tree
diff.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from sqlalchemy.orm import Session

from tusk.models.manifest import (
    DESCRIPTOR,
    EXPLAINER,
    METRICS,
    MLMODEL,
    FileHashes,
    Hasher,
    Manifest,
    ModelEntry,
    flavor_of,
    is_model_marker,
)
from tusk.storage.metadata import (
    JobRow,
    ModelManifestRow,
    PipelineRow,
    PipelineVersionRow,
    RepoRow,
)
from tusk.versioning import refstore
from tusk.versioning.context import Context
from tusk.versioning.refstore import CommitRef
from tusk.versioning.trees import EMPTY_TREE, Entry

__all__ = ["build_manifest"]

_MAX_METRICS_BYTES = 1 << 20
_FILE_FLAVORS = ("xgboost", "lightgbm")  # a descriptor may name one of these flavors' save file
_FILE_DESCRIPTOR_KEYS = ("flavor", "file")  # tusk-model.yaml naming a booster's save file
_CLASS_DESCRIPTOR_KEYS = ("class", "flavor")  # tusk-model.yaml naming a Python class
_MAX_SOURCES_DEPTH = 64


def _dirname(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def _under(path: str, directory: str) -> bool:
    return directory == "/" or path.startswith(directory.rstrip("/") + "/")


class _Scan:
    """The model-relevant files of one tree: model files, model directories, descriptors and metrics."""

    def __init__(self, ctx: Context, root: str) -> None:
        self.ctx = ctx
        self.root = root
        self.entries: dict[str, Entry] = {}
        self.warnings: list[str] = []

    def add(self, path: str) -> None:
        entry = self.ctx.trees.lookup(self.root, path)
        if entry is not None and entry.kind == "file":
            self.entries[path] = entry

    def add_dir(self, directory: str) -> None:
        for path, entry in self.ctx.trees.walk(self.root, directory):
            self.entries[path] = entry

    def read(self, path: str, limit: int) -> bytes | None:
        entry = self.entries.get(path)
        if entry is None or entry.file is None or entry.size > limit:
            return None
        return b"".join(self.ctx.content.iter_bytes(entry.file, path))

    def models(self) -> list[ModelEntry]:
        """Directories with an MLmodel or a descriptor are one model each; other model files are one each."""
        dirs: dict[str, ModelEntry] = {}
        for path in sorted(p for p in self.entries if p.rsplit("/", 1)[-1] == MLMODEL):
            directory = _dirname(path)
            self.add_dir(directory)
            dirs[directory] = ModelEntry(directory, "mlflow", ())
        for path in sorted(p for p in self.entries if p.rsplit("/", 1)[-1] == DESCRIPTOR):
            directory = _dirname(path)
            model = self._described(path, directory)
            if model is not None:
                dirs[directory] = model
        models = []
        for directory, model in dirs.items():
            files = tuple(sorted(p for p in self.entries if _under(p, directory)
                                 and p.rsplit("/", 1)[-1] != METRICS))
            models.append(ModelEntry(model.path, model.flavor, files, model.entry_point))
        for path in sorted(self.entries):
            flavor = flavor_of(path)
            if flavor is not None and not any(_under(path, d) for d in dirs):
                models.append(ModelEntry(path, flavor, (path,)))
        return self._explained(sorted(models, key=lambda m: m.path))

    def _explained(self, models: list[ModelEntry]) -> list[ModelEntry]:
        """Link each ``explainer.json`` to the model it explains: a directory model's own, or the model file
        beside it that its ``model`` field names (or the only model file in its directory)."""
        linked = {m.path: m for m in models}
        for path in sorted(p for p in self.entries if p.rsplit("/", 1)[-1] == EXPLAINER):
            directory = _dirname(path)
            if directory in linked and path in linked[directory].files:  # a directory model's own
                target = linked[directory]
            else:
                beside = [m for m in models if len(m.files) == 1 and m.files[0] == m.path
                          and _dirname(m.path) == directory]
                try:
                    named = json.loads(self.read(path, _MAX_METRICS_BYTES) or b"{}").get("model")
                except (ValueError, AttributeError):
                    named = None
                if isinstance(named, str):
                    beside = [m for m in beside if m.path.rsplit("/", 1)[-1] == named]
                if len(beside) != 1:
                    self.warnings.append(f"{path}: explains no model (its `model` names {named!r}; model files "
                                         f"beside it: {len(beside)}); ignored")
                    continue
                target = beside[0]
            linked[target.path] = ModelEntry(target.path, target.flavor, target.files, target.entry_point, path)
        return [linked[m.path] for m in models]

    def _described(self, path: str, directory: str) -> ModelEntry | None:
        raw = self.read(path, _MAX_METRICS_BYTES)
        try:
            doc = yaml.safe_load(raw or b"") or {}
        except yaml.YAMLError as e:
            self.warnings.append(f"{path}: not valid YAML ({e}); ignored")
            return None
        if isinstance(doc, dict) and doc.get("flavor") in _FILE_FLAVORS and "class" not in doc:
            self._unknown_keys(path, doc, _FILE_DESCRIPTOR_KEYS)
            return self._described_file(path, directory, str(doc["flavor"]), doc.get("file"))
        if not isinstance(doc, dict) or not isinstance(doc.get("class"), str) or ":" not in doc["class"]:
            self.warnings.append(f"{path}: expected `class: module.py:ClassName` (or `flavor: xgboost|lightgbm` "
                                 "with `file: NAME`); ignored")
            return None
        self._unknown_keys(path, doc, _CLASS_DESCRIPTOR_KEYS)
        module = doc["class"].split(":", 1)[0]
        if module.startswith("/") or ".." in module.split("/") or not module.endswith(".py"):
            self.warnings.append(f"{path}: {module!r} must be a .py file inside the model's directory; ignored")
            return None
        self.add_dir(directory)  # the class may read any file beside it (weights, a reference, ...)
        module_path = f"{directory.rstrip('/')}/{module}"
        self.add(module_path)
        if module_path not in self.entries:
            self.warnings.append(f"{path}: names {module}, which is not in the commit")
        flavor = str(doc.get("flavor", "python"))
        return ModelEntry(directory, flavor, (), doc["class"])

    def _unknown_keys(self, path: str, doc: dict[str, Any], known: tuple[str, ...]) -> None:
        """A descriptor key Tusk does not read is named, not silently ignored (a typo like ``fille:``)."""
        unknown = sorted(str(k) for k in doc if k not in known)
        if unknown:
            self.warnings.append(f"{path}: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not read "
                                 f"(a descriptor has {', '.join(known)}); ignored")

    def _described_file(self, path: str, directory: str, flavor: str, file: object) -> ModelEntry | None:
        """A descriptor naming a booster's own save file (``flavor: xgboost``, ``file: model.json``): names like
        ``model.json`` or ``model.txt`` say nothing of a flavor, so the descriptor does."""
        if not isinstance(file, str) or not file or file.startswith("/") or ".." in file.split("/"):
            self.warnings.append(f"{path}: a {flavor} descriptor names its model file inside the directory "
                                 "(`file: model.json`); ignored")
            return None
        self.add_dir(directory)
        if f"{directory.rstrip('/')}/{file}" not in self.entries:
            self.warnings.append(f"{path}: names {file}, which is not in the commit")
        return ModelEntry(directory, flavor, (), file)


def _hash(ctx: Context, path: str, entry: Entry, role: Any, reuse: dict[str, FileHashes]) -> FileHashes:
    known = reuse.get(entry.digest)
    if known is not None:
        return FileHashes(path, known.size, known.blake3, known.sha256, known.md5, entry.digest, role)
    hasher = Hasher()
    assert entry.file is not None
    for chunk in ctx.content.iter_bytes(entry.file, path):
        hasher.update(chunk)
    return hasher.result(path, entry.digest, role)


def _metrics(scan: _Scan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in sorted(p for p in scan.entries if p.rsplit("/", 1)[-1] == METRICS):
        raw = scan.read(path, _MAX_METRICS_BYTES)
        if raw is None:
            out[path] = {"error": f"larger than {_MAX_METRICS_BYTES} bytes; not read"}
            continue
        try:
            out[path] = json.loads(raw)
        except ValueError as e:
            out[path] = {"error": f"not valid JSON: {e}"}
    return out


def _sources(s: Session, commit_id: str) -> list[dict[str, str]]:
    """The user commits at the root of the provenance graph: the raw data a model was trained from."""
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    frontier = [commit_id]
    for _ in range(_MAX_SOURCES_DEPTH):
        nxt: list[str] = []
        for cid in frontier:
            for p in refstore.sources(s, cid):
                if p["commit"] in seen:
                    continue
                seen.add(p["commit"])
                row = refstore.commit(s, p["commit"])
                if row is not None and row.origin == "user":
                    out.append({"repo": p["repo"], "branch": p["branch"], "commit": p["commit"]})
                else:
                    nxt.append(p["commit"])
        if not nxt:
            break
        frontier = nxt
    return sorted(out, key=lambda d: (d["repo"], d["commit"]))


def _training(s: Session, row: CommitRef) -> dict[str, Any] | None:
    if row.job_id is None:
        return None
    job = s.get(JobRow, row.job_id)
    if job is None:
        return None
    pipeline = s.get(PipelineRow, job.pipeline_id)
    version = s.get(PipelineVersionRow, (job.pipeline_id, job.pipeline_version))
    spec = json.loads(version.spec_json) if version is not None else {}
    transform = spec.get("transform", {})
    return {
        "job": job.id,
        "pipeline": pipeline.name if pipeline is not None else None,
        "pipeline_version": job.pipeline_version,
        "transform": {k: transform.get(k) for k in ("cmd", "stdin", "env", "image", "working_dir")},
        "code": json.loads(version.code_info) if version is not None and version.code_info else None,
        "inputs": json.loads(job.input_commits),
        "sources": _sources(s, row.id),
    }


def _upstream(s: Session, training: dict[str, Any] | None, files: list[FileHashes]) -> dict[str, dict[str, str]]:
    """Files that are byte-for-byte an input model's files: where each came from, and that model's manifest."""
    if not training:
        return {}
    known: dict[str, dict[str, str]] = {}
    for inp in training.get("inputs", []):
        row = s.get(ModelManifestRow, inp.get("commit") or "")
        if row is None:
            continue
        source = Manifest.loads(row.body)
        for f in source.files:
            known.setdefault(f.tusk_digest, {"repo": source.repo, "commit": source.commit, "path": f.path,
                                             "manifest": row.digest})
    return {f.path: known[f.tusk_digest] for f in files if f.role in ("model", "explainer")
            and f.tusk_digest in known}


def _relevant(path: str) -> bool:
    """A path a manifest looks at: a model marker, or a metrics file."""
    return is_model_marker(path) or path.rsplit("/", 1)[-1] in (METRICS, EXPLAINER)


def build_manifest(ctx: Context, s: Session, row: CommitRef, parent: Manifest | None, full: bool = False
                   ) -> Manifest | None:
    """The manifest of a finished commit, or None when the commit holds no model.

    Without a parent manifest, the tree is searched only if the change touched
    a model file, or if ``full`` (a manifest asked for by hand).
    """
    root: str = row.tree_digest or EMPTY_TREE
    parent_root: str = EMPTY_TREE
    if row.parent_id is not None:
        parent_row = refstore.commit(s, row.parent_id)
        parent_root = (parent_row.tree_digest if parent_row is not None else None) or EMPTY_TREE
    changed = [path for path, _old, _new in ctx.trees.diff(parent_root, root)]
    scan = _Scan(ctx, root)
    if parent is not None:
        for f in parent.files:
            scan.add(f.path)
        tracked_dirs = [m.path for m in parent.models if m.flavor == "mlflow" or m.entry_point]
        for path in changed:
            if _relevant(path) or any(_under(path, d) for d in tracked_dirs):
                scan.add(path)
    elif full or any(_relevant(path) for path in changed):
        for path, _entry in ctx.trees.walk(root):  # the first model commit of this branch: look everywhere
            if _relevant(path):
                scan.add(path)
    else:
        return None
    models = scan.models()
    if not models:
        return None
    reuse = {f.tusk_digest: f for f in parent.files} if parent is not None else {}
    model_files = {p for m in models for p in m.files}
    explainers = {m.explainer for m in models if m.explainer}
    files = []
    for path in sorted(scan.entries):
        name = path.rsplit("/", 1)[-1]
        role: Any = ("model" if path in model_files else "explainer" if path in explainers
                     else "metrics" if name == METRICS else "artifact")
        files.append(_hash(ctx, path, scan.entries[path], role, reuse))
    repo = s.get(RepoRow, row.repo_id)
    training = _training(s, row)
    return Manifest(
        repo=repo.name if repo is not None else "?", commit=row.id, branch=row.branch, global_id=row.commit_set_id,
        created_at=(row.finished_at or row.started_at).isoformat(), author=row.author, origin=row.origin,
        models=tuple(models), files=tuple(files), metrics=_metrics(scan), training=training,
        warnings=tuple(scan.warnings), upstream=_upstream(s, training, files),
    )
