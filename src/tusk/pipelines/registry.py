"""Pipelines as versioned specs: create, update, inspect, list, stop, start, delete."""

from __future__ import annotations

import contextlib
import json
import secrets
from dataclasses import replace
from pathlib import Path

import blake3
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlalchemy.orm import Session

from tusk.errors import AlreadyExists, Conflict, InvalidArgument, PipelineNotFound, RepoNotFound
from tusk.ids import Digest
from tusk.images.store import ImageStore
from tusk.pipelines.code import describe_code
from tusk.pipelines.codestore import CodeStore, PipelineCode
from tusk.pipelines.images import resolve_image
from tusk.pipelines.input_triggers import claim_trigger_branches, resolve_input_triggers, trigger_inputs
from tusk.pipelines.records import PipelineInfo, job_state, pipeline_state
from tusk.pipelines.secrets import check_secret_refs
from tusk.pipelines.spec import PipelineSpec, parse_spec
from tusk.pipelines.validate import check_graph, own_tick_repos
from tusk.storage.metadata import JobRow, PipelineRow, PipelineVersionRow, RepoRow, RoleBindingRow
from tusk.versioning.context import Context, _aware, now
from tusk.versioning.repos import RepoService

__all__ = ["PipelineService", "StoredPipeline"]



class StoredPipeline:
    """A pipeline's current row and spec, as the job engine needs them."""

    def __init__(self, row: PipelineRow, version: PipelineVersionRow) -> None:
        self.row = row
        self.version = version
        self.spec = parse_spec(json.loads(version.spec_json))

    @property
    def name(self) -> str:
        return self.row.name

    @property
    def spec_commit(self) -> str:
        """This version's id in the form of a commit id (Pachyderm's ``PPS_SPEC_COMMIT``): the same for every
        job of the version, another for each version; hashed from a versioned, length-prefixed encoding."""
        fields = (self.row.name, str(self.version.version), self.version.spec_json)
        raw = b"".join(len(f.encode()).to_bytes(4, "big") + f.encode() for f in fields)
        return blake3.blake3(b"tusk-spec-commit:v1\n" + raw).hexdigest()[:32]


def _code_change(current: StoredPipeline, spec: PipelineSpec, code: PipelineCode) -> str | None:
    """Why the datums of ``spec`` would compute something else than those of the current version, if they would."""
    if current.spec.transform != spec.transform:
        return "the transform changed"
    before_image = (json.loads(current.version.code_info) if current.version.code_info else {}).get("image") or {}
    after_image = code.info.get("image") or {}
    if before_image.get("id") != after_image.get("id"):
        return f"image {spec.transform.image} names other bytes ({after_image.get('id') or 'not imported'})"
    if current.version.code_tree and code.tree:
        changed = current.version.code_tree != code.tree
    else:  # a version made before code was stored: compare the descriptions' digests
        before = json.loads(current.version.code_info) if current.version.code_info else {}
        changed = bool(before.get("digest") and code.info.get("digest") and before["digest"] != code.info["digest"])
    return f"the code in {code.info.get('dir') or code.directory or '(none)'} changed" if changed else None


class PipelineService:
    def __init__(self, ctx: Context, repos: RepoService, image_fallback: bool = False) -> None:
        self.ctx = ctx
        self.repos = repos
        self.code = CodeStore(ctx)
        self.images = ImageStore(ctx)
        self.image_fallback = image_fallback  # TUSK_IMAGE_FALLBACK=host: an image not imported runs on the host

    def _with_image(self, spec: PipelineSpec, code: PipelineCode) -> PipelineCode:
        """``code`` with the version's image record (``tusk.pipelines.images``); refuses an image it cannot run.

        Code that carries a record for the same reference already (``rerun``, ``edit pipeline``: a version's own
        code) keeps it: the same image id while it is imported, the fallback it was created with.
        """
        prior = code.info.get("image")
        if prior and prior.get("ref") == spec.transform.image and (
                prior.get("fallback") or (prior.get("id") and self.images.exists(prior["id"]))):
            return code
        record = resolve_image(self.images, spec, self.image_fallback)
        info = {k: v for k, v in code.info.items() if k != "image"}
        return replace(code, info=info | {"image": record} if record else info)

    def store_code(self, directory: Path, implicit: bool = False) -> PipelineCode:
        """Store a code directory (nothing is written when its tree is stored already) and describe it.

        ``implicit``: the directory was not named (an embedded dict spec's
        cwd); one too large to store is then run in place on this host, with a
        note, as before code was stored. A named directory that large is refused.
        """
        info = describe_code(directory)
        try:
            tree = self.code.store(directory)
        except InvalidArgument as exc:
            if not implicit:
                raise
            return PipelineCode(None, info | {"tree": None, "note": f"not stored, runs in place on this host: {exc}"},
                                str(directory))
        return PipelineCode(tree.digest, info | {"tree": tree.digest}, str(directory))

    def stored_code(self, version: PipelineVersionRow) -> PipelineCode:
        """The code a version records (what ``rerun`` runs again)."""
        info = json.loads(version.code_info) if version.code_info else {}
        return PipelineCode(Digest(version.code_tree) if version.code_tree else None, info, version.code_dir)

    def _row(self, s: Session, name: str) -> PipelineRow:
        row = s.scalar(select(PipelineRow).where(PipelineRow.name == name))
        if row is None:
            raise PipelineNotFound(f"pipeline {name!r} not found; create it with `tusk pipeline create -f SPEC`")
        return row

    def exists(self, name: str) -> bool:
        with self.ctx.db.read() as s:
            return s.scalar(select(PipelineRow.id).where(PipelineRow.name == name)) is not None

    def load(self, s: Session, name: str, version: int | None = None) -> StoredPipeline:
        row = self._row(s, name)
        v = s.get(PipelineVersionRow, (row.id, version or row.version))
        if v is None:
            raise PipelineNotFound(f"pipeline {name!r} has no version {version}")
        return StoredPipeline(row, v)

    def all(self, s: Session) -> list[StoredPipeline]:
        rows = s.scalars(select(PipelineRow).order_by(PipelineRow.id)).all()
        return [self.load(s, r.name) for r in rows]

    def create(self, spec: PipelineSpec, code: PipelineCode) -> PipelineInfo:
        """Register a pipeline and create its output repo (named after it) and its cron tick repos.

        Everything is checked first (``check_graph``) and written in one
        transaction: a refused spec leaves no row, repo or branch behind.
        ``code`` is stored already (``store_code``, or a remote client's upload). Input triggers get their
        branches here too (``tusk.pipelines.input_triggers``).
        """
        spec = resolve_input_triggers(spec)
        code = self._with_image(spec, code)
        try:
            with self.ctx.db.write() as s:
                ticks = check_graph(s, spec, update=False)
                check_secret_refs(s, spec)
                if trigger_inputs(spec):
                    claim_trigger_branches(s, self.ctx, spec, None, [p.spec for p in self.all(s)])
                self._new_repo(s, spec.name, f"output of pipeline {spec.name}")
                for repo in ticks:  # cron ticks are commits to a repo of their own
                    self._new_repo(s, repo, f"cron ticks for pipeline {spec.name}")
                row = PipelineRow(name=spec.name, version=1, state="running", created_by=self.ctx.user,
                                  created_at=now())
                s.add(row)
                s.flush()
                s.add(self._version(row, 1, spec, secrets.token_hex(16), code))
                s.flush()
                return self._info(s, row)
        except DBIntegrityError:  # a concurrent create took one of the names between the check and the insert
            raise AlreadyExists(f"pipeline {spec.name!r} or one of its repos was just created by another "
                                "caller") from None

    def _new_repo(self, s: Session, name: str, description: str) -> None:
        """A repo row, and no role binding a deleted repo of the same name left behind (it is a new repo)."""
        s.execute(delete(RoleBindingRow).where(RoleBindingRow.resource == name))
        s.add(RepoRow(name=name, description=description, created_at=now()))

    def update(self, spec: PipelineSpec, code: PipelineCode, reprocess: bool = False) -> PipelineInfo:
        """A new spec version, checked as a create is. Every datum runs again (a new salt) with ``reprocess``,
        or when what the datums run changed: the transform, or the stored code.

        Pachyderm reuses old outputs after a transform change unless asked to
        reprocess; reusing outputs of code that no longer exists is how wrong
        models ship, so Tusk does not, and says so in the returned notes.
        """
        spec = resolve_input_triggers(spec)
        code = self._with_image(spec, code)
        with self.ctx.db.write() as s:
            current = self.load(s, spec.name)
            for repo in check_graph(s, spec, update=True):  # a cron input added by this version
                self._new_repo(s, repo, f"cron ticks for pipeline {spec.name}")
            check_secret_refs(s, spec)
            if trigger_inputs(spec):
                claim_trigger_branches(s, self.ctx, spec, current.spec,
                                       [p.spec for p in self.all(s) if p.name != spec.name])
            why = "--reprocess" if reprocess else _code_change(current, spec, code)
            salt = secrets.token_hex(16) if why else current.version.salt
            current.row.version += 1
            s.add(self._version(current.row, current.row.version, spec, salt, code))
            s.flush()
            info = self._info(s, current.row)
        if why and why != "--reprocess":
            info = replace(info, notes=[*info.notes, f"{why}: every datum runs again"])
        return info

    def image_users(self, image_id: str) -> list[str]:
        """The pipeline versions that run the image ``image_id`` (``pipeline NAME version N``): what keeps its
        layers from being deleted, since a rerun or a lineage question may need them."""
        with self.ctx.db.read() as s:
            rows = s.execute(select(PipelineRow.name, PipelineVersionRow.version, PipelineVersionRow.code_info)
                             .join(PipelineVersionRow, PipelineVersionRow.pipeline_id == PipelineRow.id)
                             .where(PipelineVersionRow.code_info.contains(image_id))
                             .order_by(PipelineRow.name, PipelineVersionRow.version)).all()
        return [f"pipeline {name} version {version}" for name, version, info in rows
                if ((json.loads(info) if info else {}).get("image") or {}).get("id") == image_id]

    def current_code(self, name: str) -> PipelineCode:
        """The code the pipeline's current version runs (``edit pipeline`` keeps it)."""
        with self.ctx.db.read() as s:
            return self.stored_code(self.load(s, name).version)

    def rerun(self, name: str, reprocess: bool = False) -> PipelineInfo:
        with self.ctx.db.read() as s:
            current = self.load(s, name)
        return self.update(current.spec, self.stored_code(current.version), reprocess)  # the same code, not
        # what its directory holds now

    def _version(self, row: PipelineRow, version: int, spec: PipelineSpec, salt: str, code: PipelineCode
                 ) -> PipelineVersionRow:
        return PipelineVersionRow(pipeline_id=row.id, version=version, spec_json=spec.canonical_json(), salt=salt,
                                  code_dir=code.directory, code_info=json.dumps(code.info), code_tree=code.tree,
                                  created_by=self.ctx.user, created_at=now())

    def set_state(self, name: str, state: str) -> PipelineInfo:
        with self.ctx.db.write() as s:
            row = self._row(s, name)
            row.state = state
            return self._info(s, row)

    def inspect(self, name: str) -> PipelineInfo:
        with self.ctx.db.read() as s:
            return self._info(s, self._row(s, name))

    def versions(self, name: str) -> list[dict[str, object]]:
        with self.ctx.db.read() as s:
            row = self._row(s, name)
            rows = s.scalars(select(PipelineVersionRow).where(PipelineVersionRow.pipeline_id == row.id)
                             .order_by(PipelineVersionRow.version))
            return [{"version": v.version, "created_by": v.created_by, "created_at": _aware(v.created_at).isoformat(),
                     "spec": json.loads(v.spec_json), "code": json.loads(v.code_info) if v.code_info else None}
                    for v in rows]

    def list(self) -> list[PipelineInfo]:
        with self.ctx.db.read() as s:
            return [self._info(s, r) for r in s.scalars(select(PipelineRow).order_by(PipelineRow.name))]

    def delete(self, name: str, keep_repo: bool = False) -> None:
        """Delete a pipeline and, unless ``keep_repo``, its output and cron tick repos (with their role bindings:
        a later repo of the same name starts with none)."""
        with self.ctx.db.write() as s:
            row = self._row(s, name)
            mine = {name} | own_tick_repos(s, name)
            for other in self.all(s):
                read = sorted({leaf.repo for leaf in other.spec.pfs_leaves()} & mine)
                if other.name != name and read:
                    raise Conflict(f"pipeline {other.name} reads {read[0]}, made by pipeline {name}; "
                                   f"delete {other.name} first")
            s.delete(row)
        if not keep_repo:
            for repo in sorted(mine):
                with contextlib.suppress(RepoNotFound):
                    self.repos.delete(repo, force=True)

    def _info(self, s: Session, row: PipelineRow) -> PipelineInfo:
        stored = StoredPipeline(row, s.get(PipelineVersionRow, (row.id, row.version)))  # type: ignore[arg-type]
        last = s.scalar(select(JobRow).where(JobRow.pipeline_id == row.id).order_by(JobRow.created_at.desc())
                        .limit(1))
        repos = sorted({leaf.repo for leaf in stored.spec.pfs_leaves()})
        return PipelineInfo(
            name=row.name, version=row.version, state=pipeline_state(row.state), description=stored.spec.description,
            input_repos=repos, created_by=row.created_by, created_at=_aware(row.created_at),
            spec=json.loads(stored.version.spec_json), last_job=last.id if last else None,
            last_job_state=job_state(last.state) if last else None,
            code=json.loads(stored.version.code_info) if stored.version.code_info else None,
        )
