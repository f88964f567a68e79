"""Two `tusk server` replicas on one PostgreSQL and one S3 store share the jobs, and run no datum twice."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import Backend
from tests.serving_helpers import wait_for
from tusk import Client
from tusk.config import Settings
from tusk.storage.metadata import JobRow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_replicas_share_jobs_and_never_run_a_datum_twice(backend: Backend, tmp_path: Path) -> None:
    if backend.name != "postgres-s3":
        pytest.skip("replicas share a server database and object store")
    runs = tmp_path / "runs.log"
    tusk_bin = str(Path(sys.executable).parent / "tusk")
    env = backend.subprocess_env() | {"TUSK_RUNTIME": "local"}
    replicas, urls = [], []
    for i in range(2):
        port = _free_port()
        log = open(tmp_path / f"replica{i}.log", "wb")  # noqa: SIM115 - closed with the process
        replicas.append((subprocess.Popen([tusk_bin, "server", "--port", str(port), "--poll", "0.2", "--no-auth",
                                           "--no-grpc", "--no-s3"],
                                          env=env | {"TUSK_HOME": str(tmp_path / f"replica{i}")}, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True), log))
        urls.append(f"http://127.0.0.1:{port}")
    c = backend.client()
    c.run_jobs = False  # writes only queue jobs: the replicas run them
    try:
        for url in urls:
            wait_for(lambda url=url: _healthy(url), timeout=120)
        c.create_repo("inbox")
        pipelines = ["mark-a", "mark-b", "mark-c", "mark-d"]  # independent: replicas can run them side by side
        for name in pipelines:
            c.create_pipeline({
                "pipeline": {"name": name},
                "transform": {"cmd": ["sh", "-c", f'sleep 0.05; cp "$inbox" /pfs/out/; '
                                                  f'echo "$PACH_JOB_ID $PACH_DATUM_ID" >> {runs}']},
                "input": {"pfs": {"repo": "inbox", "glob": "/*"}},
                "parallelism_spec": {"constant": 2},
            })
        batches, per_batch = 6, 10
        for b in range(batches):
            with c.modify("inbox@master") as m:
                for i in range(per_batch):
                    m.put_bytes(f"/b{b}-{i}.txt", f"{b}.{i}".encode())

        def settled() -> bool:
            jobs = c.list_jobs()
            return len(jobs) == len(pipelines) * (batches + 1) and all(
                j.state not in ("created", "running") for j in jobs)

        wait_for(settled, timeout=300)
        jobs = c.list_jobs()
        assert {j.state for j in jobs} == {"success"}
        lines = runs.read_text().split("\n")[:-1]
        counts = Counter(lines)
        assert counts and max(counts.values()) == 1, counts.most_common(3)  # no (job, datum) ran twice
        # each pipeline processed each new file once: its jobs ran in order, each on the last one's output
        assert len(lines) == sum(j.datums_processed for j in jobs) == len(pipelines) * batches * per_batch
        with c.services.ctx.db.read() as s:
            owners = {o.rsplit("/", 1)[0] for o in s.scalars(select(JobRow.owner)) if o}
        assert len(owners) == 2, owners  # both replicas ran jobs
        for name in pipelines:
            files = [f.path for f in c.walk_files(f"{name}@master:/") if f.kind == "file"]
            assert sorted(files) == sorted(f"/b{b}-{i}.txt" for b in range(batches) for i in range(per_batch))
    finally:
        c.close()
        for proc, _log in replicas:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc, log in replicas:
            try:
                proc.wait(timeout=60)
            finally:
                log.close()
        for i, (proc, _) in enumerate(replicas):  # a graceful stop exits 0
            log_text = (tmp_path / f"replica{i}.log").read_text()
            assert proc.returncode == 0 and "Application shutdown complete" in log_text, log_text


def _server(env: dict[str, str], tmp_path: Path, name: str, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - the process holds it; closed on exit
    proc = subprocess.Popen([str(Path(sys.executable).parent / "tusk"), "server", "--port", str(port), "--poll",
                             "0.2", "--no-auth", "--no-grpc", "--no-s3", *extra],
                            env=env | {"TUSK_HOME": str(tmp_path / name)},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _healthy(url), timeout=120)
    return proc, url


def test_a_job_runs_on_a_replica_that_never_saw_the_code_directory(backend: Backend, tmp_path: Path) -> None:
    """No shared disk: replica A receives the pipeline and its code (and runs no scheduler), replica B, with
    another TUSK_HOME, claims the job and runs the code it materializes from the shared object store."""
    if backend.name != "postgres-s3":
        pytest.skip("replicas share a server database and object store")
    code = tmp_path / "client" / "code"
    (code / "lib").mkdir(parents=True)
    (code / "lib" / "shout.py").write_text("def shout(text):\n    return text.upper() + '!'\n")
    (code / "main.py").write_text("import os, pathlib, sys\nsys.path.insert(0, 'lib')\nfrom shout import shout\n"
                                  "src = pathlib.Path(os.environ['words'])\n"
                                  "pathlib.Path(os.environ['TUSK_PFS'], 'out', src.name).write_text("
                                  "shout(src.read_text()))\n")
    spec = code / "spec.yaml"
    spec.write_text("pipeline: {name: shout}\ntransform: {cmd: [python3, main.py]}\n"
                    "input: {pfs: {repo: words, glob: /*}}\ndatum_tries: 1\n")
    env = backend.subprocess_env() | {"TUSK_RUNTIME": "local"}
    servers = [_server(env, tmp_path, "replica-a", "--no-scheduler"), _server(env, tmp_path, "replica-b")]
    try:
        (_, url_a), (proc_b, _) = servers
        c = Client(settings=Settings.from_env(env={"TUSK_ADDRESS": url_a, "TUSK_HOME": str(tmp_path / "client"),
                                                   "TUSK_USER": "tester"}))
        c.run_jobs = False  # A runs no job itself, not even for a waiting write
        with c:
            c.create_repo("words")
            c.create_pipeline(spec)
            c.put_file("words@master:/a", b"hello")
            wait_for(lambda: any(j.state not in ("created", "running") for j in c.list_jobs("shout")
                                 if j.datums_total), timeout=120)
            job = next(j for j in c.list_jobs("shout") if j.datums_total)
            assert job.state == "success", (job.reason, [d.log for d in c.list_datums(job.id)])
            assert c.get_file("shout@master:/a") == b"HELLO!"
        with backend.client() as store, store.services.ctx.db.read() as s:
            owner = s.scalar(select(JobRow.owner).where(JobRow.id == job.id))
        assert owner is not None and f":{proc_b.pid}/" in owner, owner  # replica B ran it
        assert not (tmp_path / "replica-b" / "code").exists() and not (tmp_path / "replica-a" / "code").exists()
        assert list((tmp_path / "replica-b" / "cache" / "code").iterdir())  # B materialized it from the store
        assert not (tmp_path / "replica-a" / "cache").exists()
    finally:
        for proc, _ in servers:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc, _ in servers:
            proc.wait(timeout=60)


def test_a_killed_server_s_job_is_resumed_by_the_next_one(backend: Backend, tmp_path: Path) -> None:
    if backend.name != "postgres-s3":
        pytest.skip("one store on both backends behaves alike; this runs on the multi-node one")
    runs = tmp_path / "runs.log"
    env = backend.subprocess_env() | {"TUSK_RUNTIME": "local"}
    c = backend.client()
    c.run_jobs = False
    first, _ = _server(env, tmp_path, "first")
    second = None
    try:
        c.create_repo("inbox")
        with c.modify("inbox@master") as m:
            for i in range(30):
                m.put_bytes(f"/f{i:02d}", str(i).encode())
        c.create_pipeline({"pipeline": {"name": "slow"},
                           "transform": {"cmd": ["sh", "-c", f'echo "$(basename $inbox)" >> {runs}; sleep 0.2; '
                                                             'cp "$inbox" /pfs/out/']},
                           "input": {"pfs": {"repo": "inbox", "glob": "/*"}}})
        (job_id,) = [j.id for j in c.list_jobs("slow")]
        wait_for(lambda: len(c.list_datums(job_id)) >= 10, timeout=120)
        os.killpg(first.pid, signal.SIGKILL)  # no graceful anything: the job is left "running"
        first.wait(timeout=30)
        done_before = {d.id for d in c.list_datums(job_id)}
        assert c.inspect_job(job_id).state == "running"
        second, _ = _server(env, tmp_path, "second")
        wait_for(lambda: c.inspect_job(job_id).state not in ("created", "running"), timeout=180)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
    job = c.inspect_job(job_id)
    datums = {d.id: d for d in c.list_datums(job_id)}
    files = sorted(f.path for f in c.walk_files("slow@master:/"))
    c.close()
    assert job.state == "success" and job.datums_processed == 30
    assert files == [f"/f{i:02d}" for i in range(30)]
    assert done_before <= set(datums) and len(datums) == 30
    # what the first server finished was not run again: at most the datums in flight at the kill ran twice
    counts = Counter(runs.read_text().split())
    assert sum(counts.values()) - 30 <= 2, counts.most_common(4)


def test_a_job_held_on_another_host_is_taken_over_only_once_its_lease_expires(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from tusk.config import Settings
    from tusk.sdk import Client

    with Client(settings=Settings.for_home(tmp_path / "home", TUSK_RUNTIME="local"), run_jobs=False) as c:
        c.create_repo("r")
        c.put_file("r@master:/a", b"a")
        c.create_pipeline({"pipeline": {"name": "p"}, "transform": {"cmd": ["cp", "-r", "/pfs/r", "/pfs/out"]},
                           "input": {"pfs": {"repo": "r", "glob": "/"}}})
        (job_id,) = [j.id for j in c.list_jobs("p")]

        def hold(seconds: float) -> None:
            with c.services.ctx.db.write() as s:
                s.execute(update(JobRow).where(JobRow.id == job_id).values(
                    state="running", owner="another-host:4242/cafe",
                    lease_expires_at=datetime.now(UTC) + timedelta(seconds=seconds)))

        hold(60)
        assert c.run_pending_jobs() == []  # a live lease elsewhere: not ours to run
        assert c.inspect_job(job_id).state == "running"
        hold(-1)
        (done,) = c.run_pending_jobs()  # the lease lapsed: its runner is gone or cut off
        assert done.id == job_id and done.state == "success"
        assert c.get_file("p@master:/r/a") == b"a"


def test_one_scheduler_at_a_time_holds_the_cron_lease(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from tusk.config import Settings
    from tusk.root.scheduler import hold_lease
    from tusk.services import Services
    from tusk.storage.metadata import LeaseRow

    services = Services.open(Settings.for_home(tmp_path / "home"))
    try:
        assert hold_lease(services, "cron", "a", 30)
        assert not hold_lease(services, "cron", "b", 30)  # a holds it
        assert hold_lease(services, "cron", "a", 30)  # a renews
        with services.ctx.db.write() as s:
            s.execute(update(LeaseRow).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        assert hold_lease(services, "cron", "b", 30)  # a stopped renewing: b takes over
        assert not hold_lease(services, "cron", "a", 30)
    finally:
        services.close()
