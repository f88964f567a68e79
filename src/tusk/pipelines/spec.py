"""The pipeline spec: Pachyderm v2 field names, in snake_case or camelCase.

A Pachyderm user should be able to take a pipeline JSON, drop ``image`` and
run it. Every field of Pachyderm's spec is known here; the ones Tusk does not
honour are refused or warned about by ``tusk.pipelines.support``, naming the
field and why. Top-level fields the engine never reads (resources, pod patches,
autoscaling, egress, ...) are set aside in ``PipelineSpec.ignored`` and not
stored; anything else that is unknown is an error naming the field's path, so
typos do not pass silently.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from tusk.documents import describe_validation_error, load_documents
from tusk.errors import InvalidArgument
from tusk.ids import validate_branch_name, validate_repo_name
from tusk.schedules import cron_interval, parse_duration

__all__ = [
    "CronInput",
    "Input",
    "ParallelismSpec",
    "PfsInput",
    "PipelineSpec",
    "SecretMount",
    "Service",
    "Spout",
    "Transform",
    "load_spec",
    "parse_spec",
]

# Top-level fields of Pachyderm's spec the engine does not read: set aside in ``PipelineSpec.ignored`` (never
# stored), then refused or warned about, each with its reason (``tusk.pipelines.support``).
IGNORED_FIELDS = {
    "resource_requests", "resource_limits", "sidecar_resource_limits", "sidecar_resource_requests",
    "autoscaling", "scheduling_spec", "pod_spec", "pod_patch", "tolerations", "node_selector",
    "datum_set_spec", "tf_job", "cache_size", "max_queue_size",
    "enable_stats", "standby", "chunk_spec", "salt", "determined", "propagation_spec",
}

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_FUNCTION = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*:{_IDENTIFIER}(\.{_IDENTIFIER})*")


def _input_name(value: str) -> str:
    """An input's name is a directory (``/pfs/<name>``) and an env var: a plain, short name, never a path."""
    try:
        return str(validate_repo_name(value))
    except InvalidArgument:
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise ValueError(f"invalid input name {shown!r}: use 1-63 letters, digits, '_', '-' or '.', not starting"
                         " with '-' or '.'") from None


def _named(check: Any, value: str) -> str:
    """Run an id validator so that pydantic records the failure with its field path."""
    try:
        return str(check(value))
    except InvalidArgument as exc:
        raise ValueError(str(exc)) from None


class _Spec(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")  # a Kubernetes object name (DNS subdomain)
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")


class SecretMount(_Spec):
    """One entry of ``transform.secrets`` (Pachyderm's ``SecretMount``): the secret ``name``, and ``env_var`` with
    ``key`` (that key's value as a variable), or ``mount_path`` (every key as a file ``<mount_path>/<key>``), or
    both. Secrets are made with ``tusk secret create`` (``tusk.pipelines.secrets``)."""

    name: str
    key: str | None = None
    mount_path: str | None = None
    env_var: str | None = None

    @model_validator(mode="after")
    def _usable(self) -> SecretMount:
        if _SECRET_NAME.fullmatch(self.name) is None:
            raise ValueError(f"invalid secret name {self.name[:64]!r}: lowercase letters, digits, '-' and '.'")
        if not self.env_var and not self.mount_path:
            raise ValueError(f"secret {self.name}: give env_var (with key) or mount_path, or both")
        if self.env_var and _ENV_NAME.fullmatch(self.env_var) is None:
            raise ValueError(f"secret {self.name}: env_var {self.env_var[:64]!r} is not a variable name")
        if self.env_var and not self.key:
            raise ValueError(f"secret {self.name}: env_var {self.env_var} needs the key whose value it holds")
        if self.key and (_SECRET_KEY.fullmatch(self.key) is None or self.key in (".", "..")):
            raise ValueError(f"secret {self.name}: invalid key {self.key[:64]!r}: letters, digits, '-', '_', '.'")
        if self.mount_path is not None:
            path = self.mount_path
            if not path.startswith("/") or path.rstrip("/") == "" or ".." in path.split("/") or \
                    path.rstrip("/") in ("/pfs", "/proc", "/dev", "/tmp") or path.startswith("/pfs/"):
                raise ValueError(f"secret {self.name}: mount_path {path[:64]!r} must be an absolute directory "
                                 "outside /pfs, /proc, /dev and not /tmp itself (e.g. /var/secrets/NAME)")
        return self


class Transform(_Spec):
    cmd: list[str] = Field(default_factory=list)  # may be left out with an image: its entrypoint runs
    stdin: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    image: str | None = None
    working_dir: str | None = None
    accept_return_code: list[int] = Field(default_factory=list)
    err_cmd: list[str] = Field(default_factory=list)
    err_stdin: list[str] = Field(default_factory=list)
    user: str | None = None
    secrets: list[SecretMount] = Field(default_factory=list)
    debug: bool = False
    image_pull_secrets: list[str] = Field(default_factory=list)
    dockerfile: str | None = None
    memory_volume: bool = False
    datum_batching: bool = False
    # Tusk's own: ``module:function`` called once per datum in a warm Python worker (``tusk.datum_batching.call``)
    function: str | None = None

    @field_validator("function")
    @classmethod
    def _function(cls, v: str | None) -> str | None:
        if v is not None and not _FUNCTION.fullmatch(v):
            shown = v if len(v) <= 60 else v[:60] + "..."
            raise ValueError(f"function {shown!r} must be MODULE:FUNCTION, e.g. \"predict:score\" (a module of the "
                             "pipeline's code, dotted names allowed, and a function in it)")
        return v

    @model_validator(mode="after")
    def _something_to_run(self) -> Transform:
        if self.function is not None:
            both = [name for name, given in (("cmd", self.cmd), ("stdin", self.stdin), ("image", self.image))
                    if given]
            if both:
                raise ValueError(f"function runs the pipeline's Python code in Tusk's own worker: leave out "
                                 f"{' and '.join(both)}, or drop function and give a cmd")
            return self
        if not self.cmd and not self.image:
            raise ValueError("cmd is required: the command each datum runs (only a spec with an image may leave "
                             "it out, to run the image's entrypoint, as in Pachyderm)")
        return self

    @property
    def batched(self) -> bool:
        """Whether one long-lived process takes datum after datum: ``datum_batching``, or a ``function``."""
        return self.datum_batching or self.function is not None


class Trigger(_Spec):
    """``input.pfs.trigger``, honoured as a branch trigger (``tusk.pipelines.input_triggers``)."""

    branch: str | None = None
    all: bool = False
    cron_spec: str | None = None
    size: str | None = None
    commits: int | None = None
    rate_limit_spec: str | None = None  # newer pachd's; refused (tusk.pipelines.support)


class PfsInput(_Spec):
    repo: str
    name: str | None = None
    branch: str = "master"
    glob: str
    commit: str | None = None
    lazy: bool = False
    empty_files: bool = False
    join_on: str | None = None
    outer_join: bool = False
    group_by: str | None = None
    trigger: Trigger | None = None
    repo_type: str | None = None
    project: dict[str, Any] | str | None = None
    s3: bool = False
    reference: bool = False

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str) -> str:
        return _named(validate_repo_name, v)

    @field_validator("branch")
    @classmethod
    def _branch(cls, v: str) -> str:
        return _named(validate_branch_name, v)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else _input_name(v)

    @property
    def input_name(self) -> str:
        return self.name or self.repo


class CronInput(_Spec):
    name: str
    spec: str
    repo: str | None = None
    start: str | None = None
    overwrite: bool = False
    project: dict[str, Any] | str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _input_name(v)

    @field_validator("spec")
    @classmethod
    def _cron(cls, v: str) -> str:
        cron_interval(v)  # raises ValueError with the reason
        return v

    def tick_repo(self, pipeline: str) -> str:
        return self.repo or f"{pipeline}_{self.name}"


class Input(_Spec):
    """Exactly one of the input kinds; ``atom`` (Pachyderm 1.x) is read as ``pfs``."""

    pfs: PfsInput | None = None
    cross: list[Input] | None = None
    union: list[Input] | None = None
    join: list[Input] | None = None
    group: list[Input] | None = None
    cron: CronInput | None = None

    @model_validator(mode="before")
    @classmethod
    def _atom(cls, data: Any) -> Any:
        if isinstance(data, dict) and "atom" in data:
            data = dict(data)
            if "pfs" in data:
                raise ValueError("give either 'pfs' or its 1.x alias 'atom', not both")
            data["pfs"] = data.pop("atom")
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Input:
        given = [k for k in ("pfs", "cross", "union", "join", "group", "cron") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "an input needs exactly one of pfs, cross, union, join, group, cron"
                + (f" (got {', '.join(given)})" if given else "")
            )
        for combinator in ("cross", "union", "join", "group"):
            children = getattr(self, combinator)
            if children is not None and not children:
                raise ValueError(f"'{combinator}' needs at least one input")
        return self

    def given(self) -> bool:
        """False for a spout's input, which the spec leaves out (``NO_INPUT``): nothing to read."""
        return any(getattr(self, k) is not None for k in ("pfs", "cross", "union", "join", "group", "cron"))

    def effective(self, pipeline: str) -> Input:
        """This input with each cron input read as a pfs input over its tick repo (glob ``/*``)."""
        if not self.given():
            return self
        if self.cron is not None:
            return Input(pfs=PfsInput(repo=self.cron.tick_repo(pipeline), name=self.cron.name, glob="/*"))
        if self.pfs is not None:
            return self
        kind = next(k for k in ("cross", "union", "join", "group") if getattr(self, k) is not None)
        return self.model_copy(update={kind: [c.effective(pipeline) for c in getattr(self, kind)]})

    def leaves(self) -> list[PfsInput | CronInput]:
        if self.pfs is not None:
            return [self.pfs]
        if self.cron is not None:
            return [self.cron]
        children = self.cross or self.union or self.join or self.group or []
        return [leaf for child in children for leaf in child.leaves()]


class ParallelismSpec(_Spec):
    constant: int = Field(default=1, ge=1)


def _no_input() -> Input:
    """A spout's input: none (``Input.given`` is False, it has no leaves). Built unvalidated, as only the
    default of a spec that leaves ``input`` out; ``PipelineSpec`` refuses it for anything but a spout."""
    return Input.model_construct()


class Service(_Spec):
    """``service`` and ``spout.service``: the port the long-running command listens on in its sandbox, published
    on the host's loopback at ``external_port`` (``tusk.pipelines.service_pipelines``). ``type``,
    ``annotations`` and ``ip`` configure Pachyderm's Kubernetes service: warned about and ignored."""

    internal_port: int = Field(ge=1, le=65535)
    external_port: int = Field(ge=1, le=65535)
    type: str | None = None
    annotations: dict[str, str] | None = None
    ip: str | None = None


class Spout(_Spec):
    """``spout`` (Pachyderm 1.x's protocol, ``tusk.pipelines.spouts``): the command runs on and on, and each tar
    stream it writes to the named pipe ``/pfs/out`` is one commit; ``overwrite`` replaces files of the same
    path instead of appending to them. ``marker`` and ``service`` are refused (``tusk.pipelines.support``)."""

    overwrite: bool = False
    marker: str | None = None
    service: Service | None = None


class Metadata(_Spec):
    """Pachyderm's ``metadata``: annotations and labels, kept with the version. Tusk reads two annotations:
    ``tusk.io/image-fallback: host`` (``tusk.pipelines.images``) and ``tusk.io/network: host`` (the sandbox
    shares the host's network instead of having none)."""

    annotations: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)


class Egress(_Spec):
    """Pachyderm's ``egress``: where each output commit is copied once its job succeeds. ``URL`` (Pachyderm 1.x
    and 2.x) or ``object_storage.url`` (2.x); ``sql_database`` is refused (``tusk.pipelines.support``)."""

    model_config = ConfigDict(alias_generator=None, populate_by_name=True, extra="forbid", frozen=True)

    URL: str | None = None
    object_storage: dict[str, str] | None = Field(default=None, alias="objectStorage")
    sql_database: dict[str, Any] | None = Field(default=None, alias="sqlDatabase")

    @property
    def url(self) -> str | None:
        return self.URL or (self.object_storage or {}).get("url")

    @model_validator(mode="after")
    def _one_target(self) -> Egress:
        if not self.url and not self.sql_database:
            raise ValueError("egress needs URL (e.g. s3://bucket/dir) or object_storage.url")
        if self.URL and self.object_storage:
            raise ValueError("egress: give URL or object_storage, not both")
        if self.url:
            from tusk.pipelines.egress import check_url

            try:
                check_url(self.url)
            except InvalidArgument as exc:
                raise ValueError(str(exc)) from None
        return self


class PipelineName(_Spec):
    name: str
    project: dict[str, Any] | str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _named(validate_repo_name, v)


class PipelineSpec(_Spec):
    pipeline: PipelineName
    description: str = ""
    transform: Transform
    input: Input = Field(default_factory=_no_input)  # left out by a spout only (a long-running pipeline)
    parallelism_spec: ParallelismSpec = Field(default_factory=ParallelismSpec)
    datum_tries: int = Field(default=3, ge=1)
    datum_timeout: float | None = None
    job_timeout: float | None = None
    reprocess_spec: Literal["until_success", "every_job"] = "until_success"
    output_branch: str = "master"
    autoscaling: bool = False
    # the output is also taken over S3, bucket ``out`` of the datum's endpoint (tusk.pipelines.s3); None when
    # unset, so that specs without it keep their canonical JSON
    s3_out: bool | None = None
    metadata: Metadata | None = None  # None when unset, so that specs without them keep their canonical JSON
    egress: Egress | None = None
    spout: Spout | None = None  # long-running pipelines (tusk.pipelines.long_running); None when unset, so
    service: Service | None = None  # that specs without them keep their canonical JSON
    # CreatePipelineRequest's flags (python-pachyderm and pachctl's JSON carry them): update the pipeline if it
    # exists, and then run every datum again. Flags of the request, not of the version: never stored.
    update: bool = Field(default=False, exclude=True)
    reprocess: bool = Field(default=False, exclude=True)
    ignored: dict[str, Any] = Field(default_factory=dict, exclude=True)

    def annotation(self, key: str) -> str | None:
        """The value of ``metadata.annotations[key]``, if the spec sets it."""
        return self.metadata.annotations.get(key) if self.metadata else None

    @field_validator("datum_timeout", "job_timeout", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float | None:
        return parse_duration(v)

    @field_validator("output_branch")
    @classmethod
    def _branch(cls, v: str) -> str:
        return _named(validate_branch_name, v)

    @field_validator("s3_out")
    @classmethod
    def _s3_out(cls, v: bool | None) -> bool | None:
        return True if v else None

    @model_validator(mode="after")
    def _unique_input_names(self) -> PipelineSpec:
        names = [leaf.input_name if isinstance(leaf, PfsInput) else leaf.name for leaf in self.input.leaves()]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"input names must be unique; {', '.join(dupes)} repeated (set 'name' on one of them)")
        if "out" in names:
            raise ValueError("'out' is reserved for the output directory; name the input something else")
        for leaf in self.input.leaves():
            if isinstance(leaf, CronInput):
                try:
                    validate_repo_name(leaf.tick_repo(self.name))
                except InvalidArgument as exc:
                    raise ValueError(f"cron input {leaf.name}: its tick repo is an {exc.message.removeprefix('an ')}"
                                     " (set cron.repo, or shorten the pipeline or cron name)") from None
        return self

    @model_validator(mode="after")
    def _long_running(self) -> PipelineSpec:
        """What Pachyderm's ``validatePipeline`` refuses about spouts and services, with its words."""
        if self.spout is None and not self.input.given():
            raise ValueError("input is required: the data each datum reads (only a spout, which brings its own "
                             "data in, has none)")
        if self.spout is not None and self.input.given() and self.spout.service is None:
            raise ValueError("spout pipelines (without a service) must not have an input: a spout's command "
                             "brings its data in itself; remove input, or drop spout")
        if self.spout is not None and self.service is not None:
            raise ValueError("a service pipeline cannot be configured as a spout: give one of spout and service")
        if self.transform.secrets and (self.spout is not None or self.service is not None):
            raise ValueError("transform.secrets are not given to a spout's or service's command yet: pass what it "
                             "needs in transform.env, or drop spout/service")
        if self.s3_out and (self.spout is not None or self.service is not None):
            raise ValueError("s3 output is not supported in spouts or services (as in Pachyderm): drop s3_out")
        if self.service is not None:
            if self.parallelism_spec.constant != 1:
                raise ValueError("services can only be run with a constant parallelism of 1")
            bad = [leaf for leaf in self.input.leaves() if isinstance(leaf, CronInput) or leaf.glob.strip() != "/"]
            if bad or any(getattr(self.input, k) for k in ("union", "join", "group")):
                raise ValueError("services must have a single datum (as in Pachyderm): give the service pfs "
                                 "inputs (or a cross of them) with glob \"/\", each seen whole at /pfs/<name>")
        return self

    @property
    def name(self) -> str:
        return self.pipeline.name

    @property
    def long_running(self) -> str | None:
        """``spout`` or ``service`` for a pipeline whose command runs on and on instead of once per datum (it
        has no jobs: ``tusk.pipelines.long_running``), else None."""
        return "spout" if self.spout is not None else "service" if self.service is not None else None

    def pfs_leaves(self) -> list[PfsInput]:
        """Every input the engine reads, cron inputs included (as their tick repos)."""
        return [leaf for leaf in self.input.effective(self.name).leaves() if isinstance(leaf, PfsInput)]

    def canonical_json(self) -> str:
        """A stable serialization (snake_case, sorted keys) used for spec versions."""
        data = self.model_dump(mode="json", exclude_none=True)
        if not self.input.given():  # a spout's
            data.pop("input", None)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _split_ignored(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    kept: dict[str, Any] = {}
    ignored: dict[str, Any] = {}
    for key, value in data.items():
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
        (ignored if snake in IGNORED_FIELDS else kept)[key] = value
    return kept, ignored


def parse_spec(data: Any, source: str = "") -> PipelineSpec:
    """Validate a decoded spec; errors name every bad field path."""
    if not isinstance(data, dict):
        raise InvalidArgument(f"invalid pipeline spec{source}: expected an object at the top level")
    kept, ignored = _split_ignored(data)
    try:
        spec = PipelineSpec.model_validate(kept)
    except ValidationError as exc:
        raise InvalidArgument(describe_validation_error(
            exc, "pipeline spec", source, "check the spelling against Pachyderm's pipeline spec")) from None
    return spec.model_copy(update={"ignored": ignored})


def load_spec(path: Path) -> list[PipelineSpec]:
    """Read one or more specs from a JSON or YAML file (YAML may hold several documents)."""
    return [parse_spec(d, f" in {path}") for d in load_documents(path, "pipeline spec")]
