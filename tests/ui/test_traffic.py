"""The live panel's arithmetic: quantiles from cumulative histogram buckets, rates over the sampled window."""

from __future__ import annotations

import math

import pytest

from tusk.ui.traffic import KEEP, MIN_GAP, Sample, Series, forget, quantile, sample, traffic


def test_quantiles_interpolate_within_the_bucket_like_histogram_quantile() -> None:
    buckets = {0.01: 50.0, 0.1: 90.0, 1.0: 100.0, math.inf: 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.7, buckets) == pytest.approx(0.01 + 0.09 * 0.5)
    assert quantile(0.95, buckets) == pytest.approx(0.1 + 0.9 * 0.5)
    assert quantile(0.25, buckets) == pytest.approx(0.005)
    assert quantile(0.5, {0.01: 0.0, math.inf: 0.0}) is None
    assert quantile(0.99, {0.01: 1.0, math.inf: 4.0}) == 0.01  # past the last finite bound: that bound


def _series(requests: float, errors: float, fast: float, slow: float) -> Series:
    return Series(requests, errors, {0.01: fast, 0.1: fast + slow, math.inf: fast + slow}, fast + slow)


def test_rates_error_rates_and_percentiles_are_over_the_window_per_predictor_and_commit() -> None:
    key = ("main", "c" * 32)
    ring = [Sample(100.0, {key: _series(10, 0, 10, 0)}, {}, None),
            Sample(102.0, {key: _series(30, 2, 10, 20)}, {}, None),
            Sample(104.0, {key: _series(50, 2, 30, 20)}, {"x": 0.5}, 0.0)]
    [t] = traffic(ring)
    assert (t.predictor, t.commit, t.requests) == ("main", "c" * 32, 50)
    assert t.rate == pytest.approx(40 / 4)
    assert t.error_rate == pytest.approx(2 / 40)
    assert t.p50_ms == pytest.approx(10.0)  # 20 of the window's 40 answered within 10 ms
    assert t.rates == [pytest.approx(10.0), pytest.approx(10.0)]
    assert t.p95s[0] is not None and t.p95s[0] > 10 and t.p95s[1] is not None and t.p95s[1] <= 10


def test_with_one_sample_the_totals_answer_and_there_is_no_rate() -> None:
    [t] = traffic([Sample(1.0, {("main", "c" * 32): _series(4, 1, 4, 0)}, {}, None)])
    assert t.rate is None and t.error_rate == 0.25 and t.p99_ms is not None and t.p99_ms <= 10


def test_the_ring_keeps_one_sample_per_gap_and_at_most_keep() -> None:
    forget()
    assert len(sample("nobody", 1000.0)) == 1
    assert len(sample("nobody", 1000.0 + MIN_GAP / 2)) == 1  # too soon: now replaces the last, not kept
    for i in range(1, KEEP + 5):
        ring = sample("nobody", 1000.0 + i * MIN_GAP)
    assert len(ring) == KEEP and ring[-1].at == 1000.0 + (KEEP + 4) * MIN_GAP
    forget()
