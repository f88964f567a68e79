"""Pipelines through the CLI, as users type it, including a real SIGKILL mid-job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CLI_BACKENDS, Backend, open_backend

TUSK = [sys.executable, "-m", "tusk"]


@pytest.fixture(params=CLI_BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Embedded on both stores, and remote: the same commands against a server."""
    yield from open_backend(request.param, request, tmp_path)


def run(backend: Backend, *args: str, stdin: bytes | None = None, check: bool = True
        ) -> subprocess.CompletedProcess[str]:
    env = backend.subprocess_env() | {"TUSK_RUNTIME": "local"}
    proc = subprocess.run([*TUSK, *args], input=stdin.decode() if stdin else None, capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_pipeline_commands(backend: Backend, tmp_path: Path) -> None:
    spec = tmp_path / "wc.yaml"
    spec.write_text("pipeline: {name: wc}\n"
                    "transform:\n  image: python:3.11\n  cmd: [sh, -c, 'wc -w < $text > /pfs/out/$(basename $text)']\n"
                    "input: {pfs: {repo: text, glob: '/*'}}\nresource_requests: {memory: 1G}\n"
                    "metadata: {annotations: {tusk.io/image-fallback: host}}\n")  # python:3.11 is not imported
    run(backend, "create", "repo", "text")
    run(backend, "put", "file", "text@master:/a", "-f", "-", stdin=b"one two three")
    created = run(backend, "create", "pipeline", "-f", str(spec))
    assert "image 'python:3.11' is not imported: the command runs on this machine's software" in created.stderr
    assert "resource_requests" in created.stderr
    assert run(backend, "get", "file", "wc@master:/a").stdout.strip() == "3"
    pipelines = json.loads(run(backend, "list", "pipeline", "--json").stdout)
    assert [(p["name"], p["state"], p["last_job_state"]) for p in pipelines] == [("wc", "running", "success")]
    jobs = json.loads(run(backend, "list", "job", "-p", "wc", "--json").stdout)
    job = jobs[0]["id"]
    assert json.loads(run(backend, "inspect", "job", job, "--json").stdout)["datums_processed"] == 1
    datums = json.loads(run(backend, "list", "datum", job, "--json").stdout)
    assert len(datums) == 1 and datums[0]["state"] == "success"
    assert "is not imported" in run(backend, "datum", "inspect", job, datums[0]["id"]).stdout
    assert "is not imported" in run(backend, "logs", "--pipeline", "wc", "--grep", "image").stdout
    dry = json.loads(run(backend, "list", "datum", "-f", str(spec), "--json").stdout)
    assert [d["inputs"] for d in dry] == ["text:/a"]
    run(backend, "stop", "pipeline", "wc")
    run(backend, "put", "file", "text@master:/b", "-f", "-", stdin=b"x")
    assert len(json.loads(run(backend, "list", "job", "-p", "wc", "--json").stdout)) == 1
    run(backend, "start", "pipeline", "wc")
    run(backend, "rerun", "pipeline", "wc")
    assert run(backend, "get", "file", "wc@master:/b").stdout.strip() == "1"
    run(backend, "update", "pipeline", "-f", str(spec), "--reprocess")
    versions = json.loads(run(backend, "pipeline", "inspect", "wc", "--versions", "--json").stdout)
    assert [v["version"] for v in versions] == [1, 2, 3]
    lineage = json.loads(run(backend, "lineage", "wc@master", "--json").stdout)
    assert lineage["upstream"]["inputs"][0]["repo"] == "text"
    bad = run(backend, "create", "pipeline", "-f", str(tmp_path / "missing.json"), check=False)
    assert bad.returncode == 2 and "no such spec file" in bad.stderr
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"pipeline": {"name": "t"}, "transform": {"cmd": ["true"]},
                                "input": {"pfs": {"repo": "text", "glob": "/*", "lazzy": True}}}))
    bad = run(backend, "create", "pipeline", "-f", str(typo), check=False)
    assert bad.returncode == 2 and "input.pfs.lazzy: unknown field" in bad.stderr
    run(backend, "delete", "pipeline", "wc")
    assert json.loads(run(backend, "list", "pipeline", "--json").stdout) == []


def test_sigkill_mid_job_resumes_without_redoing_datums(backend: Backend, tmp_path: Path) -> None:
    counter = tmp_path / "runs.log"
    run(backend, "create", "repo", "in")
    src = tmp_path / "in"
    src.mkdir()
    for i in range(12):
        (src / f"f{i:02}").write_text(str(i))
    run(backend, "put", "file", "in@master:/", "-r", "-f", str(src))
    spec = tmp_path / "slow.json"
    spec.write_text(json.dumps({"pipeline": {"name": "slow"}, "transform": {"cmd": ["sh", "-c",
                                f"echo $PACH_DATUM_ID >> {counter}; sleep 0.3; cp $in /pfs/out/"]},
                                "input": {"pfs": {"repo": "in", "glob": "/*"}}}))
    env = backend.subprocess_env() | {"TUSK_RUNTIME": "local"}
    proc = subprocess.Popen([*TUSK, "create", "pipeline", "-f", str(spec)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not counter.exists() or len(counter.read_text().split()) < 5):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = counter.read_text().split()
    assert 5 <= len(before) < 12  # killed mid-job
    job = json.loads(run(backend, "list", "job", "-p", "slow", "--json").stdout)[0]
    # embedded, the killed command was running the job: it stays running until a command resumes it. Against a
    # server, the server runs it: killing the client stops nothing, and it may have finished by now
    assert job["state"] in (("running", "success") if backend.name == "remote" else ("running",))
    finished = json.loads(run(backend, "wait", "job", job["id"], "--json").stdout)
    assert finished["state"] == "success" and finished["datums_total"] == finished["datums_processed"] == 12
    runs = counter.read_text().split()
    # each datum recorded before the kill ran once; only those unrecorded at the kill may run twice: the one in
    # flight, and the one before it, whose outcome the job may still have been recording (the pool starts the
    # next datum while the last one's outcome is written; under load that write can be what the kill cut)
    assert len(set(runs)) == 12 and len(runs) <= 14
    assert sorted(f["path"] for f in json.loads(run(backend, "list", "file", "slow@master", "--json").stdout)) == \
        [f"/f{i:02}" for i in range(12)]
