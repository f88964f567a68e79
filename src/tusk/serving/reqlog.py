"""Request/response logging into a versioned repo, off the hot path.

A request handler only appends a record (references to objects it already
has) to an in-memory buffer. A background thread serializes the buffer as
JSON lines and lands it as one commit on the deployment's log repo (default
``<deployment>-requests``), every ``flush_rows`` records or ``flush_seconds``,
and once more on shutdown. Each commit's provenance names the model commits
that served its requests, so logged traffic used as training data keeps its
lineage back to the models. Several server processes append side by side:
each writes its own file names and a commit replays on a moved head.

When the store falls behind and the buffer reaches ``max_buffered`` records
or ``max_buffered_bytes`` of rows, new records are dropped and counted
(``tusk_request_log_dropped_total``): serving never blocks on logging.

Bounded in bytes too: ``sample_rate`` logs that fraction of requests; a record
whose JSON passes ``max_record_bytes`` keeps its metadata (model, predictor,
latency, row count) but not its inputs and outputs (``"truncated": true``);
one flush writes at most ``max_flush_bytes`` (the rest waits for the next);
``redact`` names input columns and outputs whose values are never written.
Each is counted in ``tusk_request_log_skipped_total{reason}``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

import orjson
from typing_extensions import TypedDict  # (the same TypedDict as tusk.versioning.records')

from tusk.deployments.spec import LoggingSpec
from tusk.errors import AlreadyExists, TuskError
from tusk.serving.metrics import METRICS
from tusk.versioning.commits import CommitService
from tusk.versioning.files import FileService
from tusk.versioning.records import CommitInfo, InputCommit
from tusk.versioning.repos import RepoService

__all__ = ["RequestLog", "RequestRecord"]

log = logging.getLogger("tusk.serving")


class RequestRecord(TypedDict, total=False):
    """One line of a request log (a ``.jsonl`` file in ``<deployment>-requests``): who answered, with which
    model, and the data. A shadow's failure has ``error`` and no model or outputs; a record past
    ``max_record_bytes`` has ``truncated``, ``record_bytes`` and ``rows`` instead of ``inputs`` and ``outputs``."""

    ts: float  # seconds since the epoch, when the answer was ready
    id: str | None  # the id the request carried (None: it carried none)
    deployment: str
    revision: int
    predictor: str
    shadow: bool
    protocol: str  # v2 (OIP over REST), grpc, invocations (MLflow-style)
    model_repo: str
    model_commit: str
    model_branch: str  # the branch the predictor follows ("" when pinned)
    global_id: str  # the model commit's commit set: its provenance
    latency_ms: float
    inputs: Any  # the request's rows (Rows, written as records)
    outputs: dict[str, Any]
    error: str
    truncated: bool
    record_bytes: int
    rows: int | None


def _plain(value: Any) -> Any:
    """Rows as records, arrays orjson cannot take natively (strings) as lists."""
    to_records = getattr(value, "to_records", None)
    if callable(to_records):
        return to_records()
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    return str(value)


_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_APPEND_NEWLINE


def _estimate(value: Any) -> int:
    """Bytes a buffered value holds, roughly: arrays by their size, the rest by a small constant."""
    if value is None:
        return 0
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    array, columns = getattr(value, "array", None), getattr(value, "columns", None)
    if array is not None or columns is not None:  # Rows
        return _estimate(array) + sum(_estimate(c) for c in (columns or {}).values())
    if isinstance(value, dict):
        return sum(_estimate(v) for v in value.values()) + 64 * len(value)
    if isinstance(value, list | tuple):
        return sum(_estimate(v) for v in value[:1000]) * max(1, len(value) // 1000) + 8 * len(value)
    if isinstance(value, str | bytes):
        return len(value)
    return 16


def _redacted(rows: Any, names: set[str]) -> Any:
    """The rows as records, with the named columns' values replaced."""
    records = rows.to_records() if callable(getattr(rows, "to_records", None)) else rows
    if isinstance(records, list):
        return [{k: "[redacted]" if k in names else v for k, v in r.items()} if isinstance(r, dict) else r
                for r in records]
    return records


class RequestLog:
    def __init__(self, files: FileService, repos: RepoService, commits: CommitService, deployment: str, repo: str,
                 spec: LoggingSpec) -> None:
        self.files = files
        self.commits = commits
        self.deployment = deployment
        self.repo = repo
        self.spec = spec
        self._buffer: deque[tuple[RequestRecord, int]] = deque()  # each with its size estimate
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._seq = 0
        self._buffered_bytes = 0
        self._size_lock = threading.Lock()
        self._who = f"{socket.gethostname()}-{os.getpid()}"
        self._dropped = METRICS.log_dropped.labels(deployment)
        self._logged = METRICS.logged.labels(deployment)
        with contextlib.suppress(AlreadyExists):
            repos.create(repo, f"requests and responses of deployment {deployment}")
        self._thread = threading.Thread(target=self._run, name=f"tusk-reqlog-{deployment}", daemon=True)
        self._thread.start()

    def record(self, rec: RequestRecord) -> None:
        if self.spec.sample_rate < 1.0 and random.random() >= self.spec.sample_rate:
            self._skipped("sampled")
            return
        size = _estimate(rec.get("inputs")) + _estimate(rec.get("outputs"))
        if len(self._buffer) >= self.spec.max_buffered or self._buffered_bytes + size > self.spec.max_buffered_bytes:
            self._dropped.inc()
            self._skipped("buffer_full")
            return
        with self._size_lock:
            self._buffered_bytes += size
        self._buffer.append((rec, size))
        if len(self._buffer) >= self.spec.flush_rows:
            self._wake.set()

    def _skipped(self, reason: str) -> None:
        METRICS.log_skipped.labels(self.deployment, reason).inc()

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
            records: list[tuple[RequestRecord, int]] = []
            lines: list[bytes] = []
            total = 0
            while self._buffer and len(records) < 100_000 and total < self.spec.max_flush_bytes:
                entry = self._buffer.popleft()
                line = self._line(entry[0])
                if lines and total + len(line) > self.spec.max_flush_bytes:
                    self._buffer.appendleft(entry)  # the next flush's first record
                    break
                records.append(entry)
                lines.append(line)
                total += len(line)
            if not records:
                return None
            try:
                info = self._commit([rec for rec, _ in records], b"".join(lines))
            except TuskError:
                self._buffer.extendleft(reversed(records))
                raise
            with self._size_lock:
                self._buffered_bytes -= sum(size for _, size in records)
            self._logged.inc(len(records))
            if self._buffer:
                self._wake.set()  # more than one flush's worth is waiting
            return info

    def _line(self, rec: RequestRecord) -> bytes:
        """One record as a JSON line: redacted, and without its data if that passes ``max_record_bytes``."""
        doc: RequestRecord = rec.copy()
        if self.spec.redact:
            doc["inputs"] = _redacted(doc.get("inputs"), set(self.spec.redact))
            if isinstance(doc.get("outputs"), dict):
                doc["outputs"] = {k: "[redacted]" if k in self.spec.redact else v for k, v in doc["outputs"].items()}
        line = orjson.dumps(doc, default=_plain, option=_OPTIONS)
        if len(line) > self.spec.max_record_bytes:
            self._skipped("truncated")
            rows = getattr(rec.get("inputs"), "n", None)
            doc.pop("inputs", None)
            doc.pop("outputs", None)
            doc["truncated"], doc["record_bytes"], doc["rows"] = True, len(line), rows
            line = orjson.dumps(doc, default=_plain, option=_OPTIONS)
        return line

    def _commit(self, records: list[RequestRecord], body: bytes) -> CommitInfo:
        self._seq += 1
        stamp = datetime.now(UTC)
        path = f"/{stamp:%Y-%m-%d}/{stamp:%H%M%S}-{self._who}-{self._seq:06d}.jsonl"
        mod = self.files.modify(self.repo, self.spec.branch)
        mod.put_bytes(path, body)  # chunks stored now; the commit below carries the provenance
        models = [InputCommit(repo=repo, branch=branch, commit=commit) for repo, branch, commit in sorted(
            {(str(r["model_repo"]), str(r.get("model_branch") or ""), str(r["model_commit"]))
             for r in records if r.get("model_commit")})]
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
