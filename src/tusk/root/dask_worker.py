"""What a Dask worker process runs for one datum (``tusk.pipelines.executors.WORKER_TASK`` names it).

Each worker process opens its own services on the shared database and object store (once per store, with the
S3 endpoint that S3-enabled pipelines' datums use), reads the datum's inputs and the pipeline's stored code
(materialized once per worker process and checked against its digest), runs the user code, and writes the output
back; only the outcome returns to the job's runner.
"""

from __future__ import annotations

import atexit
import os
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tusk.config import Settings
from tusk.pipelines.datums import Datum
from tusk.pipelines.spec import PipelineSpec
from tusk.pipelines.worker import DatumOutcome, DatumWorker, JobLabels

if TYPE_CHECKING:
    from tusk.pipelines.batching import BatchSession
    from tusk.services import Services

__all__ = ["run_datum"]

_WORKER_SERVICES: dict[tuple[str, str], Services] = {}
_WORKER_LOCK = threading.Lock()


def _worker_services(settings: Settings) -> Services:
    from tusk.s3gateway.datums import datum_gateways
    from tusk.services import Services

    key = (settings.database_url, settings.objects_url)
    with _WORKER_LOCK:
        if key not in _WORKER_SERVICES:
            local = replace(settings, home=Path(tempfile.gettempdir()) / f"tusk-worker-{os.getpid()}")
            services = Services.open(local)
            # S3-enabled pipelines' datums get their endpoint here too, as under `tusk server` (tusk.root.app)
            services.use_datum_gateways(datum_gateways)
            _WORKER_SERVICES[key] = services
        return _WORKER_SERVICES[key]


def run_datum(settings: Settings, job_id: str, datum: Datum, spec: PipelineSpec, code: str | None, label: str,
              roots: dict[str, str], remaining: float | None, labels: JobLabels | None = None,
              image: dict[str, Any] | None = None, input_names: list[str] | None = None) -> DatumOutcome:
    """One datum, in a Dask worker process: read inputs and the code (tree ``code``, materialized once per worker
    process and checked against its digest) from the shared store, run, write the output back."""
    services = _worker_services(settings)
    deadline = None if remaining is None else time.monotonic() + remaining  # monotonic clocks are per machine
    # code that is not stored (a directory too large, on the runner's host) runs in a temporary directory
    code_dir = services.jobs.materialize(code, label) if code is not None else Path(tempfile.gettempdir())
    if spec.transform.batched:  # a warm session per worker thread, kept from one of the job's datums to the next
        names = input_names if input_names is not None else sorted(i.name for i in datum.inputs)
        outcome = _WARM.run(services.jobs.worker, job_id, datum, spec, code_dir, roots, deadline, labels, image,
                            names)
    else:
        outcome = services.jobs.worker.run(job_id, datum, spec, code_dir, roots, deadline, labels, image)
    services.ctx.content.seal()
    services.ctx.objects.flush()  # the outcome names trees and chunks: they are durable before it is reported
    return outcome


class _WarmSessions:
    """A Dask worker's warm sessions (``transform.datum_batching`` or ``function``): one per worker thread and job.

    Dask hands a worker one task (datum) at a time per thread, and says nothing when a job's last one is done. A
    thread's session lives on between its datums; it ends when the thread takes a datum of another job, or after
    ``idle`` seconds without one (a reaper thread), or when the worker process exits.
    """

    def __init__(self, idle: float = 10.0) -> None:
        self.idle = idle
        self._sessions: dict[int, tuple[BatchSession, float]] = {}  # thread → (session, when it was last used)
        self._lock = threading.Lock()
        self._count = 0
        self._reaper: threading.Thread | None = None

    def run(self, worker: DatumWorker, job_id: str, datum: Datum, spec: PipelineSpec, code_dir: Path,
            roots: dict[str, str], deadline: float | None, labels: JobLabels | None, image: dict[str, Any] | None,
            names: list[str]) -> DatumOutcome:
        from tusk.pipelines.batching import BatchSession

        thread = threading.get_ident()
        with self._lock:
            held = self._sessions.pop(thread, None)
        session = held[0] if held is not None else None
        if session is not None and (session.job_id != job_id or session.input_names != names):
            session.close()  # the thread moved on to another job
            session = None
        if session is None:
            with self._lock:
                self._count += 1
                index = self._count
            session = BatchSession(worker, job_id, spec, code_dir, roots, deadline, labels, image, names,
                                   index)
        try:
            return session.run(datum)
        finally:
            with self._lock:
                self._sessions[thread] = (session, time.monotonic())
                if self._reaper is None:
                    self._reaper = threading.Thread(target=self._reap, daemon=True, name="tusk-warm-reaper")
                    self._reaper.start()
                    atexit.register(self.close_all)

    def _reap(self) -> None:
        while True:
            time.sleep(self.idle / 4)
            now = time.monotonic()
            with self._lock:
                idle = [t for t, (_, used) in self._sessions.items() if now - used > self.idle]
                ended = [self._sessions.pop(t)[0] for t in idle]
            for session in ended:
                session.close()

    def close_all(self) -> None:
        with self._lock:
            ended = [session for session, _ in self._sessions.values()]
            self._sessions.clear()
        for session in ended:
            session.close()


_WARM = _WarmSessions()
