"""S3-enabled pipelines (``input.pfs.s3``, ``s3_out``): user code reads its input and writes its output through
the datum's S3 endpoint with boto3, as in Pachyderm, under the local runtime and the bwrap sandbox."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Backend, open_backend
from tusk import Client
from tusk.config import Settings
from tusk.errors import InvalidArgument
from tusk.pipelines.runtimes import BwrapRuntime
from tusk.s3gateway import datum_gateways

# what the datum runs: it lists and reads bucket `text` (the input, at its commit), writes to bucket `out`, and
# checks what the endpoint refuses; any failed check fails the datum, and so the job
TRANSFORM = r"""
import os, boto3, botocore.config, botocore.exceptions
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"],
                  config=botocore.config.Config(s3={"addressing_style": "path"}))
keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="text")["Contents"])
for key in keys:
    body = s3.get_object(Bucket="text", Key=key)["Body"].read()
    s3.put_object(Bucket="out", Key="upper/" + key, Body=body.upper())
s3.put_object(Bucket="out", Key="index.txt", Body="\n".join(keys).encode())
s3.copy_object(Bucket="out", Key="copied.txt", CopySource={"Bucket": "text", "Key": keys[0]})
s3.put_object(Bucket="out", Key="gone.txt", Body=b"x")
s3.delete_object(Bucket="out", Key="gone.txt")
def code(call):
    try:
        call()
    except botocore.exceptions.ClientError as exc:
        return exc.response["Error"]["Code"]
    return "no error"
assert code(lambda: s3.get_object(Bucket="out", Key="index.txt")) == "AccessDenied"  # write-only
assert code(lambda: s3.put_object(Bucket="text", Key="x", Body=b"x")) == "AccessDenied"  # read-only
assert code(lambda: s3.list_objects_v2(Bucket="master.text")) == "NoSuchBucket"  # only this datum's buckets
assert code(lambda: s3.put_object(Bucket="out", Key="../escape", Body=b"x")) == "InvalidArgument"
assert not os.path.exists("/pfs/text"), "an s3 input is not put at /pfs"
assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["text"]  # its own, no other repo's
import socket
try:  # a port of the host's loopback other than the endpoint's: the sandbox reaches none
    socket.create_connection(("127.0.0.1", int(os.environ["HOST_PORT"])), timeout=5).close()
    print("host reachable")
except OSError:
    print("host unreachable")
print("served", len(keys), "keys")
"""


def spec(runtime_python: str, host_port: int = 9, **pfs: Any) -> dict[str, Any]:
    return {"pipeline": {"name": "upper"},
            "transform": {"cmd": [runtime_python, "-c", TRANSFORM], "env": {"HOST_PORT": str(host_port)}},
            "input": {"pfs": {"repo": "text", "glob": "/", "s3": True} | pfs},
            "s3_out": True}


@pytest.fixture(params=["local", "bwrap"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Client]:
    if request.param == "bwrap" and not BwrapRuntime.available():
        pytest.skip("bubblewrap cannot make a sandbox here")
    c = Client(settings=Settings.from_env(env={"TUSK_HOME": str(tmp_path / "home"), "TUSK_RUNTIME": request.param}))
    assert c.services is not None
    c.services.use_datum_gateways(datum_gateways)  # what the CLI and `tusk server` do
    try:
        yield c
    finally:
        c.close()


def test_s3_input_and_s3_out_through_the_datums_endpoint(client: Client) -> None:
    client.create_repo("text")
    client.put_file("text@master:/a.txt", b"alpha\n")
    client.put_file("text@master:/dir/b.txt", b"beta\n")
    head = client.inspect_commit("text@master")
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        client.create_pipeline(spec(sys.executable, listener.getsockname()[1]))
    finally:
        listener.close()
    job = client.list_jobs("upper")[0]
    assert job.state == "success", (job.reason, [d.log for d in client.list_datums(job.id)])
    assert client.get_file("upper@master:/upper/a.txt") == b"ALPHA\n"
    assert client.get_file("upper@master:/upper/dir/b.txt") == b"BETA\n"
    assert client.get_file("upper@master:/index.txt") == b"a.txt\ndir/b.txt"
    assert client.get_file("upper@master:/copied.txt") == b"alpha\n"
    assert sorted(f.path for f in client.list_files("upper@master")) == ["/copied.txt", "/index.txt", "/upper"]
    out = client.inspect_commit("upper@master")
    assert out.id == job.id
    assert [(p["repo"], p["commit"]) for p in out.provenance] == [("text", head.id)]
    log = client.list_datums(job.id)[0].log
    assert "served 2 keys" in log
    sandboxed = client.services is not None and client.services.runtime.name == "bwrap"
    assert ("host unreachable" if sandboxed else "host reachable") in log, log  # the bwrap sandbox has no network
    client.put_file("text@master:/c.txt", b"gamma\n")  # a new input commit: the bucket is that commit
    assert client.get_file("upper@master:/index.txt") == b"a.txt\nc.txt\ndir/b.txt"


def test_an_s3_input_needs_glob_root(client: Client) -> None:
    client.create_repo("text")
    with pytest.raises(InvalidArgument, match=r"input\.pfs\.s3: glob is '/\*': .* must be \"/\""):
        client.create_pipeline(spec(sys.executable, glob="/*"))
    with pytest.raises(InvalidArgument, match=r"input\.cross\[1\]\.pfs\.s3: glob is '/\*'"):
        client.create_pipeline({"pipeline": {"name": "x"}, "transform": {"cmd": ["true"]}, "input": {"cross": [
            {"pfs": {"repo": "text", "glob": "/*"}}, {"pfs": {"repo": "text", "name": "t2", "glob": "/*",
                                                              "s3": True}}]}})


def test_without_a_gateway_the_datum_says_why(tmp_path: Path) -> None:
    """An embedded SDK client is not given the gateway (the SDK may not import it): the job fails, saying so."""
    c = Client(settings=Settings.from_env(env={"TUSK_HOME": str(tmp_path / "home"), "TUSK_RUNTIME": "local"}))
    try:
        c.create_repo("text")
        c.put_file("text@master:/a.txt", b"alpha\n")
        c.create_pipeline(spec(sys.executable))
        job = c.list_jobs("upper")[0]
        assert job.state == "failure"
        assert "need the S3 gateway" in (job.reason or "")
    finally:
        c.close()


@pytest.fixture(params=["sqlite-local", "remote"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from open_backend(request.param, request, tmp_path)


def test_the_cli_and_the_server_serve_s3_pipelines(backend: Backend, tmp_path: Path) -> None:
    """Embedded, the CLI runs the job; remote, the server's scheduler does (in its configured runtime)."""
    env = backend.subprocess_env() | {"TUSK_RUNTIME": "local"}

    def tusk(*args: str, stdin: str | None = None) -> str:
        proc = subprocess.run([sys.executable, "-m", "tusk", *args], input=stdin, capture_output=True, text=True,
                              env=env, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    path = tmp_path / "upper.json"
    path.write_text(json.dumps(spec(sys.executable)))
    tusk("create", "repo", "text")
    tusk("put", "file", "text@master:/a.txt", "-f", "-", stdin="alpha\n")
    tusk("create", "pipeline", "-f", str(path))
    assert tusk("get", "file", "upper@master:/upper/a.txt") == "ALPHA\n"
