"""A datum's S3 endpoint (``input.pfs.s3``, ``s3_out``): the gateway on loopback, on a free port, while one
datum runs, serving only that datum's buckets, as Pachyderm's S3 gateway sidecar does for its worker.

Each s3 input is a read-only bucket named as the input, at the datum's exact input commit; with ``s3_out``,
bucket ``out`` writes into the datum's output directory (``tusk.s3gateway.outbucket``). Requests must be
signed with a key pair made for the endpoint (random, never stored); they act as the pipeline's creator, whose
right to read the inputs the job runner checked before any datum ran. This is the implementation of
``tusk.pipelines.s3.DatumGateway`` that ``tusk.services`` gives the job runner.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tusk.errors import TuskError
from tusk.pipelines.s3 import Endpoint, InputBucket
from tusk.s3gateway.buckets import Bucket
from tusk.s3gateway.outbucket import DatumScope
from tusk.services import Services

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["DatumGateways", "datum_gateways"]


class DatumGateways:
    """Endpoints for datums, over the services of the job runner (or of a Dask worker)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @contextlib.contextmanager
    def serve(self, inputs: Sequence[InputBucket], out: Path | None, user: str) -> Iterator[Endpoint]:
        from tusk.s3gateway.app import create_s3_app

        access_key = "TUSKDATUM" + secrets.token_hex(6).upper()
        secret = secrets.token_hex(20)
        scope = DatumScope(inputs={i.name: Bucket(i.name, i.repo, i.commit, writable=False) for i in inputs},
                           keys={access_key: (user, secret)}, out=out)
        spool = self.services.settings.home / "tmp" / "s3-uploads"
        app = create_s3_app(self.services, auth=False, spool=spool, scope=scope)
        with _serve(app) as (port, path):
            yield Endpoint(f"http://127.0.0.1:{port}", access_key, secret, path)


@contextlib.contextmanager
def _serve(app: Starlette) -> Iterator[tuple[int, Path]]:
    """Serve ``app`` on a free loopback port and on a unix socket (what a sandbox without a network reaches,
    bound into it), until the block ends."""
    import uvicorn

    with tempfile.TemporaryDirectory(prefix="tusk-s3-") as tmp:
        os.chmod(tmp, 0o755)  # the sandbox's uid connects to the socket in it
        path = Path(tmp) / "s3.sock"
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        uds = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        uds.bind(str(path))
        os.chmod(path, 0o666)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [tcp, uds]}, name="tusk-datum-s3",
                                  daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise TuskError("the datum's S3 endpoint did not start (the server's log says why)")
                time.sleep(0.01)
            yield tcp.getsockname()[1], path
        finally:
            server.should_exit = True
            thread.join(30)
            tcp.close()
            uds.close()


def datum_gateways(services: Services) -> DatumGateways:
    """The factory ``Services.use_datum_gateways`` takes."""
    return DatumGateways(services)
