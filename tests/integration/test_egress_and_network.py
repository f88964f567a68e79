"""`egress` (each output commit copied to an object store once its job succeeds) and the sandbox's network:
none by default, the host's when the pipeline's metadata asks for it. Specs as Pachyderm's docs write them."""

from __future__ import annotations

import http.server
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tusk.config import Settings
from tusk.errors import InvalidArgument
from tusk.pipelines.runtimes import BwrapRuntime
from tusk.sdk import Client


def copy_spec(**extra: Any) -> dict[str, Any]:
    return {"pipeline": {"name": "copy"}, "transform": {"cmd": ["sh", "-c", "cp -r /pfs/data/* /pfs/out/"]},
            "input": {"pfs": {"repo": "data", "glob": "/*"}}, **extra}


def test_egress_to_a_directory_copies_every_output_commit(tmp_path: Path) -> None:
    target = tmp_path / "egress" / "out"
    with Client(home=tmp_path / "home") as c:
        c.create_repo("data")
        c.put_file("data@master:/a.txt", b"alpha")
        c.create_pipeline(copy_spec(egress={"URL": f"file://{target}"}))
        assert c.list_jobs("copy")[0].state == "success"
        assert (target / "a.txt").read_bytes() == b"alpha"
        c.put_file("data@master:/sub/b.txt", b"beta")
        assert (target / "sub" / "b.txt").read_bytes() == b"beta"
        assert c.inspect_pipeline("copy").spec["egress"] == {"URL": f"file://{target}"}


def test_egress_to_s3_with_both_spellings_and_a_failing_target(tmp_path: Path, s3_endpoint: str) -> None:
    import boto3

    bucket = f"egress-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=bucket)
    settings = Settings.for_home(tmp_path / "home", TUSK_S3_ENDPOINT_URL=s3_endpoint)
    with Client(settings=settings) as c:
        c.create_repo("data")
        c.put_file("data@master:/a.txt", b"alpha")
        c.create_pipeline(copy_spec(egress={"URL": f"s3://{bucket}/results"}))  # Pachyderm 1.x and 2.x
        assert s3.get_object(Bucket=bucket, Key="results/a.txt")["Body"].read() == b"alpha"
        c.create_pipeline(copy_spec(pipeline={"name": "copy2"},
                                    egress={"object_storage": {"url": f"s3://{bucket}/v2"}}))  # Pachyderm 2.x
        assert s3.get_object(Bucket=bucket, Key="v2/a.txt")["Body"].read() == b"alpha"
        # a target that cannot be written: the output commit lands, the job fails saying where egress stopped
        c.create_pipeline(copy_spec(pipeline={"name": "nowhere"}, egress={"URL": "s3://Not_A_Bucket!/x"}))
        job = c.list_jobs("nowhere")[0]
        assert job.state == "failure" and "egress to s3://Not_A_Bucket!/x stopped after 0 file(s)" in (
            job.reason or ""), job.reason
        assert c.get_file("nowhere@master:/a.txt") == b"alpha"
        with pytest.raises(Exception, match="did not succeed"):
            c.raise_for_jobs()


def test_egress_targets_tusk_cannot_write_are_refused_by_name(tmp_path: Path) -> None:
    with Client(home=tmp_path / "home") as c:
        c.create_repo("data")
        with pytest.raises(InvalidArgument, match=r"egress.*gs scheme is not supported"):
            c.create_pipeline(copy_spec(egress={"URL": "gs://bucket/dir"}))
        with pytest.raises(InvalidArgument, match=r"egress\.sql_database: egress to a SQL database is not supported"):
            c.create_pipeline(copy_spec(egress={"sql_database": {"url": "snowflake://x", "file_format": {
                "type": "CSV"}}}))
        assert c.list_pipelines() == []


@pytest.fixture
def host_server() -> Iterator[int]:
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello from the host")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.mark.skipif(not BwrapRuntime.available(), reason="needs bubblewrap (user namespaces)")
def test_the_sandbox_has_no_network_unless_the_pipeline_asks(tmp_path: Path, host_server: int) -> None:
    fetch = ("python3 -c \"import urllib.request; print(urllib.request.urlopen("
             f"'http://127.0.0.1:{host_server}', timeout=5).read().decode())\" > /pfs/out/got")
    spec = {"pipeline": {"name": "fetch"}, "transform": {"cmd": ["sh", "-c", fetch]},
            "input": {"pfs": {"repo": "data", "glob": "/"}}, "datum_tries": 1}
    with Client(settings=Settings.for_home(tmp_path / "home", TUSK_RUNTIME="bwrap")) as c:
        c.create_repo("data")
        c.put_file("data@master:/a", b"x")
        c.create_pipeline(spec)
        failed = c.list_jobs("fetch")[0]  # its own, empty network namespace
        # the error names the program and ends with what it printed last
        assert failed.state == "failure" and "sh exited with code 1: " in (failed.reason or "")
        assert "Connection refused" in (failed.reason or ""), failed.reason
        lookup = {"pipeline": {"name": "lookup"}, "datum_tries": 1, "input": {"pfs": {"repo": "data", "glob": "/"}},
                  "transform": {"cmd": ["python3", "-c", "import socket; socket.getaddrinfo('tusk.example', 80)"]}}
        c.create_pipeline(lookup)
        reason = c.list_jobs("lookup")[0].reason or ""
        assert "the sandbox has no network" in reason and '"tusk.io/network": "host"' in reason, reason
        c.create_pipeline(spec | {"pipeline": {"name": "online"},
                                  "metadata": {"annotations": {"tusk.io/network": "host"}}})
        job = c.list_jobs("online")[0]
        assert job.state == "success", job.reason
        assert c.get_file("online@master:/got") == b"hello from the host\n"
        assert c.inspect_pipeline("online").spec["metadata"] == {"annotations": {"tusk.io/network": "host"},
                                                                 "labels": {}}
