"""Pipeline changes inside a transaction (``pachctl create pipeline`` after ``start transaction``).

A request holds the spec (as the user wrote it) and the code it runs, stored already (content-addressed, so
storing it early costs nothing if the transaction is deleted: ``tusk gc`` reclaims it). Its dry run checks
the spec, and that every input repo exists in the store or is made earlier in the same transaction; a create
notes the output repo it makes, so later requests may read it. Running it creates or updates the pipeline and
starts its job over the inputs as they are then; commits the transaction started, once finished, trigger it
with the transaction's global id, as for any pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from tusk.errors import AlreadyExists, InvalidArgument, PipelineNotFound, RepoNotFound
from tusk.ids import Digest
from tusk.pipelines.codestore import PipelineCode
from tusk.pipelines.spec import PipelineSpec, parse_spec
from tusk.pipelines.support import check_supported
from tusk.storage.metadata import PipelineRow
from tusk.versioning.transactions import Preview, RequestKind

if TYPE_CHECKING:
    from tusk.pipelines.jobs import JobService
    from tusk.pipelines.registry import PipelineService
    from tusk.versioning.transactions import _Draft

__all__ = ["FIELDS", "pipeline_kinds", "pipeline_request"]

FIELDS = frozenset({"spec", "code", "reprocess"})


def pipeline_request(op: str, spec: dict[str, Any], code: PipelineCode, reprocess: bool = False) -> dict[str, Any]:
    """The transaction request for creating (``create_pipeline``) or updating (``update_pipeline``) a pipeline."""
    return {"op": op, "spec": spec, "reprocess": reprocess,
            "code": {"tree": code.tree, "info": code.info, "directory": code.directory}}


def _spec(request: dict[str, Any]) -> PipelineSpec:
    if not isinstance(request.get("spec"), dict) or not isinstance(request.get("code"), dict):
        raise InvalidArgument("a pipeline request in a transaction needs spec and code objects")
    return parse_spec(request["spec"])


def _code(request: dict[str, Any]) -> PipelineCode:
    code = request["code"]
    tree = code.get("tree")
    return PipelineCode(Digest(str(tree)) if tree else None, dict(code.get("info") or {}),
                        str(code.get("directory") or ""))


def pipeline_kinds(pipelines: Callable[[], PipelineService], jobs: Callable[[], JobService]
                   ) -> dict[str, RequestKind]:
    """``create_pipeline`` and ``update_pipeline`` as transaction requests (services built on first use)."""

    def check(op: str) -> Callable[[_Draft, dict[str, Any]], Preview]:
        def dry_run(draft: _Draft, request: dict[str, Any]) -> Preview:
            spec = _spec(request)
            check_supported(spec)
            code = _code(request)
            if code.tree is not None and not pipelines().code.has(code.tree):
                raise InvalidArgument(f"pipeline {spec.name}: its code {code.tree[:12]} is not stored; upload it "
                                      "again (create the pipeline again in the transaction)")
            for leaf in spec.pfs_leaves():
                if not draft.repo_exists(leaf.repo):
                    raise RepoNotFound(f"pipeline {spec.name}: input repo {leaf.repo!r} not found (nor made "
                                       "earlier in this transaction)")
            exists = f"pipeline:{spec.name}" in draft.made or draft.s.scalar(
                select(PipelineRow.id).where(PipelineRow.name == spec.name)) is not None
            updating = op == "update_pipeline" or (spec.update and exists)
            if updating and not exists:
                raise PipelineNotFound(f"pipeline {spec.name!r} not found; create it with `tusk create pipeline`")
            if not updating and (exists or draft.repo_exists(spec.name)):
                raise AlreadyExists(f"pipeline {spec.name}: a repo or pipeline of that name exists already")
            draft.repos_made[spec.name] = True  # its output repo, which later requests may read
            draft.made.add(f"pipeline:{spec.name}")
            return None
        return dry_run

    def run(op: str) -> Callable[[str, dict[str, Any]], None]:
        def apply(txn_id: str, request: dict[str, Any]) -> None:
            spec, code = _spec(request), _code(request)
            service = pipelines()
            if op == "update_pipeline" or (spec.update and service.exists(spec.name)):
                service.update(spec, code, bool(request.get("reprocess")))
            else:
                service.create(spec, code)
            jobs().start_job(spec.name)
        return apply

    return {op: RequestKind(op.replace("_", " "), FIELDS, check(op), run(op))
            for op in ("create_pipeline", "update_pipeline")}
