"""Real servers on loopback for the tests: SeaweedFS S3 (moto as fallback)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _port_base() -> int:
    for _ in range(200):
        base = random.randrange(20000, 45000, 10)
        if all(_free(base + i) and _free(base + i + 10000) for i in range(7)):
            return base
    raise RuntimeError("no free port range for the S3 server")


def _wait_http(url: str, deadline: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"S3 server exited early:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer means it is up
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"S3 server did not start:\n{log.read_text()[-3000:]}")


def _weed() -> str | None:
    here = Path(sys.executable).parent / "weed"
    return str(here) if here.exists() else shutil.which("weed")


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """Start an S3 server on loopback; yield its endpoint URL; stop it."""
    workdir = Path(tempfile.mkdtemp(prefix="tusk-s3-"))
    log = workdir / "server.log"
    weed = _weed()
    base = _port_base()
    if weed and os.environ.get("TUSK_TEST_S3") != "moto":
        cmd = [
            weed, "mini", f"-dir={workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
            f"-master.port={base}", f"-volume.port={base + 1}", f"-filer.port={base + 2}",
            f"-s3.port={base + 3}", f"-admin.port={base + 4}", f"-metricsPort={base + 5}",
            f"-debug.port={base + 6}",
            # the Iceberg and Lance listeners have fixed ports (8181, 9101): a second server (another pytest-xdist
            # worker) would die on them
            "-s3.port.iceberg=0", "-s3.port.lance=0",
        ]
        endpoint = f"http://127.0.0.1:{base + 3}"
    else:
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(base)]
        endpoint = f"http://127.0.0.1:{base}"
    (workdir / "data").mkdir()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        _wait_http(endpoint, time.monotonic() + 60, proc, log)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)
