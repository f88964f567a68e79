"""The model registry view: manifests of model commits, promotion and rollback by branch, verified loading.

There is no separate registry store and no fixed lifecycle: a model is a commit
in a repo, its manifest is written when the commit lands, and its stages are
branches (``staging``, ``production``, or any name). Promotion and rollback
are branch moves, recorded with who, when and why, and they trigger the
pipelines that read the branch, as any branch move does.
"""

from __future__ import annotations

import builtins
import json
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tusk.errors import Conflict, InvalidArgument, ModelNotFound, ModelTampered
from tusk.ids import validate_branch_name
from tusk.models.build import build_manifest
from tusk.models.loaders import FileBytes, LoadedModel, load_model
from tusk.models.local import MANIFEST_FILE
from tusk.models.manifest import Manifest, verify_file
from tusk.models.records import BranchMove, ModelInfo
from tusk.storage.buffers import MAPPED_FROM, allocate
from tusk.storage.metadata import ModelManifestRow
from tusk.versioning import refstore
from tusk.versioning.branches import BranchService
from tusk.versioning.commits import CommitService
from tusk.versioning.context import Context, now
from tusk.versioning.records import CommitInfo
from tusk.versioning.refs import parse_file_ref

__all__ = ["MOVE_NOTE_MAX", "ModelService", "check_move_note", "metrics_summary"]

MOVE_NOTE_MAX = 1000  # characters in the note of a promotion or rollback (a sentence or two, not a document)
# Shown as they are in tables and pages: nothing that breaks a line or reorders the text around it.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_move_note(note: str | None) -> str | None:
    """The note of a promotion or rollback, trimmed (None when blank); InvalidArgument if it is too long or holds
    a control character (a newline, a tab, a terminal escape, a bidirectional override)."""
    if note is None or not note.strip():
        return None
    note = note.strip()
    if len(note) > MOVE_NOTE_MAX:
        raise InvalidArgument(f"the reason (note) given is {len(note)} characters long; "
                              f"keep it to {MOVE_NOTE_MAX} or fewer")
    for i, ch in enumerate(note):
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI_CONTROLS:
            raise InvalidArgument(f"the reason (note) given has a control character (U+{ord(ch):04X}) at "
                                  f"position {i + 1}: write it as one line of plain text")
    return note


def metrics_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The numeric top-level metrics, prefixed by their directory when a commit has several metrics files."""
    out: dict[str, Any] = {}
    for path, doc in sorted(metrics.items()):
        if not isinstance(doc, dict):
            continue
        prefix = "" if len(metrics) == 1 else path.rsplit("/", 1)[0].strip("/").replace("/", ".")
        for key, value in doc.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[f"{prefix}.{key}" if prefix else key] = value
    return out


class ModelService:
    def __init__(self, ctx: Context, commits: CommitService, branches: BranchService) -> None:
        self.ctx = ctx
        self.commits = commits
        self.branches = branches

    # -- manifests -------------------------------------------------------------
    def on_commit(self, commit: CommitInfo, moved: bool = False) -> None:
        """Write the manifest of a commit that holds model files, as it lands (a branch move changes no file)."""
        if moved or commit.state != "finished":
            return
        self._ensure(commit.id, full=False)

    def _stored(self, s: Session, commit_id: str) -> Manifest | None:
        row = s.get(ModelManifestRow, commit_id)
        return Manifest.loads(row.body) if row is not None else None

    def _ensure(self, commit_id: str, full: bool) -> Manifest | None:
        """The commit's manifest, built and stored if missing. Hashing happens outside any write transaction
        (a large model takes seconds); only the insert takes the write lock."""
        with self.ctx.db.read() as s:
            row = refstore.CommitRef.of(self.ctx.commit_row(s, commit_id))
            existing = self._stored(s, row.id)
            if existing is not None or row.state != "finished":
                return existing
            parent = self._stored(s, row.parent_id) if row.parent_id else None
            manifest = build_manifest(self.ctx, s, row, parent, full=full)
            repo_id = row.repo_id
        if manifest is None:
            return None
        with self.ctx.db.write() as s:
            s.execute(self.ctx.db.insert(ModelManifestRow).values(  # two processes may build it at once
                commit_id=commit_id, repo_id=repo_id, digest=manifest.digest, body=manifest.canonical().decode(),
                created_at=now()).on_conflict_do_nothing(index_elements=["commit_id"]))
            return self._stored(s, commit_id)

    def _resolve(self, s: Session, ref: str) -> tuple[refstore.CommitRef, str | None]:
        """``repo@ref[:/path]`` → the commit and the model path, if one was named."""
        fref = parse_file_ref(ref)
        row = refstore.resolve(s, self.ctx.repo_row(s, fref.repo), fref.ref, fref.ancestry)
        return row, fref.path if fref.has_path else None

    def manifest(self, ref: str) -> Manifest:
        """The manifest of ``repo@ref``; built now if the commit predates manifests."""
        return self._resolved(ref)[0]

    def _resolved(self, ref: str) -> tuple[Manifest, str, str | None]:
        """(manifest, tree, model path): the ref is resolved once, so a branch moving meanwhile cannot mix commits."""
        with self.ctx.db.read() as s:
            row, path = self._resolve(s, ref)
            commit_id, tree = row.id, row.tree_digest or ""
            manifest = self._stored(s, commit_id)
        if manifest is not None:
            return manifest, tree, path
        manifest = self._ensure(commit_id, full=True)
        if manifest is None:
            raise ModelNotFound(
                f"commit {commit_id} of {ref.split('@', 1)[0]} holds no model file (*.pkl, *.joblib, *.onnx, an "
                "MLflow MLmodel directory, or a tusk-model.yaml); nothing to load or promote")
        return manifest, tree, path

    def list(self, repo: str | None = None, limit: int | None = None) -> builtins.list[ModelInfo]:
        """Model commits, newest first, with the branches that point at them."""
        with self.ctx.db.read() as s:
            q = select(ModelManifestRow).order_by(ModelManifestRow.created_at.desc())
            if repo is not None:
                q = q.where(ModelManifestRow.repo_id == self.ctx.repo_row(s, repo).id)
            rows = list(s.scalars(q.limit(limit) if limit else q))
            heads = refstore.branches_at(s, [r.commit_id for r in rows])
            return [self._info(Manifest.loads(r.body), r.digest, heads.get(r.commit_id, [])) for r in rows]

    @staticmethod
    def _info(m: Manifest, digest: str, aliases: builtins.list[str]) -> ModelInfo:
        return ModelInfo(
            repo=m.repo, commit=m.commit, branch=m.branch, aliases=aliases,
            models=[f"{e.path} ({e.flavor})" for e in m.models], created_at=datetime.fromisoformat(m.created_at),
            pipeline=(m.training or {}).get("pipeline"), global_id=m.global_id, manifest_digest=digest,
            metrics=metrics_summary(dict(m.metrics)),
        )

    # -- verification and loading ---------------------------------------------
    def read_verified(self, ref: str, only_model: bool = False, keep: bool = True, sha256: bool = False
                      ) -> tuple[Manifest, str | None, dict[str, FileBytes]]:
        """The manifest, the named model path and the files (all, or the named model's and its explainer), checked
        against it.

        A large file is read straight into one buffer (``allocate``), not joined from chunks, then hashed in one
        pass; with ``keep=False`` (checking only) each file is hashed as it streams by and nothing is kept (the
        files come back empty).
        """
        manifest, tree, path = self._resolved(ref)
        wanted = None
        if only_model:  # the model's files, and its explainer: verified and loaded with it
            model = manifest.model(path)
            wanted = set(model.files) | ({model.explainer} if model.explainer else set())
        files: dict[str, FileBytes] = {}
        for expected in manifest.files:
            if wanted is not None and expected.path not in wanted:
                continue
            entry = self.ctx.trees.lookup(tree, expected.path)
            if entry is None or entry.file is None:
                raise ModelTampered(f"model file {expected.path} is listed in the manifest of {manifest.repo}@"
                                    f"{manifest.commit} but is not in the commit: refusing to load it")
            content = self.ctx.content
            if not keep:
                verify_file(expected, content.iter_bytes(entry.file, expected.path, verify=False), sha256)
            elif entry.file.size != expected.size or entry.file.size < MAPPED_FROM:
                data = b"".join(content.iter_bytes(entry.file, expected.path, verify=False))  # hashed whole below
                verify_file(expected, [data], sha256)
                files[expected.path] = data
            else:
                buffer = allocate(entry.file.size)
                content.read_into(entry.file, expected.path, buffer, verify=False)
                verify_file(expected, [buffer], sha256)  # one pass over the whole, on every core
                files[expected.path] = buffer
        return manifest, path, files

    def verify(self, ref: str) -> Manifest:
        """Re-read every file of the manifest and check size, BLAKE3 and sha256; ModelTampered on a mismatch."""
        manifest, _, _ = self.read_verified(ref, keep=False, sha256=True)
        return manifest

    def load(self, ref: str) -> LoadedModel:
        """Load ``repo@ref[:/path]``: files verified against the manifest before any byte is deserialized."""
        manifest, path, files = self.read_verified(ref, only_model=True)
        return load_model(manifest.model(path), files, manifest)

    def export(self, ref: str, dest: Path) -> Manifest:
        """Write the model files and their manifest (tusk-manifest.json) under ``dest``."""
        manifest, _, files = self.read_verified(ref)
        dest.mkdir(parents=True, exist_ok=True)
        for path, data in files.items():
            target = dest / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (dest / MANIFEST_FILE).write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n")
        return manifest

    # -- promotion -----------------------------------------------------------
    def promote(self, ref: str, to: str, note: str | None = None) -> BranchMove:
        """Point branch ``to`` of the model's repo at the model commit ``ref`` (created if needed); ``note`` is
        the person's why, kept with the move (see ``check_move_note``)."""
        validate_branch_name(to)
        note = check_move_note(note)
        manifest = self.manifest(ref)
        self.branches.create(manifest.repo, to, head=manifest.commit, reason="promote", note=note)
        return self.history(manifest.repo, to)[0]

    def rollback(self, repo: str, branch: str, steps: int = 1, note: str | None = None) -> BranchMove:
        """Move ``branch`` back to what it pointed at before its last ``steps`` promotions.

        Moves are replayed as a stack: every move pushes its target, every
        rollback pops. So promote A, promote B, rollback → A; rollback again
        → what was there before A. A rollback never lands a new commit.
        """
        if steps < 1:
            raise InvalidArgument("--steps must be at least 1")
        note = check_move_note(note)
        stack: list[str | None] = []
        for move in reversed(self.history(repo, branch)):
            if move.reason == "rollback":  # it went back to an earlier entry: drop what was above it
                while stack and stack[-1] != move.to_commit:
                    stack.pop()
                if not stack:
                    stack.append(move.to_commit)
            elif not stack or stack[-1] != move.to_commit:  # a promotion to the head it had moved nothing
                stack.append(move.to_commit)
        if len(stack) <= steps:
            raise Conflict(f"{repo}@{branch} has no earlier model to roll back to "
                           f"({len(stack)} promotion(s) on record); promote one with `tusk model promote`")
        target = stack[-1 - steps]
        if target is None:
            raise Conflict(f"{repo}@{branch} pointed at no commit before; nothing to roll back to")
        self.branches.create(repo, branch, head=target, reason="rollback", note=note)
        return self.history(repo, branch)[0]

    def history(self, repo: str, branch: str) -> builtins.list[BranchMove]:
        """Every move of the branch, newest first: commits, promotions, rollbacks, triggers, with their notes."""
        with self.ctx.db.read() as s:
            repo_row = self.ctx.repo_row(s, repo)
            return [BranchMove(repo, branch, m.from_commit, m.to_commit, m.actor, m.reason, m.moved_at, m.note)
                    for m in refstore.moves(s, repo_row.id, branch)]
