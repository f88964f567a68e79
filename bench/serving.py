"""Serving throughput and latency: Tusk against MLServer (and `mlflow models serve` when it installs).

The same scikit-learn census model (one-hot + logistic regression, as in
examples/census-income) is trained once, saved with joblib, committed to a Tusk
repo and deployed, and handed to MLServer's scikit-learn runtime and to MLflow's
pyfunc server. Each peer runs from its own virtualenv under bench/.venvs (made
on first use). One load generator, wrk on loopback, drives each server with
the same OIP V2 request body (one row, one tensor per column, pandas content
type) at concurrency 1, 8 and 32, and prints requests/s, p50 and p99.

Before timing, the bench checks that every server returns the same
predictions as the model itself for a batch of rows.

    python bench/serving.py                # 10 s per point
    python bench/serving.py --quick        # 3 s per point
    python bench/serving.py --skip-mlflow  # MLflow's server is a large install

On 2 cores the load generator shares the CPU with the server under test, the
same way for every peer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.census import CATEGORICAL, FEATURES, census_frame, train_census  # noqa: E402

VENVS = ROOT / "bench" / ".venvs"
PEERS = {
    "mlserver": ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22"],  # 0.22 breaks its workers
    "mlflow": ["mlflow", "scikit-learn", "pandas"],
}
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open(os.getenv("BENCH_BODY")):read("*a")
done = function(summary, latency, requests)
  io.stderr:write(string.format('{"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
      + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def venv(name: str) -> Path:
    """A virtualenv with the peer's packages (the same scikit-learn as ours, so the pickle loads)."""
    import sklearn

    path = VENVS / name
    marker = path / ".installed"
    if not marker.exists():
        print(f"[setup] creating {path} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        pins = [f"scikit-learn=={sklearn.__version__}"]
        subprocess.run([str(path / "bin/pip"), "install", "-q", *PEERS[name], *pins], check=True)
        marker.write_text("ok\n")
    return path


def request_body(rows: Any) -> dict[str, Any]:
    inputs = []
    for c in FEATURES:
        values = rows[c].tolist()
        if c in CATEGORICAL:
            inputs.append({"name": c, "datatype": "BYTES", "shape": [len(values)], "data": values,
                           "parameters": {"content_type": "str"}})
        else:
            inputs.append({"name": c, "datatype": "INT64", "shape": [len(values)], "data": values})
    return {"inputs": inputs, "parameters": {"content_type": "pd"}}


def mlflow_body(oip: dict[str, Any]) -> dict[str, Any]:
    """The same rows in MLflow's dataframe_split format (what its pyfunc server takes for a table)."""
    columns = [i["name"] for i in oip["inputs"]]
    data = [list(row) for row in zip(*(i["data"] for i in oip["inputs"]), strict=True)]
    return {"dataframe_split": {"columns": columns, "data": data}}


@contextmanager
def process(cmd: list[str], env: dict[str, str], ready_url: str, log: Path, cwd: Path | None = None
            ) -> Iterator[None]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"{cmd[0]} exited with {proc.returncode}; see {log}:\n{log.read_text()[-3000:]}")
                try:
                    if httpx.get(ready_url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"{cmd[0]} did not become ready; see {log}")
                time.sleep(0.2)
            yield
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wrk(url: str, body_file: Path, concurrency: int, seconds: float) -> dict[str, float]:
    script = body_file.with_suffix(".lua")
    script.write_text(WRK_SCRIPT)
    env = dict(os.environ, BENCH_BODY=str(body_file))
    subprocess.run(["wrk", "-t1", f"-c{concurrency}", "-d2s", "-s", str(script), url], env=env,
                   capture_output=True, check=True)  # warm-up
    run = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--timeout", "10s", "-s",
                          str(script), url], env=env, capture_output=True, text=True, check=True)
    stats = json.loads(run.stderr.strip().splitlines()[-1])
    return {"rps": stats["requests"] / (stats["duration_us"] / 1e6), "p50_ms": stats["p50_us"] / 1000,
            "p99_ms": stats["p99_us"] / 1000, "errors": stats["errors"], "requests": stats["requests"]}


def check_predictions(name: str, url: str, body: dict[str, Any], expected: list[Any], mlflow: bool = False) -> None:
    if mlflow:
        r = httpx.post(url, json=mlflow_body(body), timeout=30)
        r.raise_for_status()
        got = r.json()["predictions"]
    else:
        r = httpx.post(url, json=body, timeout=30)
        r.raise_for_status()
        got = r.json()["outputs"][0]["data"]
    if got != expected:
        raise SystemExit(f"{name} returned {got[:5]}..., expected {expected[:5]}...")
    print(f"[check] {name}: {len(expected)} predictions identical to the model's own", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 s per point instead of 10")
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--tusk-workers", default="1,2", help="worker-process counts to run Tusk with")
    args = ap.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    levels = [int(c) for c in args.concurrency.split(",")]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    import joblib
    import sklearn

    work = Path(tempfile.mkdtemp(prefix="tusk-bench-serving-"))
    frame = census_frame(20000)
    model = train_census(frame)
    model_file = work / "model.joblib"
    joblib.dump(model, model_file)
    one = census_frame(1, skip=25000)
    body_file = work / "body.json"
    body_file.write_text(json.dumps(request_body(one)))
    check_rows = census_frame(50, skip=25100)
    check_body = request_body(check_rows)
    expected = model.predict(check_rows[FEATURES]).tolist()
    print(f"model: census one-hot + logistic regression, scikit-learn {sklearn.__version__}, "
          f"{model_file.stat().st_size} B; request: 1 row, {len(FEATURES)} tensors; {seconds:g} s per point; "
          f"{os.cpu_count()} CPUs", flush=True)

    results: list[tuple[str, int, dict[str, float]]] = []

    def measure(name: str, url: str) -> None:
        for c in levels:
            stats = wrk(url, body_file, c, seconds)
            results.append((name, c, stats))
            print(f"  {name:28} c={c:<3} {stats['rps']:8.0f} req/s  p50 {stats['p50_ms']:7.2f} ms  "
                  f"p99 {stats['p99_ms']:7.2f} ms  errors {stats['errors']}", flush=True)

    # -- Tusk ---------------------------------------------------------------------------------------------------
    home = work / "tusk-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSK_")} | {"TUSK_HOME": str(home)}
    tusk = [str(Path(sys.executable).parent / "tusk")]
    subprocess.run([*tusk, "repo", "create", "census-model"], env=env, check=True, capture_output=True)
    subprocess.run([*tusk, "put", "file", "census-model@master:/model.joblib", "-f", str(model_file)], env=env,
                   check=True, capture_output=True)
    spec = work / "deploy.json"
    spec.write_text(json.dumps({"name": "census", "predictors": [{"name": "main", "model": "census-model@master"}],
                                "batching": {"max_batch_size": 64, "max_wait_ms": 0}}))
    subprocess.run([*tusk, "deploy", "create", "-f", str(spec)], env=env, check=True, capture_output=True)
    for workers in [int(w) for w in args.tusk_workers.split(",")]:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [*tusk, "server", "--port", str(port), "--workers", str(workers), "--no-s3", "--log-level", "warning"]
        with process(cmd, env, f"{base}/v2/health/ready", work / f"tusk-{workers}.log"):
            check_predictions("tusk", f"{base}/v2/models/census/infer", check_body, expected)
            measure(f"tusk (workers={workers})", f"{base}/v2/models/census/infer")

    # -- MLServer -----------------------------------------------------------------------------------------------
    mls = venv("mlserver")
    for label, extra in [("mlserver (defaults)", {}),
                         ("mlserver (adaptive batching)", {"max_batch_size": 64, "max_batch_time": 0.002})]:
        models = work / "mlserver" / label.split()[1].strip("()")
        (models / "census").mkdir(parents=True, exist_ok=True)
        shutil.copy(model_file, models / "census" / "model.joblib")
        (models / "census" / "model-settings.json").write_text(json.dumps({
            "name": "census", "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib"}, **extra}))
        port = free_port()
        (models / "settings.json").write_text(json.dumps({
            "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(), "metrics_endpoint": None,
            "debug": False}))
        base = f"http://127.0.0.1:{port}"
        with process([str(mls / "bin/mlserver"), "start", str(models)], dict(os.environ),
                     f"{base}/v2/models/census/ready", work / "mlserver.log"):
            check_predictions("mlserver", f"{base}/v2/models/census/infer", check_body, expected)
            measure(label, f"{base}/v2/models/census/infer")

    # -- mlflow models serve ------------------------------------------------------------------------------------
    if not args.skip_mlflow:
        try:
            mlf = venv("mlflow")
        except subprocess.CalledProcessError as exc:
            print(f"[skip] mlflow did not install ({exc}); MLflow's server not measured")
        else:
            saved = work / "mlflow-model"
            subprocess.run([str(mlf / "bin/python"), "-c",
                            "import joblib, sys, mlflow.sklearn; "
                            "mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2])",
                            str(model_file), str(saved)], check=True, capture_output=True)
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            mbody = work / "mlflow-body.json"
            mbody.write_text(json.dumps(mlflow_body(request_body(one))))
            cmd = [str(mlf / "bin/mlflow"), "models", "serve", "-m", str(saved), "-p", str(port), "-h", "127.0.0.1",
                   "--env-manager", "local"]
            with process(cmd, dict(os.environ, PATH=f"{mlf / 'bin'}:{os.environ['PATH']}"), f"{base}/ping",
                         work / "mlflow.log"):
                check_predictions("mlflow", f"{base}/invocations", check_body, expected, mlflow=True)
                for c in levels:
                    stats = wrk(f"{base}/invocations", mbody, c, seconds)
                    results.append(("mlflow models serve", c, stats))
                    print(f"  {'mlflow models serve':28} c={c:<3} {stats['rps']:8.0f} req/s  p50 "
                          f"{stats['p50_ms']:7.2f} ms  p99 {stats['p99_ms']:7.2f} ms  errors {stats['errors']}",
                          flush=True)

    # -- summary ------------------------------------------------------------------------------------------------
    print("\nsummary (requests/s, p50 ms, p99 ms):")
    names = list(dict.fromkeys(n for n, _, _ in results))
    print(f"  {'server':30}" + "".join(f"{'c=' + str(c):>26}" for c in levels))
    for name in names:
        cells = []
        for c in levels:
            s = next(st for n, cc, st in results if n == name and cc == c)
            cells.append(f"{s['rps']:8.0f} {s['p50_ms']:7.2f} {s['p99_ms']:8.2f}")
        print(f"  {name:30}" + "".join(f"{cell:>26}" for cell in cells))
    base_name = "mlserver (defaults)"
    for name in names:
        if name.startswith("tusk"):
            ratios = []
            for c in levels:
                t = next(st for n, cc, st in results if n == name and cc == c)
                m = next(st for n, cc, st in results if n == base_name and cc == c)
                ratios.append(f"c={c}: {t['rps'] / m['rps']:.2f}x rps, p99 {t['p99_ms']:.1f} vs {m['p99_ms']:.1f} ms")
            print(f"  {name} vs {base_name}: " + "; ".join(ratios))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
