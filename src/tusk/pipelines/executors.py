"""Where a job's datums run: threads in this process, or the workers of a Dask cluster.

Either way a datum is run by a ``DatumWorker``: it reads its inputs' chunks
from the object store, runs the user code, and writes the output's chunks and
tree back to the store. Only the outcome (state, output tree digest, log,
stats) comes back to the job's runner, which records it. With Dask, each
worker process opens its own services on the shared database and object store
(``TUSK_DASK_ADDRESS`` names the scheduler) and materializes the pipeline's
stored code by its digest (nothing is shipped), and a datum whose worker dies is
run again on another worker by Dask; its first, unfinished run left only
unreferenced chunks.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tusk.config import Settings
from tusk.errors import InvalidArgument
from tusk.pipelines.codestore import JobCode
from tusk.pipelines.datums import Datum
from tusk.pipelines.slots import Slot
from tusk.pipelines.spec import PipelineSpec
from tusk.pipelines.worker import DatumOutcome, DatumWorker, JobLabels

if TYPE_CHECKING:
    from tusk.pipelines.batching import BatchSession
    from tusk.services import Services

__all__ = ["DaskExecutor", "Executor", "LocalExecutor", "run_datum"]


class Executor(Protocol):
    def run(self, job_id: str, spec: PipelineSpec, code: JobCode, roots: dict[str, str], datums: list[Datum],
            deadline: float | None, labels: JobLabels | None = None) -> Iterator[tuple[Datum, DatumOutcome]]:
        """Run the datums; yield each with its outcome as it finishes (in any order).

        ``code.local`` is the code materialized on this host; a remote worker materializes ``code.tree`` itself.
        ``labels``: what the datums are told about the job (Pachyderm's worker variables).
        """
        ...

    def close(self) -> None: ...


class LocalExecutor:
    """``parallelism_spec.constant`` threads in this process (each datum's code is its own subprocess)."""

    def __init__(self, worker: DatumWorker) -> None:
        self.worker = worker

    def run(self, job_id: str, spec: PipelineSpec, code: JobCode, roots: dict[str, str], datums: list[Datum],
            deadline: float | None, labels: JobLabels | None = None) -> Iterator[tuple[Datum, DatumOutcome]]:
        if spec.transform.batched:  # one long-lived command per thread (tusk.pipelines.batching)
            from tusk.pipelines.batching import run_batched

            yield from run_batched(self.worker, job_id, spec, code, roots, datums, deadline, labels)
            return

        slots: list[Slot] = []  # one per thread, reused from datum to datum (tusk.pipelines.slots)
        lock, mine = threading.Lock(), threading.local()

        def one(d: Datum) -> tuple[Datum, DatumOutcome]:
            slot: Slot | None = getattr(mine, "slot", None)
            if slot is None:
                with lock:
                    slot = Slot(self.worker.scratch / job_id / f"slot-{len(slots)}")
                    slots.append(slot)
                mine.slot = slot
            return d, self.worker.run(job_id, d, spec, code.local, roots, deadline, labels, code.image, slot)

        try:
            with ThreadPoolExecutor(max_workers=spec.parallelism_spec.constant,
                                    thread_name_prefix="tusk-datum") as pool:
                yield from pool.map(one, datums)
        finally:
            for slot in slots:
                slot.remove()

    def close(self) -> None:
        pass


# -- the Dask side: what runs in each worker process ----------------------------------------------------------------
_WORKER_SERVICES: dict[tuple[str, str], Services] = {}
_WORKER_LOCK = threading.Lock()


def _worker_services(settings: Settings) -> Services:
    from tusk.services import Services

    key = (settings.database_url, settings.objects_url)
    with _WORKER_LOCK:
        if key not in _WORKER_SERVICES:
            local = replace(settings, home=Path(tempfile.gettempdir()) / f"tusk-worker-{os.getpid()}")
            _WORKER_SERVICES[key] = Services.open(local)
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


# -- the job runner's side ----------------------------------------------------------------------------------------
class DaskExecutor:
    """Datums as Dask tasks on the cluster at ``address`` (``tcp://host:8786``)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.dask_address, "a Dask executor needs TUSK_DASK_ADDRESS"
        self.address = settings.dask_address
        self.settings = settings
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    from distributed import Client
                except ImportError:
                    raise InvalidArgument("TUSK_DASK_ADDRESS is set but Dask is not installed: "
                                          "pip install 'tusk[distributed]'") from None
                self._client = Client(self.address, set_as_default=False, timeout=30)  # type: ignore[no-untyped-call]
            return self._client

    def run(self, job_id: str, spec: PipelineSpec, code: JobCode, roots: dict[str, str], datums: list[Datum],
            deadline: float | None, labels: JobLabels | None = None) -> Iterator[tuple[Datum, DatumOutcome]]:
        from distributed import as_completed

        if not datums:
            return
        client = self.client
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        by_key: dict[str, Datum] = {}
        futures = []
        names = sorted({i.name for d in datums for i in d.inputs})  # a warm session's /pfs, whatever its datums
        for d in datums:
            key = f"tusk-datum-{job_id}-{d.id}"
            by_key[key] = d
            futures.append(client.submit(run_datum, self.settings, job_id, d, spec, code.tree, code.label, roots,
                                         remaining, labels, code.image, names, key=key, pure=False))
        try:
            for future in as_completed(futures, loop=client.loop):  # type: ignore[no-untyped-call]
                d = by_key[future.key]
                try:
                    outcome = future.result()
                except Exception as exc:  # a task that failed past Dask's allowed failures (KilledWorker...)
                    outcome = DatumOutcome("failed", None, 1, "", f"on the Dask cluster: {type(exc).__name__}: {exc}")
                yield d, outcome
        finally:
            for future in futures:
                future.release()

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
                self._client = None
