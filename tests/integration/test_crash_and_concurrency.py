"""Killed writers and concurrent writers, with real processes, against both backends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Backend

TUSK = [sys.executable, "-m", "tusk"]


def _run(backend: Backend, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*TUSK, *args], input=stdin, capture_output=True, env=backend.subprocess_env(),
                          timeout=120, check=False)


def test_sigkill_mid_put_leaves_no_visible_commit(backend: Backend) -> None:
    assert _run(backend, "repo", "create", "r").returncode == 0
    assert _run(backend, "put", "file", "r@master:/keep", "-f", "-", stdin=b"keep").returncode == 0
    client = backend.client()
    head_before = client.inspect_commit("r@master").id
    proc = subprocess.Popen([*TUSK, "put", "file", "r@master:/big", "-f", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=backend.subprocess_env())
    assert proc.stdin is not None
    block = os.urandom(1 << 20)
    for _ in range(24):  # 24 MiB in, chunks already landing in the store
        proc.stdin.write(block)
    proc.stdin.flush()
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdin.close()
    assert proc.returncode == -signal.SIGKILL
    commits = client.list_commits("r")
    assert [c.id for c in commits] == [head_before]
    assert all(c.state == "finished" for c in commits)
    assert [f.path for f in client.list_files("r@master")] == ["/keep"]
    report = client.fsck()
    assert report.ok, report.problems
    client.close()
    assert _run(backend, "fsck").returncode == 0


@pytest.mark.parametrize("delay", [0.1, 0.4, 0.8, 1.2, 1.6])
def test_sigkill_during_batch_commit_is_all_or_nothing(backend: Backend, tmp_path: Path, delay: float) -> None:
    src = tmp_path / "batch"
    src.mkdir()
    for i in range(300):
        (src / f"f{i:03}").write_bytes(os.urandom(2000))
    assert _run(backend, "repo", "create", "r").returncode == 0
    proc = subprocess.Popen([*TUSK, "put", "file", "r@master:/batch", "-r", "-f", str(src)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=backend.subprocess_env())
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    client = backend.client()
    try:
        commits = client.list_commits("r")
        if commits:  # the put finished before the kill: everything is there
            assert len(commits) == 1 and commits[0].state == "finished"
            assert len(list(client.walk_files("r@master"))) == 300
        assert client.fsck().ok
    finally:
        client.close()


def test_eight_processes_commit_to_one_branch(backend: Backend) -> None:
    assert _run(backend, "repo", "create", "r").returncode == 0
    procs = [
        subprocess.Popen([*TUSK, "put", "file", f"r@master:/writer-{i}", "-f", "-", "-m", f"writer {i}"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=backend.subprocess_env())
        for i in range(8)
    ]
    for i, p in enumerate(procs):
        assert p.stdin is not None
        p.stdin.write(f"payload {i}".encode())
        p.stdin.close()
    for p in procs:
        assert p.wait(120) == 0, p.stderr.read() if p.stderr else ""
    client = backend.client()
    try:
        history = client.list_commits("r@master")
        assert len(history) == 8
        assert sorted(c.description for c in history) == [f"writer {i}" for i in range(8)]
        assert [c.parent for c in history[:-1]] == [c.id for c in history[1:]]  # one linear chain
        files = {f.path: client.get_file(f"r@master:{f.path}") for f in client.walk_files("r@master")}
        assert files == {f"/writer-{i}": f"payload {i}".encode() for i in range(8)}
        assert client.fsck().ok
    finally:
        client.close()
