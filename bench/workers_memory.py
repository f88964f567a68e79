"""Memory of `tusk server --workers N`: models loaded once and shared, not loaded in every worker (issue 17).

The census model (one-hot + logistic regression, as in examples/census-income,
a few KB) and a bigger one (a random forest on the same data, tens of MB
pickled) are trained once, committed and deployed in a fresh Tusk home. For
each model and each --workers (1 and 4) the bench starts `tusk server`, sends
requests over many connections (so every worker answers), and sums the memory
of the server's process tree (the parent and every descendant, from
/proc/PID/smaps_rollup):

- RSS: resident pages, counting a page once per process that maps it. It
  double-counts what forked workers share, so it overstates a pre-fork server.
- PSS: each shared page divided among the processes that map it; the sum is
  what the tree really costs.
- USS: pages private to one process (Private_Clean + Private_Dirty), summed.

It also reads `tusk_model_loads_total` from /metrics: how often the model was
loaded and verified, by the parent for every worker (shared) or by a worker
itself.

    python bench/workers_memory.py                   # both models, --workers 1 and 4
    python bench/workers_memory.py --model census    # the census model only
    python bench/workers_memory.py --workers 1 2 4   # other worker counts
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.census import FEATURES, census_frame, oip_inputs, train_census  # noqa: E402

TUSK = str(Path(sys.executable).parent / "tusk")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def model_bytes(kind: str, frame: Any) -> bytes:
    import joblib

    if kind == "census":
        model = train_census(frame)
    else:  # a forest: the same features, one-hot, 150 deep trees
        from sklearn.compose import ColumnTransformer
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder
        from tests.census import CATEGORICAL, NUMERIC

        model = Pipeline([
            ("features", ColumnTransformer([("num", "passthrough", NUMERIC),
                                            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)])),
            ("classifier", RandomForestClassifier(n_estimators=150, random_state=0)),
        ]).fit(frame[FEATURES], frame["income"])
    out = io.BytesIO()
    joblib.dump(model, out)
    return out.getvalue()


def tusk_home(work: Path, kind: str, data: bytes) -> dict[str, str]:
    """A Tusk home with the model committed and deployed as `census`; returns the environment naming it."""
    home = work / f"home-{kind}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUSK_", "PROMETHEUS_"))} | {
        "TUSK_HOME": str(home)}
    model_file = work / f"{kind}.joblib"
    model_file.write_bytes(data)
    subprocess.run([TUSK, "repo", "create", "census-model"], env=env, check=True, capture_output=True)
    subprocess.run([TUSK, "put", "file", "census-model@master:/model.joblib", "-f", str(model_file)], env=env,
                   check=True, capture_output=True)
    spec = work / f"{kind}.json"
    spec.write_text(json.dumps({"name": "census", "predictors": [{"name": "main", "model": "census-model@master"}],
                                "logging": {"enabled": False}}))
    subprocess.run([TUSK, "deploy", "create", "-f", str(spec)], env=env, check=True, capture_output=True)
    return env


def tree(root: int) -> list[int]:
    """``root`` and every descendant, from /proc/*/stat."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += parents.get(pid, [])
    return out


def memory(pids: list[int]) -> dict[str, float]:
    """RSS, PSS and USS in MB, summed over ``pids``."""
    total = {"rss": 0.0, "pss": 0.0, "uss": 0.0}
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        kb = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+):\s+(\d+) kB", text, re.M)}
        total["rss"] += kb.get("Rss", 0) / 1024
        total["pss"] += kb.get("Pss", 0) / 1024
        total["uss"] += (kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0)) / 1024
    return total


def measure(env: dict[str, str], workers: int, requests: int, log: Path) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [TUSK, "server", "--port", str(port), "--workers", str(workers), "--no-grpc", "--no-s3",
           "--log-level", "warning"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"tusk server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
                try:
                    if httpx.get(f"{base}/v2/health/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"tusk server did not become ready; see {log}")
                time.sleep(0.2)
            time.sleep(2 * workers)  # every worker up (readiness answers once one is)
            body = {"inputs": oip_inputs(census_frame(1, skip=20000))}

            def one(_: int) -> None:
                with httpx.Client(base_url=base, timeout=60) as h:  # a connection each: all workers answer
                    for _ in range(10):
                        h.post("/v2/models/census/infer", json=body).raise_for_status()

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(one, range(requests // 10)))
            time.sleep(1)
            pids = tree(proc.pid)
            mem = memory(pids)
            loads: dict[str, float] = {}
            for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
                if line.startswith("tusk_model_loads_total{"):
                    by = line.split('by="', 1)[1].split('"', 1)[0]
                    loads[by] = loads.get(by, 0) + float(line.rsplit(" ", 1)[1])
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
    return {"processes": len(pids), **mem, "loads": loads, "status": proc.returncode}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["census", "forest", "both"], default="both")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--requests", type=int, default=400)
    args = ap.parse_args()
    frame = census_frame(4000)
    kinds = ["census", "forest"] if args.model == "both" else [args.model]
    rows = []
    with tempfile.TemporaryDirectory(prefix="tusk-bench-mem-") as tmp:
        work = Path(tmp)
        for kind in kinds:
            data = model_bytes(kind, frame)
            env = tusk_home(work, kind, data)
            for n in args.workers:
                r = measure(env, n, args.requests, work / f"{kind}-{n}.log")
                rows.append((kind, len(data) / 1e6, n, r))
                print(f"  {kind} --workers {n}: {r}", file=sys.stderr, flush=True)
    print(f"{'model':<8} {'file MB':>8} {'workers':>7} {'procs':>5} {'RSS MB':>8} {'PSS MB':>8} {'USS MB':>8}  "
          f"{'loads (shared/worker)':<22} exit")
    for kind, size, n, r in rows:
        loads = f"{r['loads'].get('shared', 0):.0f}/{r['loads'].get('worker', 0):.0f}" if r["loads"] else "-"
        print(f"{kind:<8} {size:>8.1f} {n:>7} {r['processes']:>5} {r['rss']:>8.0f} {r['pss']:>8.0f} "
              f"{r['uss']:>8.0f}  {loads:<22} {r['status']}")


if __name__ == "__main__":
    main()
