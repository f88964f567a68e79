"""Serving throughput and latency: Tusk against MLServer (and `mlflow models serve` when it installs).

The same scikit-learn census model (one-hot + logistic regression, as in
examples/census-income) is trained once, saved with joblib, committed to a Tusk
repo and deployed, and handed to MLServer's scikit-learn runtime and to MLflow's
pyfunc server. Each peer runs from its own virtualenv under bench/.venvs (made
on first use). Every request is one row, one tensor per column (pandas content
type), over REST (wrk on loopback, the same JSON body) and over gRPC
(bench/grpc_load.py, the same serialized ModelInferRequest with typed contents).

Each server runs in several configurations, all started at once and left up for
the whole run (an idle server costs next to nothing):

- Tusk: --workers 1 and 2, batching max_batch_size 64 with max_wait_ms 0 and 2;
- MLServer 1.7.1: parallel_workers 0, 1 and 2, each without and with adaptive
  batching (max_batch_size 64, max_batch_time 2 ms); its defaults are
  parallel_workers 1 without batching.

1. Tuning: every configuration once at each protocol and concurrency (1, 8,
   32); the best of each server by throughput, per protocol and concurrency, is
   printed with every configuration tried.
2. Rounds: Tusk's best, MLServer's best and MLServer's defaults, alternating
   (A, B, C, then C, B, A, ...), measured afresh (not reusing the tuning
   numbers, which picked the winners); the summary gives each one's median
   requests/s and p99 over the rounds, and Tusk's throughput ratio to both.

The load average is printed at the start, after tuning, and at the end. Before
timing, the bench checks that every server returns the same predictions as the
model itself for a batch of rows, over both protocols.

    python bench/serving.py                # 10 s per point (5 s while tuning), 3 rounds
    python bench/serving.py --quick        # 3 s per point (2 s while tuning), 2 rounds
    python bench/serving.py --skip-mlflow  # MLflow's server is a large install

On 2 cores the load generator shares the CPU with the server under test, the
same way for every peer; the gRPC load generator is Python (grpc.aio), so it
takes more of the CPU than wrk does.
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
from dataclasses import dataclass
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


def wrk(url: str, body_file: Path, concurrency: int, seconds: float, warmup: float = 2.0) -> dict[str, float]:
    script = body_file.with_suffix(".lua")
    script.write_text(WRK_SCRIPT)
    env = dict(os.environ, BENCH_BODY=str(body_file))
    subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{warmup:g}s", "-s", str(script), url], env=env,
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


@dataclass(frozen=True)
class Server:
    """One running server configuration: where its REST and gRPC endpoints are."""

    family: str  # tusk, mlserver
    config: str  # e.g. "workers=2 wait=0ms", "pw=1 batch=off"
    rest: str  # the OIP infer URL
    grpc: str  # host:port

    @property
    def name(self) -> str:
        return f"{self.family} ({self.config})"


def grpc_request(rows: Any) -> bytes:
    """The same rows as :func:`request_body`, as a serialized ModelInferRequest with typed contents, asking
    for ``predict``."""
    from tusk.serving.grpc import grpc_predict_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name="census")
    request.parameters["content_type"].string_param = "pd"
    for c in FEATURES:
        values = rows[c].tolist()
        tensor = request.inputs.add(name=c, datatype="BYTES" if c in CATEGORICAL else "INT64", shape=[len(values)])
        if c in CATEGORICAL:
            tensor.parameters["content_type"].string_param = "str"
            tensor.contents.bytes_contents.extend(v.encode() for v in values)
        else:
            tensor.contents.int64_contents.extend(int(v) for v in values)
    # predict as str: MLServer's default (NumpyCodec) puts the str labels in bytes_contents and fails over gRPC
    output = request.outputs.add(name="predict")
    output.parameters["content_type"].string_param = "str"
    return bytes(request.SerializeToString())


def grpc_predictions(target: str, body: bytes) -> list[str]:
    """``predict`` of one ModelInfer call, from raw_output_contents (Tusk) or typed contents (MLServer)."""
    import grpc  # type: ignore[import-untyped]

    from tusk.serving.grpc import grpc_predict_v2_pb2 as pb

    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        response = pb.ModelInferResponse.FromString(call(body, timeout=60, wait_for_ready=True))
    index = next(i for i, o in enumerate(response.outputs) if o.name == "predict")
    if response.raw_output_contents:
        raw, out, offset = response.raw_output_contents[index], [], 0
        while offset < len(raw):
            n = int.from_bytes(raw[offset:offset + 4], "little")
            out.append(raw[offset + 4:offset + 4 + n].decode())
            offset += 4 + n
        return out
    return [v.decode() for v in response.outputs[index].contents.bytes_contents]


def grpc_load(target: str, request_file: Path, concurrency: int, seconds: float, warmup: float) -> dict[str, float]:
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "grpc_load.py"), target, str(concurrency),
                          f"{seconds:g}", f"{warmup:g}", str(request_file)], capture_output=True, text=True,
                         check=True)
    stats = json.loads(run.stdout.strip().splitlines()[-1])
    return {"rps": stats["requests"] / (stats["duration_us"] / 1e6), "p50_ms": stats["p50_us"] / 1000,
            "p99_ms": stats["p99_us"] / 1000, "errors": stats["errors"], "requests": stats["requests"]}


def load_avg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def tusk_home(work: Path, name: str, model_file: Path, max_wait_ms: int) -> dict[str, str]:
    """A Tusk home with the census model committed and deployed; returns the environment that points at it."""
    home = work / name
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSK_")} | {"TUSK_HOME": str(home)}
    tusk = str(Path(sys.executable).parent / "tusk")
    spec = work / f"{name}.json"
    spec.write_text(json.dumps({"name": "census", "predictors": [{"name": "main", "model": "census-model@master"}],
                                "batching": {"max_batch_size": 64, "max_wait_ms": max_wait_ms}}))
    for args in (["repo", "create", "census-model"], ["put", "file", "census-model@master:/model.joblib", "-f",
                                                       str(model_file)], ["deploy", "create", "-f", str(spec)]):
        done = subprocess.run([tusk, *args], env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"tusk {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 s per point (2 s tuning), 2 rounds")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per measured point")
    ap.add_argument("--tune-seconds", type=float, default=None, help="seconds per tuning point")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--protocols", default="rest,grpc")
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--tusk-workers", default="1,2", help="worker-process counts to run Tusk with")
    ap.add_argument("--tusk-waits", default="0,2", help="batching max_wait_ms values to run Tusk with")
    ap.add_argument("--mlserver-workers", default="0,1,2", help="parallel_workers values to run MLServer with")
    args = ap.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    tune_seconds = args.tune_seconds or (2.0 if args.quick else 5.0)
    warmup = 1.0 if args.quick else 2.0
    rounds = args.rounds or (2 if args.quick else 3)
    levels = [int(c) for c in args.concurrency.split(",")]
    protocols = args.protocols.split(",")
    if "rest" in protocols and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    import joblib
    import sklearn

    print(f"load average at start: {load_avg()}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="tusk-bench-serving-"))
    frame = census_frame(20000)
    model = train_census(frame)
    model_file = work / "model.joblib"
    joblib.dump(model, model_file)
    one = census_frame(1, skip=25000)
    body_file = work / "body.json"
    body_file.write_text(json.dumps(request_body(one)))
    grpc_file = work / "request.pb"
    grpc_file.write_bytes(grpc_request(one))
    check_rows = census_frame(50, skip=25100)
    check_body = request_body(check_rows)
    check_grpc = grpc_request(check_rows)
    expected = model.predict(check_rows[FEATURES]).tolist()
    print(f"model: census one-hot + logistic regression, scikit-learn {sklearn.__version__}, "
          f"{model_file.stat().st_size} B; request: 1 row, {len(FEATURES)} tensors; {seconds:g} s per point "
          f"({tune_seconds:g} s tuning, {warmup:g} s warm-up each), {rounds} rounds; {os.cpu_count()} CPUs",
          flush=True)

    def measure(server: Server, protocol: str, c: int, secs: float) -> dict[str, float]:
        if protocol == "rest":
            return wrk(server.rest, body_file, c, secs, warmup)
        return grpc_load(server.grpc, grpc_file, c, secs, warmup)

    def line(label: str, protocol: str, c: int, stats: dict[str, float]) -> None:
        print(f"  {label:40} {protocol:4} c={c:<3} {stats['rps']:8.0f} req/s  p50 {stats['p50_ms']:7.2f} ms  "
              f"p99 {stats['p99_ms']:7.2f} ms  errors {stats['errors']}", flush=True)

    servers: list[Server] = []
    with contextlib.ExitStack() as stack:
        # -- Tusk -----------------------------------------------------------------------------------------------
        tusk = str(Path(sys.executable).parent / "tusk")
        for wait in [int(w) for w in args.tusk_waits.split(",")]:
            env = tusk_home(work, f"tusk-home-wait{wait}", model_file, wait)
            for workers in [int(w) for w in args.tusk_workers.split(",")]:
                port, grpc_port = free_port(), free_port()
                base = f"http://127.0.0.1:{port}"
                cmd = [tusk, "server", "--port", str(port), "--grpc-port", str(grpc_port), "--workers", str(workers),
                       "--no-s3", "--no-scheduler", "--log-level", "warning"]
                config = f"workers={workers} wait={wait}ms"
                stack.enter_context(process(cmd, env, f"{base}/v2/health/ready",
                                            work / f"tusk-{workers}-{wait}.log"))
                servers.append(Server("tusk", config, f"{base}/v2/models/census/infer", f"127.0.0.1:{grpc_port}"))

        # -- MLServer -------------------------------------------------------------------------------------------
        mlserver_workers = [int(w) for w in args.mlserver_workers.split(",") if w]
        mls = venv("mlserver") if mlserver_workers else Path()
        for workers in mlserver_workers:
            for batching, extra in [("off", {}), ("64/2ms", {"max_batch_size": 64, "max_batch_time": 0.002})]:
                models = work / "mlserver" / f"pw{workers}-{batching.replace('/', '-')}"
                (models / "census").mkdir(parents=True, exist_ok=True)
                shutil.copy(model_file, models / "census" / "model.joblib")
                (models / "census" / "model-settings.json").write_text(json.dumps({
                    "name": "census", "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": "./model.joblib"}, **extra}))
                port, grpc_port = free_port(), free_port()
                (models / "settings.json").write_text(json.dumps({
                    "http_port": port, "grpc_port": grpc_port, "metrics_port": free_port(),
                    "metrics_endpoint": None, "debug": False, "parallel_workers": workers}))
                base = f"http://127.0.0.1:{port}"
                stack.enter_context(process([str(mls / "bin/mlserver"), "start", str(models)], dict(os.environ),
                                            f"{base}/v2/models/census/ready", models / "mlserver.log"))
                servers.append(Server("mlserver", f"pw={workers} batch={batching}",
                                      f"{base}/v2/models/census/infer", f"127.0.0.1:{grpc_port}"))
        defaults = next((s for s in servers if s.family == "mlserver" and s.config == "pw=1 batch=off"), None)

        for server in servers:
            check_predictions(f"{server.name} REST", server.rest, check_body, expected)
            got = grpc_predictions(server.grpc, check_grpc)
            if got != expected:
                raise SystemExit(f"{server.name} over gRPC returned {got[:5]}..., expected {expected[:5]}...")
            print(f"[check] {server.name} gRPC: {len(expected)} predictions identical to the model's own", flush=True)

        # -- 1. tuning: every configuration once ------------------------------------------------------------------
        print(f"\ntuning: every configuration, {tune_seconds:g} s per point", flush=True)
        tuned: dict[tuple[str, int], list[tuple[Server, dict[str, float]]]] = {}
        for protocol in protocols:
            for i, c in enumerate(levels):
                order = servers if i % 2 == 0 else servers[::-1]
                for server in order:
                    stats = measure(server, protocol, c, tune_seconds)
                    tuned.setdefault((protocol, c), []).append((server, stats))
                    line(server.name, protocol, c, stats)
        best: dict[tuple[str, str, int], Server] = {}
        for (protocol, c), tried in tuned.items():
            for family in ("tusk", "mlserver"):
                mine = [(s, st) for s, st in tried if s.family == family and st["errors"] == 0] or [
                    (s, st) for s, st in tried if s.family == family]
                if mine:
                    best[(family, protocol, c)] = max(mine, key=lambda t: t[1]["rps"])[0]
        print("best by throughput while tuning:", flush=True)
        for protocol in protocols:
            for c in levels:
                picks = ", ".join(f"{f}: {best[(f, protocol, c)].config}" for f in ("tusk", "mlserver")
                                  if (f, protocol, c) in best)
                print(f"  {protocol:4} c={c:<3} {picks}", flush=True)
        print(f"load average after tuning: {load_avg()}", flush=True)

        # -- 2. rounds: Tusk best, MLServer best, MLServer defaults, alternating -----------------------------------
        print(f"\nrounds: {rounds}, {seconds:g} s per point, servers alternating", flush=True)
        measured: dict[tuple[str, str, int], list[dict[str, float]]] = {}
        for r in range(rounds):
            for protocol in protocols:
                for c in levels:
                    roles = [("tusk best", best.get(("tusk", protocol, c))),
                             ("mlserver best", best.get(("mlserver", protocol, c))),
                             ("mlserver defaults", defaults)]
                    roles = [(role, s) for role, s in roles if s is not None]
                    for role, server in roles if r % 2 == 0 else roles[::-1]:
                        stats = measure(server, protocol, c, seconds)
                        measured.setdefault((role, protocol, c), []).append(stats | {"config": server.config})
                        line(f"r{r + 1} {role} [{server.config}]", protocol, c, stats)

        # -- mlflow models serve: REST only, once -----------------------------------------------------------------
        mlflow_results: list[tuple[int, dict[str, float]]] = []
        if not args.skip_mlflow and "rest" in protocols:
            mlflow_results = run_mlflow(work, model_file, one, check_body, expected, levels, seconds, warmup)
    print(f"load average at end: {load_avg()}", flush=True)

    # -- summary --------------------------------------------------------------------------------------------------
    def median(values: list[float]) -> float:
        ordered = sorted(values)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

    def summary(role: str, protocol: str, c: int) -> dict[str, Any] | None:
        runs = measured.get((role, protocol, c))
        if not runs:
            return None
        return {"rps": median([r["rps"] for r in runs]), "p99_ms": median([r["p99_ms"] for r in runs]),
                "errors": sum(r["errors"] for r in runs), "config": runs[0]["config"]}

    print(f"\nsummary: median of {rounds} rounds (requests/s, p99 ms); ratios are Tusk's throughput over MLServer's")
    print(f"  {'proto':5} {'c':>3}  {'tusk best':>34}  {'mlserver best':>34}  {'mlserver defaults':>28}"
          f"  {'x best':>6}  {'x dflt':>6}  target")
    for protocol in protocols:
        for c in levels:
            t, b, d = (summary(role, protocol, c) for role in ("tusk best", "mlserver best", "mlserver defaults"))
            if t is None or b is None or d is None:
                continue
            meets = t["rps"] >= 1.5 * b["rps"] and t["p99_ms"] <= b["p99_ms"]
            print(f"  {protocol:5} {c:>3}  {t['config']:>18} {t['rps']:7.0f} {t['p99_ms']:7.2f}"
                  f"  {b['config']:>18} {b['rps']:7.0f} {b['p99_ms']:7.2f}  {d['rps']:11.0f} {d['p99_ms']:7.2f}"
                  f"  {t['rps'] / b['rps']:5.2f}x  {t['rps'] / d['rps']:5.2f}x  {'met' if meets else 'not met'}"
                  + (f"  (errors: {t['errors']}/{b['errors']}/{d['errors']})" if t["errors"] + b["errors"]
                     + d["errors"] else ""))
    print("  target: at each c, Tusk's throughput >= 1.5x MLServer's best, with p99 no worse")
    for c, stats in mlflow_results:
        print(f"  mlflow models serve  rest {c:>3}  {stats['rps']:7.0f} req/s  p99 {stats['p99_ms']:7.2f} ms")
    shutil.rmtree(work, ignore_errors=True)


def run_mlflow(work: Path, model_file: Path, one: Any, check_body: dict[str, Any], expected: list[Any],
               levels: list[int], seconds: float, warmup: float) -> list[tuple[int, dict[str, float]]]:
    """`mlflow models serve` over REST, once per concurrency (not part of the alternating rounds)."""
    try:
        mlf = venv("mlflow")
    except subprocess.CalledProcessError as exc:
        print(f"[skip] mlflow did not install ({exc}); MLflow's server not measured")
        return []
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
    out = []
    with process(cmd, dict(os.environ, PATH=f"{mlf / 'bin'}:{os.environ['PATH']}"), f"{base}/ping",
                 work / "mlflow.log"):
        check_predictions("mlflow", f"{base}/invocations", check_body, expected, mlflow=True)
        for c in levels:
            stats = wrk(f"{base}/invocations", mbody, c, seconds, warmup)
            out.append((c, stats))
            print(f"  {'mlflow models serve':40} rest c={c:<3} {stats['rps']:8.0f} req/s  p50 "
                  f"{stats['p50_ms']:7.2f} ms  p99 {stats['p99_ms']:7.2f} ms  errors {stats['errors']}", flush=True)
    return out


if __name__ == "__main__":
    main()
