"""Prometheus metrics of the serving process(es).

Labels: ``deployment``, ``predictor`` and ``model_version`` (the model commit),
so a canary's latency and error rate can be read beside the stable model's.
With several worker processes, ``tusk server`` points PROMETHEUS_MULTIPROC_DIR
at a fresh directory before the workers start, and ``/metrics`` sums them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

__all__ = ["CONTENT_TYPE", "METRICS", "render", "visible"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_MODEL = ["deployment", "predictor", "model_version"]
_LATENCY_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.requests = Counter("tusk_requests", "Inference requests answered", [*_MODEL, "protocol", "code"])
        self.errors = Counter("tusk_request_errors", "Inference requests that failed", [*_MODEL, "kind"])
        self.latency = Histogram("tusk_request_duration_seconds", "Time to answer an inference request",
                                 _MODEL, buckets=_LATENCY_BUCKETS)
        self.rows = Counter("tusk_rows", "Rows predicted", _MODEL)
        self.batch_rows = Histogram("tusk_batch_rows", "Rows per model call (adaptive batching)",
                                    ["deployment", "predictor"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024))
        self.shadow = Counter("tusk_shadow_requests", "Copies of requests sent to the shadow predictor",
                              [*_MODEL, "outcome"])
        self.outliers = Counter("tusk_outliers", "Rows flagged as outliers", _MODEL)
        self.scored = Counter("tusk_outlier_scored_rows", "Rows scored by the outlier detector", _MODEL)
        self.drift_p = Gauge("tusk_drift_p_value", "Latest drift-test p-value per feature",
                             ["deployment", "feature"], multiprocess_mode="mostrecent")
        self.drift = Gauge("tusk_drift_detected", "1 if the latest drift test found drift",
                           ["deployment"], multiprocess_mode="mostrecent")
        self.drift_tests = Counter("tusk_drift_tests", "Drift tests run", ["deployment"])
        self.swaps = Counter("tusk_model_swaps", "Models hot-swapped in after a branch move",
                             ["deployment", "predictor"])
        self.load_errors = Counter("tusk_model_load_errors", "Model loads refused or failed",
                                   ["deployment", "predictor"])
        self.model_loads = Counter("tusk_model_loads", "Models loaded and verified by `tusk server --workers N`: "
                                   "once by the parent for every worker (by=shared), or by one worker for itself "
                                   "(by=worker: a model that cannot be shared, or a version the parent has not "
                                   "shared yet)", ["by"])
        self.logged = Counter("tusk_request_log_records", "Request records committed to the log repo",
                              ["deployment"])
        self.log_dropped = Counter("tusk_request_log_dropped", "Request records dropped (log buffer full)",
                                   ["deployment"])
        self.log_skipped = Counter("tusk_request_log_skipped",
                                   "Request records not logged whole: sampled out, buffer full (count or bytes), "
                                   "or data cut (over max_record_bytes)", ["deployment", "reason"])
        self.algo_calls = Counter("tusk_algorithm_calls", "Algorithm calls", ["algorithm", "version", "outcome"])


METRICS = Metrics()


def render() -> bytes:
    """The exposition text: this process's metrics, or every worker's in multi-process mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()


_OWNER = re.compile(rb'[{,](deployment|algorithm)="((?:[^"\\]|\\.)*)"')


def visible(text: bytes, may_read: Callable[[str], bool]) -> bytes:
    """The exposition text cut to the samples of deployments and algorithms ``may_read`` allows (it is asked
    ``deployment/<name>`` or ``algorithm/<owner>/<name>``): label values name deployments, predictors and
    model commits, which a caller with no role on them must not learn. Process metrics stay."""
    verdicts: dict[str, bool] = {}
    out = []
    for line in text.splitlines(keepends=True):
        owner = _OWNER.search(line) if not line.startswith(b"#") else None
        if owner is not None:
            resource = f"{owner.group(1).decode()}/{owner.group(2).decode('utf-8', 'replace')}"
            if resource not in verdicts:
                verdicts[resource] = may_read(resource)
            if not verdicts[resource]:
                continue
        out.append(line)
    return b"".join(out)
