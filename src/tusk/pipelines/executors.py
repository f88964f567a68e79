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
import importlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from tusk.config import Settings
from tusk.errors import InvalidArgument
from tusk.pipelines.codestore import JobCode
from tusk.pipelines.datums import Datum
from tusk.pipelines.slots import Slot
from tusk.pipelines.spec import PipelineSpec
from tusk.pipelines.worker import DatumOutcome, DatumWorker, JobLabels

__all__ = ["WORKER_TASK", "DaskExecutor", "Executor", "LocalExecutor"]


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


# -- the Dask side -------------------------------------------------------------------------------------------------
# What a worker process runs for a datum opens services of its own, so it lives in the composition root
# (``tusk.root.dask_worker``), above the services; the task is named here, as a process names its main.
WORKER_TASK = "tusk.root.dask_worker:run_datum"


def _on_worker(*args: Any) -> DatumOutcome:
    """The task Dask runs: ``WORKER_TASK``, imported in the worker process."""
    module, _, name = WORKER_TASK.partition(":")
    task: Any = getattr(importlib.import_module(module), name)
    outcome: DatumOutcome = task(*args)
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
        names = sorted({i.name for d in datums for i in d.inputs})  # a warm session's /pfs, whatever its datums
        for d in datums:
            key = f"tusk-datum-{job_id}-{d.id}"
            by_key[key] = d
            futures.append(client.submit(_on_worker, self.settings, job_id, d, spec, code.tree, code.label, roots,
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
