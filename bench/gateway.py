"""S3 gateway benchmark: boto3 PutObject and GetObject through `tusk server --s3-port` beside the same objects
in the SeaweedFS S3 server the tests run (`weed mini`), in one run.

    .venv/bin/python bench/gateway.py                  # 3 rounds: 500 x 4 KiB, 64 x 1 MiB, 3 x 64 MiB
    .venv/bin/python bench/gateway.py --quick          # 1 round, smaller counts
    .venv/bin/python bench/gateway.py --objects s3     # Tusk's own objects in that SeaweedFS too

Both servers run on loopback, each in its own process(es); the client is one boto3 client per server (path
style, SigV4, one request at a time), in this process. Each round runs every workload on both servers, the
order alternating from round to round so that drift in the machine's speed hits both. The table shows the
median over rounds: ops/s for small objects, MiB/s for the large ones, and the ratio gateway / SeaweedFS.

What is compared: a PutObject on the gateway is a commit (chunked, hashed with BLAKE3, the commit recorded in
SQLite, fsync'd), and a GetObject resolves the branch and reads the file's chunks; on SeaweedFS both are a
plain blob store's. By default Tusk keeps its objects on local disk (`tusk server`'s default); with
`--objects s3` it keeps them in the same SeaweedFS, so the gateway's figures include the peer's own cost.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import s3_server  # noqa: E402

from tusk.config import Settings  # noqa: E402
from tusk.sdk import Client  # noqa: E402

MiB = 1 << 20
KEYS = {"AWS_ACCESS_KEY_ID": "tusk", "AWS_SECRET_ACCESS_KEY": "tusk-secret", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _client(url: str) -> Any:
    return boto3.client("s3", endpoint_url=url, aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1",
                        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}, max_pool_connections=4))


class Target:
    """One server, as a bucket on it."""

    def __init__(self, name: str, url: str, bucket: str) -> None:
        self.name, self.bucket, self.s3 = name, bucket, _client(url)

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def get(self, key: str) -> int:
        stream = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        n = 0
        while data := stream.read(MiB):
            n += len(data)
        return n


Workload = tuple[str, int, int, str]  # label, object size, count, unit ("ops/s" or "MiB/s")


def _run(target: Target, workload: Workload, round_: int, payloads: list[bytes]) -> tuple[float, float]:
    """(PUT rate, GET rate) for ``count`` objects of ``size``: fresh keys each round."""
    label, size, count, unit = workload
    keys = [f"r{round_}/{label}/{i:05d}" for i in range(count)]
    t = time.perf_counter()
    for i, key in enumerate(keys):
        target.put(key, payloads[i % len(payloads)])
    put_s = time.perf_counter() - t
    t = time.perf_counter()
    for key in keys:
        assert target.get(key) == size
    get_s = time.perf_counter() - t
    per = (lambda s: count / s) if unit == "ops/s" else (lambda s: count * size / MiB / s)
    return per(put_s), per(get_s)


def _start_tusk(work: Path, objects_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSK_")}
    env |= KEYS | objects_env | {"TUSK_HOME": str(work / "tusk"), "TUSK_USER": "bench", "TUSK_RUNTIME": "local"}
    with Client(settings=Settings.from_env(env=env)) as c:
        c.create_repo("bench")
    port, s3_port = _free_port(), _free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "tusk"), "server", "--port", str(port),
                             "--s3-port", str(s3_port), "--no-auth", "--no-grpc", "--log-level", "warning"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{s3_port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url, timeout=1)
            return proc, url
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("tusk server --s3-port did not start") from None
            time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--objects", choices=["local", "s3"], default="local",
                    help="where the Tusk server keeps its objects: local disk, or the same SeaweedFS")
    args = ap.parse_args()
    if args.quick:
        workloads: list[Workload] = [("4KiB", 4096, 100, "ops/s"), ("1MiB", MiB, 16, "MiB/s"),
                                     ("64MiB", 64 * MiB, 1, "MiB/s")]
    else:
        workloads = [("4KiB", 4096, 500, "ops/s"), ("1MiB", MiB, 64, "MiB/s"), ("64MiB", 64 * MiB, 3, "MiB/s")]
    rounds = args.rounds or (1 if args.quick else 3)
    for k, v in KEYS.items():
        os.environ.setdefault(k, v)
    payloads = {w[0]: [os.urandom(w[1]) for _ in range(min(w[2], 4))] for w in workloads}
    work = Path(tempfile.mkdtemp(prefix="tusk-bench-gateway-"))
    load_before = os.getloadavg()
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        with s3_server() as weed_url:
            weed = Target("SeaweedFS", weed_url, "bench")
            weed.s3.create_bucket(Bucket="bench")
            objects_env = {}
            if args.objects == "s3":
                weed.s3.create_bucket(Bucket="tusk-objects")
                objects_env = {"TUSK_OBJECTS_URL": "s3://tusk-objects/objects", "TUSK_S3_ENDPOINT_URL": weed_url}
            proc, gateway_url = _start_tusk(work, objects_env)
            try:
                gateway = Target("gateway", gateway_url, "master.bench")
                for r in range(rounds):
                    order: tuple[Target, Target] = (gateway, weed) if r % 2 == 0 else (weed, gateway)
                    for w in workloads:
                        for target in order:
                            results.setdefault((target.name, w[0]), []).append(_run(target, w, r, payloads[w[0]]))
                with Client(settings=Settings.from_env(env={"TUSK_HOME": str(work / "tusk"), **objects_env})) as c:
                    n_commits = len(c.list_commits("bench@master"))
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()

    def median(name: str, label: str, i: int) -> float:
        return statistics.median(x[i] for x in results[(name, label)])

    print(f"\nS3 PutObject / GetObject, boto3, one request at a time, loopback; median of {rounds} round(s); "
          f"Tusk objects: {args.objects}")
    print(f"{'':<22}{'gateway':>12}{'SeaweedFS':>12}{'ratio':>8}")
    for label, _, count, unit in workloads:
        for i, verb in enumerate(("PUT", "GET")):
            g, s = median("gateway", label, i), median("SeaweedFS", label, i)
            print(f"{f'{verb} {count} x {label} ({unit})':<22}{g:>12.1f}{s:>12.1f}{g / s:>8.2f}")
    print(f"gateway commits made: {n_commits} (one per PutObject)")
    print(f"load average before: {tuple(round(x, 2) for x in load_before)}, "
          f"after: {tuple(round(x, 2) for x in load_after)}, on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
