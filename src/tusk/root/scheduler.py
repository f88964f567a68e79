"""The scheduler inside ``tusk server``: runs queued jobs and due cron ticks in the background.

Any number of servers may share one database: each claims a job with a
compare-and-set and holds it by renewing a lease (``JobService``), so a job,
and every datum in it, runs once; a server that dies stops renewing, and
another takes the job over and resumes it, skipping the datums already done.

Beside it, a supervisor starts, restarts and stops the spouts and services this replica holds the lease of
(``tusk.pipelines.long_running``). With ``TUSK_GC_INTERVAL`` set, the scheduler also runs ``gc`` that often: the
replica that takes the ``gc`` lease (held for one interval) runs it, the
others skip that turn.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from tusk.pipelines.long_running import Supervisor
from tusk.services import Services
from tusk.storage.metadata import LeaseRow
from tusk.versioning.context import _aware, now

__all__ = ["Scheduler"]

log = logging.getLogger("tusk.scheduler")


CRON_LEASE_SECONDS = 15.0


def hold_lease(services: Services, name: str, owner: str, seconds: float) -> bool:
    """Take or renew the named lease for ``owner``; False while another owner holds it unexpired.

    A compare-and-set on (owner, expires_at), or an insert that loses to a concurrent one: at most one
    holder at a time, with no lock held between calls.
    """
    db = services.ctx.db
    try:
        with db.write() as s:
            row = s.get(LeaseRow, name)
            until = now() + timedelta(seconds=seconds)
            if row is None:
                s.add(LeaseRow(name=name, owner=owner, expires_at=until))
                return True
            if row.owner != owner and _aware(row.expires_at) > now():
                return False
            won = s.execute(update(LeaseRow).where(LeaseRow.name == name, LeaseRow.owner == row.owner,
                                                   LeaseRow.expires_at == row.expires_at)
                            .values(owner=owner, expires_at=until).execution_options(synchronize_session=False))
            return bool(won.rowcount == 1)  # type: ignore[attr-defined]
    except IntegrityError:  # another scheduler inserted it first
        return False


class Scheduler:
    def __init__(self, services: Services, poll: float = 1.0, cron: bool = True) -> None:
        self.services = services
        self.poll = poll
        self.cron = cron
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.jobs_run = 0
        self.last_error: str | None = None
        self.gc_interval = services.settings.gc_interval
        self._gc_next = time.monotonic() + (self.gc_interval or 0.0)
        self._gc_thread: threading.Thread | None = None
        self.last_gc: dict[str, Any] | None = None
        # spouts and services (tusk.pipelines.long_running), each run by the replica holding its lease
        self.long_running = Supervisor(services, lambda name, seconds: hold_lease(
            services, name, services.jobs.owner, seconds))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="tusk-scheduler", daemon=True)
        self._thread.start()
        self.long_running.start(self.poll)  # in a thread of its own: a long job does not hold it up

    def stop(self, timeout: float | None = None) -> None:
        """Stop claiming; the job in hand finishes first (a killed server's job is resumed by another)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._gc_thread is not None:
            self._gc_thread.join(timeout)
        self.long_running.stop()

    def status(self) -> dict[str, Any]:
        return {"running": self._thread is not None and self._thread.is_alive(), "jobs_run": self.jobs_run,
                "owner": self.services.jobs.owner, "last_error": self.last_error,
                "gc_interval": self.gc_interval, "last_gc": self.last_gc,
                "long_running": self.long_running.status()}

    def _maybe_gc(self) -> None:
        """Start a scheduled gc when one is due and this replica wins the turn; it runs in its own thread, so
        jobs keep running meanwhile."""
        if self.gc_interval is None or time.monotonic() < self._gc_next:
            return
        if self._gc_thread is not None and self._gc_thread.is_alive():
            return
        self._gc_next = time.monotonic() + self.gc_interval
        # held for (almost) one interval and never released: the other replicas skip this turn
        if not hold_lease(self.services, "gc", self.services.jobs.owner, max(self.gc_interval * 0.9, 1.0)):
            return
        self._gc_thread = threading.Thread(target=self._run_gc, name="tusk-gc", daemon=True)
        self._gc_thread.start()

    def _run_gc(self) -> None:
        try:
            report = self.services.gc(grace=self.services.settings.gc_grace)
            self.last_gc = {"at": now().isoformat(), "bytes_swept": report.bytes_swept,
                            "objects_swept": report.objects_swept, "seconds": report.seconds, "error": None}
            log.info("gc reclaimed %d bytes (%d objects) in %.1fs", report.bytes_swept, report.objects_swept,
                     report.seconds)
        except Exception as exc:  # a failed gc deletes nothing more; the next turn tries again
            self.last_gc = {"at": now().isoformat(), "error": f"{type(exc).__name__}: {exc}"}
            log.exception("scheduled gc failed")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._maybe_gc()
                # one scheduler ticks crons at a time, or two replicas would commit the same tick twice
                if self.cron and hold_lease(self.services, "cron", self.services.jobs.owner, CRON_LEASE_SECONDS):
                    self.services.cron.tick_due()
                    self.services.jobs.take_caused()  # nobody here waits for the ticks' jobs: forget them
                while not self._stop.is_set() and (done := self.services.jobs.run_pending(limit=1)):
                    self.jobs_run += len(done)
                    for job in done:
                        log.info("job %s of %s: %s", job.id, job.pipeline, job.state,
                                 extra={"job": job.id, "pipeline": job.pipeline, "state": job.state})
                self.last_error = None
            except Exception as exc:  # keep scheduling: a bad job must not stop the others
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("scheduler pass failed")
            self._stop.wait(self.poll)
