"""The composition root: how Tusk's processes are put together.

``app`` (``tusk server``'s ASGI app: API, dashboard, serving, scheduler), ``server`` (``tusk server`` under
uvicorn, gRPC beside it, ``serve_in_thread``), ``prefork`` (``--workers N``: models loaded once, shared by
forked workers), ``s3`` (the S3 gateway beside the server), ``scheduler`` (triggered jobs, cron, gc, spouts and
services in the background) and ``dask_worker`` (what a Dask worker process runs for a datum).

Everything here sits above the services and the interfaces it wires; nothing below imports it (the import
contract in pyproject.toml). Only the CLI, the demo and tests do.
"""

from tusk.root.app import create_server_app

__all__ = ["create_server_app"]
