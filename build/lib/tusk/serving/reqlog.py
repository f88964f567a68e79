"""Request/response logging into a versioned repo, off the hot path.

A request handler only appends a record (references to objects it already
has) to an in-memory buffer. A background thread serializes the buffer as
JSON lines and lands it as one commit on the deployment's log repo (default
``<deployment>-requests``), every ``flush_rows`` records or ``flush_seconds``,
and once more on shutdown. Each commit's provenance names the model commits
that served its requests, so logged traffic used as training data keeps its
lineage back to the models. Several server processes append side by side:
each writes its own file names and a commit replays on a moved head.

When the store falls behind and the buffer reaches ``max_buffered`` records,
new records are dropped and counted (``tusk_request_log_dropped_total``):
serving never blocks on logging.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

import orjson

from tusk.errors import AlreadyExists, TuskError
from tusk.serving.metrics import METRICS
from tusk.serving.spec import LoggingSpec
from tusk.versioning.commits import CommitService
from tusk.versioning.files import FileService
from tusk.versioning.records import CommitInfo
from tusk.versioning.repos import RepoService

__all__ = ["RequestLog"]

log = logging.getLogger("tusk.serving")


def _plain(value: Any) -> Any:
    """Rows as records, arrays orjson cannot take natively (strings) as lists."""
    to_records = getattr(value, "to_records", None)
    if callable(to_records):
        return to_records()
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    return str(value)


class RequestLog:
    def __init__(self, files: FileService, repos: RepoService, commits: CommitService, deployment: str, repo: str,
                 spec: LoggingSpec) -> None:
        self.files = files
        self.commits = commits
        self.deployment = deployment
        self.repo = repo
        self.spec = spec
        self._buffer: deque[dict[str, Any]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._seq = 0
        self._who = f"{socket.gethostname()}-{os.getpid()}"
        self._dropped = METRICS.log_dropped.labels(deployment)
        self._logged = METRICS.logged.labels(deployment)
        with contextlib.suppress(AlreadyExists):
            repos.create(repo, f"requests and responses of deployment {deployment}")
        self._thread = threading.Thread(target=self._run, name=f"tusk-reqlog-{deployment}", daemon=True)
        self._thread.start()

    def record(self, rec: dict[str, Any]) -> None:
        if len(self._buffer) >= self.spec.max_buffered:
            self._dropped.inc()
            return
        self._buffer.append(rec)
        if len(self._buffer) >= self.spec.flush_rows:
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.spec.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the store is down: keep the records for the next attempt
                log.exception("request log of %s: commit failed; retrying in %.1fs", self.deployment,
                              self.spec.flush_seconds)

    def flush(self) -> CommitInfo | None:
        """Commit everything buffered now (one commit, one file); None if there was nothing."""
        with self._flush_lock:
            records: list[dict[str, Any]] = []
            while self._buffer and len(records) < 100_000:
                records.append(self._buffer.popleft())
            if not records:
                return None
            try:
                info = self._commit(records)
            except TuskError:
                self._buffer.extendleft(reversed(records))
                raise
            self._logged.inc(len(records))
            return info

    def _commit(self, records: list[dict[str, Any]]) -> CommitInfo:
        options = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_APPEND_NEWLINE
        body = b"".join(orjson.dumps(r, default=_plain, option=options) for r in records)
        self._seq += 1
        stamp = datetime.now(UTC)
        path = f"/{stamp:%Y-%m-%d}/{stamp:%H%M%S}-{self._who}-{self._seq:06d}.jsonl"
        mod = self.files.modify(self.repo, self.spec.branch)
        mod.put_bytes(path, body)  # chunks stored now; the commit below carries the provenance
        models = sorted({(str(r["model_repo"]), str(r.get("model_branch") or ""), str(r["model_commit"]))
                         for r in records if r.get("model_commit")})
        predictors = sorted({str(r.get("predictor")) for r in records})
        return self.commits.land(
            self.repo, self.spec.branch, mod.ops,
            description=f"{len(records)} request(s) to deployment {self.deployment} "
                        f"(predictors: {', '.join(predictors)})",
            provenance=models)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread and commit what is left."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        while self._buffer and time.monotonic() < deadline:
            try:
                self.flush()
            except TuskError:
                log.exception("request log of %s: final commit failed", self.deployment)
                break
