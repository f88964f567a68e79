"""Live traffic of a deployment, read from this server's serving metrics (``tusk.serving.metrics``).

The counters and histograms are totals since the process started; rates and recent latency percentiles need
two points in time. Rather than a sampler thread, the dashboard keeps a bounded ring of samples per deployment
(:data:`KEEP` samples, at most one per :data:`MIN_GAP` seconds) taken whenever the deployment page or its live
panel is rendered, which htmx does every few seconds while the page is open. The rate, error rate and the
latency p50/p95/p99 (interpolated within the histogram buckets, as Prometheus's ``histogram_quantile`` does)
are taken over the window from the oldest kept sample to now; with one sample only, over the totals. Nothing is
sampled while nobody looks, so nothing runs for deployments nobody watches.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from tusk.serving.metrics import render as render_metrics

__all__ = ["KEEP", "MIN_GAP", "Sample", "Series", "Traffic", "forget", "quantile", "sample", "traffic"]

KEEP = 60  # samples per deployment: a few minutes at the page's refresh rate
MIN_GAP = 1.0  # seconds between two samples of one deployment
_DEPLOYMENTS = 64  # deployments with a ring; the least recently viewed is forgotten first


@dataclass
class Series:
    """One predictor serving one model commit: totals since the process started."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound -> cumulative count
    latency_count: float = 0.0
    outliers: float = 0.0
    scored: float = 0.0


@dataclass
class Sample:
    at: float
    series: dict[tuple[str, str], Series]  # (predictor, model commit)
    drift_p: dict[str, float]  # feature -> latest p-value
    drift: float | None  # 1: the latest drift test found drift


@dataclass
class Traffic:
    """What the live panel shows for one (predictor, model commit)."""

    predictor: str
    commit: str
    requests: int
    rate: float | None  # requests per second over the window
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    outliers: int
    scored: int
    rates: list[float | None]  # requests per second between consecutive samples, oldest first
    p95s: list[float | None]  # p95 latency (ms) between consecutive samples


_rings: OrderedDict[str, deque[Sample]] = OrderedDict()
_lock = threading.Lock()


def _read(name: str, now: float) -> Sample:
    """The deployment's samples in this process's (or every worker's) metrics now."""
    out = Sample(now, {}, {}, None)
    for family in text_string_to_metric_families(render_metrics().decode("utf-8", "replace")):
        for s in family.samples:
            labels = s.labels
            if labels.get("deployment") != name:
                continue
            if s.name == "tusk_drift_p_value":
                out.drift_p[labels.get("feature", "")] = s.value
                continue
            if s.name == "tusk_drift_detected":
                out.drift = s.value
                continue
            key = (labels.get("predictor", ""), labels.get("model_version", ""))
            if s.name == "tusk_request_duration_seconds_bucket":
                le = float(labels["le"])
                row = out.series.setdefault(key, Series())
                row.buckets[le] = row.buckets.get(le, 0.0) + s.value
                continue
            attr = {"tusk_requests_total": "requests", "tusk_request_errors_total": "errors",
                    "tusk_request_duration_seconds_count": "latency_count", "tusk_outliers_total": "outliers",
                    "tusk_outlier_scored_rows_total": "scored"}.get(s.name)
            if attr is not None and key[1]:  # a failure before any model was chosen has no commit to show
                row = out.series.setdefault(key, Series())
                setattr(row, attr, getattr(row, attr) + s.value)
    return out


def sample(name: str, now: float | None = None) -> list[Sample]:
    """Take a sample of deployment ``name`` (unless one was taken under :data:`MIN_GAP` ago); the ring, oldest
    first, ending with a sample of now."""
    now = time.time() if now is None else now
    current = _read(name, now)
    with _lock:
        ring = _rings.pop(name, None) or deque(maxlen=KEEP)
        _rings[name] = ring
        while len(_rings) > _DEPLOYMENTS:
            _rings.popitem(last=False)
        if not ring or now - ring[-1].at >= MIN_GAP:
            ring.append(current)
            return list(ring)
        return [*list(ring)[:-1], current]


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile of a cumulative histogram (upper bound -> count), linear within a bucket; None if empty.
    Past the last finite bound it is that bound, as with Prometheus."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for upper in bounds:
        count = buckets[upper]
        if count >= rank:
            if math.isinf(upper):
                return lower
            inside = count - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = upper, count
    return lower


def _delta(new: Series, old: Series | None) -> Series:
    if old is None:
        return new
    return Series(new.requests - old.requests, new.errors - old.errors,
                  {le: c - old.buckets.get(le, 0.0) for le, c in new.buckets.items()},
                  new.latency_count - old.latency_count, new.outliers - old.outliers, new.scored - old.scored)


def _ms(q: float, s: Series) -> float | None:
    v = quantile(q, s.buckets)
    return None if v is None else 1000 * v


def traffic(ring: list[Sample]) -> list[Traffic]:
    """Per (predictor, model commit) in the latest sample: totals, and rate and percentiles over the ring."""
    last, first = ring[-1], ring[0]
    span = last.at - first.at
    out = []
    for key in sorted(last.series):
        now = last.series[key]
        window = _delta(now, first.series.get(key)) if len(ring) > 1 else now
        rates: list[float | None] = []
        p95s: list[float | None] = []
        for a, b in itertools.pairwise(ring):
            step = _delta(b.series.get(key, Series()), a.series.get(key))
            gap = b.at - a.at
            rates.append(step.requests / gap if gap > 0 else None)
            p95s.append(_ms(0.95, step))
        out.append(Traffic(
            key[0], key[1], int(now.requests),
            rate=window.requests / span if len(ring) > 1 and span > 0 else None,
            error_rate=window.errors / window.requests if window.requests else None,
            p50_ms=_ms(0.5, window), p95_ms=_ms(0.95, window), p99_ms=_ms(0.99, window),
            outliers=int(now.outliers), scored=int(now.scored), rates=rates, p95s=p95s))
    return out


def forget() -> None:
    """Drop every ring (tests)."""
    with _lock:
        _rings.clear()
