"""The deployment spec: which models serve a name, with what traffic split, shadow, batching, detectors and logging.

::

    name: census
    predictors:
      - {name: stable, model: "census-model@production:/income/model.joblib", weight: 90}
      - {name: canary, model: "census-model@staging:/income/model.joblib", weight: 10}
    shadow: {name: candidate, model: "census-model@candidate:/income/model.joblib"}
    batching: {max_batch_size: 64, max_wait_ms: 2}
    detectors:
      reference: "census@v1:/train.csv"
      outlier: {method: mahalanobis, quantile: 0.995}
      drift: {window: 1000, every: 200, p_value: 0.01}
    logging: {repo: census-requests, flush_rows: 2000, flush_seconds: 5}

A predictor that names a branch follows it: moving the branch (``tusk model
promote``/``rollback``) hot-swaps the model. One that names a commit is pinned.
Unknown fields are errors naming their path, as for pipeline specs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tusk.documents import describe_validation_error, load_documents
from tusk.errors import InvalidArgument
from tusk.ids import validate_repo_name
from tusk.versioning.refs import parse_file_ref

__all__ = [
    "Batching",
    "DeploymentSpec",
    "Detectors",
    "DriftSpec",
    "LoggingSpec",
    "OutlierSpec",
    "PredictorSpec",
    "load_deployment_specs",
    "parse_deployment_spec",
]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _checked_ref(value: str, need_path: bool = False) -> str:
    try:
        ref = parse_file_ref(value, default_branch=None)
    except InvalidArgument as exc:  # InvalidRef, InvalidPath: reported by pydantic with the field's path
        raise ValueError(str(exc)) from None
    if need_path and not ref.has_path:
        raise ValueError(f"{value!r} names no file: use repo@ref:/path/to/file.csv")
    return value


class PredictorSpec(_Spec):
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")
    model: str  # repo@branch[:/path] (follows the branch) or repo@commit[:/path] (pinned)
    weight: float = Field(default=1.0, ge=0)

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        return _checked_ref(v)


class Batching(_Spec):
    max_batch_size: int = Field(default=64, ge=1, le=100_000)  # rows per model call
    max_wait_ms: float = Field(default=0.0, ge=0, le=10_000)  # how long a lone request waits for company


class OutlierSpec(_Spec):
    method: Literal["mahalanobis", "isolation_forest"] = "mahalanobis"
    quantile: float = Field(default=0.995, gt=0.5, lt=1)  # of the reference's own scores: the outlier threshold


class DriftSpec(_Spec):
    window: int = Field(default=1000, ge=20)  # the most recent rows compared with the reference
    every: int = Field(default=200, ge=1)  # rows between two tests
    p_value: float = Field(default=0.01, gt=0, lt=1)  # per-test level, Bonferroni-corrected over the features


class Detectors(_Spec):
    reference: str  # repo@ref:/file.csv — the training data (pinned to its commit when the deployment loads)
    features: list[str] | None = None  # default: every column of the reference but the label
    label: str | None = None  # a reference column that is not a feature
    outlier: OutlierSpec | None = Field(default_factory=OutlierSpec)
    drift: DriftSpec | None = Field(default_factory=DriftSpec)

    @field_validator("reference")
    @classmethod
    def _reference(cls, v: str) -> str:
        return _checked_ref(v, need_path=True)


class LoggingSpec(_Spec):
    enabled: bool = True
    repo: str | None = None  # default: <deployment>-requests
    branch: str = "master"
    flush_rows: int = Field(default=2000, ge=1)
    flush_seconds: float = Field(default=5.0, gt=0)
    max_buffered: int = Field(default=100_000, ge=1)  # beyond this, records are dropped and counted
    max_buffered_bytes: int = Field(default=256 << 20, ge=1)  # the buffer's rows, estimated; beyond: dropped
    max_record_bytes: int = Field(default=64 << 10, ge=256)  # a record over this keeps its metadata, not its data
    max_flush_bytes: int = Field(default=16 << 20, ge=1024)  # one log file per flush, at most this big
    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)  # the fraction of requests logged
    redact: list[str] = Field(default_factory=list)  # input columns (and outputs) never written to the log

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                validate_repo_name(v)
            except InvalidArgument as exc:
                raise ValueError(str(exc)) from None
        return v


class DeploymentSpec(_Spec):
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")
    description: str = ""
    predictors: list[PredictorSpec] = Field(min_length=1)
    shadow: PredictorSpec | None = None
    sticky: bool = True  # a client keeps its predictor (cookie, or X-Tusk-Route-Key hashed)
    batching: Batching = Field(default_factory=Batching)
    detectors: Detectors | None = None
    logging: LoggingSpec = Field(default_factory=LoggingSpec)

    @model_validator(mode="after")
    def _predictors(self) -> DeploymentSpec:
        names = [p.name for p in self.predictors] + ([self.shadow.name] if self.shadow else [])
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"predictor names must be unique; repeated: {', '.join(dupes)}")
        if sum(p.weight for p in self.predictors) <= 0:
            raise ValueError("at least one predictor needs a weight above 0")
        return self

    @property
    def log_repo(self) -> str:
        return self.logging.repo or f"{self.name}-requests"

    def predictor(self, name: str) -> PredictorSpec:
        for p in [*self.predictors, *([self.shadow] if self.shadow else [])]:
            if p.name == name:
                return p
        raise InvalidArgument(f"deployment {self.name} has no predictor {name!r} "
                              f"(it has {', '.join(p.name for p in self.predictors)})")

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def with_weights(self, weights: dict[str, float]) -> DeploymentSpec:
        """The same deployment with new traffic weights (unnamed predictors keep theirs)."""
        known = {p.name for p in self.predictors}
        unknown = sorted(set(weights) - known)
        if unknown:
            raise InvalidArgument(f"deployment {self.name} has no predictor {', '.join(unknown)} "
                                  f"(it has {', '.join(sorted(known))})")
        data = self.model_dump(mode="json")
        for p in data["predictors"]:
            p["weight"] = weights.get(p["name"], p["weight"])
        return parse_deployment_spec(data)


def parse_deployment_spec(data: Any, source: str = "") -> DeploymentSpec:
    if not isinstance(data, dict):
        raise InvalidArgument(f"invalid deployment spec{source}: expected an object at the top level")
    try:
        return DeploymentSpec.model_validate(data)
    except ValidationError as exc:
        raise InvalidArgument(describe_validation_error(exc, "deployment spec", source)) from None


def load_deployment_specs(path: Path) -> list[DeploymentSpec]:
    return [parse_deployment_spec(d, f" in {path}") for d in load_documents(path, "deployment spec")]
