"""The datum rows a job lists: its own, and those it shares with its base job.

A job that skips a datum with exactly the outcome an earlier job of its
pipeline recorded for it (same datum, same hash, same output) writes no row for
it: it names that job as its base (``jobs.datums_base``) and lists the base's
row as its own skipped datum. So a job over 20,000 unchanged datums and one
changed writes one row, not 20,000. The base is always a job with a row for
each of its datums (``datums_base`` is None), so a listing reads at most two
jobs' rows; a job whose difference from the base grew past a share of its
datums (``Sharing.worth_it``) writes all its rows and becomes the next base.

A job's own rows override its base's for the same datum. A datum the base
lists that the job does not share gets an own row before the job runs
anything: its outcome once it runs, and until then a row in the state
``gone``, which no listing shows (so a job killed midway lists, as before,
only the datums it finished, and a datum whose input file was deleted is not
listed at all).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, exists, not_, or_, select
from sqlalchemy.orm import Session, aliased

from tusk.pipelines.records import DatumInfo, datum_state, input_commits
from tusk.storage.metadata import DATUM_TROUBLED, DatumRunRow, JobRow

__all__ = ["GONE", "SHAREABLE", "BaseRow", "Sharing", "base_rows", "find", "info", "listed", "listed_where"]

GONE = "gone"  # an own row hiding the base's: a datum this job does not have, or has not finished
SHAREABLE = ("success", "skipped")  # a base row in these states is listed by the jobs that share it


class BaseRow(NamedTuple):
    hash: str
    output_tree: str | None


@dataclass(frozen=True)
class Sharing:
    """What a job about to record its skipped datums shares with the job its pipeline's output came from."""

    base: str | None  # the job whose rows it would share (the head's own base, or the head itself)
    rows: dict[str, BaseRow]  # that job's shareable rows, by datum id

    def shared(self, datum_id: str, hash_: str, output_tree: str | None) -> bool:
        """Whether the base lists this datum with exactly this outcome."""
        row = self.rows.get(datum_id)
        return row is not None and row.hash == hash_ and row.output_tree == output_tree

    def hidden(self, keep: Collection[str]) -> list[str]:
        """The base's datums the job must hide, all but those in ``keep`` (those it shares, and those it has
        its own rows for): datums it does not have, and those it has yet to run."""
        return sorted(d for d in self.rows if d not in keep)

    @staticmethod
    def worth_it(shared: int, written: int, total: int) -> bool:
        """Share when something is shared and the rows the job still writes beside the outcomes of what it runs
        (for datums skipped with an outcome the base does not have, and to hide base datums) stay a small part
        of its datums; past that, a full set of rows makes a fresh base."""
        return shared > 0 and written <= max(16, total // 8)


def base_rows(s: Session, head_job: str) -> tuple[str, dict[str, BaseRow], dict[str, BaseRow]]:
    """For the job that wrote a pipeline's output head: (the job to share rows with, that job's shareable rows,
    the head's own listing of its successful and skipped datums), by datum id."""
    head = s.get(JobRow, head_job)
    base = head.datums_base if head is not None and head.datums_base else head_job
    shareable = {d: BaseRow(h, t) for d, h, t in s.execute(
        select(DatumRunRow.datum_id, DatumRunRow.hash, DatumRunRow.output_tree).where(
            DatumRunRow.job_id == base, DatumRunRow.state.in_(SHAREABLE)))}
    if base == head_job:
        return base, shareable, shareable
    listed_rows = dict(shareable)
    for d, h, t, state in s.execute(select(DatumRunRow.datum_id, DatumRunRow.hash, DatumRunRow.output_tree,
                                           DatumRunRow.state).where(DatumRunRow.job_id == head_job)):
        if state in SHAREABLE:
            listed_rows[d] = BaseRow(h, t)
        else:
            listed_rows.pop(d, None)
    return base, shareable, listed_rows


def _mine(job: JobRow) -> Any:
    return and_(DatumRunRow.job_id == job.id, DatumRunRow.state != GONE)


def _shared(job: JobRow) -> Any:
    own = aliased(DatumRunRow)
    return and_(DatumRunRow.job_id == job.datums_base, DatumRunRow.state.in_(SHAREABLE),
                not_(exists().where(own.job_id == job.id, own.datum_id == DatumRunRow.datum_id)))


def listed_where(job: JobRow) -> Any:
    """The rows of ``datum_runs`` that list the job's datums: its own (but ``gone``), and its base's shareable
    ones it has no own row for."""
    return or_(_mine(job), _shared(job)) if job.datums_base else _mine(job)


def listed(job: JobRow, troubled: bool | None = None) -> Select[DatumRunRow]:
    """The job's datum rows in datum id order; ``troubled``: only the troubled ones (failed, or recovered with
    an error), or only the others. A shared row is a skipped datum of this job: never troubled."""
    if troubled is None:
        where = listed_where(job)
    elif troubled:
        where = and_(_mine(job), DATUM_TROUBLED)
    else:
        where = and_(_mine(job), not_(DATUM_TROUBLED))
        if job.datums_base:
            where = or_(where, _shared(job))
    return select(DatumRunRow).where(where).order_by(DatumRunRow.datum_id)


def find(s: Session, job: JobRow, datum_id: str) -> DatumRunRow | None:
    """The row that lists one datum of the job (its own, or its base's), or None."""
    row = s.get(DatumRunRow, (job.id, datum_id))
    if row is not None:
        return None if row.state == GONE else row
    if not job.datums_base:
        return None
    row = s.get(DatumRunRow, (job.datums_base, datum_id))
    return row if row is not None and row.state in SHAREABLE else None


def info(job: JobRow, rows: Sequence[DatumRunRow]) -> list[DatumInfo]:
    """The rows as the job's datums: a shared row is this job's skipped datum, read from this job's input
    commits (the same file content, so the same hash), with nothing run, moved or logged."""
    commits: dict[str, str] | None = None
    out = []
    for r in rows:
        inputs = json.loads(r.inputs)
        if r.job_id == job.id:
            out.append(DatumInfo(job=r.job_id, id=r.datum_id, hash=r.hash, state=datum_state(r.state), inputs=inputs,
                                 tries=r.tries, download_seconds=r.download_seconds,
                                 process_seconds=r.process_seconds, upload_seconds=r.upload_seconds,
                                 download_bytes=r.download_bytes, upload_bytes=r.upload_bytes, error=r.error,
                                 log=r.log))
            continue
        if commits is None:
            commits = {i["name"]: i["commit"] for i in input_commits(job.input_commits)}
        for i in inputs:
            i["commit"] = commits.get(i["name"], i["commit"])
        out.append(DatumInfo(job=job.id, id=r.datum_id, hash=r.hash, state="skipped", inputs=inputs, tries=0,
                             download_seconds=0.0, process_seconds=0.0, upload_seconds=0.0, download_bytes=0,
                             upload_bytes=0, error=None, log=""))
    return out
