"""Dashboard benchmark: server time per page (p50, p95) on a generated large store.

    .venv/bin/python bench/ui.py          # issue 15's store: 10,000 commits, 100,000 files, 2,000 jobs, 200,000 datums
    .venv/bin/python bench/ui.py --quick  # small sizes, for a smoke run
    .venv/bin/python bench/ui.py --scale 0.1 --home /tmp/ui-store  # a tenth of each size, kept to measure again

The store is SQLite + local objects. Commits and files are made through the SDK (``put_file`` per commit, one
``modify`` for the wide commit), as a user would. Jobs and datums are not run: running 2,000 jobs over 200,000
datums would take hours and measure the worker, not the dashboard. One real pipeline is created (its first job
runs, over an empty input), then the job and datum records are written through the pipeline record layer
(``JobRow``, ``DatumRunRow``, bulk inserts): one job with half of the datums, the rest spread over the others.

Pages are fetched in-process through the ASGI app (no network, no browser): the time is the server's, from
request to the last byte of HTML. Each page is fetched once to warm up (a directory object is read and decoded
once, then cached), then ``--rounds`` times. The target (issue 15) is p95 under 150 ms on every page.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.testclient import TestClient

from tusk.api import create_app
from tusk.config import Settings
from tusk.ids import new_commit_id
from tusk.sdk import Client
from tusk.services import Services
from tusk.storage.metadata import DatumRunRow, JobRow, PipelineRow

TARGET_MS = 150.0
FULL = {"repos": 200, "commits": 10_000, "files": 100_000, "models": 50, "jobs": 2_000, "datums": 200_000}
QUICK = {"repos": 20, "commits": 300, "files": 2_000, "models": 10, "jobs": 40, "datums": 4_000}


def build(c: Client, repos: int, commits: int, files: int, models: int, jobs: int, datums: int) -> str:
    """The store; returns the id of the job with half of the datums."""
    for i in range(repos):
        c.create_repo(f"repo-{i:04d}")
    c.create_repo("history")
    for i in range(commits):
        c.put_file("history@master:/counter.txt", str(i).encode(), description=f"commit {i}")
    c.create_repo("wide")
    with c.modify("wide@master") as m:
        for i in range(files):
            m.put_bytes(f"/dir/file-{i:06d}.csv", f"a,b\n{i},{i * 2}\n".encode())
    c.create_repo("models")
    for i in range(models):
        with c.modify("models@master") as m:
            m.put_bytes("/model.pkl", b"\x80\x04N." + str(i).encode())
            m.put_bytes("/metrics.json", json.dumps({"r2": 0.5 + i / (2 * models), "rmse": 1 - i / models}).encode())
    c.create_repo("in")
    c.create_pipeline({"pipeline": {"name": "work"}, "transform": {"cmd": ["true"]},
                       "input": {"pfs": {"repo": "in", "glob": "/*"}}})
    return _job_records(c.services, "work", jobs, datums)


def _job_records(services: Services, pipeline: str, jobs: int, datums: int) -> str:
    """``jobs`` finished jobs of ``pipeline`` with ``datums`` datums: half in the newest job, the rest spread."""
    db = services.ctx.db
    start = datetime.now(UTC) - timedelta(days=30)
    ids = [new_commit_id() for _ in range(jobs)]
    big = ids[-1]
    with db.write() as s:
        pipeline_id = s.query(PipelineRow.id).filter(PipelineRow.name == pipeline).scalar()
        s.connection().execute(db.insert(JobRow), [
            {"id": job_id, "pipeline_id": pipeline_id, "pipeline_version": 1, "global_id": new_commit_id(),
             "input_commits": "[]", "state": "success", "datums_total": 0, "datums_processed": 0,
             "datums_skipped": 0, "datums_failed": 0, "created_at": start + timedelta(seconds=i),
             "started_at": start + timedelta(seconds=i), "finished_at": start + timedelta(seconds=i + 1)}
            for i, job_id in enumerate(ids)])
    half = datums // 2
    rest = datums - half
    owners = [big] * half + [ids[i % (jobs - 1)] for i in range(rest)]
    batch: list[dict[str, object]] = []
    for n, job_id in enumerate(owners):
        failed = n % 997 == 0
        batch.append({"job_id": job_id, "datum_id": f"{n:032x}", "hash": f"{n:064x}",
                      "state": "failed" if failed else "success", "tries": 1,
                      "inputs": json.dumps([{"name": "in", "repo": "in", "path": f"/f{n:06d}", "commit": big}]),
                      "output_tree": None, "log": f"datum {n}\n", "error": "exit status 1" if failed else None,
                      "download_seconds": 0.01, "process_seconds": 0.02, "upload_seconds": 0.01,
                      "download_bytes": 100, "upload_bytes": 100, "finished_at": start})
        if len(batch) == 20_000 or n == len(owners) - 1:
            with db.write() as s:
                s.connection().execute(db.insert(DatumRunRow), batch)
            batch = []
    counts: dict[str, list[int]] = {}
    for n, job_id in enumerate(owners):
        entry = counts.setdefault(job_id, [0, 0])
        entry[0] += 1
        entry[1] += n % 997 == 0
    with db.write() as s:
        for job_id, (total, bad) in counts.items():
            s.query(JobRow).filter(JobRow.id == job_id).update(
                {"datums_total": total, "datums_processed": total - bad, "datums_failed": bad})
    return big


def measure(t: TestClient, path: str, rounds: int) -> tuple[float, float, float]:
    """Wall-clock p50 and p95, and the p95 of the process's CPU time (every thread: the server's work, and the
    in-process client's small share), in ms. On a loaded machine the wall time waits for a core; the CPU time
    does not, so it tells the page's own cost from the machine's load."""
    r = t.get(path)
    assert r.status_code == 200, (path, r.status_code, r.text[:500])
    wall, cpu = [], []
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        r = t.get(path)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        assert r.status_code == 200, path
    return statistics.median(wall), _p95(wall), _p95(cpu)


def _p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every full size by this")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--home", help="build the store here, or reuse the one built here before (default: a new "
                                   "temporary directory)")
    args = ap.parse_args()
    sizes = QUICK if args.quick else {k: max(10, int(v * args.scale)) for k, v in FULL.items()}
    load_start = os.getloadavg()
    print(f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f} "
          f"({os.cpu_count()} cpus)")
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="tusk-bench-ui-"))
    settings = Settings.for_home(home, TUSK_RUNTIME="local", TUSK_USER="bench")
    built = home / "bench-ui.json"
    started = time.perf_counter()
    if built.exists():  # a store this bench built before, at the sizes it says
        sizes, big = (saved := json.loads(built.read_text()))["sizes"], saved["big"]
        took = "reused"
    else:
        with Client(settings=settings) as c:
            big = build(c, **sizes)
        built.write_text(json.dumps({"sizes": sizes, "big": big}))
        took = f"{time.perf_counter() - started:.1f} s to build"
    print(f"store: {sizes['repos']} repos, {sizes['commits']:,} commits in one repo, {sizes['files']:,} files in "
          f"one directory of one commit, {sizes['models']} models, {sizes['jobs']:,} jobs, {sizes['datums']:,} "
          f"datums ({sizes['datums'] // 2:,} in one job) ({took}) in {home}")
    deep_commits = max(2, min(200, sizes["commits"] // 25))  # 25 commits a page
    deep_files = max(2, sizes["files"] // 100 // 2)  # the middle of the directory (100 entries a page)
    deep_jobs = max(2, sizes["jobs"] // 25 // 2)
    deep_datums = max(2, sizes["datums"] // 2 // 50)  # the last page of the big job (50 datums a page)
    pages = ["/", "/ui/repos", "/ui/repos?page=8",
             "/ui/repos/history", f"/ui/repos/history?page={deep_commits}",
             "/ui/repos/history?branch=master", f"/ui/repos/history?branch=master&page={deep_commits}",
             "/ui/repos/wide/browse/master/dir", f"/ui/repos/wide/browse/master/dir?page={deep_files}",
             "/ui/repos/wide/browse/master/dir/file-000001.csv", "/ui/repos/history/diff?new=master",
             "/ui/repos/wide/diff?new=master", f"/ui/repos/wide/diff?new=master&page={deep_files}",
             "/ui/models", "/ui/models/models", "/ui/pipelines", "/ui/pipelines/work",
             f"/ui/pipelines/work?page={deep_jobs}", f"/ui/jobs/{big}", f"/ui/jobs/{big}?page={deep_datums}",
             "/ui/deployments"]
    app = create_app(Services.open(settings), close_services=True)
    print(f"{'page':<60} {'p50 ms':>8} {'p95 ms':>8} {'cpu p95':>8}")
    slow, slow_cpu = [], []
    with TestClient(app) as t:
        for path in pages:
            p50, p95, cpu95 = measure(t, path, args.rounds)
            shown = path.replace(big, big[:8] + "…")
            print(f"{shown:<60} {p50:8.1f} {p95:8.1f} {cpu95:8.1f}{'  SLOW' if p95 >= TARGET_MS else ''}")
            if p95 >= TARGET_MS:
                slow.append(shown)
            if cpu95 >= TARGET_MS:
                slow_cpu.append(shown)
    load_end = os.getloadavg()
    print(f"load average at end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    if slow:
        print(f"NOT MET: {len(slow)} of {len(pages)} pages have p95 >= {TARGET_MS:.0f} ms: {', '.join(slow)}")
    else:
        print(f"MET: every one of {len(pages)} pages has p95 < {TARGET_MS:.0f} ms")
    print(f"CPU time: {len(pages) - len(slow_cpu)} of {len(pages)} pages have a CPU p95 < {TARGET_MS:.0f} ms"
          + (f"; not: {', '.join(slow_cpu)}" if slow_cpu else ""))


if __name__ == "__main__":
    main()
