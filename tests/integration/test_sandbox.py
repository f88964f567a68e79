"""The bwrap runtime: literal /pfs, read-only inputs, writable /pfs/out, no network."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tusk import Client
from tusk.config import Settings
from tusk.pipelines.runtimes import BwrapRuntime

pytestmark = pytest.mark.skipif(not BwrapRuntime.available(), reason="bubblewrap is not installed")

PROBE = f"""
import os, socket, sys
out = open("/pfs/out/report", "w")
out.write("pfs=" + ",".join(sorted(os.listdir("/pfs"))) + "\\n")
out.write("input=" + open("/pfs/text/a.txt").read())
try:
    open("/pfs/text/a.txt", "a").write("tamper")
    out.write("inputs=writable\\n")
except OSError:
    out.write("inputs=read-only\\n")
try:
    open("{Path.home()}/tusk-sandbox-escape", "w")
    out.write("host=writable\\n")
except OSError:
    out.write("host=read-only\\n")
try:
    socket.create_connection(("127.0.0.1", 5432), timeout=2)
    out.write("network=yes\\n")
except OSError:
    out.write("network=no\\n")
out.write("env=" + os.environ["text"] + "\\n")
"""


def test_sandbox_isolation(tmp_path: Path) -> None:
    with Client(settings=Settings.for_home(tmp_path / "home", TUSK_RUNTIME="bwrap")) as c:
        assert c.services.jobs.worker.runtime.name == "bwrap"
        c.create_repo("text")
        c.put_file("text@master:/a.txt", b"hello\n")
        code = tmp_path / "code"  # code lives beside its spec; the sandbox binds that directory read-only
        code.mkdir()
        (code / "probe.py").write_text(PROBE)
        (code / "probe.json").write_text(json.dumps({
            "pipeline": {"name": "probe"}, "transform": {"cmd": [sys.executable, "probe.py"]},
            "input": {"pfs": {"repo": "text", "glob": "/*"}}}))
        c.create_pipeline(code / "probe.json")
        job = c.list_jobs("probe")[0]
        assert job.state == "success", c.list_datums(job.id)[0].log
        report = dict(line.split("=", 1) for line in c.get_file("probe@master:/report").decode().splitlines())
    assert report == {"pfs": "out,text", "input": "hello", "inputs": "read-only", "host": "read-only",
                      "network": "no", "env": "/pfs/text/a.txt"}
    assert not (Path.home() / "tusk-sandbox-escape").exists()


def test_auto_prefers_bwrap(tmp_path: Path) -> None:
    with Client(settings=Settings.for_home(tmp_path / "home", TUSK_RUNTIME="auto")) as c:
        assert c.services.jobs.worker.runtime.name == "bwrap"
        assert c.services.runtime_note is None


def test_host_paths_named_in_cmd_are_not_bound(tmp_path: Path) -> None:
    """A program named by its host path is not made visible (only the pipeline's code is); the error names it."""
    tool = tmp_path / "prefix" / "bin" / "shout"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\necho LOUD > /pfs/out/shout\n")
    tool.chmod(0o755)
    with Client(settings=Settings.for_home(tmp_path / "home", TUSK_RUNTIME="bwrap")) as c:
        c.create_repo("in")
        c.put_file("in@master:/x", b"x")
        c.create_pipeline({"pipeline": {"name": "loud"}, "transform": {"cmd": [str(tool)]},
                           "input": {"pfs": {"repo": "in", "glob": "/*"}}, "datum_tries": 1})
        job = c.list_jobs("loud")[0]
        assert job.state == "failure"
        datum = c.list_datums(job.id)[0]
        assert f"{tool} exited with code 127" in (datum.error or "")
        assert "not found" in datum.log


def _gather(tmp_path: Path, cmd: str) -> tuple[Client, str]:
    c = Client(settings=Settings.for_home(tmp_path / "home", TUSK_RUNTIME="bwrap"))
    c.create_repo("models")
    with c.modify("models@master") as m:
        m.put_bytes("/income/model.joblib", bytes(range(256)) * 2048)
        m.put_bytes("/income/metrics.json", b'{"accuracy": 0.85}')
    c.create_pipeline({"pipeline": {"name": "gather"}, "transform": {"cmd": ["sh", "-c", cmd]},
                       "input": {"pfs": {"repo": "models", "glob": "/", "empty_files": True}}})
    return c, c.list_jobs("gather")[0].id


def test_sandboxed_symlinks_to_inputs_are_stored_by_reference(tmp_path: Path) -> None:
    """Inside the sandbox a link says /pfs/...; on the host that is the datum's directory, not /pfs."""
    c, job = _gather(tmp_path, "ln -s /pfs/models/income /pfs/out/income && "
                               "ln -s /pfs/models/income/model.joblib /pfs/out/latest.joblib")
    with c:
        assert c.inspect_job(job).state == "success"
        src = c.inspect_file("models@master:/income/model.joblib")
        assert c.inspect_file("gather@master:/income/model.joblib").digest == src.digest
        assert c.inspect_file("gather@master:/latest.joblib").digest == src.digest
        assert c.get_file("gather@master:/income/metrics.json") == b'{"accuracy": 0.85}'  # empty_files: not read
        assert c.list_datums(job)[0].upload_bytes == 0


@pytest.mark.parametrize(("target", "message"), [("/etc/hostname", "outside /pfs"),
                                                  ("/pfs/models/nothing-here", "does not exist")])
def test_sandboxed_symlinks_outside_pfs_or_dangling_fail_the_datum(tmp_path: Path, target: str,
                                                                   message: str) -> None:
    c, job = _gather(tmp_path, f"ln -s {target} /pfs/out/x")
    with c:
        info = c.inspect_job(job)
        assert info.state == "failure"
        assert message in (c.list_datums(job)[0].error or "")


def test_a_server_with_auth_refuses_to_run_user_code_unsandboxed(tmp_path: Path) -> None:
    from tusk.errors import InvalidArgument
    from tusk.root.server import ServeOptions, require_sandbox

    local = Settings.for_home(tmp_path / "home", TUSK_RUNTIME="local")
    with pytest.raises(InvalidArgument, match=r"without a sandbox .*--allow-unsandboxed"):
        require_sandbox(local, ServeOptions(auth=True))
    require_sandbox(local, ServeOptions(auth=True, allow_unsandboxed=True))  # an admin's explicit choice
    require_sandbox(local, ServeOptions(auth=False))  # no other users: nothing to isolate them from
    require_sandbox(Settings.for_home(tmp_path / "home", TUSK_RUNTIME="bwrap"), ServeOptions(auth=True))
