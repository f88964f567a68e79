"""Datums on a real multi-process Dask cluster, against PostgreSQL and a loopback S3 server, with a worker
killed part way: the job finishes, and every datum is in the output exactly once."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import Backend
from tests.serving_helpers import wait_for
from tusk.config import Settings
from tusk.pipelines.records import JobInfo
from tusk.sdk import Client
from tusk.storage.metadata import DatumRunRow

N = 1000


def test_a_thousand_datums_survive_a_killed_dask_worker(backend: Backend, tmp_path: Path) -> None:
    if backend.name != "postgres-s3":
        pytest.skip("cluster workers share a database and an object store")
    from distributed import Client as DaskClient
    from distributed import LocalCluster

    runs = tmp_path / "runs.log"
    with LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, DaskClient(cluster, set_as_default=False) as dask:
        env = backend.env | {"TUSK_DASK_ADDRESS": cluster.scheduler_address, "TUSK_RUNTIME": "local",
                             "PATH": os.environ["PATH"]}
        c = Client(settings=Settings.from_env(env=env), run_jobs=False)
        try:
            c.create_repo("numbers")
            with c.modify("numbers@master") as m:
                for i in range(N):
                    m.put_bytes(f"/n{i:04d}", str(i).encode())
            c.create_pipeline({
                "pipeline": {"name": "square"},
                "transform": {"cmd": ["sh", "-c",
                                      f'f=$(basename "$numbers"); echo "start $f $PPID" >> {runs}; sleep 0.1; '
                                      'n=$(cat "$numbers"); echo $((n * n)) > "/pfs/out/$f"; '
                                      f'echo "end $f $PPID" >> {runs}']},
                "input": {"pfs": {"repo": "numbers", "glob": "/*"}},
            })
            (job_id,) = [j.id for j in c.list_jobs("square")]
            result: list[JobInfo] = []
            runner = threading.Thread(target=lambda: result.extend(c.run_pending_jobs()))
            runner.start()

            def recorded() -> int:
                with c.services.ctx.db.read() as s:
                    return int(s.scalar(select(func.count()).select_from(DatumRunRow)
                                        .where(DatumRunRow.job_id == job_id)) or 0)

            wait_for(lambda: recorded() >= N // 3, timeout=300)
            workers = {str(pid) for pid in dask.run(os.getpid).values()}

            def running_datum() -> str | None:
                """A worker that is inside a datum's code right now (started, not ended)."""
                started: dict[str, str] = {}
                for line in runs.read_text().splitlines():
                    what, name, pid = line.split()
                    if what == "start":
                        started[name] = pid
                    else:
                        started.pop(name, None)
                return next((pid for pid in started.values() if pid in workers), None)

            deadline = time.monotonic() + 60
            while (victim_pid := running_datum()) is None:
                assert time.monotonic() < deadline, "no datum was seen running"
                time.sleep(0.005)
            victim = int(victim_pid)
            os.kill(victim, signal.SIGKILL)
            runner.join(timeout=600)
            assert not runner.is_alive()
        finally:
            c.close()

    (job,) = result
    assert job.state == "success", job.reason
    assert (job.datums_total, job.datums_processed, job.datums_failed) == (N, N, 0)
    c = Client(settings=Settings.from_env(env=backend.env))
    try:
        files = {f.path: c.get_file(f"square@master:{f.path}") for f in c.walk_files("square@master:/")}
        with c.services.ctx.db.read() as s:
            rows = s.scalars(select(DatumRunRow.state).where(DatumRunRow.job_id == job_id)).all()
    finally:
        c.close()
    assert sorted(files) == [f"/n{i:04d}" for i in range(N)]  # every datum exactly once in the output
    assert all(files[f"/n{i:04d}"] == f"{i * i}\n".encode() for i in range(N))
    assert len(rows) == N and set(rows) == {"success"}
    ends: dict[str, set[str]] = defaultdict(set)
    starts: dict[str, set[str]] = defaultdict(set)
    for line in runs.read_text().splitlines():
        what, name, pid = line.split()
        (ends if what == "end" else starts)[name].add(pid)
    by_victim = {n for n, p in starts.items() if str(victim) in p}
    assert by_victim, "the killed worker had run datums before it was killed"
    # the datum it was running when killed (its outcome never reported) ran again, to the end, elsewhere;
    # the killed worker's orphaned child may have finished too, but only one outcome was recorded
    rerun = {n for n in by_victim if starts[n] - {str(victim)}}
    assert rerun, "no datum of the killed worker was run again by another"
    assert all(ends[n] - {str(victim)} for n in rerun)


def test_warm_workers_on_dask_import_once_per_worker_thread(backend: Backend, tmp_path: Path) -> None:
    """transform.function on the cluster: each Dask worker thread keeps one warm process for the job's datums."""
    if backend.name != "postgres-s3":
        pytest.skip("cluster workers share a database and an object store")
    from distributed import LocalCluster

    starts = tmp_path / "starts"
    code = tmp_path / "code"
    code.mkdir()
    (code / "square.py").write_text(
        "import os, pathlib\n"
        f"with open({str(starts)!r}, 'a') as fh:\n"
        "    fh.write(f'{os.getpid()}\\n')\n"
        "def run(datum):\n"
        "    src = pathlib.Path(datum.inputs['numbers'])\n"
        "    n = int(src.read_text())\n"
        "    if n == 13:\n"
        "        raise ValueError('unlucky')\n"
        "    pathlib.Path(datum.out, src.name).write_text(f'{n * n}\\n')\n")
    (code / "square.json").write_text(json.dumps({
        "pipeline": {"name": "square"}, "input": {"pfs": {"repo": "numbers", "glob": "/*"}}, "datum_tries": 1,
        "transform": {"function": "square:run"}}))
    with LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster:
        env = backend.env | {"TUSK_DASK_ADDRESS": cluster.scheduler_address, "TUSK_RUNTIME": "local",
                             "PATH": os.environ["PATH"]}
        with Client(settings=Settings.from_env(env=env)) as c:
            c.create_repo("numbers")
            with c.modify("numbers@master") as m:
                for i in range(40):
                    m.put_bytes(f"/n{i:02d}", str(i).encode())
            c.create_pipeline(code / "square.json")
            job = c.list_jobs("square")[0]
            assert (job.datums_total, job.datums_processed, job.datums_failed) == (40, 39, 1)
            failed = next(d for d in c.list_datums(job.id) if d.state == "failed")
            assert "square:run raised ValueError: unlucky" in (failed.error or "")
            assert 1 <= len(starts.read_text().split()) <= 4  # one import per worker thread, not one per datum
            c.delete_file("numbers@master:/n13")
            job = c.list_jobs("square")[0]
            assert (job.state, job.datums_processed) == ("success", 0)  # the rest were done: all skipped
            assert c.get_file("square@master:/n12") == b"144\n"
            assert len(list(c.walk_files("square@master:/"))) == 39


def test_an_s3_enabled_pipeline_runs_on_dask_workers(backend: Backend, tmp_path: Path) -> None:
    """A Dask worker process is bootstrapped by the composition root (tusk.root.dask_worker), which gives its
    datums the S3 endpoint `tusk server` gives them: input.pfs.s3 and s3_out work on the cluster too."""
    if backend.name != "postgres-s3":
        pytest.skip("cluster workers share a database and an object store")
    import sys

    from distributed import LocalCluster

    from tests.integration.test_pipelines_s3 import spec

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster:
        env = backend.env | {"TUSK_DASK_ADDRESS": cluster.scheduler_address, "TUSK_RUNTIME": "local",
                             "PATH": os.environ["PATH"]}
        with Client(settings=Settings.from_env(env=env)) as c:  # no gateway wired here: the worker has its own
            c.create_repo("text")
            c.put_file("text@master:/a.txt", b"alpha\n")
            c.create_pipeline(spec(sys.executable))
            job = c.list_jobs("upper")[0]
            assert job.state == "success", (job.reason, [d.log for d in c.list_datums(job.id)])
            assert c.get_file("upper@master:/upper/a.txt") == b"ALPHA\n"
            assert "served 1 keys" in c.list_datums(job.id)[0].log
