"""The job journal (tusk.pipelines.outcomes): outcomes journaled at once, written in batches, replayed."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tusk.pipelines.outcomes import OutcomeLog, replay

Batch = tuple[list[dict[str, Any]], list[dict[str, Any]]]


def _row(n: int) -> dict[str, Any]:
    return {"job_id": "j", "datum_id": f"d{n}", "state": "success",
            "finished_at": datetime(2026, 12, 3, 0, 0, n, tzinfo=UTC)}


def test_outcomes_are_journaled_at_once_and_written_by_batches(tmp_path: Path) -> None:
    written: list[Batch] = []
    path = tmp_path / "journals" / "j.jsonl"
    log = OutcomeLog(path, lambda runs, cache: written.append((list(runs), list(cache))), batch=3, seconds=3600)
    log.add(_row(0), {"hash": "h0"})
    log.add(_row(1))
    assert written == []
    runs, cache = replay(path)  # what a runner killed now leaves: both, with their stamps as datetimes
    assert runs == [_row(0), _row(1)] and cache == [{"hash": "h0"}]
    log.add(_row(2))
    assert [len(r) for r, _ in written] == [3] and written[0][1] == [{"hash": "h0"}]
    assert path.read_bytes() == b""  # what the database holds, the journal no longer does
    log.add(_row(3))
    log.close()
    assert [len(r) for r, _ in written] == [3, 1] and not path.exists()


def test_a_batch_goes_when_its_time_is_up(tmp_path: Path) -> None:
    written: list[int] = []
    log = OutcomeLog(tmp_path / "j.jsonl", lambda runs, cache: written.append(len(runs)), batch=1000, seconds=0)
    log.add(_row(0))
    log.add(_row(1))
    assert written == [1, 1]
    log.close()


def test_a_failed_write_keeps_the_journal_for_the_next_runner(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"

    def down(runs: list[dict[str, Any]], cache: list[dict[str, Any]]) -> None:
        raise ConnectionError("the database is gone")

    log = OutcomeLog(path, down, batch=1000, seconds=3600)
    log.add(_row(0))
    with pytest.raises(ConnectionError):
        log.close()
    assert replay(path)[0] == [_row(0)]


def test_replay_skips_a_torn_last_line_and_a_missing_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    log = OutcomeLog(path, lambda runs, cache: None, batch=1000, seconds=3600)
    log.add(_row(0))
    log._close_fd()  # as a SIGKILL leaves it
    with path.open("a") as fh:
        fh.write('{"run": {"datum_id": "d1", "st')
    assert replay(path) == ([_row(0)], [])
    assert replay(tmp_path / "none.jsonl") == ([], [])


def test_without_a_journal_each_outcome_is_written_at_once(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    written: list[int] = []
    log = OutcomeLog(blocked / "j.jsonl", lambda runs, cache: written.append(len(runs)), batch=1000, seconds=3600)
    log.add(_row(0))
    log.add(_row(1))
    assert written == [1, 1]
    log.close()


def test_pending_outcomes_are_written_in_time_while_no_new_one_comes(tmp_path: Path) -> None:
    written: list[int] = []
    log = OutcomeLog(tmp_path / "j.jsonl", lambda runs, cache: written.append(len(runs)), batch=1000, seconds=0.1)
    log.add(_row(0))
    log.add(_row(1))
    deadline = time.monotonic() + 10
    while sum(written) < 2 and time.monotonic() < deadline:  # every worker busy on a long datum: nothing adds
        time.sleep(0.02)
    assert sum(written) == 2  # in one batch, or two when the machine was slow between the adds
    log.flush()  # waits for the timer's write to finish truncating the journal (it holds the lock)
    assert (tmp_path / "j.jsonl").read_bytes() == b""
    log.close()
    assert sum(written) == 2
