"""The pipeline engine end to end: triggering, incremental datums, failures, DAGs, lineage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Backend
from tusk import Client
from tusk.config import Settings
from tusk.errors import InvalidArgument, NotFound

WC: dict[str, Any] = {
    "pipeline": {"name": "wc"},
    "transform": {"cmd": ["sh"], "stdin": ["for f in /pfs/text/*; do wc -w < $f > /pfs/out/$(basename $f).n; done"]},
    "input": {"pfs": {"repo": "text", "glob": "/*"}},
}


def last_job(c: Client, pipeline: str) -> Any:
    return c.list_jobs(pipeline)[0]


def test_incremental_processing_counts(pc: Client) -> None:
    pc.create_repo("text")
    pc.put_file("text@master:/a.txt", b"one two\n")
    pc.put_file("text@master:/b.txt", b"three\n")
    pc.create_pipeline(WC)
    first = last_job(pc, "wc")
    assert (first.state, first.datums_total, first.datums_processed, first.datums_skipped) == ("success", 2, 2, 0)
    pc.put_file("text@master:/c.txt", b"four five six\n")  # added: one datum
    j = last_job(pc, "wc")
    assert (j.datums_total, j.datums_processed, j.datums_skipped) == (3, 1, 2)
    assert pc.get_file("wc@master:/c.txt.n") == b"3\n"
    pc.put_file("text@master:/a.txt", b"one\n")  # modified: one datum
    j = last_job(pc, "wc")
    assert (j.datums_processed, j.datums_skipped) == (1, 2)
    assert pc.get_file("wc@master:/a.txt.n") == b"1\n"
    pc.delete_file("text@master:/b.txt")  # removed: its output goes too
    j = last_job(pc, "wc")
    assert (j.datums_total, j.datums_processed, j.datums_skipped) == (2, 0, 2)
    assert [f.path for f in pc.list_files("wc@master")] == ["/a.txt.n", "/c.txt.n"]
    pc.rerun_pipeline("wc")  # no change: nothing to do
    assert last_job(pc, "wc").datums_processed == 0
    pc.rerun_pipeline("wc", reprocess=True)  # new salt: everything again
    assert last_job(pc, "wc").datums_processed == 2


def test_global_id_provenance_and_lineage_through_a_dag(pc: Client) -> None:
    pc.create_repo("text")
    pc.put_file("text@master:/a.txt", b"a b c\n")
    pc.create_pipeline(WC)
    pc.create_pipeline({"pipeline": {"name": "total"}, "transform": {"cmd": ["sh", "-c",
                        "cat /pfs/wc/* | awk '{s+=$1} END {print s}' > /pfs/out/total"]},
                        "input": {"pfs": {"repo": "wc", "glob": "/"}}})
    user = pc.put_file("text@master:/b.txt", b"d e\n")
    assert user is not None
    assert pc.get_file("total@master:/total") == b"5\n"
    commit_set = pc.inspect_commit_set(user.global_id)
    assert sorted(c.repo for c in commit_set) == ["text", "total", "wc"]
    assert {j.pipeline for j in pc.list_jobs(global_id=user.global_id)} == {"wc", "total"}
    total = pc.inspect_commit("total@master")
    assert total.origin == "auto" and total.global_id == user.global_id
    lin = pc.lineage("total@master")
    wc_node = lin["upstream"]["inputs"][0]
    assert wc_node["repo"] == "wc" and wc_node["pipeline"] == "wc" and wc_node["pipeline_version"] == 1
    assert wc_node["inputs"][0]["commit"] == user.id
    down = pc.lineage(f"text@{user.id}")["downstream"]
    assert down["outputs"][0]["repo"] == "wc" and down["outputs"][0]["outputs"][0]["repo"] == "total"


def test_cross_reprocesses_all_when_the_single_side_changes(pc: Client) -> None:
    pc.create_repo("images")
    pc.create_repo("model")
    for i in range(4):
        pc.put_file(f"images@master:/img{i}.txt", f"pixels {i}\n".encode())
    pc.put_file("model@master:/weights", b"w1\n")
    spec = {"pipeline": {"name": "predict"},
            "transform": {"cmd": ["sh"], "stdin": [
                "cat $model/weights $images > /pfs/out/$(basename $images).pred"]},
            "input": {"cross": [{"pfs": {"repo": "images", "glob": "/*"}}, {"pfs": {"repo": "model", "glob": "/"}}]}}
    pc.create_pipeline(spec)
    assert last_job(pc, "predict").datums_processed == 4
    pc.put_file("model@master:/weights", b"w2\n")
    j = last_job(pc, "predict")
    assert (j.datums_total, j.datums_processed, j.datums_skipped) == (4, 4, 0)
    assert pc.get_file("predict@master:/img2.txt.pred") == b"w2\npixels 2\n"
    pc.put_file("images@master:/img9.txt", b"new\n")
    j = last_job(pc, "predict")
    assert (j.datums_processed, j.datums_skipped) == (1, 4)


def test_join_and_group_pipelines(pc: Client) -> None:
    pc.create_repo("purchases")
    pc.create_repo("returns")
    for k in ("1", "2", "3"):
        pc.put_file(f"purchases@master:/{k}.txt", f"p{k}\n".encode())
    for k in ("2", "3", "4"):
        pc.put_file(f"returns@master:/{k}.txt", f"r{k}\n".encode())
    pc.create_pipeline({"pipeline": {"name": "joined"},
                        "transform": {"cmd": ["sh", "-c",
                                              "cat /pfs/purchases/* /pfs/returns/* > /pfs/out/$(ls /pfs/purchases)"]},
                        "input": {"join": [{"pfs": {"repo": "purchases", "glob": "/(*).txt", "join_on": "$1"}},
                                           {"pfs": {"repo": "returns", "glob": "/(*).txt", "join_on": "$1"}}]}})
    assert [f.path for f in pc.list_files("joined@master")] == ["/2.txt", "/3.txt"]
    assert pc.get_file("joined@master:/3.txt") == b"p3\nr3\n"
    pc.create_pipeline({"pipeline": {"name": "grouped"},
                        "transform": {"cmd": ["sh", "-c", "ls /pfs/purchases /pfs/returns | grep txt | sort | "
                                              "tr '\\n' ' ' > /pfs/out/$(ls /pfs/purchases /pfs/returns | "
                                              "grep txt | head -1)"]},
                        "input": {"group": [{"pfs": {"repo": "purchases", "glob": "/(*).txt", "group_by": "$1"}},
                                            {"pfs": {"repo": "returns", "glob": "/(*).txt", "group_by": "$1"}}]}})
    assert last_job(pc, "grouped").datums_total == 4


def test_env_vars_and_pfs_mapping(pc: Client) -> None:
    pc.create_repo("text")
    c = pc.put_file("text@master:/dir/a.txt", b"x")
    assert c is not None
    pc.create_pipeline({"pipeline": {"name": "env"},
                        "transform": {"cmd": ["sh", "-c", "env | grep -E '^(PACH_|text)' | sort > /pfs/out/env; "
                                              "cat /pfs/text/dir/a.txt > /pfs/out/copy"]},
                        "input": {"pfs": {"repo": "text", "glob": "/dir/*"}}})
    env = dict(line.split("=", 1) for line in pc.get_file("env@master:/env").decode().splitlines())
    job = last_job(pc, "env")
    assert env["PACH_JOB_ID"] == job.id
    assert env["PACH_DATUM_ID"] == pc.list_datums(job.id)[0].id
    assert env["text"].endswith("/text/dir/a.txt")
    assert env["text_COMMIT"] == c.id
    assert pc.get_file("env@master:/copy") == b"x"


def test_failed_datum_fails_job_keeps_head_and_blocks_downstream(pc: Client) -> None:
    pc.create_repo("nums")
    pc.put_file("nums@master:/1", b"1")
    spec = {"pipeline": {"name": "check"}, "datum_tries": 2,
            "transform": {"cmd": ["sh", "-c", "grep -q bad $nums && exit 3; cp $nums /pfs/out/"]},
            "input": {"pfs": {"repo": "nums", "glob": "/*"}}}
    pc.create_pipeline(spec)
    pc.create_pipeline({"pipeline": {"name": "after"},
                        "transform": {"cmd": ["sh", "-c", "cp -r /pfs/check/. /pfs/out/"]},
                        "input": {"pfs": {"repo": "check", "glob": "/"}}})
    good = pc.inspect_commit("check@master")
    bad = pc.put_file("nums@master:/2", b"bad")
    assert bad is not None
    job = last_job(pc, "check")
    assert job.state == "failure" and job.datums_failed == 1 and "exited with code 3" in (job.reason or "")
    assert pc.inspect_commit("check@master").id == good.id  # head stays on the last good commit
    failed_commit = pc.inspect_commit(f"check@{job.output_commit}")
    assert failed_commit.state == "failed"
    downstream = pc.list_jobs(global_id=bad.global_id)
    assert {(j.pipeline, j.state) for j in downstream} == {("check", "failure"), ("after", "unrunnable")}
    datum = next(d for d in pc.list_datums(job.id) if d.state == "failed")
    assert datum.tries == 2 and "try 2/2 failed" in datum.log


def test_retry_err_cmd_accept_return_code_and_timeout(pc: Client, tmp_path: Path) -> None:
    pc.create_repo("in")
    pc.put_file("in@master:/x", b"x")
    marker = tmp_path / "tried-once"
    pc.create_pipeline({"pipeline": {"name": "flaky"}, "transform": {"cmd": ["sh", "-c",
                        f"if [ -e {marker} ]; then echo ok > /pfs/out/x; else touch {marker}; exit 1; fi"]},
                        "input": {"pfs": {"repo": "in", "glob": "/*"}}})
    job = last_job(pc, "flaky")
    assert job.state == "success" and pc.list_datums(job.id)[0].tries == 2
    pc.create_pipeline({"pipeline": {"name": "recover"}, "datum_tries": 1,
                        "transform": {"cmd": ["false"], "err_cmd": ["true"]},
                        "input": {"pfs": {"repo": "in", "glob": "/*"}}})
    job = last_job(pc, "recover")
    assert job.state == "success" and pc.list_datums(job.id)[0].state == "recovered"
    pc.create_pipeline({"pipeline": {"name": "accept"},
                        "transform": {"cmd": ["sh", "-c", "echo y > /pfs/out/y; exit 7"], "accept_return_code": [7]},
                        "input": {"pfs": {"repo": "in", "glob": "/*"}}})
    assert last_job(pc, "accept").state == "success"
    pc.create_pipeline({"pipeline": {"name": "slow"}, "datum_tries": 1, "datum_timeout": "1s",
                        "transform": {"cmd": ["sleep", "30"]}, "input": {"pfs": {"repo": "in", "glob": "/*"}}})
    job = last_job(pc, "slow")
    assert job.state == "failure" and "timed out" in (job.reason or "")


def test_two_datums_writing_one_path_is_an_error_naming_both(pc: Client) -> None:
    pc.create_repo("in")
    pc.put_file("in@master:/a", b"a")
    pc.put_file("in@master:/b", b"b")
    pc.create_pipeline({"pipeline": {"name": "clash"}, "transform": {"cmd": ["sh", "-c", "echo 1 > /pfs/out/same"]},
                        "input": {"pfs": {"repo": "in", "glob": "/*"}}})
    job = last_job(pc, "clash")
    ids = [d.id for d in pc.list_datums(job.id)]
    assert job.state == "failure"
    assert all(i in (job.reason or "") for i in ids) and "/same" in (job.reason or "")


def test_symlinked_outputs_share_bytes(pc: Client) -> None:
    pc.create_repo("models")
    pc.put_file("models@master:/big.bin", bytes(range(256)) * 4096)
    pc.create_pipeline({"pipeline": {"name": "gather"}, "transform": {"cmd": ["sh", "-c",
                        "ln -s /pfs/models/big.bin /pfs/out/big.bin"]},
                        "input": {"pfs": {"repo": "models", "glob": "/"}}})
    src, out = pc.inspect_file("models@master:/big.bin"), pc.inspect_file("gather@master:/big.bin")
    assert src.digest == out.digest
    assert last_job(pc, "gather").state == "success"
    assert pc.list_datums(last_job(pc, "gather").id)[0].upload_bytes == 0


def test_stop_start_branch_moves_and_deferred_processing(pc: Client) -> None:
    pc.create_repo("text")
    pc.put_file("text@master:/a", b"a")
    pc.create_pipeline(WC)
    pc.stop_pipeline("wc")
    pc.put_file("text@master:/b", b"b b")
    assert len(pc.list_jobs("wc")) == 1
    pc.start_pipeline("wc")
    pc.put_file("text@staging:/c", b"c c c")  # a side branch: not what wc reads
    assert len(pc.list_jobs("wc")) == 1
    pc.create_branch("text@master", head="staging")  # moving the head by hand triggers
    assert pc.get_file("wc@master:/c.n") == b"3\n"


def _counting_job(c: Client, counter: Path) -> Any:
    """Six one-file datums whose command appends its datum id to ``counter``: the pipeline's created job."""
    c.create_repo("in")
    with c.modify("in@master") as m:
        for i in range(6):
            m.put_bytes(f"/{i}", str(i).encode())
    c.create_pipeline({"pipeline": {"name": "count"}, "transform": {"cmd": ["sh", "-c",
                       f"echo $PACH_DATUM_ID >> {counter}; cp $in /pfs/out/"]},
                       "input": {"pfs": {"repo": "in", "glob": "/*"}}})
    (job,) = c.list_jobs("count")
    return job


def _crash_after(svc: Any, job_id: str, datums: int) -> None:
    """Run the claimed job here until ``datums`` datums ran, then crash its runner (KeyboardInterrupt)."""
    real_run = svc.worker.run
    calls = {"n": 0}

    def crashing(*args: Any, **kwargs: Any) -> Any:
        if calls["n"] == datums:
            raise KeyboardInterrupt("simulated crash")
        calls["n"] += 1
        return real_run(*args, **kwargs)

    svc.worker.run = crashing
    try:
        with pytest.raises(KeyboardInterrupt):
            svc._run(job_id, None)
    finally:
        svc.worker.run = real_run


def test_no_wait_queues_and_resume_does_not_redo_datums(backend: Backend, tmp_path: Path) -> None:
    settings = Settings.from_env(env=backend.env | {"TUSK_RUNTIME": "local"})
    counter = tmp_path / "runs.log"
    with Client(settings=settings, run_jobs=False) as c:
        job = _counting_job(c, counter)
        assert job.state == "created"
        # simulate a crash after two datums: run them by hand, leave the job "running" with a dead owner
        from tusk.pipelines import jobs as jobs_module

        svc = c.services.jobs
        claimed = svc._claim_next()
        assert claimed == job.id
        _crash_after(svc, job.id, 2)
        from sqlalchemy import update

        from tusk.storage.metadata import JobRow

        with c.services.ctx.db.write() as s:
            s.execute(update(JobRow).where(JobRow.id == job.id).values(owner="nohost:999999"))
        assert jobs_module._owner_alive("nohost:999999") is True  # other hosts are presumed alive...
        with c.services.ctx.db.write() as s:  # ...so mark it as this host's dead pid
            dead = f"{jobs_module.socket.gethostname()}:999999"
            s.execute(update(JobRow).where(JobRow.id == job.id).values(owner=dead))
        (done,) = c.run_pending_jobs()
        assert done.state == "success" and done.datums_total == 6
    runs = counter.read_text().splitlines()
    assert len(runs) == len(set(runs)) == 6  # every datum ran exactly once across the crash


def test_spec_errors_and_unknowns(pc: Client) -> None:
    with pytest.raises(InvalidArgument, match=r"input\.pfs\.glob"):
        pc.create_pipeline({"pipeline": {"name": "x"}, "transform": {"cmd": ["true"]}, "input": {"pfs": {"repo": "r"}}})
    with pytest.raises(NotFound, match="repo 'missing' not found"):
        pc.create_pipeline({"pipeline": {"name": "x"}, "transform": {"cmd": ["true"]},
                            "input": {"pfs": {"repo": "missing", "glob": "/"}}})
    assert pc.list_pipelines() == []


def test_update_keeps_versions_and_dry_run_creates_nothing(pc: Client, tmp_path: Path) -> None:
    pc.create_repo("text")
    pc.put_file("text@master:/a", b"a")
    spec_file = tmp_path / "wc.json"
    spec_file.write_text(json.dumps(WC))
    assert len(pc.dry_run_datums(spec_file)) == 1
    assert pc.list_pipelines() == [] and pc.list_jobs() == []
    pc.create_pipeline(spec_file)
    pc.update_pipeline(WC | {"description": "v2"})
    versions = pc.pipeline_versions("wc")
    assert [v["version"] for v in versions] == [1, 2]
    assert pc.inspect_pipeline("wc").description == "v2"
    assert last_job(pc, "wc").pipeline_version == 2
    pc.delete_pipeline("wc")
    assert [r.name for r in pc.list_repos()] == ["text"]


def test_branch_trigger_defers_processing(pc: Client) -> None:
    from tusk.versioning.triggers import BranchTrigger

    pc.create_repo("text")
    pc.put_file("text@staging:/a", b"a")
    pc.create_branch("text@master", trigger=BranchTrigger("staging", commits=2))
    pc.create_pipeline(WC)
    assert pc.list_jobs("wc")[0].datums_total == 0  # master is still empty
    pc.put_file("text@staging:/b", b"b b")
    assert pc.inspect_commit("text@master").id == pc.inspect_commit("text@staging").id  # 2 commits: fired
    assert pc.get_file("wc@master:/b.n") == b"2\n"
    pc.put_file("text@staging:/c", b"c c c")  # 1 commit since the move: waits
    assert pc.inspect_commit("text@master").id != pc.inspect_commit("text@staging").id
    assert not any(f.path == "/c.n" for f in pc.list_files("wc@master"))
    pc.put_file("text@staging:/d", b"d")
    assert pc.get_file("wc@master:/c.n") == b"3\n"
    moves = [m for m in _moves(pc, "text") if m[0] == "master"]
    assert [m[1] for m in moves] == ["trigger", "trigger"]


def _moves(c: Client, repo: str) -> list[tuple[str, str]]:
    from sqlalchemy import select

    from tusk.storage.metadata import BranchMoveRow

    with c.services.ctx.db.read() as s:
        repo_id = c.services.ctx.repo_row(s, repo).id
        return [(m.branch, m.reason) for m in s.scalars(
            select(BranchMoveRow).where(BranchMoveRow.repo_id == repo_id).order_by(BranchMoveRow.id))]


def test_size_trigger(pc: Client) -> None:
    from tusk.versioning.triggers import BranchTrigger, parse_size

    assert parse_size("1KiB") == 1024 and parse_size("2MB") == 2_000_000
    pc.create_repo("r")
    pc.put_file("r@staging:/small", b"x" * 10)
    pc.create_branch("r@master", trigger=BranchTrigger("staging", size=1000))
    pc.put_file("r@staging:/more", b"x" * 100)
    assert [b.head for b in pc.list_branches("r") if b.name == "master"] == [None]
    pc.put_file("r@staging:/big", b"x" * 2000)
    assert pc.get_file("r@master:/big") == b"x" * 2000


def test_cron_input_ticks(pc: Client) -> None:
    from datetime import UTC, datetime, timedelta

    pc.create_repo("text")
    pc.put_file("text@master:/a", b"one two")
    pc.create_pipeline({"pipeline": {"name": "nightly"},
                        "transform": {"cmd": ["sh", "-c",
                                              "ls /pfs/tick > /pfs/out/ticks; cat /pfs/text/a > /pfs/out/a"]},
                        "input": {"cross": [{"cron": {"name": "tick", "spec": "@every 1h", "overwrite": True}},
                                            {"pfs": {"repo": "text", "glob": "/"}}]}})
    assert "nightly_tick" in [r.name for r in pc.list_repos()]
    assert pc.list_jobs("nightly")[0].datums_total == 0  # no tick yet
    pc.run_cron("nightly")
    job = pc.list_jobs("nightly")[0]
    assert job.state == "success" and job.datums_processed == 1
    first_tick = pc.get_file("nightly@master:/ticks")
    assert pc.services.cron.tick_due() == []  # not due for an hour
    later = datetime.now(UTC) + timedelta(hours=2)
    assert len(pc.services.cron.tick_due(later)) == 1
    pc.run_pending_jobs()
    assert pc.get_file("nightly@master:/ticks") != first_tick
    assert len(pc.list_files("nightly_tick@master")) == 1  # overwrite keeps only the newest tick


def test_lazy_inputs_stream_only_what_is_read(pc: Client) -> None:
    pc.create_repo("big")
    pc.put_file("big@master:/read-me", b"r" * 300_000)
    pc.put_file("big@master:/ignore-me", b"i" * 300_000)
    pc.create_pipeline({"pipeline": {"name": "peek"}, "datum_tries": 1,
                        "transform": {"cmd": ["sh", "-c", "head -c 5 /pfs/big/read-me > /pfs/out/head; "
                                                          "test -p /pfs/big/ignore-me && echo fifo > /pfs/out/kind"]},
                        "input": {"pfs": {"repo": "big", "glob": "/", "lazy": True}}})
    job = last_job(pc, "peek")
    assert job.state == "success", pc.list_datums(job.id)[0].log
    assert pc.get_file("peek@master:/head") == b"rrrrr"
    assert pc.get_file("peek@master:/kind") == b"fifo\n"
    assert pc.list_datums(job.id)[0].download_bytes < 600_000  # ignore-me was never fetched


def test_reprocess_every_job_and_job_timeout(pc: Client) -> None:
    pc.create_repo("in")
    pc.put_file("in@master:/a", b"a")
    pc.put_file("in@master:/b", b"b")
    pc.create_pipeline({"pipeline": {"name": "always"}, "reprocess_spec": "every_job",
                        "transform": {"cmd": ["sh", "-c", "cp $in /pfs/out/"]},
                        "input": {"pfs": {"repo": "in", "glob": "/*"}}})
    pc.put_file("in@master:/c", b"c")
    j = last_job(pc, "always")
    assert (j.datums_processed, j.datums_skipped) == (3, 0)
    pc.create_pipeline({"pipeline": {"name": "bounded"}, "job_timeout": "2s", "datum_tries": 1,
                        "transform": {"cmd": ["sleep", "1.5"]}, "input": {"pfs": {"repo": "in", "glob": "/*"}}})
    j = last_job(pc, "bounded")
    assert j.state == "failure" and "timed out" in (j.reason or "")


def test_job_stopped_while_running_lands_nothing(pc: Client) -> None:
    pc.create_repo("in")
    pc.put_file("in@master:/a", b"a")
    svc = pc.services.jobs
    real_run = svc.worker.run

    def stop_then_run(job_id: str, *args: Any, **kwargs: Any) -> Any:
        svc.stop(job_id)  # as `tusk job stop` from another terminal would
        return real_run(job_id, *args, **kwargs)

    svc.worker.run = stop_then_run  # type: ignore[method-assign]
    pc.create_pipeline({"pipeline": {"name": "p"}, "transform": {"cmd": ["sh", "-c", "cp $in /pfs/out/"]},
                        "input": {"pfs": {"repo": "in", "glob": "/*"}}})
    job = pc.list_jobs("p")[0]
    assert job.state == "killed" and job.output_commit is None
    assert pc.list_commits("p") == []


def test_outcomes_only_in_the_journal_when_the_runner_died_are_not_redone(backend: Backend, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Outcomes reach the database in batches (tusk.pipelines.outcomes); a runner killed between two batches
    leaves them in its journal only, and the next runner replays it: no finished datum runs again."""
    from sqlalchemy import func, select, update

    from tusk.pipelines import jobs as jobs_module
    from tusk.pipelines.outcomes import OutcomeLog, replay
    from tusk.storage.metadata import DatumRunRow, JobRow

    settings = Settings.from_env(env=backend.env | {"TUSK_RUNTIME": "local"})
    counter = tmp_path / "runs.log"
    with Client(settings=settings, run_jobs=False) as c:
        job = _counting_job(c, counter)
        svc = c.services.jobs
        svc.record_batch, svc.record_seconds = 1000, 3600.0  # nothing reaches the database before the end
        assert svc._claim_next() == job.id
        # a SIGKILLed runner writes no pending batch and leaves its journal: close only lets go of the file
        monkeypatch.setattr(OutcomeLog, "close", lambda self: self._close_fd())
        _crash_after(svc, job.id, 3)
        monkeypatch.undo()
        with c.services.ctx.db.read() as s:
            assert s.scalar(select(func.count()).select_from(DatumRunRow).where(DatumRunRow.job_id == job.id)) == 0
        journal = svc.journals / f"{job.id}.jsonl"
        with journal.open("a") as fh:
            fh.write('{"run": {"job_id": "torn')  # the line being written at the kill: that datum runs again
        runs, _ = replay(journal)
        assert len(runs) == 3 and all(r["state"] == "success" for r in runs)
        with c.services.ctx.db.write() as s:  # its runner is this host's dead pid: the next runner takes over
            s.execute(update(JobRow).where(JobRow.id == job.id)
                      .values(owner=f"{jobs_module.socket.gethostname()}:999999"))
        (done,) = c.run_pending_jobs()
        assert done.state == "success" and done.datums_total == 6
        assert not journal.exists()
        assert len(c.list_datums(done.id)) == 6
    runs_seen = counter.read_text().splitlines()
    assert len(runs_seen) == len(set(runs_seen)) == 6  # every datum ran exactly once across the crash
