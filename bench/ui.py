"""Dashboard benchmark: server time per page (p50, p95) on a generated large store.

    .venv/bin/python bench/ui.py            # 200 repos, a 2,000-commit repo, a 5,000-file directory, 50 models
    .venv/bin/python bench/ui.py --quick    # small sizes, for a smoke run

Pages are fetched in-process through the ASGI app (no network, no browser): the time is the server's, from
request to the last byte of HTML. Each page is fetched once to warm up, then ``--rounds`` times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient

from tusk.api import create_app
from tusk.config import Settings
from tusk.sdk import Client
from tusk.services import Services


def build(c: Client, repos: int, commits: int, files: int, models: int) -> None:
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    sizes = (20, 100, 300, 10) if args.quick else (200, 2000, 5000, 50)
    home = Path(tempfile.mkdtemp(prefix="tusk-bench-ui-"))
    settings = Settings.for_home(home, TUSK_RUNTIME="local", TUSK_USER="bench")
    started = time.perf_counter()
    with Client(settings=settings) as c:
        build(c, *sizes)
    print(f"store: {sizes[0]} repos, {sizes[1]} commits, {sizes[2]} files in one directory, {sizes[3]} models "
          f"({time.perf_counter() - started:.1f} s to build)")
    pages = ["/", "/ui/repos", "/ui/repos/history", "/ui/repos/history?page=40", "/ui/repos/wide/browse/master/dir",
             "/ui/repos/wide/browse/master/dir/file-000001.csv", "/ui/repos/history/diff?new=master",
             "/ui/models/models", "/ui/pipelines", "/ui/deployments"]
    app = create_app(Services.open(settings), serving=False, scheduler=False, close_services=True)
    print(f"{'page':<52} {'p50 ms':>8} {'p95 ms':>8}")
    with TestClient(app) as t:
        for path in pages:
            assert t.get(path).status_code == 200, path
            times = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                r = t.get(path)
                times.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            print(f"{path:<52} {statistics.median(times):8.1f} {p95:8.1f}")


if __name__ == "__main__":
    main()
