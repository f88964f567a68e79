"""A job that skips datums with the outcome its base job recorded writes no row for them (tusk.pipelines.datum_rows),
and lists, pages, inspects and traces its datums exactly as a job with a row for each: checked against the same
history run with every row written. On SQLite + local objects and PostgreSQL + S3."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.conftest import Backend
from tusk import Client
from tusk.config import Settings
from tusk.pipelines.datum_rows import Sharing
from tusk.pipelines.records import DatumInfo, JobInfo
from tusk.storage.metadata import DatumRunRow, JobRow

SPEC = {"pipeline": {"name": "copy"},
        "transform": {"cmd": ["sh", "-c", 'grep -q bad "$data" && exit 1; cp "$data" /pfs/out/']},
        "input": {"pfs": {"repo": "data", "glob": "/*"}}}


def _client(env: dict[str, str]) -> Client:
    return Client(settings=Settings.from_env(env=env | {"TUSK_RUNTIME": "local"}))


def _history(c: Client) -> list[JobInfo]:
    """Five jobs: 40 files; one changed; one deleted and one added; one made to fail; the failure fixed."""
    c.create_repo("data")
    with c.modify("data@master") as m:
        for i in range(40):
            m.put_bytes(f"/f{i:02d}.txt", f"record {i}\n".encode())
    c.create_pipeline(SPEC)
    c.put_file("data@master:/f07.txt", b"record seven, changed\n")
    with c.modify("data@master") as m:
        m.delete("/f11.txt")
        m.put_bytes("/f40.txt", b"record 40\n")
    c.put_file("data@master:/f13.txt", b"bad record\n")
    c.put_file("data@master:/f13.txt", b"record 13, fixed\n")
    return list(reversed(c.list_jobs("copy")))


def _plain(job: JobInfo, d: DatumInfo) -> tuple[Any, ...]:
    """A datum as two histories can compare it: its input commits checked to be its job's, then left out (as
    its hash: the pipeline's salt is its own in each)."""
    commits = {i["name"]: i["commit"] for i in job.input_commits}
    assert d.job == job.id and all(i["commit"] == commits[i["name"]] for i in d.inputs), (job, d)
    paths = tuple(i["path"] for i in d.inputs)
    moved = (d.download_bytes, d.upload_bytes) if d.state == "skipped" else ()
    return d.id, d.state, paths, d.tries, d.error, moved


def _own_rows(c: Client, job: str) -> tuple[int, str | None]:
    with c.services.ctx.db.read() as s:
        count = s.scalar(select(func.count()).select_from(DatumRunRow).where(DatumRunRow.job_id == job))
        base = s.scalar(select(JobRow.datums_base).where(JobRow.id == job))
    return count or 0, base


@pytest.fixture
def full_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[Any, ...]]]:
    """The same history with a row for every datum of every job: what each job lists, in datum order."""
    with monkeypatch.context() as m:
        m.setattr(Sharing, "worth_it", staticmethod(lambda shared, written, total: False))
        with _client({"TUSK_HOME": str(tmp_path / "full"), "TUSK_USER": "tester"}) as c:
            jobs = _history(c)
            assert all(_own_rows(c, j.id) == (j.datums_total, None) for j in jobs)
            return [[_plain(j, d) for d in c.list_datums(j.id)] for j in jobs]


def test_a_job_writes_rows_for_its_change_and_lists_every_datum(backend: Backend,
                                                                 full_rows: list[list[tuple[Any, ...]]]) -> None:
    with _client(backend.env) as c:
        jobs = _history(c)
        assert [j.state for j in jobs] == ["success", "success", "success", "failure", "success"]
        assert [(j.datums_processed, j.datums_skipped, j.datums_failed) for j in jobs] == \
            [(40, 0, 0), (1, 39, 0), (1, 39, 0), (0, 39, 1), (1, 39, 0)]
        first = jobs[0].id
        # the first job is the base; each later one writes what it ran, what it skipped with an outcome the base
        # does not have (f07 changed, f40 added) and one row hiding the deleted f11 from the base's list
        assert [_own_rows(c, j.id) for j in jobs] == [(40, None), (1, first), (3, first), (4, first), (4, first)]
        for job, expected in zip(jobs, full_rows, strict=True):
            listed = c.list_datums(job.id)
            assert [_plain(job, d) for d in listed] == expected
            for size in (1, 7, 40):
                pages: list[DatumInfo] = []
                while len(page := c.list_datums(job.id, size, len(pages))) == size:
                    pages += page
                assert pages + page == listed
            failed_first = c.list_datums(job.id, failed_first=True)
            assert failed_first == [d for d in listed if d.state == "failed"] + \
                [d for d in listed if d.state != "failed"]
            assert c.list_datums(job.id, 5, 0, failed_first=True) == failed_first[:5]
            assert c.list_datums(job.id, 5, 37, failed_first=True) == failed_first[37:]
        for before, job in itertools.pairwise(jobs):  # a skipped datum is the one before, content and all
            hashes = {d.id: d.hash for d in c.list_datums(before.id)}
            assert all(d.hash == hashes[d.id] for d in c.list_datums(job.id) if d.state == "skipped")
        third = jobs[2]
        assert "/f11.txt" not in {d.inputs[0]["path"] for d in c.list_datums(third.id)}
        shared = next(d for d in c.list_datums(third.id) if d.inputs[0]["path"] == "/f03.txt")
        assert c.inspect_datum(third.id, shared.id[:10]) == shared
        # the datum that wrote a file of a job's output: the base's row, as this job's skipped datum
        traced = c.lineage(f"copy@{third.output_commit}:/f03.txt")["datum"]
        assert (traced["job"], traced["id"], traced["state"]) == (third.id, shared.id, "skipped")
        assert traced["inputs"] == shared.inputs
        assert c.get_file(f"copy@{jobs[-1].output_commit}:/f13.txt") == b"record 13, fixed\n"
        assert len(c.list_files(f"copy@{jobs[-1].output_commit}:/")) == 40


def test_a_job_that_stops_midway_lists_only_the_datums_it_finished(backend: Backend) -> None:
    with _client(backend.env) as c:
        c.create_repo("data")
        with c.modify("data@master") as m:
            for i in range(20):
                m.put_bytes(f"/f{i:02d}.txt", f"record {i}\n".encode())
        c.create_pipeline(SPEC)
        executor = c.services.jobs.executor

        def dies(*args: Any, **kwargs: Any) -> Iterator[Any]:
            raise RuntimeError("the worker died")
            yield  # a generator, as executors are

        executor.run = dies  # type: ignore[method-assign]
        try:
            c.put_file("data@master:/f04.txt", b"record four, changed\n")
        finally:
            del executor.run
        (job, first) = c.list_jobs("copy")
        assert job.state == "failure" and _own_rows(c, job.id) == (1, first.id)
        listed = c.list_datums(job.id)
        assert len(listed) == 19 and {d.state for d in listed} == {"skipped"}
        assert "/f04.txt" not in {d.inputs[0]["path"] for d in listed}
        changed = next(d for d in c.list_datums(first.id) if d.inputs[0]["path"] == "/f04.txt")
        with pytest.raises(Exception, match="not found"):
            c.inspect_datum(job.id, changed.id)
