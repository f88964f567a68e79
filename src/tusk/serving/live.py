"""What one serving process holds: loaded deployments, their predictors, and the watcher that hot-swaps them.

A :class:`Predictor` owns a batcher and the model currently serving
(:class:`Served`: the verified model plus the commit it came from). The
watcher thread of :class:`ServingState` polls the deployments' revisions and
the heads of the branches that predictors follow. When a branch moves it loads and verifies
the new commit *beside* the old model and then swaps one reference: batches
already running finish on the old model, the next batch uses the new one, and
no request fails. A model that fails to load or verify is refused and the old
one keeps serving (``tusk_model_load_errors_total``).

One deployment never holds up another: a model that cannot be loaded, or a
revision that cannot be applied, is that deployment's own trouble
(:meth:`ServingState.not_ready` says what), and the server is ready while any
deployment serves (:attr:`ServingState.ready`; all of them:
:attr:`ServingState.ready_strict`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tusk.deployments.spec import DeploymentSpec, PredictorSpec
from tusk.errors import DeploymentNotFound, InputError, NotFound, NotReady, TuskError
from tusk.ids import is_commit_id
from tusk.models.inputs import read_rows
from tusk.models.loaders import LoadedModel
from tusk.services import Services
from tusk.serving.batching import Batcher
from tusk.serving.detectors import DeploymentDetectors
from tusk.serving.metrics import METRICS
from tusk.serving.reqlog import RequestLog
from tusk.serving.tensors import Rows
from tusk.versioning.refs import FileRef, parse_file_ref

__all__ = ["LiveDeployment", "Predictor", "Served", "ServingState"]

log = logging.getLogger("tusk.serving")

_INPUT_ERRORS = (ValueError, TypeError, KeyError, IndexError)
_RETRY = 30.0  # seconds before a revision that could not be applied is tried again


@dataclass(frozen=True)
class Served:
    """A verified model and where it came from; replaced whole on a hot swap."""

    model: LoadedModel
    repo: str
    commit: str
    global_id: str
    feature_names: list[str] | None  # read once from the model: every request checks against them
    n_features: int | None
    labels: tuple[str, str, str]  # deployment, predictor, model_version
    children: dict[str, Any] = field(default_factory=dict, compare=False)  # cached metric children

    def metric(self, name: str, *extra: str) -> Any:
        key = name + "|" + "|".join(extra)
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = getattr(METRICS, name).labels(*self.labels, *extra)
        return child


class Predictor:
    def __init__(self, deployment: str, spec: PredictorSpec, max_batch_size: int, max_wait_ms: float) -> None:
        self.deployment = deployment
        self.spec = spec
        self.ref = parse_file_ref(spec.model, default_branch=None)
        self.follows = None if is_commit_id(self.ref.ref) else self.ref.ref
        self.served: Served | None = None
        self.error: str | None = None
        self.refused: str | None = None  # a commit that failed to load: not retried until the branch moves again
        self.batcher = Batcher(self._run, max_batch_size, max_wait_ms,
                               on_batch=METRICS.batch_rows.labels(deployment, spec.name).observe)

    @property
    def name(self) -> str:
        return self.spec.name

    def load(self, services: Services, commit: str, loader: Callable[[str], LoadedModel] | None = None) -> None:
        """Load the model at ``commit`` and swap it in; if that fails, keep the old model and remember the refusal.
        ``loader``: how a pinned ref becomes a verified model (default ``services.models.load``)."""
        ref = str(FileRef(self.ref.repo, commit, 0, self.ref.path, self.ref.has_path))
        try:
            model = (loader or services.models.load)(ref)
        except Exception as exc:  # any failure is this predictor's, never the watcher's or another deployment's
            if not isinstance(exc, TuskError):
                log.exception("deployment %s, predictor %s: loading %s failed", self.deployment, self.name, ref)
                exc = TuskError(f"the model failed to load ({type(exc).__name__}); the server's log has the details")
            self.error = f"{ref}: {exc}"
            self.refused = commit
            METRICS.load_errors.labels(self.deployment, self.name).inc()
            log.error("deployment %s, predictor %s: cannot load %s: %s", self.deployment, self.name, ref, exc)
            return
        manifest = model.manifest
        assert manifest is not None
        first = self.served is None
        self.served = Served(model, manifest.repo, manifest.commit, manifest.global_id, model.feature_names,
                             model.n_features, (self.deployment, self.name, manifest.commit))
        self.error = None
        self.refused = None
        if not first:
            METRICS.swaps.labels(self.deployment, self.name).inc()
            log.info("deployment %s, predictor %s: now serving %s@%s", self.deployment, self.name,
                     manifest.repo, manifest.commit)

    def current(self) -> Served:
        served = self.served
        if served is None:
            raise NotReady(f"predictor {self.name} of deployment {self.deployment} has no model loaded yet"
                           + (f" ({self.error})" if self.error else ""))
        return served

    def _run(self, rows: Rows, want: frozenset[str]) -> tuple[dict[str, Any], Served]:
        served = self.current()  # read once: the whole batch runs on one model
        x = rows.model_input(served.feature_names)
        try:
            outputs: dict[str, Any] = {"predict": np.asarray(served.model.predict(x))}
            if "predict_proba" in want:
                outputs["predict_proba"] = np.asarray(served.model.predict_proba(x))
        except TuskError:
            raise
        except _INPUT_ERRORS as exc:
            raise InputError(f"the model rejected the input: {exc}") from exc
        return outputs, served


class LiveDeployment:
    def __init__(self, spec: DeploymentSpec, revision: int,
                 reuse: Callable[[PredictorSpec], Predictor | None] = lambda _: None) -> None:
        self.spec = spec
        self.revision = revision
        b = spec.batching

        def make(p: PredictorSpec) -> Predictor:
            old = reuse(p)
            return old if old is not None else Predictor(spec.name, p, b.max_batch_size, b.max_wait_ms)

        self.predictors = {p.name: make(p) for p in spec.predictors}
        self.shadow = make(spec.shadow) if spec.shadow else None
        self.weights = [(p.name, p.weight) for p in spec.predictors]
        self.detectors: DeploymentDetectors | None = None
        self.detector_error: str | None = None
        self.log: RequestLog | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def all_predictors(self) -> list[Predictor]:
        return [*self.predictors.values(), *([self.shadow] if self.shadow else [])]

    @property
    def ready(self) -> bool:
        """Every predictor that takes traffic has a model (a broken shadow never blocks serving)."""
        return all(p.served is not None for p in self.predictors.values())

    def not_ready(self) -> list[str]:
        """Why predictors that take traffic have no model: ``"name: reason"`` each (empty when ready)."""
        return [f"{p.name}: {p.error or 'loading'}" for p in self.predictors.values() if p.served is None]

    def by_version(self, version: str) -> Predictor:
        """``/versions/{v}``: a predictor by name, or the one serving model commit ``v`` (a prefix of 8+)."""
        if version in self.predictors:
            return self.predictors[version]
        for p in self.predictors.values():
            served = p.served
            if served is not None and len(version) >= 8 and served.commit.startswith(version):
                return p
        raise NotFound(f"deployment {self.name} serves no version {version!r} (versions: "
                       + ", ".join(p.served.commit for p in self.predictors.values() if p.served) + ")")


class ServingState:
    """The deployments of one server process, kept in step with the metadata store by a watcher thread."""

    def __init__(self, services: Services, only: list[str] | None = None, poll: float = 1.0,
                 request_logging: bool = True) -> None:
        self.services = services
        self.only = set(only) if only else None
        self.poll = poll
        self.request_logging = request_logging
        self.deployments: dict[str, LiveDeployment] = {}
        self.failed: dict[str, str] = {}  # deployments whose current revision could not be applied, and why
        self._failed_at: dict[str, tuple[int, float]] = {}  # (revision, when): retried every _RETRY seconds
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started = threading.Event()  # the first sync finished
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.detector_pool = ThreadPoolExecutor(1, thread_name_prefix="tusk-detect")
        self._sync_lock = threading.Lock()
        # how predictors load a pinned ref (None: services.models.load); a pre-fork server's workers take the
        # models their parent loaded once (tusk.root.prefork)
        self.loader: Callable[[str], LoadedModel] | None = None

    # -- lifecycle -----------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Load every deployment once (blocking: a worker takes requests only once it has its models, since
        workers share one socket), then follow changes from a watcher thread."""
        self.loop = loop
        try:
            self.sync()
        except Exception:
            log.exception("serving: the first sync failed; the watcher retries")
        self.started.set()
        self._thread = threading.Thread(target=self._watch, name="tusk-watcher", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.sync()
            except Exception:
                log.exception("serving watcher: sync failed; retrying")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.detector_pool.shutdown(wait=True)
        for dep in self.deployments.values():
            if dep.log is not None:
                dep.log.close()

    @property
    def ready(self) -> bool:
        """The first load is done and some deployment serves, or none is deployed here."""
        if not self.started.is_set():
            return False
        deployments = list(self.deployments.values())
        return any(d.ready for d in deployments) or (not deployments and not self.failed)

    @property
    def ready_strict(self) -> bool:
        """The first load is done and every deployment serves."""
        return self.started.is_set() and not self.failed and all(d.ready for d in self.deployments.values())

    def not_ready(self) -> dict[str, list[str]]:
        """The deployments that do not serve, each with its reasons."""
        out = {name: [reason] for name, reason in self.failed.items()}
        for dep in list(self.deployments.values()):
            if not dep.ready:
                out.setdefault(dep.name, []).extend(dep.not_ready())
        return out

    def get(self, name: str) -> LiveDeployment:
        dep = self.deployments.get(name)
        if dep is None:
            raise DeploymentNotFound(f"no deployment named {name!r} is served here"
                                     + (f" (serving: {', '.join(sorted(self.deployments))})"
                                        if self.deployments else ""))
        return dep

    # -- keeping in step -------------------------------------------------------
    def sync(self) -> None:
        """Apply new deployment revisions, then swap in models whose branches moved."""
        with self._sync_lock:
            revisions = self.services.deployments.revisions()
            if self.only is not None:
                revisions = {n: r for n, r in revisions.items() if n in self.only}
            for name in list(self.deployments):
                if name not in revisions:
                    self._retire(self.deployments.pop(name), keep=set())
            for name in list(self.failed):
                if name not in revisions:
                    del self.failed[name]
                    self._failed_at.pop(name, None)
            for name, revision in revisions.items():
                current = self.deployments.get(name)
                if current is None or current.revision != revision:
                    last = self._failed_at.get(name)
                    if last is not None and last[0] == revision and time.monotonic() - last[1] < _RETRY:
                        continue
                    try:
                        self._apply(name, revision, current)
                        self.failed.pop(name, None)
                        self._failed_at.pop(name, None)
                    except Exception as exc:  # this deployment's trouble: the others still load and serve
                        log.exception("deployment %s: revision %d cannot be applied", name, revision)
                        self._failed_at[name] = (revision, time.monotonic())
                        self.failed[name] = (f"revision {revision} cannot be applied: "
                                             + (str(exc) if isinstance(exc, TuskError) else
                                                f"{type(exc).__name__} (the server's log has the details)"))
            for dep in list(self.deployments.values()):
                for p in dep.all_predictors():
                    self._follow(p)

    def _apply(self, name: str, revision: int, current: LiveDeployment | None) -> None:
        spec = self.services.deployments.get(name)
        same_batching = current is not None and current.spec.batching == spec.batching

        def reuse(p: PredictorSpec) -> Predictor | None:
            if current is None or not same_batching:
                return None
            for old in current.all_predictors():
                if old.spec.model == p.model and old.name == p.name:
                    old.spec = p
                    return old
            return None

        dep = LiveDeployment(spec, revision, reuse)
        for p in dep.all_predictors():
            self._follow(p)  # models first: the detectors use their feature names
        if current is not None and current.spec.detectors == spec.detectors:
            dep.detectors, dep.detector_error = current.detectors, current.detector_error
        else:
            self._load_detectors(dep)
        if current is not None and current.log is not None and current.spec.logging == spec.logging:
            dep.log = current.log
        elif spec.logging.enabled and self.request_logging:
            s = self.services
            dep.log = RequestLog(s.files, s.repos, s.commits, name, spec.log_repo, spec.logging)
        self.deployments[name] = dep
        if current is not None:
            self._retire(current, keep={id(p) for p in dep.all_predictors()},
                         keep_log=dep.log is current.log)
        log.info("deployment %s: revision %d is live", name, revision)

    def _retire(self, dep: LiveDeployment, keep: set[int], keep_log: bool = False) -> None:
        for p in dep.all_predictors():
            if id(p) not in keep and self.loop is not None:
                asyncio.run_coroutine_threadsafe(p.batcher.close(), self.loop)
        if dep.log is not None and not keep_log:
            dep.log.close()

    def _follow(self, p: Predictor) -> None:
        """Load the commit the predictor's ref names now, unless it serves it already or refused it."""
        target = p.ref.ref
        if p.follows is not None:
            try:
                target = self.services.commits.inspect(p.ref.repo, p.follows).id
            except TuskError as exc:
                p.error = f"{p.spec.model}: {exc}"
                return
        if (p.served is None or p.served.commit != target) and target != p.refused:
            p.load(self.services, commit=target, loader=self.loader)  # a refused commit is not re-hashed every poll

    def _load_detectors(self, dep: LiveDeployment) -> None:
        spec = dep.spec.detectors
        if spec is None:
            return
        try:
            ref = parse_file_ref(spec.reference, default_branch=None)
            commit = self.services.commits.inspect(ref.repo, ref.ref_text).id
            pinned = f"{ref.repo}@{commit}:{ref.path}"
            frame = read_rows(self.services.files.read_bytes(parse_file_ref(pinned)), ref.path)
            if isinstance(frame, list):
                raise InputError(f"{spec.reference} has no header row naming its columns")
            first = next(iter(dep.predictors.values())).served
            dep.detectors = DeploymentDetectors(spec, frame, pinned, first.feature_names if first else None)
            dep.detector_error = None
        except (TuskError, ValueError, KeyError) as exc:
            dep.detector_error = f"detectors of {dep.name}: {exc}"
            log.error("%s", dep.detector_error)
