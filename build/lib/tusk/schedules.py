"""Durations and schedules, shared by pipeline specs, cron inputs and branch triggers.

Durations are Go-style, as Pachyderm writes them ("30s", "1h30m"). Schedules
are ``@every <duration>`` or a cron expression.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["cron_interval", "next_fire", "parse_duration"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | float | int | None) -> float | None:
    """Go-style durations as Pachyderm writes them ("30s", "1h30m", "500ms") → seconds."""
    if text is None or isinstance(text, int | float):
        return None if text is None else float(text)
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r}: use Go syntax such as '30s', '5m' or '1h30m'")
    return total


def cron_interval(spec: str) -> float | None:
    """Seconds for ``@every 1m`` specs; None for cron expressions (validated here)."""
    if spec.startswith("@every "):
        seconds = parse_duration(spec.removeprefix("@every ").strip())
        if not seconds or seconds <= 0:
            raise ValueError(f"invalid cron spec {spec!r}: the interval must be positive")
        return seconds
    from croniter import croniter

    if not croniter.is_valid(spec):
        raise ValueError(f"invalid cron spec {spec!r}: use '@every 30s' or a cron expression like '*/5 * * * *'")
    return None


def next_fire(spec: str, after: datetime) -> datetime:
    """The first time the schedule fires after ``after`` (UTC)."""
    interval = cron_interval(spec)
    if interval is not None:
        return after + timedelta(seconds=interval)
    from croniter import croniter

    nxt: datetime = croniter(spec, after).get_next(datetime)
    return nxt if nxt.tzinfo else nxt.replace(tzinfo=UTC)
