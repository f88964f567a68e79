"""S3-enabled pipelines: ``input.pfs.s3`` and ``s3_out``, as Pachyderm's S3 gateway sidecar serves them.

For a datum of such a pipeline the worker asks a ``DatumGateway`` for an
endpoint on loopback that lives while the datum runs and serves only:

- one read-only bucket per s3 input, named as the input (its ``name``), at the
  exact input commit of the datum (its files are not put at ``/pfs/<name>``);
- with ``s3_out``, a write-only bucket ``out`` whose objects are the datum's
  output, ingested with what ``/pfs/out`` holds, as in Pachyderm.

The user code finds it in ``S3_ENDPOINT`` (Pachyderm's name) with a key pair
of its own (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``), good for this
endpoint only and acting with the pipeline creator's rights. The gateway is
the S3 gateway's (``tusk.s3gateway``), given to the job runner by the
composition root (``tusk.root``: ``tusk server``, a Dask worker) or the CLI,
through ``Services.use_datum_gateways``: pipelines never import it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tusk.pipelines.spec import PipelineSpec

__all__ = ["OUT_BUCKET", "DatumGateway", "Endpoint", "InputBucket", "endpoint_env", "wants_s3_out"]

OUT_BUCKET = "out"


@dataclass(frozen=True)
class InputBucket:
    """An s3 input of a datum: bucket ``name`` is commit ``commit`` (a full id) of ``repo``, read-only."""

    name: str
    repo: str
    commit: str


@dataclass(frozen=True)
class Endpoint:
    url: str  # http://127.0.0.1:PORT
    access_key: str
    secret_key: str
    socket: Path | None = None  # the same endpoint on a unix socket: a sandbox without a network is bridged to it


class DatumGateway(Protocol):
    def serve(self, inputs: Sequence[InputBucket], out: Path | None, user: str
              ) -> AbstractContextManager[Endpoint]:
        """An endpoint serving ``inputs`` and, when ``out`` is a directory, bucket ``out`` writing into it,
        as ``user``, until the block ends."""
        ...


def endpoint_env(endpoint: Endpoint) -> Mapping[str, str]:
    """The variables the user code reads: Pachyderm's ``S3_ENDPOINT``, and what AWS clients read."""
    return {"S3_ENDPOINT": endpoint.url, "S3GATEWAY_PORT": endpoint.url.rsplit(":", 1)[-1],
            "AWS_ACCESS_KEY_ID": endpoint.access_key,
            "AWS_SECRET_ACCESS_KEY": endpoint.secret_key, "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint.url, "AWS_ENDPOINT_URL_S3": endpoint.url}


def wants_s3_out(spec: PipelineSpec) -> bool:
    """Whether the spec sets ``s3_out``: the output is taken over S3 too."""
    return bool(spec.s3_out)
