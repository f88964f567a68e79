"""The serving half of tusk.Client: deployments and algorithms."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tusk.errors import InvalidArgument
from tusk.sdk._models import ModelMethods

if TYPE_CHECKING:  # serving (numpy, the deployment spec) loads when a serving command needs it
    from tusk.algorithms.registry import AlgorithmHandle, AlgorithmVersion
    from tusk.deployments.registry import DeploymentInfo, DeploymentRevision
    from tusk.deployments.spec import DeploymentSpec

__all__ = ["ServingMethods"]


def _spec(spec: DeploymentSpec | dict[str, Any] | str | Path) -> DeploymentSpec:
    from tusk.deployments.spec import DeploymentSpec, load_deployment_specs, parse_deployment_spec

    if isinstance(spec, DeploymentSpec):
        return spec
    if isinstance(spec, dict):
        return parse_deployment_spec(spec)
    specs = load_deployment_specs(Path(spec))
    if len(specs) != 1:
        raise InvalidArgument(f"{spec} holds {len(specs)} deployment specs; pass one at a time")
    return specs[0]


class ServingMethods(ModelMethods):
    # -- deployments -----------------------------------------------------------
    def create_deployment(self, spec: DeploymentSpec | dict[str, Any] | str | Path) -> DeploymentInfo:
        """Create a deployment from a spec (object, dict, or JSON/YAML file); every model ref must resolve."""
        return self.services.deployments.create(_spec(spec))

    def update_deployment(self, spec: DeploymentSpec | dict[str, Any] | str | Path) -> DeploymentInfo:
        return self.services.deployments.update(_spec(spec))

    def rollout(self, name: str, weights: dict[str, float]) -> DeploymentInfo:
        """New traffic weights, e.g. ``{"canary": 25}``; servers pick them up within a poll interval."""
        return self.services.deployments.rollout(name, weights)

    def rollback_deployment(self, name: str, revision: int | None = None) -> DeploymentInfo:
        """Back to the previous revision's spec (or ``revision``'s), as a new revision."""
        return self.services.deployments.rollback(name, revision)

    def inspect_deployment(self, name: str) -> DeploymentInfo:
        return self.services.deployments.inspect(name)

    def list_deployments(self) -> list[DeploymentInfo]:
        return self.services.deployments.list()

    def deployment_history(self, name: str) -> list[DeploymentRevision]:
        return self.services.deployments.history(name)

    def delete_deployment(self, name: str) -> None:
        self.services.deployments.delete(name)

    # -- algorithms ------------------------------------------------------------
    def publish_algorithm(self, directory: str | Path, name: str, version: str) -> AlgorithmVersion:
        """Publish the directory (with its algorithm.yaml) as ``owner/name/version``; versions are immutable."""
        return self.services.algorithms.publish(Path(directory), name, version)

    def list_algorithms(self, name: str | None = None) -> list[AlgorithmVersion]:
        return self.services.algorithms.list(name)

    def algo(self, ref: str) -> AlgorithmHandle:
        """``client.algo("owner/name/1.2").pipe(x)`` → response with ``.result`` and ``.metadata``."""
        return self.services.algorithms.algo(ref)
