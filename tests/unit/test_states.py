"""States are typed (``Literal``) where they leave the services: a state read back from the database that no
version of Tusk writes is an error naming it, and the remote client's records check the same types."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import TypeAdapter

from tusk.pipelines.records import JobInfo, datum_state, job_state, pipeline_state
from tusk.versioning.records import commit_state


@pytest.mark.parametrize(("convert", "good", "what"), [
    (commit_state, ["open", "finished", "failed"], "commit"),
    (job_state, ["created", "interrupted", "running", "success", "failure", "killed", "unrunnable"], "job"),
    (datum_state, ["success", "skipped", "failed", "recovered"], "datum"),
    (pipeline_state, ["running", "stopped"], "pipeline"),
])
def test_every_state_tusk_writes_is_accepted_and_any_other_is_named(convert: Callable[[str], str], good: list[str],
                                                                   what: str) -> None:
    assert [convert(s) for s in good] == good
    with pytest.raises(ValueError, match=rf"unknown {what} state 'done': expected one of .*{good[0]}"):
        convert("done")


def test_a_remote_record_with_an_unknown_state_is_refused() -> None:
    fields = {"id": "j", "pipeline": "p", "pipeline_version": 1, "global_id": "g", "reason": None,
              "input_commits": [], "output_commit": None, "datums_total": 0, "datums_processed": 0,
              "datums_skipped": 0, "datums_failed": 0, "created_at": "2026-01-01T00:00:00+00:00",
              "started_at": None, "finished_at": None}
    assert TypeAdapter(JobInfo).validate_python(fields | {"state": "killed"}).state == "killed"
    with pytest.raises(ValueError, match="state"):
        TypeAdapter(JobInfo).validate_python(fields | {"state": "done"})


def test_an_input_commit_is_one_record_for_jobs_provenance_and_datums() -> None:
    """``InputCommit`` is what a job read, what an output commit came from and where a datum's input came from;
    the remote client's records check it like the states (a provenance entry without its commit is refused)."""
    from tusk.pipelines.datums import DatumInput
    from tusk.versioning.records import CommitInfo

    fields = {"id": "j", "pipeline": "p", "pipeline_version": 1, "global_id": "g", "reason": None, "state": "success",
              "output_commit": None, "datums_total": 0, "datums_processed": 0, "datums_skipped": 0,
              "datums_failed": 0, "created_at": "2026-01-01T00:00:00+00:00", "started_at": None, "finished_at": None}
    read = {"name": "left", "repo": "data", "branch": "master", "commit": "c1"}
    job = TypeAdapter(JobInfo).validate_python(fields | {"input_commits": [read]})
    assert job.input_commits == [read]
    datum = DatumInput("left", "data", "master", "c1", "/a", "file", "d", 1)
    assert datum.source == read
    commit = {"id": "o", "repo": "out", "branch": "master", "parent": None, "origin": "auto", "description": "",
              "state": "finished", "size_bytes": 0, "global_id": "g", "author": "", "tree": None,
              "started_at": "2026-01-01T00:00:00+00:00", "finished_at": None}
    source = {k: v for k, v in read.items() if k != "name"}
    assert TypeAdapter(CommitInfo).validate_python(commit | {"provenance": [source]}).provenance == [source]
    with pytest.raises(ValueError, match="commit"):
        TypeAdapter(CommitInfo).validate_python(commit | {"provenance": [{"repo": "data", "branch": "master"}]})
