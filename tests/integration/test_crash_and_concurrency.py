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


def test_sixteen_processes_commit_to_one_branch(backend: Backend) -> None:
    assert _run(backend, "repo", "create", "r").returncode == 0
    procs = [
        subprocess.Popen([*TUSK, "put", "file", f"r@master:/writer-{i}", "-f", "-", "-m", f"writer {i}"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=backend.subprocess_env())
        for i in range(16)
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
        assert len(history) == 16
        assert sorted(c.description for c in history) == sorted(f"writer {i}" for i in range(16))
        assert [c.parent for c in history[:-1]] == [c.id for c in history[1:]]  # one linear chain
        files = {f.path: client.get_file(f"r@master:{f.path}") for f in client.walk_files("r@master")}
        assert files == {f"/writer-{i}": f"payload {i}".encode() for i in range(16)}
        assert client.fsck().ok
    finally:
        client.close()


def _snapshot(client: object, repo: str) -> dict[str, dict[str, bytes]]:
    """Every commit of ``repo`` with the bytes of every file in it."""
    from tusk.sdk import Client

    assert isinstance(client, Client)
    return {c.id: {f.path: client.get_file(f"{repo}@{c.id}:{f.path}") for f in client.walk_files(f"{repo}@{c.id}")}
            for c in client.list_commits(repo)}


def test_sigkill_at_random_moments_loses_nothing(backend: Backend, tmp_path: Path) -> None:
    """The campaign, bounded: kill puts, batch puts and job runs at random moments (in remote mode, the client
    mid-upload); after each kill, fsck is clean, every earlier commit is byte-identical, nothing is half-landed."""
    import random

    rng = random.Random(19)
    assert _run(backend, "repo", "create", "r").returncode == 0
    assert _run(backend, "put", "file", "r@master:/seed", "-f", "-", stdin=b"seed").returncode == 0
    spec = tmp_path / "copy.json"
    spec.write_text('{"pipeline": {"name": "copy"}, "transform": {"cmd": ["sh", "-c", "sleep 0.05; '
                    'cp -r /pfs/r/. /pfs/out/"]}, "input": {"pfs": {"repo": "r", "glob": "/*"}}}')
    env = backend.subprocess_env() | {"TUSK_RUNTIME": "local"}
    assert subprocess.run([*TUSK, "pipeline", "create", "-f", str(spec)], env=env, capture_output=True,
                          timeout=120, check=False).returncode == 0
    kills = 0
    for round_ in range(6):
        client = backend.client()
        try:
            before = _snapshot(client, "r")
        finally:
            client.close()
        kind = ("put", "batch", "put")[round_ % 3]
        if kind == "batch":
            src = tmp_path / f"batch{round_}"
            src.mkdir()
            for i in range(120):
                (src / f"f{i:03}").write_bytes(rng.randbytes(3000))
            argv = [*TUSK, "put", "file", f"r@master:/batch{round_}", "-r", "-f", str(src)]
            stdin = None
        else:
            argv = [*TUSK, "put", "file", f"r@master:/big{round_}", "-f", "-"]
            stdin = rng.randbytes(rng.randrange(2, 9) << 20)
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else None, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env)
        if stdin is not None:
            assert proc.stdin is not None
            try:
                proc.stdin.write(stdin)
                proc.stdin.close()
            except BrokenPipeError:
                pass
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        client = backend.client()
        try:
            after = _snapshot(client, "r")
            for commit, files in before.items():
                assert after[commit] == files, f"round {round_}: commit {commit} changed"
            for commit in set(after) - set(before):  # landed whole, or not at all
                if kind == "batch":
                    assert len([p for p in after[commit] if p.startswith(f"/batch{round_}/")]) in (0, 120)
                else:
                    assert f"/big{round_}" not in after[commit] or after[commit][f"/big{round_}"] == stdin
            report = client.fsck()
            assert report.ok, (round_, report.problems)
        finally:
            client.close()
    assert kills >= 2  # the campaign killed something (a seeded schedule: the same every run)
