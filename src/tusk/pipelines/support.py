"""What Tusk does with each field of Pachyderm's spec that it does not honour: refuse it, or warn about it.

A Pachyderm user's spec either runs as it would in Pachyderm, or is refused
at create and update with the field's path and why; a field whose absence
changes nothing that a datum computes is accepted with a warning that names
it. One table (``RULES``), keyed by the field's path with list positions and
combinators left out (``input.pfs.s3`` matches ``input.cross[1].pfs.s3``),
decides for every field, nested or top-level, so there is nothing to special-case::

    refused   input.pfs.reference, input.pfs.repo_type, input.pfs.trigger.rate_limit_spec,
              spout.marker, spout.service, tf_job, determined, propagation_spec, egress.sql_database,
              and input.pfs.s3 with a glob other than "/" (as Pachyderm refuses it)
    warned    project (pipeline, pfs, cron), transform.debug, transform.image_pull_secrets,
              transform.dockerfile, transform.memory_volume, salt, service.type, service.annotations,
              service.ip, and the fields that
              configure Pachyderm's Kubernetes workers (resource_requests, pod_patch, ...)

A rule applies only when the field is set to something other than its
default (``"s3": false`` is what Tusk does anyway). Refusals live here and
not in the spec's parsing, so a spec stored before a rule existed still loads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from tusk.errors import InvalidArgument
from tusk.pipelines.spec import IGNORED_FIELDS, Input, PipelineSpec

__all__ = ["RULES", "FieldRule", "check_supported", "project_name", "spec_notes"]

_S3_GLOB = ("an s3 input is served whole, as one bucket, so its glob must be \"/\" (one datum), as in "
            "Pachyderm: set glob to \"/\", or drop s3 and read the files at /pfs/<name>")
_KUBERNETES = "it configures Pachyderm's Kubernetes workers; Tusk runs datums itself (limits: TUSK_DATUM_*)"
_PROJECT = "Tusk has one namespace of repos and pipelines, Pachyderm's default project"


def project_name(value: Any) -> str:
    """The name a ``project`` field gives (``"p"`` or ``{"name": "p"}``); ``default`` when there is none."""
    if isinstance(value, dict):
        value = value.get("name")
    return str(value) if value else "default"


def _set(value: Any) -> bool:
    """Set to something a user means: not false, empty or null (a dict of only those counts as unset too)."""
    if isinstance(value, dict):
        return any(_set(v) for v in value.values())
    return bool(value)


def _present(value: Any) -> bool:
    """Given at all: an object whose presence is the request (``"spout": {}`` makes a spout)."""
    return value is not None


@dataclass(frozen=True)
class FieldRule:
    verdict: Literal["refuse", "warn"]
    why: str
    applies: Callable[[Any], bool] = _set


RULES: dict[str, FieldRule] = {
    # refused: the pipeline would compute something else, or not run at all, if Tusk went on without them
    "input.pfs.trigger.rate_limit_spec": FieldRule("refuse", "trigger rate limits are not supported: Tusk's "
                                                             "branch triggers fire on commits, size or cron_spec "
                                                             "(all of them with \"all\": true); remove the field"),
    "input.pfs.reference": FieldRule("refuse", "reference inputs are not supported: every Tusk input puts its "
                                               "files at /pfs/<name> and triggers the pipeline; remove the field"),
    "input.pfs.repo_type": FieldRule("refuse", "Tusk has user repos only (no spec or meta repos); remove the field",
                                     lambda v: v not in (None, "", "user")),
    "propagation_spec": FieldRule("refuse", "propagation specs are not supported: Tusk propagates each job's "
                                            "output to the pipelines downstream as soon as the job succeeds; "
                                            "remove the field"),
    "spout.marker": FieldRule("refuse", "spout markers are not supported: Tusk keeps no marker branch to show "
                                        "a restarted spout at /pfs/<marker>; keep the spout's position in the "
                                        "commits it writes, or remove the field"),
    "spout.service": FieldRule("refuse", "a spout with a service is not supported: give the spout no port, and "
                                         "serve its output repo with a service pipeline", _present),
    "tf_job": FieldRule("refuse", "Kubeflow TFJobs are not supported: give the pipeline a transform", _present),
    "determined": FieldRule("refuse", "the Determined integration is not supported", _present),
    # warned: nothing a datum computes depends on them
    "service.type": FieldRule("warn", "ignored: Tusk publishes a service on the host's loopback at external_port, "
                                      "with no Kubernetes service"),
    "service.annotations": FieldRule("warn", "ignored: Tusk publishes a service on the host's loopback at "
                                             "external_port, with no Kubernetes service"),
    "service.ip": FieldRule("warn", "ignored: Tusk publishes a service on 127.0.0.1 only"),
    "pipeline.project": FieldRule("warn", f"ignored: {_PROJECT}", lambda v: project_name(v) != "default"),
    "input.pfs.project": FieldRule("warn", f"ignored: {_PROJECT}", lambda v: project_name(v) != "default"),
    "input.cron.project": FieldRule("warn", f"ignored: {_PROJECT}", lambda v: project_name(v) != "default"),
    "transform.debug": FieldRule("warn", "ignored: Tusk keeps each datum's output in its log always (tusk logs)"),
    "transform.image_pull_secrets": FieldRule("warn", "ignored: Tusk pulls no images (import them with "
                                                      "`tusk image import`)"),
    "transform.dockerfile": FieldRule("warn", "ignored: Tusk does not build images"),
    "transform.memory_volume": FieldRule("warn", f"ignored: {_KUBERNETES}"),
    "egress.sql_database": FieldRule("refuse", "egress to a SQL database is not supported: egress to an object "
                                               "store URL (s3://bucket/dir, file:///dir), and load it from there"),
    "salt": FieldRule("warn", "ignored: Tusk salts each pipeline version itself; run every datum again with "
                              "`tusk pipeline update --reprocess`"),
    **{name: FieldRule("warn", f"ignored: {_KUBERNETES}") for name in sorted(IGNORED_FIELDS) if name not in (
        "egress", "salt", "tf_job", "determined", "propagation_spec")},
}

_COMBINATORS = {"cross", "union", "join", "group"}


def _pattern(path: str) -> str:
    """``input.cross[1].pfs.s3`` → ``input.pfs.s3``: the path a rule is written for."""
    parts = [re.sub(r"\[\d+\]$", "", part) for part in path.split(".")]
    return ".".join(p for i, p in enumerate(parts) if not (i and p in _COMBINATORS))


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _walk(model: BaseModel, path: str) -> Iterator[tuple[str, FieldRule]]:
    for name in type(model).model_fields:
        if name == "ignored":
            continue
        value = getattr(model, name)
        here = f"{path}.{name}" if path else name
        rule = RULES.get(_pattern(here))
        if rule is not None:
            if rule.applies(value):
                yield here, rule
        elif isinstance(value, BaseModel):
            yield from _walk(value, here)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from _walk(item, f"{here}[{i}]")


def _s3_globs(inp: Input, path: str) -> Iterator[tuple[str, FieldRule]]:
    """``input.pfs.s3`` (served by the datum's S3 endpoint, ``tusk.pipelines.s3``) with a glob other than "/"."""
    if inp.pfs is not None and inp.pfs.s3 and inp.pfs.glob.strip() != "/":
        yield f"{path}.pfs.s3", FieldRule("refuse", f"glob is {inp.pfs.glob!r}: {_S3_GLOB}")
    for name in ("cross", "union", "join", "group"):
        for i, child in enumerate(getattr(inp, name) or ()):
            yield from _s3_globs(child, f"{path}.{name}[{i}]")


def _findings(spec: PipelineSpec) -> list[tuple[str, FieldRule]]:
    found = list(_walk(spec, "")) + list(_s3_globs(spec.input, "input"))
    for key, value in spec.ignored.items():
        rule = RULES.get(_snake(key))
        if rule is not None and rule.applies(value):
            found.append((key, rule))
    return found


def check_supported(spec: PipelineSpec) -> None:
    """Refuse a spec with fields Tusk cannot honour, naming each field and why (InvalidArgument)."""
    refused = [f"{path}: {rule.why}" for path, rule in _findings(spec) if rule.verdict == "refuse"]
    if refused:
        raise InvalidArgument(f"pipeline {spec.name}: " + "; ".join(refused))


def spec_notes(spec: PipelineSpec) -> list[str]:
    """One warning per reason, naming the fields it covers: what the spec asks for that Tusk ignores."""
    by_reason: dict[str, list[str]] = {}
    for path, rule in _findings(spec):
        if rule.verdict == "warn":
            by_reason.setdefault(rule.why, []).append(path)
    return [f"{', '.join(paths)}: {why}" for why, paths in by_reason.items()]
