"""The model half of tusk.Client: manifests, verified loading, promotion and rollback."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tusk.errors import InvalidRef
from tusk.sdk._pipelines import PipelineMethods
from tusk.versioning.refs import parse_ref

if TYPE_CHECKING:
    from tusk.models.loaders import LoadedModel
    from tusk.models.manifest import Manifest
    from tusk.models.records import BranchMove, ModelInfo

__all__ = ["ModelMethods"]


class ModelMethods(PipelineMethods):
    def list_models(self, repo: str | None = None, limit: int | None = None) -> list[ModelInfo]:
        """Model commits (those with a manifest), newest first, with the branches pointing at them."""
        return self.services.models.list(repo, limit)

    def model_manifest(self, ref: str) -> Manifest:
        """The manifest of ``repo@ref``: file hashes, training provenance, metrics, creation time."""
        return self.services.models.manifest(ref)

    def load_model(self, ref: str) -> LoadedModel:
        """``repo@ref[:/path]`` → a model with ``predict``; refused if any file differs from its manifest."""
        return self.services.models.load(ref)

    def verify_model(self, ref: str) -> Manifest:
        """Re-hash every file of the model commit against its manifest (ModelTampered on a mismatch)."""
        return self.services.models.verify(ref)

    def export_model(self, ref: str, dest: str | Path) -> Manifest:
        """Write the model's files and tusk-manifest.json into ``dest`` (load them with tusk.models.load_dir)."""
        return self.services.models.export(ref, Path(dest))

    def promote_model(self, ref: str, to: str, note: str | None = None) -> BranchMove:
        """Point branch ``to`` (e.g. production) at the model commit ``ref``; pipelines reading it re-run.

        ``note`` says why, in a line of at most 1000 characters; the history keeps it with the move.
        """
        move = self.services.models.promote(ref, to, note)
        self._after_write()
        return move

    def rollback_model(self, ref: str, steps: int = 1, note: str | None = None) -> BranchMove:
        """``repo@branch``: move the branch back to the model it had before its last ``steps`` promotions.

        ``note`` says why (as for ``promote_model``).
        """
        repo, branch, anc = parse_ref(ref, default_branch=None)
        if anc:
            raise InvalidRef(f"{ref}: name a branch (repo@production), not an ancestry")
        move = self.services.models.rollback(repo, branch, steps, note)
        self._after_write()
        return move

    def model_history(self, ref: str) -> list[BranchMove]:
        """``repo@branch``: every move of the branch, newest first, with who, when, its kind and its note."""
        repo, branch, _ = parse_ref(ref, default_branch=None)
        return self.services.models.history(repo, branch)
