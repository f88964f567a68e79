"""A job's datum outcomes on their way to the database: journaled at once, written in batches.

A job runner learns each datum's outcome as it finishes. Writing each in its
own database transaction cost ~1.8 ms per datum on the runner's thread, more
than a warm worker's whole datum. Instead, each outcome is

1. appended to the job's journal (``HOME/journals/<job id>.jsonl``) the moment
   it is known: one ``write`` of one line, no fsync. A runner killed with
   SIGKILL leaves it complete in the page cache, as it leaves the datum's
   output (loose objects) in the object store;
2. written to the database with the others pending, in one transaction, once
   ``batch`` are pending or ``seconds`` have passed since the last write (a
   timer thread sees to that while every worker is busy on a long datum, so
   ``tusk list datum`` lags by at most ``seconds``), and when the job ends; the
   journal is then emptied.

A runner that takes over a job on the same host replays what the journal holds
before deciding which datums are done (``replay``), so a datum that finished is
never run again, as when every outcome had its own transaction. The journal is
the host's, like the runner's scratch: a job resumed on another host (a shared
PostgreSQL) runs again at most the outcomes of the last ``seconds``. A torn last
line (the runner died writing it) is that datum unrecorded: it runs again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["OutcomeLog", "Rows", "replay"]

_log = logging.getLogger(__name__)

Rows = tuple[list[dict[str, Any]], list[dict[str, Any]]]  # (datum run rows, datum cache rows)
_STAMPS = ("finished_at",)  # datetime columns, as ISO text in the journal


class OutcomeLog:
    """One job's journal and its pending rows; ``write`` stores a batch in one transaction."""

    def __init__(self, path: Path, write: Callable[[list[dict[str, Any]], list[dict[str, Any]]], None],
                 batch: int = 256, seconds: float = 0.25) -> None:
        self.path, self._write = path, write
        self.batch, self.seconds = batch, seconds
        self._runs: list[dict[str, Any]] = []
        self._cache: list[dict[str, Any]] = []
        self._last = time.monotonic()
        self._fd: int | None = None
        self._lock = threading.Lock()  # add, flush and the timer: a line is never appended between a write and
        self._stop = threading.Event()  # the truncation that follows it
        self._timer: threading.Thread | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # no journal (a read-only home, a full disk): each outcome is written at once
            _log.warning("the job journal %s cannot be written (%s): each datum is recorded on its own", path, exc)
            self.batch = 1

    def add(self, run: dict[str, Any], cache: dict[str, Any] | None = None) -> None:
        """One datum's outcome: in the journal now, in the database with its batch."""
        with self._lock:
            self._add(run, cache)
        if self._timer is None and self.batch > 1:
            self._timer = threading.Thread(target=self._tick, name="tusk-outcomes", daemon=True)
            self._timer.start()

    def _add(self, run: dict[str, Any], cache: dict[str, Any] | None) -> None:
        if self._fd is not None:
            line = json.dumps({"run": _text_stamps(run), "cache": _text_stamps(cache) if cache else None},
                              separators=(",", ":")) + "\n"
            try:
                os.write(self._fd, line.encode())
            except OSError as exc:
                _log.warning("the job journal %s cannot be written (%s): recording at once", self.path, exc)
                self._close_fd()
                self.batch = 1
        self._runs.append(run)
        if cache is not None:
            self._cache.append(cache)
        if len(self._runs) >= self.batch or time.monotonic() - self._last >= self.seconds:
            self._flush()

    def _tick(self) -> None:
        """Write what has waited ``seconds``, while no new outcome comes to do it."""
        while not self._stop.wait(max(self.seconds, 0.05)):
            with self._lock:
                if not self._runs or time.monotonic() - self._last < self.seconds:
                    continue
                try:
                    self._flush()
                except Exception as exc:  # the database is away: the next add or the close tries again
                    _log.warning("the job's datum outcomes could not be written yet (%s): retrying", exc)
                    self._last = time.monotonic()

    def flush(self) -> None:
        """Write what is pending in one transaction, then empty the journal (it holds nothing the database
        lacks). A replay after a crash between the two writes the same rows again: the writes are upserts."""
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        if self._runs:
            self._write(self._runs, self._cache)
            self._runs, self._cache = [], []
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, 0)
        self._last = time.monotonic()

    def close(self) -> None:
        """The job's end (or its runner's error): write what is pending and remove the journal. When the write
        fails, the journal stays for the job's next runner to replay."""
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
        try:
            self.flush()
        finally:
            self._close_fd()
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutcomeLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def replay(path: Path) -> Rows:
    """The rows a journal left by a dead runner holds (a torn last line is skipped: that datum runs again)."""
    runs: list[dict[str, Any]] = []
    cache: list[dict[str, Any]] = []
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return runs, cache
    except OSError as exc:
        _log.warning("the job journal %s cannot be read (%s): its datums run again", path, exc)
        return runs, cache
    for line in data.splitlines():
        try:
            item = json.loads(line)
            run = _datetime_stamps(item["run"])
            entry = _datetime_stamps(item["cache"]) if item.get("cache") else None
        except (ValueError, KeyError, TypeError):
            continue  # the line the runner was writing when it died
        runs.append(run)
        if entry is not None:
            cache.append(entry)
    return runs, cache


def _text_stamps(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if k in _STAMPS and isinstance(v, datetime) else v for k, v in row.items()}


def _datetime_stamps(row: dict[str, Any]) -> dict[str, Any]:
    return {k: datetime.fromisoformat(v) if k in _STAMPS and isinstance(v, str) else v for k, v in row.items()}
