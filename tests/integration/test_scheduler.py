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
        replicas.append((subprocess.Popen([tusk_bin, "server", "--port", str(port), "--poll", "0.2", "--no-auth"],
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
        for i, (proc, _) in enumerate(replicas):  # graceful: uvicorn re-raises the SIGTERM once it has shut down
            log_text = (tmp_path / f"replica{i}.log").read_text()
            assert proc.returncode in (0, -signal.SIGTERM) and "Application shutdown complete" in log_text, log_text
