"""Every field of Pachyderm's pipeline spec, and what Tusk does with it: honoured, warned about, or refused.

``PACHYDERM_FIELDS`` lists the fields of Pachyderm 2.x's ``CreatePipelineRequest``
and the messages it holds (``src/pps/pps.proto`` and ``pfs.proto``'s
``Trigger``), plus the 1.x fields its users' specs still carry. ``verdict``
classifies each from the same places the spec's parsing uses: ``RULES``
(``tusk.pipelines.support``) decides the refused and warned ones, the spec's
models (``tusk.pipelines.spec``) hold the honoured ones, and a field in neither
is refused as unknown by the parser. ``docs/pachyderm.md`` carries the table
this module renders (``python scripts/pachyderm_fields.py --write``), and a
test checks that the two agree, so the table cannot drift from the code.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from tusk.pipelines import spec as spec_models
from tusk.pipelines.support import RULES

__all__ = ["PACHYDERM_FIELDS", "Verdict", "render_table", "verdict"]

Verdict = Literal["honoured", "warned", "refused"]

# path (combinators left out: input.pfs.glob is also input.cross[0].pfs.glob) → what it means in Pachyderm
PACHYDERM_FIELDS: dict[str, str] = {
    "pipeline.name": "the pipeline's name", "pipeline.project": "its project",
    "description": "a description", "transform.image": "the image the code runs in",
    "transform.cmd": "the command", "transform.err_cmd": "run when a datum fails",
    "transform.env": "environment variables", "transform.secrets": "Kubernetes secrets as variables or files",
    "transform.image_pull_secrets": "registry credentials", "transform.stdin": "lines fed to the command",
    "transform.err_stdin": "lines fed to err_cmd", "transform.accept_return_code": "exit codes that succeed",
    "transform.debug": "debug logging", "transform.user": "the user the code runs as",
    "transform.working_dir": "the working directory", "transform.dockerfile": "build the image",
    "transform.memory_volume": "/pfs in memory", "transform.datum_batching": "one process for many datums",
    "tf_job": "a Kubeflow TFJob instead of a transform", "parallelism_spec.constant": "workers",
    "egress": "copy each output commit out", "update": "update the pipeline if it exists",
    "output_branch": "the output repo's branch", "s3_out": "write the output over S3",
    "resource_requests": "Kubernetes requests", "resource_limits": "Kubernetes limits",
    "sidecar_resource_limits": "the sidecar's limits", "sidecar_resource_requests": "the sidecar's requests",
    "input.pfs.repo": "the input repo", "input.pfs.name": "the input's name", "input.pfs.branch": "its branch",
    "input.pfs.commit": "a fixed commit", "input.pfs.glob": "how files become datums",
    "input.pfs.join_on": "the join key", "input.pfs.outer_join": "keep unmatched datums",
    "input.pfs.group_by": "the group key", "input.pfs.lazy": "read files on demand",
    "input.pfs.empty_files": "files as empty placeholders", "input.pfs.s3": "serve the input over S3",
    "input.pfs.trigger": "process only when the trigger fires", "input.pfs.repo_type": "a spec or meta repo",
    "input.pfs.project": "the repo's project", "input.pfs.reference": "a newer, undocumented field",
    "input.pfs.trigger.branch": "the branch the trigger follows", "input.pfs.trigger.all": "all conditions",
    "input.pfs.trigger.size": "fire after this much data", "input.pfs.trigger.commits": "fire after N commits",
    "input.pfs.trigger.cron_spec": "fire on a schedule", "input.pfs.trigger.rate_limit_spec": "limit firing",
    "input.cron.name": "the cron input's name", "input.cron.spec": "its schedule", "input.cron.repo": "its repo",
    "input.cron.start": "the first tick", "input.cron.overwrite": "one datum, overwritten",
    "input.cron.project": "its project", "input.cross": "the cross product", "input.union": "the union",
    "input.join": "a join on join_on", "input.group": "a grouping on group_by",
    "input.atom": "1.x's name for pfs",
    "reprocess": "with update: run every datum again", "service": "a long-running service",
    "spout": "a long-running producer",
    "datum_set_spec": "datums per work unit", "datum_timeout": "time limit per datum",
    "job_timeout": "time limit per job", "salt": "the datum hashes' salt", "datum_tries": "tries per datum",
    "scheduling_spec": "Kubernetes scheduling", "pod_spec": "a Kubernetes pod spec", "pod_patch": "a pod patch",
    "spec_commit": "internal", "metadata": "annotations and labels", "reprocess_spec": "until_success or every_job",
    "autoscaling": "scale workers down", "tolerations": "Kubernetes tolerations", "dry_run": "check only",
    "determined": "the Determined integration", "enable_stats": "1.x: per-datum stats",
    "standby": "1.x: idle workers", "chunk_spec": "1.x: datums per chunk", "cache_size": "1.x: cache size",
    "max_queue_size": "1.x: queue size",
    "egress.URL": "the target URL", "egress.object_storage": "2.x: the target store",
    "egress.sql_database": "2.x: load into a data warehouse", "service.internal_port": "the code's port",
    "service.external_port": "where it is published", "service.type": "the Kubernetes service type",
    "spout.overwrite": "1.x: each commit replaces the files", "spout.marker": "1.x: a marker branch",
    "spout.service": "a spout that also serves", "metadata.annotations": "annotations",
    "metadata.labels": "labels", "propagation_spec": "a newer field on output propagation",
    "transform.secrets.env_var": "a key as a variable", "transform.secrets.mount_path": "the keys as files",
}

# fields that the parser takes without a model field or a rule of their own
_HONOURED_ELSEWHERE = {"input.atom": "read as `pfs`, as Pachyderm 1.x did"}
_COMBINATORS = {"cross", "union", "join", "group"}


def _model_has(path: str) -> bool:
    """Whether ``path`` is a field of Tusk's spec models (walking nested models, lists and Input)."""
    model: Any = spec_models.PipelineSpec
    for part in path.split("."):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return False
        annotation = fields[part].annotation
        model = _inner_model(annotation)
    return True


def _inner_model(annotation: Any) -> Any:
    """The BaseModel inside ``X | None`` or ``list[X]``, or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def verdict(path: str) -> tuple[Verdict, str]:
    """What Tusk does with the field at ``path``, and why (the rule's reason, or where it is honoured)."""
    for i in range(len(path.split(".")), 0, -1):  # the rule of the field, or of an enclosing one
        prefix = ".".join(path.split(".")[:i])
        rule = RULES.get(prefix)
        if rule is not None:
            return ("refused" if rule.verdict == "refuse" else "warned"), rule.why
    if path in _HONOURED_ELSEWHERE:
        return "honoured", _HONOURED_ELSEWHERE[path]
    if _model_has(path):
        return "honoured", "as in Pachyderm (docs/pachyderm.md)"
    return "refused", "not a field Tusk reads: the spec is refused naming it"


def render_table() -> str:
    """The markdown table of every field, with the counts, as docs/pachyderm.md carries it."""
    rows = [(path, meaning, *verdict(path)) for path, meaning in PACHYDERM_FIELDS.items()]
    counts = {v: sum(1 for r in rows if r[2] == v) for v in ("honoured", "warned", "refused")}
    out = [f"{len(rows)} fields: {counts['honoured']} honoured, {counts['warned']} warned about, "
           f"{counts['refused']} refused.", "", "| Field | Pachyderm | Tusk | How, or why not |",
           "| --- | --- | --- | --- |"]
    for path, meaning, what, why in rows:
        out.append(f"| `{path}` | {meaning} | {what} | {why.replace('|', '/')} |")
    return "\n".join(out) + "\n"
