"""Deployments in the metadata store: create, update, rollout, rollback, with every revision kept.

Each change writes a new revision with who and why, so ``tusk deploy history``
shows how traffic moved and ``tusk deploy rollback`` undoes a rollout. Serving
processes poll the revision numbers and pick changes up within a second; model
changes on a followed branch are picked up the same way (see ``live.py``).
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from tusk.deployments.spec import DeploymentSpec, PredictorSpec, parse_deployment_spec
from tusk.errors import AlreadyExists, Conflict, DeploymentNotFound, InvalidArgument, TuskError, UserError
from tusk.ids import is_commit_id
from tusk.models.registry import ModelService
from tusk.storage.metadata import DeploymentRevisionRow, DeploymentRow, RoleBindingRow
from tusk.versioning import refstore
from tusk.versioning.context import Context, _aware, now
from tusk.versioning.refs import FileRef, parse_file_ref

__all__ = ["DeploymentInfo", "DeploymentRevision", "DeploymentService", "PredictorInfo"]


@dataclass(frozen=True)
class PredictorInfo:
    name: str
    model: str
    weight: float
    shadow: bool
    follows: str | None  # the branch it follows, None when pinned to a commit
    commit: str | None  # what the ref resolves to now
    error: str | None = None


@dataclass(frozen=True)
class DeploymentInfo:
    name: str
    revision: int
    spec: DeploymentSpec
    predictors: list[PredictorInfo]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DeploymentRevision:
    name: str
    revision: int
    spec: DeploymentSpec
    actor: str
    reason: str
    created_at: datetime


class DeploymentService:
    def __init__(self, ctx: Context, models: ModelService) -> None:
        self.ctx = ctx
        self.models = models

    def _check_models(self, spec: DeploymentSpec) -> DeploymentSpec:
        """Every predictor's ref must name a model commit now (a typo fails here, not at serving time).

        A short commit id (``model@3f2a9c``) is pinned to the full id it names today: servers never
        re-resolve it, and a prefix that later becomes ambiguous cannot break a running deployment.
        """
        def checked(p: PredictorSpec) -> PredictorSpec:
            ref = parse_file_ref(p.model, default_branch=None)
            try:
                manifest = self.models.manifest(p.model)
                manifest.model(ref.path if ref.has_path else None)  # one model, or the one the path names
            except UserError as exc:  # no such repo/branch/commit, or no model there (a store outage propagates)
                raise InvalidArgument(f"predictor {p.name!r}: {p.model} is not a loadable model: {exc}") from exc
            if ref.ancestry == 0 and ref.ref != manifest.commit and manifest.commit.startswith(ref.ref.lower()) \
                    and not self._is_branch(ref.repo, ref.ref):
                pinned = FileRef(ref.repo, manifest.commit, 0, ref.path, ref.has_path)
                return p.model_copy(update={"model": str(pinned)})
            return p

        return spec.model_copy(update={"predictors": [checked(p) for p in spec.predictors],
                                       "shadow": checked(spec.shadow) if spec.shadow else None})

    def _is_branch(self, repo: str, name: str) -> bool:
        with self.ctx.db.read() as s:
            return refstore.branch_exists(s, self.ctx.repo_row(s, repo).id, name)

    def _write(self, spec: DeploymentSpec, reason: str, *, create: bool) -> DeploymentInfo:
        stamp = now()
        with self.ctx.db.write() as s:
            row = s.get(DeploymentRow, spec.name)
            if create and row is not None:
                raise AlreadyExists(f"deployment {spec.name} already exists; use `tusk deploy update`")
            if not create and row is None:
                raise DeploymentNotFound(f"no deployment named {spec.name}; create it first")
            if row is None:  # a new deployment: no grant left by an earlier one of this name carries over
                s.execute(delete(RoleBindingRow).where(RoleBindingRow.resource == f"deployment/{spec.name}"))
                row = DeploymentRow(name=spec.name, revision=0, spec="", created_at=stamp, updated_at=stamp)
                s.add(row)
            row.revision += 1
            row.spec = spec.canonical_json()
            row.updated_at = stamp
            s.flush()
            s.add(DeploymentRevisionRow(name=spec.name, revision=row.revision, spec=row.spec, actor=self.ctx.user,
                                        reason=reason, created_at=stamp))
        return self.inspect(spec.name)

    def create(self, spec: DeploymentSpec) -> DeploymentInfo:
        return self._write(self._check_models(spec), "create", create=True)

    def update(self, spec: DeploymentSpec) -> DeploymentInfo:
        return self._write(self._check_models(spec), "update", create=False)

    def rollout(self, name: str, weights: dict[str, float]) -> DeploymentInfo:
        """Change traffic weights (e.g. canary 10 → 50 → 100) as a new revision."""
        if not weights:
            raise InvalidArgument("name at least one predictor and its weight, e.g. --weight canary=25")
        spec = self.get(name).with_weights(weights)
        return self._write(spec, "rollout", create=False)

    def rollback(self, name: str, revision: int | None = None) -> DeploymentInfo:
        """Back to the spec of ``revision`` (default: the one before the current), as a new revision."""
        history = self.history(name)
        current = history[0].revision
        target = revision if revision is not None else current - 1
        if target == current:
            raise Conflict(f"deployment {name} is at revision {current} already")
        match = [r for r in history if r.revision == target]
        if not match:
            raise Conflict(f"deployment {name} has no revision {target} to roll back to "
                           f"(revisions 1..{current})")
        return self._write(self._check_models(match[0].spec), "rollback", create=False)

    def delete(self, name: str) -> None:
        with self.ctx.db.write() as s:
            if s.get(DeploymentRow, name) is None:
                raise DeploymentNotFound(f"no deployment named {name}")
            s.execute(delete(DeploymentRevisionRow).where(DeploymentRevisionRow.name == name))
            s.execute(delete(DeploymentRow).where(DeploymentRow.name == name))
            # its grants go with it: a later deployment of this name is someone else's, with no inherited readers
            s.execute(delete(RoleBindingRow).where(RoleBindingRow.resource == f"deployment/{name}"))

    def get(self, name: str) -> DeploymentSpec:
        with self.ctx.db.read() as s:
            row = s.get(DeploymentRow, name)
            if row is None:
                raise DeploymentNotFound(f"no deployment named {name}")
            return parse_deployment_spec(json.loads(row.spec))

    def revisions(self) -> dict[str, int]:
        """name → current revision: what a serving process polls."""
        with self.ctx.db.read() as s:
            return {n: r for n, r in s.execute(select(DeploymentRow.name, DeploymentRow.revision))}

    def list(self) -> builtins.list[DeploymentInfo]:
        return [self.inspect(n) for n in sorted(self.revisions())]

    def inspect(self, name: str) -> DeploymentInfo:
        with self.ctx.db.read() as s:
            row = s.get(DeploymentRow, name)
            if row is None:
                raise DeploymentNotFound(f"no deployment named {name}")
            spec = parse_deployment_spec(json.loads(row.spec))
            revision, created, updated = row.revision, _aware(row.created_at), _aware(row.updated_at)
        predictors = [self._predictor(p, False) for p in spec.predictors]
        if spec.shadow is not None:
            predictors.append(self._predictor(spec.shadow, True))
        return DeploymentInfo(name, revision, spec, predictors, created, updated)

    def _predictor(self, p: PredictorSpec, shadow: bool) -> PredictorInfo:
        ref = parse_file_ref(p.model, default_branch=None)
        follows = None if is_commit_id(ref.ref) else ref.ref
        try:
            commit, error = self.models.manifest(p.model).commit, None
        except TuskError as exc:
            commit, error = None, str(exc)
        return PredictorInfo(p.name, p.model, p.weight, shadow, follows, commit, error)

    def history(self, name: str) -> builtins.list[DeploymentRevision]:
        """Every revision, newest first."""
        with self.ctx.db.read() as s:
            rows = list(s.scalars(select(DeploymentRevisionRow).where(DeploymentRevisionRow.name == name)
                                  .order_by(DeploymentRevisionRow.revision.desc())))
            if not rows:
                raise DeploymentNotFound(f"no deployment named {name}")
            return [DeploymentRevision(r.name, r.revision, parse_deployment_spec(json.loads(r.spec)), r.actor,
                                       r.reason, _aware(r.created_at)) for r in rows]
