"""``tusk server``: the REST API, the scheduler and the deployments, under uvicorn, in one or several processes.

Each process also serves OIP V2 over gRPC (:mod:`tusk.serving.grpc`) on its own port, on the same event loop,
started once the deployments are loaded and stopped (gracefully) before they are.

With ``--workers N`` the server is pre-fork (:mod:`tusk.root.prefork`): the
parent binds the socket and loads and verifies the models once, and the forked
workers share them (copy-on-write); each worker follows branch moves on its own,
and the parent rolls the workers onto newly shared models. SIGTERM or Ctrl-C is
a graceful shutdown: stop accepting, finish in-flight requests, commit the
request logs, exit 0.
"""

from __future__ import annotations

import gc
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette

from tusk.config import Settings

__all__ = ["GRPC_PORT", "ServeOptions", "serve", "serve_in_thread", "with_grpc"]

GRPC_PORT = 8081  # `tusk server`'s default gRPC port: MLServer's, beside the same REST port 8080


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    deployments: tuple[str, ...] = ()  # empty: every deployment
    poll: float = 1.0  # seconds between checks for moved branches and new deployment revisions
    request_logging: bool = True
    log_level: str = "info"
    graceful_seconds: float = 30.0
    log_format: str = "text"  # text | json (structured: one object per line)
    auth: bool = False  # require API tokens (off by default on loopback, on by default elsewhere)
    scheduler: bool = True  # run triggered jobs and cron ticks in this server
    allow_unsandboxed: bool = False  # with auth on, run user code without a sandbox all the same (an admin's call)
    s3_port: int | None = None  # also serve the S3 gateway on this port (tusk.s3gateway); None: no gateway
    grpc_port: int | None = None  # also serve OIP V2 over gRPC on this port (0: any free one); None: no gRPC


def _app(settings: Settings, options: ServeOptions) -> Starlette:
    from tusk.root.app import create_server_app
    from tusk.services import Services

    app = create_server_app(Services.open(settings), auth=options.auth, scheduler=options.scheduler,
                            deployments=list(options.deployments) or None, poll=options.poll,
                            request_logging=options.request_logging, close_services=True)
    if options.grpc_port is not None:
        with_grpc(app, options.host, options.grpc_port, reuse_port=options.workers > 1,
                  grace=options.graceful_seconds)
    return _frozen_after_startup(app)


def _frozen_after_startup(app: Starlette) -> Starlette:
    """Once the server has started (its models loaded), move what is alive to the collector's permanent
    generation: modules, routes, schemas and models are never garbage, and every full collection under load
    would walk them all again, a pause of tens of milliseconds that was most of the serving p99. Only in
    ``tusk server``'s own process: an app embedded elsewhere leaves its host's collector alone."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as value:
            gc.collect()
            gc.freeze()
            yield value

    app.router.lifespan_context = lifespan
    return app


def with_grpc(app: Starlette, host: str, port: int, reuse_port: bool = False, grace: float = 30.0) -> Starlette:
    """Serve the app's deployments over gRPC too, on ``port`` (0: any free one, in ``app.state.grpc_port`` once
    started), for as long as the app runs: the gRPC server starts after the app's startup (models loaded) and
    stops, letting calls in flight finish, before its shutdown. ``app``: the API app or the serving app."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as value:
            from tusk.serving.grpc import GrpcEndpoint  # grpcio only where gRPC is served

            api = getattr(app.state, "api", None)
            endpoint = GrpcEndpoint(_serving_handlers(app), host, port, _grpc_identify(api) if api else None,
                                    reuse_port=reuse_port)
            app.state.grpc_port = await endpoint.start()
            try:
                yield value
            finally:
                await endpoint.stop(grace)

    app.router.lifespan_context = lifespan
    return app


def _serving_handlers(app: Starlette) -> Any:
    """The serving app's handlers: the app's own, or those of the serving app the API app mounts."""
    for candidate in (app, *(getattr(r, "app", None) for r in app.routes)):
        handlers = getattr(getattr(candidate, "state", None), "handlers", None)
        if handlers is not None:
            return handlers
    raise RuntimeError("gRPC needs the serving app: this app does not serve deployments")


def _grpc_identify(api: Any) -> Any:
    """Who makes a gRPC call, as the API's Identify middleware decides it for REST: with auth on, the user of
    the ``authorization: Bearer TOKEN`` metadata; else the ``x-tusk-user`` metadata or the server's user."""
    import anyio

    from tusk.api._deps import Caller
    from tusk.errors import Unauthenticated

    async def identify(metadata: Mapping[str, str]) -> Any:
        user = api.ops.settings.user
        if api.auth:
            auth = metadata.get("authorization", "")
            token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
            if not token:
                raise Unauthenticated("this server requires a token: send `authorization: Bearer TOKEN` metadata "
                                      "(a token from `tusk auth login` or `tusk auth token create`)")
            user = await anyio.to_thread.run_sync(api.tokens.authenticate, token)
        elif metadata.get("x-tusk-user"):
            user = metadata["x-tusk-user"][:255]
        return Caller(user, api)

    return identify


def require_sandbox(settings: Settings, options: ServeOptions) -> None:
    """With auth on, a server runs other users' code: refuse to start without a sandbox, unless allowed."""
    if not options.auth or options.allow_unsandboxed:
        return
    from tusk.errors import InvalidArgument
    from tusk.pipelines.runtimes import ConfiguredRuntime

    runtime = ConfiguredRuntime(settings.runtime, settings.extra, settings.datum_limits)
    if runtime.name == "local":
        raise InvalidArgument("auth is on, so this server runs other users' code, but pipelines would run "
                              f"without a sandbox ({runtime.note or 'TUSK_RUNTIME=local'}); install bubblewrap, "
                              "or pass --allow-unsandboxed (TUSK_ALLOW_UNSANDBOXED=1) to accept the risk")


def serve(settings: Settings, options: ServeOptions) -> None:
    from tusk.root.s3 import gateway_beside

    require_sandbox(settings, options)
    if options.grpc_port:
        _require_free(options.host, options.grpc_port, "gRPC", "--grpc-port N for another port, or --no-grpc")
    if options.s3_port:
        _require_free(options.host, options.s3_port, "the S3 gateway", "--s3-port N for another port, or --no-s3")
    if options.workers > 1:  # pre-fork: the gateway runs in a child, as the parent must run no thread
        from tusk.root.prefork import serve_prefork

        gateway = (lambda: gateway_beside(settings, options.host, options.s3_port, auth=options.auth)) \
            if options.s3_port else None
        code = serve_prefork(settings, options, gateway)
        if code:
            raise SystemExit(code)
        return
    with gateway_beside(settings, options.host, options.s3_port, auth=options.auth):  # in this process
        _serve_api(settings, options)


def _require_free(host: str, port: int, what: str, fix: str) -> None:
    """A one-line error up front, not a traceback from a server's startup, when a port is taken."""
    import socket

    from tusk.errors import InvalidArgument

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpc binds: TIME_WAIT is no obstacle
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InvalidArgument(f"cannot serve {what} on {host}:{port} ({exc.strerror}): pass {fix}") from None


def _serve_api(settings: Settings, options: ServeOptions) -> None:
    """One process: the app under uvicorn, here."""
    import uvicorn

    from tusk.logs import log_config

    # uvicorn re-raises SIGTERM/SIGINT once it has shut down gracefully; with this handler in place the
    # re-raised signal ends the process with status 0, as a clean stop should (and as --workers N does)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(_app(settings, options), host=options.host, port=options.port,
                log_level=options.log_level, timeout_graceful_shutdown=int(options.graceful_seconds),
                access_log=False, log_config=log_config(options.log_format, options.log_level))


@contextmanager
def serve_in_thread(app: Starlette, host: str = "127.0.0.1", port: int = 0, timeout: float = 120.0
                    ) -> Iterator[str]:
    """Run an app under uvicorn in a background thread (port 0: any free one); yields its base URL once it
    accepts requests, and shuts it down gracefully on exit. For notebooks, the demo and tests."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="tusk-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout)
