"""The scheduler inside ``tusk server``: runs queued jobs and due cron ticks in the background.

Any number of servers may share one database: each claims a job with a
compare-and-set and holds it by renewing a lease (``JobService``), so a job,
and every datum in it, runs once; a server that dies stops renewing, and
another takes the job over and resumes it, skipping the datums already done.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from tusk.services import Services

__all__ = ["Scheduler"]

log = logging.getLogger("tusk.scheduler")


class Scheduler:
    def __init__(self, services: Services, poll: float = 1.0, cron: bool = True) -> None:
        self.services = services
        self.poll = poll
        self.cron = cron
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.jobs_run = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="tusk-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop claiming; the job in hand finishes first (a killed server's job is resumed by another)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self) -> dict[str, Any]:
        return {"running": self._thread is not None and self._thread.is_alive(), "jobs_run": self.jobs_run,
                "owner": self.services.jobs.owner, "last_error": self.last_error}

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.cron:
                    self.services.cron.tick_due()
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
