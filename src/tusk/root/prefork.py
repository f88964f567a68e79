"""``tusk server --workers N``: a pre-fork server whose workers share the models it loaded once.

The parent process (the supervisor) binds the REST socket, loads and verifies
the deployments' current models, and forks the workers. Each inherits the
socket and the loaded models (copy-on-write pages, kept clean by
``gc.freeze``), builds its own app and services (its own database connections,
its own job owner for the scheduler's leases) and serves under uvicorn. A worker
follows deployment revisions and branch moves on its own, as a single process
does, so a hot swap never waits for the parent. The parent follows them too:
when the models the deployments name change it loads the new ones once and
rolls the workers (a new generation starts on the new models; once every new
worker accepts requests the old ones drain and exit), so memory grows with the
models, not with models times workers. A worker that dies is restarted.

Only what survives a fork is shared. A model whose loading starts a thread (an
onnxruntime session's pool; GNU OpenMP, which XGBoost and LightGBM use, hangs a
child at its first prediction once the parent has run a parallel region) is
loaded by each worker, as are ONNX, XGBoost, LightGBM, MLflow and Python-class
models (the last two live in a directory that whichever process drops the model
first would delete). The parent checks a pickled model in a throwaway child
before loading it itself, and never runs a thread or an event loop of its own:
the S3 gateway runs in a child of its own. See docs/decisions/0018-shared-models.md.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import uvicorn

from tusk.config import Settings

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from tusk.models.loaders import LoadedModel
    from tusk.root.server import ServeOptions
    from tusk.services import Services
    from tusk.serving.live import ServingState

__all__ = ["SHAREABLE_FLAVORS", "SharedModels", "Supervisor", "serve_prefork"]

log = logging.getLogger("tusk.serving")

# Flavors a parent may load for its workers: plain pickles, which start no thread and hold no directory.
SHAREABLE_FLAVORS = frozenset({"sklearn", "pickle", "joblib"})
# what pickled models commonly need, imported by the parent before any model loads
_PRELOADED_MODULES = ("numpy", "scipy.linalg", "pandas", "sklearn.pipeline", "sklearn.compose",
                      "sklearn.linear_model", "sklearn.ensemble", "sklearn.preprocessing", "joblib")
_PROBE_SECONDS = 300.0  # the longest a throwaway child may take to load a model before it counts as unsafe
_ROLL_SECONDS = 300.0  # the longest a new generation may take to accept requests before the roll is abandoned
_RETRY_SECONDS = 30.0  # after an abandoned roll, the wait before the next try
_QUICK_DEATH = 5.0  # a child that dies this soon after it started is restarted after a pause, not at once


def _threads() -> int:
    """Threads of this process, native ones (BLAS, OpenMP, onnxruntime) included."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # no procfs: count what Python knows
        return threading.active_count()


def _fork() -> int:
    """``os.fork`` with the parent's objects frozen first, so a child's garbage collector never writes to
    (and so copies) the pages they live on."""
    gc.disable()
    gc.freeze()
    pid = os.fork()
    if pid != 0:
        gc.unfreeze()  # the parent collects as usual; the children keep their copy frozen
    gc.enable()
    return pid


@dataclass
class SharedModels:
    """The models a parent loaded and verified for its workers, by pinned ref (``repo@commit[:path]``)."""

    services: Services
    only: frozenset[str] | None = None  # the deployments served (None: all)
    models: dict[str, LoadedModel] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # pinned ref → why the workers load it themselves
    _specs: dict[tuple[str, int], Any] = field(default_factory=dict)

    def wanted(self) -> set[str]:
        """The pinned refs every served predictor names now (a branch resolved to its head), as
        ``ServingState`` would load them. A deployment or branch that cannot be read is the workers' to report."""
        from tusk.errors import TuskError
        from tusk.ids import is_commit_id
        from tusk.versioning.refs import FileRef, parse_file_ref

        s = self.services
        out: set[str] = set()
        revisions = {n: r for n, r in s.deployments.revisions().items() if self.only is None or n in self.only}
        self._specs = {k: v for k, v in self._specs.items() if revisions.get(k[0]) == k[1]}
        for name, revision in revisions.items():
            try:
                spec = self._specs.get((name, revision)) or s.deployments.get(name)
                self._specs[(name, revision)] = spec
                for p in [*spec.predictors, *([spec.shadow] if spec.shadow else [])]:
                    ref = parse_file_ref(p.model, default_branch=None)
                    commit = ref.ref if is_commit_id(ref.ref) else s.commits.inspect(ref.repo, ref.ref).id
                    out.add(str(FileRef(ref.repo, commit, 0, ref.path, ref.has_path)))
            except TuskError as exc:
                log.debug("shared models: deployment %s: %s", name, exc)
        return out

    def refresh(self) -> bool:
        """Load the wanted models not held yet, forget the ones no longer wanted; True if what is shared changed."""
        wanted = self.wanted()
        changed = False
        for ref in [r for r in self.models if r not in wanted]:
            del self.models[ref]
            changed = True
        self.skipped = {r: why for r, why in self.skipped.items() if r in wanted}
        for ref in sorted(wanted - self.models.keys() - self.skipped.keys()):
            model, why = self._load(ref)
            if model is None:
                self.skipped[ref] = why
                log.info("shared models: each worker loads %s itself: %s", ref, why)
                continue
            self.models[ref] = model
            changed = True
            from tusk.serving.metrics import METRICS

            METRICS.model_loads.labels("shared").inc()
            log.info("shared models: loaded and verified %s once, for every worker", ref)
        self.services.ctx.content.stop_threads()  # (reads run in a pool: its threads must not see a fork)
        return changed

    def _load(self, ref: str) -> tuple[LoadedModel | None, str]:
        from tusk.models.loaders import load_model

        try:
            manifest, path, files = self.services.models.read_verified(ref, only_model=True)
            entry = manifest.model(path)
        except Exception as exc:  # the workers load it, and report the error where readiness shows it
            return None, f"it could not be read here ({type(exc).__name__}: {exc})"
        if entry.flavor not in SHAREABLE_FLAVORS:
            return None, f"{entry.flavor} models are not shared (only {', '.join(sorted(SHAREABLE_FLAVORS))})"
        started = _probe(lambda: load_model(entry, files, manifest))
        if started:
            return None, started
        try:
            return load_model(entry, files, manifest), ""
        except Exception as exc:
            return None, f"it failed to load here ({type(exc).__name__})"

    def loader(self, own: Callable[[str], LoadedModel]) -> Callable[[str], LoadedModel]:
        """In a worker: what ``ServingState`` loads with; a shared model, or one ``own`` loads (and counts)."""
        def load(ref: str) -> LoadedModel:
            model = self.models.get(ref)
            if model is not None:
                return model
            from tusk.serving.metrics import METRICS

            model = own(ref)
            METRICS.model_loads.labels("worker").inc()
            log.info("worker %d: loaded %s itself (not shared)", os.getpid(), ref)
            return model

        return load


def _probe(load: Callable[[], object]) -> str:
    """Load a model in a throwaway child: why it is unsafe to share ("" when its loading started no thread and
    finished in time). The parent must not be the first to find out: a thread pool started in it would be
    missing, half-initialised, in every worker it forks later."""
    r, w = os.pipe()
    pid = _fork()
    if pid == 0:  # the throwaway child: no store access (the bytes are in memory), no cleanup, just the verdict
        code = 0
        try:
            os.close(r)
            before = _threads()
            load()
            os.write(w, str(_threads() - before).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    verdict = None
    try:
        ready, _, _ = select.select([r], [], [], _PROBE_SECONDS)
        verdict = os.read(r, 32).decode() if ready else None
    finally:
        os.close(r)
        if verdict is None:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    if verdict is None:
        return f"loading it took over {_PROBE_SECONDS:.0f}s in a test process"
    if not verdict:
        return "it failed to load in a test process"
    if int(verdict) > 0:
        return f"loading it starts {verdict} thread(s), which a forked worker would not have"
    return ""


@dataclass
class _Child:
    pid: int
    kind: str  # "worker" or "gateway"
    generation: int
    started: float
    ready: int | None = None  # the read end of the worker's "I accept requests" pipe


class Supervisor:
    """The parent of a pre-fork server: forks the workers (and the S3 gateway), restarts them when they die,
    rolls them onto newly shared models, and stops them gracefully on SIGTERM or SIGINT."""

    def __init__(self, settings: Settings, options: ServeOptions, sock: socket.socket, shared: SharedModels,
                 gateway: Callable[[], AbstractContextManager[Any]] | None = None) -> None:
        self.settings = settings
        self.options = options
        self.sock = sock
        self.shared = shared
        self.gateway = gateway
        self.children: dict[int, _Child] = {}
        self.generation = 0
        self.stopping = False
        self._wake_r, self._wake_w = os.pipe()
        self._stale = False  # the workers run on models no longer (or not yet) shared: roll them
        self._retry_at = 0.0

    # -- the parent ------------------------------------------------------------
    def run(self) -> int:
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        signal.set_wakeup_fd(self._wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # (wakes the loop through the wakeup fd)
        if self.gateway is not None:
            self._start("gateway")
        try:
            self.shared.refresh()
        except Exception:  # the workers load their models themselves, and the next poll tries again
            log.exception("shared models: cannot read the deployments; each worker loads its own models")
        self.generation = 1
        for _ in range(self.options.workers):
            self._start("worker")
        next_check = time.monotonic() + self.options.poll
        while not self.stopping:
            self._wait([], max(0.0, next_check - time.monotonic()))
            self._reap()
            if not self.stopping and time.monotonic() >= next_check:
                next_check = time.monotonic() + self.options.poll
                self._follow()
        return self._shutdown()

    def _stop(self, *_: object) -> None:
        self.stopping = True

    def _wait(self, fds: list[int], timeout: float) -> list[int]:
        """Sleep until a signal arrives (SIGCHLD included), one of ``fds`` is readable, or ``timeout`` passes."""
        try:
            ready, _, _ = select.select([self._wake_r, *fds], [], [], timeout)
        except InterruptedError:
            return []
        if self._wake_r in ready:
            try:
                while os.read(self._wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        return [fd for fd in ready if fd != self._wake_r]

    def _reap(self) -> list[_Child]:
        """Collect the children that exited; restart the current ones (unless stopping). Returns the dead."""
        dead = []
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            child = self.children.pop(pid, None)
            if child is None:
                continue
            dead.append(child)
            if child.ready is not None:
                os.close(child.ready)
                child.ready = None
            current = child.kind == "gateway" or child.generation == self.generation
            if self.stopping or not current:
                continue
            log.error("%s %d exited (%s); starting another", child.kind, pid, _status(status))
            if time.monotonic() - child.started < _QUICK_DEATH:
                time.sleep(1.0)  # a child that cannot start must not become a fork loop
            if not self.stopping:
                self._start(child.kind)
        return dead

    def _follow(self) -> None:
        """Share the models the deployments name now; when that changed, roll the workers onto them."""
        try:
            self._stale = self.shared.refresh() or self._stale
        except Exception:
            log.exception("shared models: cannot read the deployments; the workers go on as they are")
            return
        if self._stale and time.monotonic() >= self._retry_at:
            failed = self._roll()
            if failed is None:
                self._stale = False
                return
            log.error("rolling the workers onto the newly shared models failed (%s); the current workers go on, "
                      "and the roll is tried again in %.0fs", failed, _RETRY_SECONDS)
            self._retry_at = time.monotonic() + _RETRY_SECONDS

    def _roll(self) -> str | None:
        """Start a new generation of workers; once all accept requests, stop the old ones (they finish their
        requests and commit their request logs). Returns why it failed, or None."""
        old = [c for c in self.children.values() if c.kind == "worker"]
        pending = {c.pid: c for c in (self._start("worker", self.generation + 1)
                                      for _ in range(self.options.workers))}
        new = list(pending.values())
        deadline = time.monotonic() + _ROLL_SECONDS
        failed = None
        while pending and failed is None:
            if self.stopping:
                failed = "the server is stopping"
                break
            fds = {c.ready: c for c in pending.values() if c.ready is not None}
            for fd in self._wait(list(fds), min(1.0, max(0.0, deadline - time.monotonic()))):
                child = fds[fd]
                got = os.read(fd, 1)
                os.close(fd)
                child.ready = None
                if got:
                    del pending[child.pid]
            for child in self._reap():
                if child.pid in pending or child in new:
                    failed = f"new worker {child.pid} exited"
            if pending and time.monotonic() > deadline:
                failed = f"the new workers did not accept requests within {_ROLL_SECONDS:.0f}s"
        if failed is not None:
            for c in new:
                self._signal(c, signal.SIGTERM)
            return failed
        self.generation += 1
        for c in old:
            self._signal(c, signal.SIGTERM)
        log.info("workers rolled onto the shared models (generation %d)", self.generation)
        return None

    def _shutdown(self) -> int:
        """Stop every child gracefully (they finish in-flight requests and commit request logs), then exit 0."""
        for c in list(self.children.values()):
            self._signal(c, signal.SIGTERM)
        deadline = time.monotonic() + self.options.graceful_seconds + 15.0
        while self.children and time.monotonic() < deadline:
            self._wait([], 0.2)
            self._reap()
        for c in list(self.children.values()):
            log.error("%s %d did not stop in time: killed", c.kind, c.pid)
            self._signal(c, signal.SIGKILL)
        while self.children:
            self._wait([], 0.2)
            self._reap()
        signal.set_wakeup_fd(-1)
        return 0

    def _signal(self, child: _Child, sig: int) -> None:
        with suppress(ProcessLookupError):
            os.kill(child.pid, sig)

    def _start(self, kind: str, generation: int | None = None) -> _Child:
        if threading.active_count() > 1:
            log.warning("forking with %d threads running: a child may hang", threading.active_count())
        r, w = os.pipe() if kind == "worker" else (None, None)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = _fork()
        if pid == 0:
            self._child(kind, w, r)  # never returns
        if w is not None:
            os.close(w)
        child = _Child(pid, kind, self.generation if generation is None else generation, time.monotonic(), r)
        self.children[pid] = child
        return child

    # -- a child -----------------------------------------------------------------
    def _child(self, kind: str, ready: int | None, unused: int | None) -> None:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            for fd in (self._wake_r, self._wake_w, unused, *(c.ready for c in self.children.values())):
                if fd is not None:
                    os.close(fd)
            self.children = {}
            self.shared.services.ctx.db.forget_after_fork()  # the parent's connections are the parent's
            code = self._gateway() if kind == "gateway" else self._worker(ready)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
        except BaseException:
            log.exception("%s %d failed", kind, os.getpid())
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _worker(self, ready: int | None) -> int:
        from tusk.logs import log_config
        from tusk.root.server import _app

        app = _app(self.settings, self.options)  # its own services: its own connections and job owner
        state = _serving_state(app)
        if state is not None:
            state.loader = self.shared.loader(state.services.models.load)
        o = self.options
        closing = _CloseWhenDraining(app)
        config = uvicorn.Config(closing, log_level=o.log_level, timeout_graceful_shutdown=int(o.graceful_seconds),
                                access_log=False, log_config=log_config(o.log_format, o.log_level), lifespan="on")
        # uvicorn re-raises SIGTERM once it has shut down gracefully: end then, with status 0
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        server = _ReadyServer(config, ready, closing)
        server.run(sockets=[self.sock])
        return 0 if server.started else 3  # 3: the app did not start (uvicorn's status for that)

    def _gateway(self) -> int:
        assert self.gateway is not None
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        with self.gateway():
            while not stop.wait(0.5):
                pass
        return 0


class _CloseWhenDraining:
    """ASGI middleware: once the worker drains, every response says ``Connection: close``, so a client's next
    request opens a new connection (to a live worker) instead of racing the old worker's close."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.draining = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.draining:
            await self.app(scope, receive, send)
            return

        async def closing(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)


class _ReadyServer(uvicorn.Server):
    """uvicorn's server, telling the parent (one byte on a pipe) once it accepts requests; on shutdown (a roll, a
    SIGTERM), it stops accepting, then lets its open connections end on their own, each after its next response
    (``_CloseWhenDraining``), for up to the keep-alive timeout: uvicorn alone would close idle keep-alive
    connections at once, and a client's next request on one, already sent, would get no response."""

    def __init__(self, config: uvicorn.Config, ready: int | None, closing: _CloseWhenDraining) -> None:
        super().__init__(config)
        self._ready = ready
        self._closing = closing

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # no new connection comes here: the live workers take them
        self._closing.draining = True
        deadline = time.monotonic() + self.config.timeout_keep_alive + 1.0
        while self.server_state.connections and time.monotonic() < deadline and not self.force_exit:
            await asyncio.sleep(0.05)
        await super().shutdown(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._ready is not None:
            os.write(self._ready, b"r")
            os.close(self._ready)
            self._ready = None


def _serving_state(app: Starlette) -> ServingState | None:
    """The serving state of the app: its own, or that of the serving app the API app mounts."""
    for candidate in (app, *(getattr(r, "app", None) for r in app.routes)):
        state = getattr(getattr(candidate, "state", None), "serving", None)
        if state is not None:
            return state  # type: ignore[no-any-return]
    return None


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"status {os.waitstatus_to_exitcode(status)}"


def serve_prefork(settings: Settings, options: ServeOptions,
                  gateway: Callable[[], AbstractContextManager[Any]] | None = None) -> int:
    """Serve with ``options.workers`` forked workers sharing the models loaded here; returns the exit status."""
    if "prometheus_client" in sys.modules and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        raise RuntimeError("prometheus_client was imported before the metrics directory was set")
    # the workers (and this parent, for its loads) sum their metrics through a directory of their own
    metrics_dir = tempfile.mkdtemp(prefix="tusk-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir

    # the parent imports what every worker runs, once: the modules' pages are shared too, and the thread
    # pools their BLAS libraries start on import (fork-safe) are there before a model's loading is judged
    import tusk.api
    import tusk.root.scheduler
    import tusk.serving.app  # noqa: F401

    for module in _PRELOADED_MODULES:
        with suppress(ImportError):
            importlib.import_module(module)
    from tusk.logs import log_config
    from tusk.services import Services

    config = uvicorn.Config("tusk.root:create_server_app", host=options.host, port=options.port,
                            log_level=options.log_level, log_config=log_config(options.log_format, options.log_level))
    sock = config.bind_socket()  # before the models load: a taken port fails at once
    services = Services.open(settings)
    try:
        shared = SharedModels(services, frozenset(options.deployments) or None)
        return Supervisor(settings, options, sock, shared, gateway).run()
    finally:
        sock.close()
        services.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
