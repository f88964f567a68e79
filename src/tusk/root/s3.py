"""The S3 gateway beside ``tusk server``: on its own port, in a thread of the server's (parent) process,
with services of its own on the same store. On at 30600 unless ``--no-s3`` (docs/decisions/0013)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tusk.config import Settings
from tusk.errors import InvalidArgument
from tusk.s3gateway import DEFAULT_PORT

__all__ = ["gateway_beside"]


@contextlib.contextmanager
def gateway_beside(settings: Settings, host: str, port: int | None, auth: bool) -> Iterator[str | None]:
    """Serve the gateway on ``host:port`` while the block runs (``port`` None: not at all); yields its URL."""
    if port is None:
        yield None
        return
    from tusk.root.server import serve_in_thread
    from tusk.s3gateway.app import create_s3_app
    from tusk.services import Services

    if not 0 < port < 65536:
        raise InvalidArgument(f"--s3-port {port}: give a port between 1 and 65535 (Pachyderm's is {DEFAULT_PORT})")
    app = create_s3_app(Services.open(settings), auth=auth, close_services=True)
    try:
        running = serve_in_thread(app, host, port)
        url = running.__enter__()
    except RuntimeError:
        raise InvalidArgument(f"the S3 gateway could not listen on {host}:{port} (is the port in use?): pick "
                              "another with --s3-port N, or pass --no-s3") from None
    try:
        yield url
    finally:
        running.__exit__(None, None, None)
