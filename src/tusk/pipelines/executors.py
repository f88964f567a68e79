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
from tusk.pipelines.spec import PipelineSpec
from tusk.pipelines.worker import DatumOutcome, DatumWorker, JobLabels

if TYPE_CHECKING:
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
        if spec.transform.datum_batching:  # one long-lived command per thread (tusk.pipelines.batching)
            from tusk.pipelines.batching import run_batched

            yield from run_batched(self.worker, job_id, spec, code, roots, datums, deadline, labels)
            return

        def one(d: Datum) -> tuple[Datum, DatumOutcome]:
            return d, self.worker.run(job_id, d, spec, code.local, roots, deadline, labels, code.image)

        with ThreadPoolExecutor(max_workers=spec.parallelism_spec.constant, thread_name_prefix="tusk-datum") as pool:
            yield from pool.map(one, datums)

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
              image: dict[str, Any] | None = None) -> DatumOutcome:
    """One datum, in a Dask worker process: read inputs and the code (tree ``code``, materialized once per worker
    process and checked against its digest) from the shared store, run, write the output back."""
    services = _worker_services(settings)
    deadline = None if remaining is None else time.monotonic() + remaining  # monotonic clocks are per machine
    # code that is not stored (a directory too large, on the runner's host) runs in a temporary directory
    code_dir = services.jobs.materialize(code, label) if code is not None else Path(tempfile.gettempdir())
    outcome = services.jobs.worker.run(job_id, datum, spec, code_dir, roots, deadline, labels, image)
    services.ctx.content.seal()
    services.ctx.objects.flush()  # the outcome names trees and chunks: they are durable before it is reported
    return outcome


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
        for d in datums:
            key = f"tusk-datum-{job_id}-{d.id}"
            by_key[key] = d
            futures.append(client.submit(run_datum, self.settings, job_id, d, spec, code.tree, code.label, roots,
                                         remaining, labels, code.image, key=key, pure=False))
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
