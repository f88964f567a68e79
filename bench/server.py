"""Server-mode benchmark: what the REST API costs over embedded use, and datums on Dask against local threads.

    .venv/bin/python bench/server.py            # 2000 small files, 256 MiB file, 400 datums
    .venv/bin/python bench/server.py --quick    # 500 files, 64 MiB, 100 datums

(1) Ingest: `put -r` of N 4 KiB files (one commit) and one large file, then reading them back, through an
embedded client and through a remote Client against `tusk server` in its own process (SQLite + local objects).
(2) Datums: a pipeline over D files whose code sleeps 50 ms, run by the local executor (2 threads) and by a Dask
LocalCluster (2 worker processes, 1 thread each) on the same store. No peer runs here: Pachyderm needs a
Kubernetes cluster, and neither DVC nor lakeFS has a datum scheduler to compare with.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tusk.config import Settings
from tusk.sdk import Client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _files(root: Path, n: int) -> Path:
    root.mkdir(parents=True)
    for i in range(n):
        (root / f"f{i:05}.bin").write_bytes(os.urandom(4096))
    return root


def _big(path: Path, mib: int) -> Path:
    with open(path, "wb") as fh:
        for _ in range(mib):
            fh.write(os.urandom(1 << 20))
    return path


def _ingest(c: Client, small: Path, big: Path, out: Path) -> dict[str, float]:
    c.create_repo("bench")
    t = time.perf_counter()
    c.put_file("bench@master:/small", small, recursive=True)
    small_s = time.perf_counter() - t
    t = time.perf_counter()
    c.put_file("bench@master:/big.bin", big)
    big_put = time.perf_counter() - t
    t = time.perf_counter()
    n = c.download("bench@master:/big.bin", out)
    big_get = time.perf_counter() - t
    assert n == big.stat().st_size
    t = time.perf_counter()
    for f in list(c.walk_files("bench@master:/small"))[:200]:
        c.get_file(f"bench@master:{f.path}")
    get200 = time.perf_counter() - t
    return {"small_put_s": small_s, "big_put_mib_s": big.stat().st_size / (1 << 20) / big_put,
            "big_get_mib_s": big.stat().st_size / (1 << 20) / big_get, "get_200_small_s": get200}


def _datums(settings: Settings, d: int) -> float:
    with Client(settings=settings, run_jobs=False) as c:
        c.create_repo("inbox")
        with c.modify("inbox@master") as m:
            for i in range(d):
                m.put_bytes(f"/f{i:04d}", str(i).encode())
        c.create_pipeline({"pipeline": {"name": "work"},
                           "transform": {"cmd": ["sh", "-c", 'sleep 0.05; cp "$inbox" /pfs/out/']},
                           "input": {"pfs": {"repo": "inbox", "glob": "/*"}}, "parallelism_spec": {"constant": 2}})
        t = time.perf_counter()
        (job,) = c.run_pending_jobs()
        seconds = time.perf_counter() - t
        assert job.state == "success" and job.datums_processed == d, job
        return seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n_small, big_mib, n_datums = (500, 64, 100) if args.quick else (2000, 256, 400)
    work = Path(tempfile.mkdtemp(prefix="tusk-bench-server-"))
    try:
        small, big = _files(work / "small", n_small), _big(work / "big.bin", big_mib)
        env = {"TUSK_RUNTIME": "local", "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
        with Client(settings=Settings.from_env(env=env | {"TUSK_HOME": str(work / "embedded")})) as c:
            embedded = _ingest(c, small, big, work / "out-embedded.bin")
        port = _free_port()
        server_env = os.environ | env | {"TUSK_HOME": str(work / "server")}
        proc = subprocess.Popen([str(Path(sys.executable).parent / "tusk"), "server", "--port", str(port),
                                 "--no-auth", "--no-grpc", "--no-s3", "--log-level", "warning"], env=server_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{url}/api/v1/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            with Client(settings=Settings.from_env(env=env | {"TUSK_ADDRESS": url,
                                                              "TUSK_HOME": str(work / "client")})) as c:
                remote = _ingest(c, small, big, work / "out-remote.bin")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        print(f"\ningest: {n_small} x 4 KiB files as one commit, one {big_mib} MiB file (SQLite + local objects)")
        print(f"{'':<28}{'embedded':>12}{'remote':>12}")
        for key, label in (("small_put_s", f"put -r {n_small} files (s)"), ("big_put_mib_s", "put big (MiB/s)"),
                           ("big_get_mib_s", "get big (MiB/s)"), ("get_200_small_s", "get 200 small files (s)")):
            print(f"{label:<28}{embedded[key]:>12.2f}{remote[key]:>12.2f}")

        from distributed import LocalCluster

        local = _datums(Settings.from_env(env=env | {"TUSK_HOME": str(work / "local-datums")}), n_datums)
        t = time.perf_counter()
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=logging.ERROR) as cluster:
            startup = time.perf_counter() - t
            dask = _datums(Settings.from_env(env=env | {"TUSK_HOME": str(work / "dask-datums"),
                                                        "TUSK_DASK_ADDRESS": cluster.scheduler_address}), n_datums)
        print(f"\ndatums: {n_datums} datums of 50 ms each, 2 at a time")
        print(f"{'local executor (2 threads)':<34}{local:>8.2f} s  {n_datums / local:>7.1f} datums/s")
        print(f"{'Dask LocalCluster (2 x 1 thread)':<34}{dask:>8.2f} s  {n_datums / dask:>7.1f} datums/s"
              f"  (cluster start {startup:.1f} s, not included)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
