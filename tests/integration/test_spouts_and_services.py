"""Spouts and service pipelines: long-running commands, restarted when they exit, stopped with their pipeline.

The specs are written as Pachyderm's docs and examples write them (``examples/spouts/go-kafka-spout``'s
``"spout": {"overwrite": ...}``, the Jupyter service of the 1.x docs: ``"input": {"pfs": {"glob": "/",
"repo": ...}}, "service": {"external_port": ..., "internal_port": 8888}``), less ``image``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Backend, open_backend
from tests.serving_helpers import wait_for
from tusk import Client
from tusk.config import Settings
from tusk.errors import Conflict, InvalidArgument
from tusk.pipelines.runtimes import BwrapRuntime
from tusk.pipelines.spec import parse_spec
from tusk.pipelines.support import spec_notes
from tusk.root.scheduler import Scheduler

RUNTIMES = ["bwrap", "local"] if BwrapRuntime.available() else ["local"]

# A spout's code, as in Pachyderm 1.x: open the named pipe /pfs/out, write one tar stream, close it; again.
SPOUT = r'''
import io, os, sys, tarfile, time
def put(files):
    with open("/pfs/out", "wb") as pipe, tarfile.open(fileobj=pipe, mode="w|") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
put({"ticks.txt": b"1\n"})
put({"ticks.txt": b"2\n", "more/b.txt": b"b\n"})
time.sleep(3600)
'''
CRASHING = r'''
import io, tarfile, time
with open("/pfs/out", "wb") as pipe, tarfile.open(fileobj=pipe, mode="w|") as tar:
    data = repr(time.time()).encode()
    info = tarfile.TarInfo("started-" + data.decode())
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
raise SystemExit("lost the connection to the queue")
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int) -> str:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/index.html", timeout=2).text
    except httpx.HTTPError as exc:
        return f"error: {exc!r}"


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def embedded(runtime: str, tmp_path: Path) -> Iterator[Client]:
    """A client on a SQLite store, with a scheduler in this process (what `tusk pipeline run-spouts` runs)."""
    c = Client(settings=Settings.from_env(env={"TUSK_HOME": str(tmp_path / "home"), "TUSK_USER": "tester",
                                               "TUSK_RUNTIME": runtime, "PATH": os.environ["PATH"]}))
    scheduler = Scheduler(c.services, poll=0.2, cron=False)
    scheduler.start()
    try:
        yield c
    finally:
        scheduler.stop()
        c.close()


def _spout(name: str, code: str, overwrite: bool = False) -> dict[str, object]:
    return {"pipeline": {"name": name}, "spout": {"overwrite": overwrite},
            "transform": {"cmd": ["python3", "-c", code], "env": {"NAMED_PIPE": "/pfs/out"}}}


def test_each_tar_stream_is_a_commit_and_triggers_the_pipelines_downstream(embedded: Client) -> None:
    c = embedded
    [info] = c.create_pipeline(_spout("ticker", SPOUT))
    assert any("tusk pipeline run-spouts" in note for note in info.notes), info.notes
    c.create_pipeline({"pipeline": {"name": "tally"},
                       "input": {"pfs": {"repo": "ticker", "glob": "/"}},
                       "transform": {"cmd": ["sh", "-c", "cp /pfs/ticker/ticks.txt /pfs/out/ticks.txt"]}})
    wait_for(lambda: len(c.list_commits("ticker")) == 2, 60, "two spout commits")
    # Pachyderm 1.x's put file: without overwrite, the second tar's file is appended to the first's
    assert c.get_file("ticker@master:/ticks.txt") == b"1\n2\n"
    assert c.get_file("ticker@master^1:/ticks.txt") == b"1\n"
    assert c.get_file("ticker@master:/more/b.txt") == b"b\n"
    wait_for(lambda: any(j.state == "success" and j.output_commit for j in c.list_jobs("tally")
                         if j.input_commits and j.input_commits[0]["commit"] == c.list_commits("ticker")[0].id),
             60, "the downstream job over the second commit")
    assert c.get_file("tally@master:/ticks.txt") == b"1\n2\n"
    wait_for(lambda: (c.inspect_pipeline("ticker").process or {}).get("commits") == 2, 10, "the status")
    process = c.inspect_pipeline("ticker").process
    assert process is not None and process["state"] == "running"
    lines = [line for job, _datum, line in c.logs("ticker") if job == "spout"]
    assert sum("committed" in line for line in lines) == 2, lines
    assert not c.list_jobs("ticker")  # a spout has no jobs

    # stopping, then deleting, the pipeline ends the process
    c.delete_pipeline("tally")
    c.delete_pipeline("ticker")
    wait_for(lambda: not _alive(process["pid"]), 20, "the spout's process to end")


def test_overwrite_replaces_files_of_the_same_path(embedded: Client) -> None:
    c = embedded
    c.create_pipeline(_spout("latest", SPOUT, overwrite=True))
    wait_for(lambda: len(c.list_commits("latest")) == 2, 60, "two spout commits")
    assert c.get_file("latest@master:/ticks.txt") == b"2\n"
    c.delete_pipeline("latest")


def test_a_crashing_spout_is_restarted_with_backoff(embedded: Client) -> None:
    c = embedded
    c.create_pipeline(_spout("flaky", CRASHING))
    wait_for(lambda: len(c.list_commits("flaky")) >= 2, 60, "a commit from the restarted spout")
    process = c.inspect_pipeline("flaky").process
    assert process is not None and process["restarts"] >= 1 and process["last_exit"] == 1, process
    lines = [line for _job, _datum, line in c.logs("flaky")]
    assert any("lost the connection to the queue" in line for line in lines)
    assert any("exited with code 1; starting again in 1s" in line for line in lines), lines
    # an update restarts it as the new version; stopping ends it
    c.update_pipeline(_spout("flaky", CRASHING.replace("started-", "v2-")))
    wait_for(lambda: (c.inspect_pipeline("flaky").process or {}).get("version") == 2, 30, "version 2 to run")
    c.stop_pipeline("flaky")
    wait_for(lambda: (c.inspect_pipeline("flaky").process or {}).get("state") == "stopped", 30, "the stop")
    c.delete_pipeline("flaky")


def test_a_service_serves_its_latest_input_on_its_external_port(embedded: Client) -> None:
    c = embedded
    port = _free_port()
    c.create_repo("input")
    c.put_file("input@master:/index.html", b"version one\n")
    c.create_pipeline({
        "pipeline": {"name": "notebook"},
        "input": {"pfs": {"glob": "/", "repo": "input"}},
        "service": {"external_port": port, "internal_port": 8888},
        "transform": {"cmd": ["python3", "-m", "http.server", "8888", "--bind", "127.0.0.1",
                              "--directory", "/pfs/input"]},
    })
    wait_for(lambda: _get(port) == "version one\n", 60, "the service to answer")
    with pytest.raises(Conflict, match=f"service.external_port {port} is published by pipeline notebook"):
        c.create_pipeline({"pipeline": {"name": "other"}, "input": {"pfs": {"glob": "/", "repo": "input"}},
                           "service": {"external_port": port, "internal_port": 80},
                           "transform": {"cmd": ["true"]}})
    c.put_file("input@master:/index.html", b"version two\n")
    wait_for(lambda: _get(port) == "version two\n", 60, "the service to serve the new commit")
    process = c.inspect_pipeline("notebook").process
    assert process is not None and process["port"] == port
    assert process["input_commits"] == {"input": c.list_commits("input")[0].id}
    assert not c.list_jobs("notebook")  # a service has no jobs
    assert any("input changed: starting again" in line for _j, _d, line in c.logs("notebook"))
    c.delete_pipeline("notebook")
    wait_for(lambda: _get(port).startswith("error") and not _alive(process["pid"]), 20, "the service to end")


@pytest.fixture
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A `tusk server` in this process (API and scheduler; TUSK_RUNTIME=local) on PostgreSQL and S3."""
    yield from open_backend("remote", request, tmp_path)


def test_under_tusk_server_the_scheduler_runs_them(remote: Backend) -> None:
    c = remote.client()
    try:
        c.create_pipeline(_spout("remote-ticker", SPOUT))
        wait_for(lambda: (c.inspect_pipeline("remote-ticker").process or {}).get("commits") == 2, 60,
                 "two spout commits")
        process = c.inspect_pipeline("remote-ticker").process
        assert process is not None and len(c.list_commits("remote-ticker")) == 2
        assert any("committed" in line for job, _d, line in c.logs("remote-ticker") if job == "spout")
        c.delete_pipeline("remote-ticker")
        wait_for(lambda: not _alive(process["pid"]), 20, "the spout's process to end")
    finally:
        c.close()


def test_run_spouts_runs_them_in_the_foreground(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSK_")} | {
        "TUSK_HOME": str(tmp_path / "home"), "TUSK_USER": "tester", "TUSK_RUNTIME": "local"}
    spec = tmp_path / "spout.json"
    spec.write_text(json.dumps(_spout("laptop", SPOUT)))
    tusk = str(Path(sys.executable).parent / "tusk")
    created = subprocess.run([tusk, "create", "pipeline", "-f", str(spec)], env=env, capture_output=True,
                             text=True, check=True)
    assert "tusk pipeline run-spouts" in created.stderr
    proc = subprocess.Popen([tusk, "pipeline", "run-spouts", "--poll", "0.2"], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    c = Client(settings=Settings.from_env(env=env))
    try:
        wait_for(lambda: len(c.list_commits("laptop")) == 2, 60, "two spout commits")
        pid = (c.inspect_pipeline("laptop").process or {}).get("pid")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(30)
        c.close()
    wait_for(lambda: not _alive(pid), 20, "Ctrl-C to end the spout's process")


@pytest.mark.parametrize(("spec", "error"), [
    ({"spout": {}, "input": {"pfs": {"repo": "r", "glob": "/"}}}, "spout pipelines (without a service) must not"),
    ({}, "input is required"),
    ({"spout": {"marker": "offset"}}, "spout.marker: spout markers are not supported"),
    ({"spout": {"service": {"internal_port": 80, "external_port": 30080}}}, "spout.service"),
    ({"spout": {}, "s3_out": True}, "s3 output is not supported in spouts or services"),
    ({"spout": {}, "transform": {"cmd": ["true"], "secrets": [{"name": "kafka", "env_var": "K", "key": "k"}]}},
     "transform.secrets are not given to a spout's"),
    ({"service": {"internal_port": 80, "external_port": 30080}}, "input is required"),
    ({"service": {"internal_port": 80, "external_port": 30080}, "input": {"pfs": {"repo": "r", "glob": "/*"}}},
     "services must have a single datum"),
    ({"service": {"internal_port": 80, "external_port": 30080}, "input": {"pfs": {"repo": "r", "glob": "/"}},
      "parallelism_spec": {"constant": 2}}, "services can only be run with a constant parallelism of 1"),
    ({"service": {"internal_port": 80, "external_port": 30080}, "spout": {}}, "cannot be configured as a spout"),
])
def test_what_pachyderm_refuses_is_refused(spec: dict[str, object], error: str, tmp_path: Path) -> None:
    c = Client(settings=Settings.from_env(env={"TUSK_HOME": str(tmp_path / "home"), "TUSK_USER": "tester"}))
    try:
        c.create_repo("r")
        with pytest.raises(InvalidArgument, match=error.replace("(", r"\(").replace(")", r"\)")):
            c.create_pipeline({"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]}, **spec})
        assert c.list_pipelines() == []
    finally:
        c.close()


def test_specs_keep_their_canonical_json_and_store_the_fields_when_set() -> None:
    plain = parse_spec({"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]},
                        "input": {"pfs": {"repo": "r", "glob": "/"}}})
    assert '"spout"' not in plain.canonical_json() and '"service"' not in plain.canonical_json()
    spout = parse_spec(_spout("s", "pass", overwrite=True))
    stored = json.loads(spout.canonical_json())
    assert stored["spout"] == {"overwrite": True} and "input" not in stored
    assert parse_spec(stored).canonical_json() == spout.canonical_json()
    service = parse_spec({"pipeline": {"name": "n"}, "input": {"pfs": {"glob": "/", "repo": "input"}},
                          "service": {"externalPort": 30888, "internalPort": 8888, "type": "NodePort"},
                          "transform": {"cmd": ["start-notebook.sh"]}})
    assert json.loads(service.canonical_json())["service"] == {"external_port": 30888, "internal_port": 8888,
                                                               "type": "NodePort"}
    assert [n for n in spec_notes(service) if n.startswith("service.type: ignored")]  # Kubernetes' service type
