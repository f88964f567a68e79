"""The S3 gateway with real S3 clients: boto3 (every operation, multipart of 100 MiB, Range gets), the AWS CLI
against a real `tusk server --s3-port`, SigV4 with keys derived from tokens, and aws-chunked bodies.

Each write is checked to land as exactly one commit, and each refused write to leave nothing behind."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tusk.config import Settings
from tusk.errors import BranchNotFound
from tusk.root.server import serve_in_thread
from tusk.s3gateway import create_s3_app, s3_credentials, sigv4
from tusk.s3gateway.listing import list_page
from tusk.sdk import Client
from tusk.services import Services
from tusk.versioning.records import FileInfo

MiB = 1 << 20


# -- helpers ------------------------------------------------------------------------------------------------
def s3_client(url: str, key: str = "anyone", secret: str = "anything", **config: Any) -> Any:
    return boto3.client("s3", endpoint_url=url, aws_access_key_id=key, aws_secret_access_key=secret,
                        region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config))


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def commits(c: Client, ref: str) -> int:
    try:
        return len(c.list_commits(ref))
    except BranchNotFound:
        return 0


@contextmanager
def gateway(settings: Settings, auth: bool = False) -> Iterator[str]:
    app = create_s3_app(Services.open(settings), auth=auth, close_services=True)
    with serve_in_thread(app) as url:
        yield url


@dataclass
class Store:
    url: str
    client: Client  # embedded, on the store the gateway serves
    settings: Settings

    def s3(self, **config: Any) -> Any:
        return s3_client(self.url, **config)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A gateway without auth on SQLite + local objects (the gateway's logic does not depend on the store; the
    round trips run on both backends below)."""
    settings = Settings.for_home(tmp_path / "home", TUSK_USER="tester")
    with Client(settings=settings) as c, gateway(settings) as url:
        c.create_repo("data")
        c.put_file("data@master:/a.txt", b"alpha")
        yield Store(url, c, settings)


def write_random(path: Path, size: int, seed: int = 1) -> str:
    """A file of ``size`` pseudo-random bytes, written piece by piece; its SHA-256."""
    h = hashlib.sha256()
    block = hashlib.sha256(str(seed).encode()).digest() * (MiB // 32)
    with open(path, "wb") as fh:
        written = 0
        while written < size:
            piece = bytes(b ^ (written // MiB % 251) for b in block[:16]) + block[16: min(MiB, size - written)]
            fh.write(piece)
            h.update(piece)
            written += len(piece)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while data := fh.read(MiB):
            h.update(data)
    return h.hexdigest()


# -- signatures (pure) --------------------------------------------------------------------------------------
def test_chunk_signatures_match_the_aws_documentation_example() -> None:
    """The worked example of AWS's "Signature Calculations for the Authorization Header: Transferring Payload
    in Multiple Chunks": the seed signature and the three chunk signatures."""
    headers = {"content-encoding": ["aws-chunked"], "content-length": ["66824"], "host": ["s3.amazonaws.com"],
               "x-amz-content-sha256": [sigv4.STREAMING_SIGNED], "x-amz-date": ["20130524T000000Z"],
               "x-amz-decoded-content-length": ["66560"], "x-amz-storage-class": ["REDUCED_REDUNDANCY"]}
    canonical = sigv4.canonical_request("PUT", "/examplebucket/chunkObject.txt", [], headers, sorted(headers),
                                        sigv4.STREAMING_SIGNED)
    key = sigv4.signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3")
    scope = "20130524/us-east-1/s3/aws4_request"
    seed = hmac.new(key, sigv4.string_to_sign("20130524T000000Z", scope, canonical).encode(),
                    hashlib.sha256).hexdigest()
    assert seed == "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    sigs = [seed]
    for data in (b"a" * 65536, b"a" * 1024, b""):
        sigs.append(sigv4.chunk_signature(key, "20130524T000000Z", scope, sigs[-1], hashlib.sha256(data).hexdigest()))
    assert sigs[1:] == ["ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
                        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
                        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"]


def test_listing_walks_keys_in_s3_byte_order() -> None:
    tree = {"/": ["/a", "/a.txt", "/a0"], "/a": ["/a/b", "/a/c.txt"], "/a/b": ["/a/b/d"]}
    files = {"/a.txt", "/a0", "/a/c.txt", "/a/b/d"}

    def list_dir(d: str) -> list[FileInfo]:
        return [FileInfo(p, "file" if p in files else "dir", 1, "x") for p in tree.get(d, [])]

    keys = [f.path[1:] for f in list_page(list_dir).contents]
    assert keys == sorted(keys) == ["a.txt", "a/b/d", "a/c.txt", "a0"]
    page = list_page(list_dir, delimiter="/")
    assert ([f.path for f in page.contents], page.prefixes) == (["/a.txt", "/a0"], ["a/"])
    first = list_page(list_dir, max_keys=2)
    rest = list_page(list_dir, after=first.last)
    assert first.truncated and [f.path[1:] for f in first.contents + rest.contents] == keys


# -- boto3, every operation ---------------------------------------------------------------------------------
def test_buckets_are_branches_and_listing_pages_like_s3(store: Store) -> None:
    c, s3 = store.client, store.s3()
    c.create_branch("data@dev")
    with c.modify("data@master") as m:
        for i in range(25):
            m.put_bytes(f"/logs/2024/{i:02d}.log", b"x" * i)
        m.put_bytes("/logs.txt", b"l")
        m.put_bytes("/models/m.bin", b"m")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert names == ["dev.data", "master.data"]
    s3.head_bucket(Bucket="master.data")
    with pytest.raises(ClientError) as err:
        s3.head_bucket(Bucket="nope.data")
    assert code_of(err) == "404"
    with pytest.raises(ClientError) as err:
        s3.list_objects_v2(Bucket="master.nothere")
    assert code_of(err) == "NoSuchBucket"
    assert s3.list_objects_v2(Bucket="dev.data")["KeyCount"] == 0  # an empty branch: an empty bucket

    top = s3.list_objects_v2(Bucket="master.data", Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["a.txt", "logs.txt"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["logs/", "models/"]
    page = s3.list_objects_v2(Bucket="master.data", Prefix="logs/2024/", MaxKeys=10)
    assert page["IsTruncated"] and page["KeyCount"] == 10
    keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(
        Bucket="master.data", Prefix="logs/2024/", PaginationConfig={"PageSize": 7}) for o in p["Contents"]]
    assert keys == [f"logs/2024/{i:02d}.log" for i in range(25)]
    every = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(
        Bucket="master.data", PaginationConfig={"PageSize": 4}) for o in p.get("Contents", [])]
    assert every == sorted(every) and len(every) == 28 and every.index("logs.txt") < every.index("logs/2024/00.log")
    partial = s3.list_objects_v2(Bucket="master.data", Prefix="lo", Delimiter="/")
    assert ([o["Key"] for o in partial["Contents"]], [p["Prefix"] for p in partial["CommonPrefixes"]]) == (
        ["logs.txt"], ["logs/"])
    after = s3.list_objects_v2(Bucket="master.data", StartAfter="logs/2024/20.log", Prefix="logs/")
    assert [o["Key"] for o in after["Contents"]] == [f"logs/2024/{i}.log" for i in range(21, 25)]
    v1 = s3.list_objects(Bucket="master.data", Prefix="logs/2024/", MaxKeys=5)
    assert v1["IsTruncated"] and len(v1["Contents"]) == 5
    v1b = s3.list_objects(Bucket="master.data", Prefix="logs/2024/", Marker=v1["Contents"][-1]["Key"])
    assert [o["Key"] for o in v1["Contents"] + v1b["Contents"]] == keys
    for o in top["Contents"]:
        assert o["ETag"].strip('"') == c.inspect_file(f"data@master:/{o['Key']}").digest
    assert s3.get_bucket_location(Bucket="master.data")["LocationConstraint"] is None


def test_listing_pages_show_one_commit_while_the_branch_moves(store: Store) -> None:
    c, s3 = store.client, store.s3()
    with c.modify("data@master") as m:
        for i in range(6):
            m.put_bytes(f"/k{i}", b"v")
    first = s3.list_objects_v2(Bucket="master.data", MaxKeys=3)
    c.put_file("data@master:/k3", b"changed")
    c.delete_file("data@master:/k5")
    rest = s3.list_objects_v2(Bucket="master.data", MaxKeys=10, ContinuationToken=first["NextContinuationToken"])
    assert [o["Key"] for o in rest["Contents"]] == ["k2", "k3", "k4", "k5"]
    assert rest["Contents"][1]["Size"] == 1
    with pytest.raises(ClientError) as err:
        s3.list_objects_v2(Bucket="master.data", ContinuationToken="bogus")
    assert code_of(err) == "InvalidArgument"


@pytest.fixture(params=["sqlite-local", "postgres-s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    from tests.conftest import open_backend

    for backend in open_backend(request.param, request, tmp_path):
        settings = backend.settings()
        with Client(settings=settings) as c, gateway(settings) as url:
            c.create_repo("data")
            yield Store(url, c, settings)


def test_put_head_get_and_ranges_round_trip_as_one_commit_each(any_store: Store) -> None:
    c, s3 = any_store.client, any_store.s3()
    payload = os.urandom(3 * MiB + 17)
    put = s3.put_object(Bucket="master.data", Key="dir/blob.bin", Body=payload)
    assert commits(c, "data@master") == 1
    head = c.inspect_commit("data@master")
    assert put["VersionId"] == head.id and put["ETag"].strip('"') == c.inspect_file("data@master:/dir/blob.bin").digest
    assert c.get_file("data@master:/dir/blob.bin") == payload
    h = s3.head_object(Bucket="master.data", Key="dir/blob.bin")
    assert (h["ContentLength"], h["ETag"], h["VersionId"]) == (len(payload), put["ETag"], head.id)
    assert abs((h["LastModified"] - (head.finished_at or head.started_at)).total_seconds()) < 1
    assert s3.get_object(Bucket="master.data", Key="dir/blob.bin")["Body"].read() == payload
    part = s3.get_object(Bucket="master.data", Key="dir/blob.bin", Range="bytes=1048570-2097160")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["ContentRange"] == f"bytes 1048570-2097160/{len(payload)}"
    assert part["Body"].read() == payload[1048570:2097161]
    assert s3.get_object(Bucket="master.data", Key="dir/blob.bin", Range="bytes=-10")["Body"].read() == payload[-10:]
    assert s3.get_object(Bucket="master.data", Key="dir/blob.bin", Range="bytes=3145700-")["Body"].read() == \
        payload[3145700:]
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket="master.data", Key="dir/blob.bin", Range=f"bytes={len(payload)}-")
    assert code_of(err) == "InvalidRange" and err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket="master.data", Key="dir/missing.bin")
    assert code_of(err) == "NoSuchKey"
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket="master.data", Key="dir")  # a directory is no object
    assert code_of(err) == "NoSuchKey"
    s3.put_object(Bucket="master.data", Key="dir/blob.bin", Body=b"v2")
    assert commits(c, "data@master") == 2
    old = s3.get_object(Bucket="master.data", Key="dir/blob.bin", VersionId=head.id)  # versionId: a commit
    assert old["Body"].read() == payload
    empty = s3.put_object(Bucket="master.data", Key="empty", Body=b"")
    assert s3.get_object(Bucket="master.data", Key="empty")["Body"].read() == b"" and empty["VersionId"]


def test_multipart_upload_of_100_mib_streams_and_lands_as_one_commit(any_store: Store, tmp_path: Path) -> None:
    c, s3 = any_store.client, any_store.s3()
    src = tmp_path / "big.bin"
    digest = write_random(src, 100 * MiB)
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=2)
    before = commits(c, "data@master")
    tracemalloc.start()  # client and server share this process: what either holds is counted
    try:
        s3.upload_file(str(src), "master.data", "big.bin", Config=config)
        upload_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        body = s3.get_object(Bucket="master.data", Key="big.bin")["Body"]
        streamed = hashlib.sha256()
        while data := body.read(MiB):
            streamed.update(data)
        get_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert commits(c, "data@master") == before + 1
    assert streamed.hexdigest() == digest
    assert c.inspect_file("data@master:/big.bin").size_bytes == 100 * MiB
    # bounded by the parts and chunks in flight (16 of them each way in the store), not by the object's size
    assert upload_peak < 64 * MiB, f"upload: peak Python memory {upload_peak / MiB:.0f} MiB"
    assert get_peak < 64 * MiB, f"get: peak Python memory {get_peak / MiB:.0f} MiB"
    out = tmp_path / "back.bin"
    s3.download_file("master.data", "big.bin", str(out), Config=config)  # ranged GETs, in parallel
    assert sha256_file(out) == digest
    with open(src, "rb") as fh:
        fh.seek(77 * MiB + 5)
        expected = fh.read(MiB + 3)
    got = s3.get_object(Bucket="master.data", Key="big.bin", Range=f"bytes={77 * MiB + 5}-{78 * MiB + 7}")
    assert got["Body"].read() == expected
    assert not list((any_store.settings.home / "tmp" / "s3-uploads").iterdir())  # the spool is cleaned up


def test_multipart_parts_abort_and_mistakes(store: Store) -> None:
    c, s3 = store.client, store.s3()
    before = commits(c, "data@master")
    up = s3.create_multipart_upload(Bucket="master.data", Key="mp/obj")["UploadId"]
    parts = []
    chunks = [os.urandom(5 * MiB), os.urandom(5 * MiB), b"tail"]
    for n, data in enumerate(chunks, 1):
        r = s3.upload_part(Bucket="master.data", Key="mp/obj", UploadId=up, PartNumber=n, Body=data)
        assert r["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    listed = s3.list_parts(Bucket="master.data", Key="mp/obj", UploadId=up)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed] == [(1, 5 * MiB), (2, 5 * MiB), (3, 4)]
    with pytest.raises(ClientError) as err:
        s3.complete_multipart_upload(Bucket="master.data", Key="mp/obj", UploadId=up, MultipartUpload={
            "Parts": [parts[0], {"PartNumber": 2, "ETag": '"0000"'}]})
    assert code_of(err) == "InvalidPart"
    with pytest.raises(ClientError) as err:
        s3.complete_multipart_upload(Bucket="master.data", Key="mp/obj", UploadId=up,
                                     MultipartUpload={"Parts": [parts[1], parts[0]]})
    assert code_of(err) == "InvalidPartOrder"
    assert commits(c, "data@master") == before  # nothing landed yet
    done = s3.complete_multipart_upload(Bucket="master.data", Key="mp/obj", UploadId=up,
                                        MultipartUpload={"Parts": parts})
    assert commits(c, "data@master") == before + 1 and done["VersionId"] == c.inspect_commit("data@master").id
    assert c.get_file("data@master:/mp/obj") == b"".join(chunks)
    with pytest.raises(ClientError) as err:
        s3.list_parts(Bucket="master.data", Key="mp/obj", UploadId=up)
    assert code_of(err) == "NoSuchUpload"

    gone = s3.create_multipart_upload(Bucket="master.data", Key="mp/aborted")["UploadId"]
    s3.upload_part(Bucket="master.data", Key="mp/aborted", UploadId=gone, PartNumber=1, Body=b"x" * 1000)
    s3.abort_multipart_upload(Bucket="master.data", Key="mp/aborted", UploadId=gone)
    assert commits(c, "data@master") == before + 1
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket="master.data", Key="mp/aborted")
    assert code_of(err) == "404"
    with pytest.raises(ClientError) as err:
        s3.upload_part(Bucket="master.data", Key="mp/aborted", UploadId=gone, PartNumber=2, Body=b"y")
    assert code_of(err) == "NoSuchUpload"
    assert not list((store.settings.home / "tmp" / "s3-uploads").iterdir())

    copy = s3.create_multipart_upload(Bucket="master.data", Key="mp/copied")["UploadId"]
    r = s3.upload_part_copy(Bucket="master.data", Key="mp/copied", UploadId=copy, PartNumber=1,
                            CopySource={"Bucket": "master.data", "Key": "mp/obj"}, CopySourceRange="bytes=10-5242889")
    s3.complete_multipart_upload(Bucket="master.data", Key="mp/copied", UploadId=copy, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": r["CopyPartResult"]["ETag"]}]})
    assert c.get_file("data@master:/mp/copied") == b"".join(chunks)[10:5242890]


def test_delete_copy_and_batch_delete_each_land_as_one_commit(store: Store) -> None:
    c, s3 = store.client, store.s3()
    c.create_repo("other")
    with c.modify("data@master") as m:
        for i in range(5):
            m.put_bytes(f"/batch/{i}", str(i).encode())
        m.put_bytes("/dir/keep", b"k")
    n = commits(c, "data@master")
    r = s3.delete_object(Bucket="master.data", Key="a.txt")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204 and commits(c, "data@master") == n + 1
    s3.delete_object(Bucket="master.data", Key="a.txt")  # not there: S3 says yes, and nothing is committed
    s3.delete_object(Bucket="master.data", Key="dir")  # a directory is not an object: never deleted
    assert commits(c, "data@master") == n + 1 and c.get_file("data@master:/dir/keep") == b"k"
    out = s3.delete_objects(Bucket="master.data", Delete={"Objects": [
        {"Key": "batch/0"}, {"Key": "batch/1"}, {"Key": "batch/3"}, {"Key": "never/was"}]})
    assert sorted(d["Key"] for d in out["Deleted"]) == ["batch/0", "batch/1", "batch/3", "never/was"]
    assert commits(c, "data@master") == n + 2
    assert [f.path for f in c.list_files("data@master:/batch")] == ["/batch/2", "/batch/4"]

    copied = s3.copy_object(Bucket="master.data", Key="copies/two", CopySource={"Bucket": "master.data",
                                                                                 "Key": "batch/2"})
    assert commits(c, "data@master") == n + 3 and c.get_file("data@master:/copies/two") == b"2"
    assert copied["CopyObjectResult"]["ETag"].strip('"') == c.inspect_file("data@master:/batch/2").digest
    s3.copy_object(Bucket="master.other", Key="from-data", CopySource="master.data/batch/4")  # across repos
    assert c.get_file("other@master:/from-data") == b"4" and commits(c, "other@master") == 1
    with pytest.raises(ClientError) as err:
        s3.copy_object(Bucket="master.data", Key="x", CopySource={"Bucket": "master.data", "Key": "batch/0"})
    assert code_of(err) == "NoSuchKey"


def test_commit_buckets_are_read_only(store: Store) -> None:
    c, s3 = store.client, store.s3()
    first = c.inspect_commit("data@master").id
    c.put_file("data@master:/a.txt", b"beta")
    for bucket in (f"{first}.data", f"{first[:8]}.data"):
        assert s3.get_object(Bucket=bucket, Key="a.txt")["Body"].read() == b"alpha"
        assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["a.txt"]
    n = commits(c, "data@master")
    for attempt in (lambda: s3.put_object(Bucket=f"{first}.data", Key="b.txt", Body=b"x"),
                    lambda: s3.delete_object(Bucket=f"{first}.data", Key="a.txt"),
                    lambda: s3.create_multipart_upload(Bucket=f"{first}.data", Key="b"),
                    lambda: s3.copy_object(Bucket=f"{first}.data", Key="c", CopySource="master.data/a.txt")):
        with pytest.raises(ClientError) as err:
            attempt()
        assert code_of(err) == "AccessDenied"
        assert "read-only" in err.value.response["Error"]["Message"]
    assert commits(c, "data@master") == n
    with pytest.raises(ClientError) as err:
        s3.list_objects_v2(Bucket="0123456789abcdef0123456789abcdef.data")
    assert code_of(err) == "NoSuchBucket"


def test_create_and_delete_bucket(store: Store) -> None:
    c, s3 = store.client, store.s3()
    s3.create_bucket(Bucket="staging.data")  # a branch of an existing repo
    s3.create_bucket(Bucket="master.fresh")  # a new repo, and its branch
    assert {b.name for b in c.list_branches("data")} == {"master", "staging"}
    assert [b.name for b in c.list_branches("fresh")] == ["master"]
    with pytest.raises(ClientError) as err:
        s3.create_bucket(Bucket="staging.data")
    assert code_of(err) == "BucketAlreadyOwnedByYou"
    with pytest.raises(ClientError) as err:
        s3.delete_bucket(Bucket="master.data")
    assert code_of(err) == "BucketNotEmpty"
    s3.delete_bucket(Bucket="staging.data")
    assert {b.name for b in c.list_branches("data")} == {"master"}


def test_errors_are_s3_xml_documents(store: Store) -> None:
    with httpx.Client(base_url=store.url) as h:
        r = h.post("/master.data/a.txt")
        assert r.status_code == 405 and "<Code>MethodNotAllowed</Code>" in r.text and "<RequestId>" in r.text
        r = h.get("/master.data/a.txt", params={"acl": ""})
        assert r.status_code == 501 and "<Code>NotImplemented</Code>" in r.text
        r = h.put("/master.data", params={"versioning": ""}, content=b"<VersioningConfiguration/>")
        assert r.status_code == 501 and "<Code>NotImplemented</Code>" in r.text
        r = h.get("/master.data", params={"max-keys": "many"})
        assert r.status_code == 400 and "<Code>InvalidArgument</Code>" in r.text
        r = h.get("/master.data/nope")
        assert r.status_code == 404 and "<Code>NoSuchKey</Code>" in r.text and "<Key>nope</Key>" in r.text
        assert r.headers["content-type"] == "application/xml"
        r = h.put("/master.data/x", content=b"abc", headers={"Content-MD5": base64.b64encode(b"0" * 16).decode()})
        assert r.status_code == 400 and "<Code>BadDigest</Code>" in r.text
        r = h.put("/master.data/x", content=b"abc", headers={"x-amz-checksum-crc32": "AAAAAA=="})
        assert "<Code>BadDigest</Code>" in r.text
        r = h.put("/master.data/../x", content=b"abc")
        assert r.status_code in (400, 404)
        tag = f'"{store.client.inspect_file("data@master:/a.txt").digest}"'
        r = h.get("/master.data/a.txt", headers={"If-None-Match": tag})
        assert r.status_code == 304
        ok = h.put("/master.data/x", content=b"abc", headers={
            "Content-MD5": base64.b64encode(hashlib.md5(b"abc").digest()).decode(),
            "x-amz-checksum-crc32": base64.b64encode(zlib.crc32(b"abc").to_bytes(4, "big")).decode()})
        assert ok.status_code == 200 and ok.headers["x-amz-checksum-crc32"]
    assert store.client.get_file("data@master:/x") == b"abc"
    assert commits(store.client, "data@master") == 2  # the seed and the one good put


def test_unsigned_trailer_bodies_are_decoded_and_checked(store: Store) -> None:
    """STREAMING-UNSIGNED-PAYLOAD-TRAILER, as botocore sends it over TLS, built by botocore itself."""
    from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

    data = os.urandom(200_000)
    body = AwsChunkedWrapper(io.BytesIO(data), checksum_cls=Crc32Checksum, checksum_name="x-amz-checksum-crc32",
                             chunk_size=65536).read()
    headers = {"x-amz-content-sha256": sigv4.STREAMING_UNSIGNED_TRAILER, "Content-Encoding": "aws-chunked",
               "x-amz-trailer": "x-amz-checksum-crc32", "x-amz-decoded-content-length": str(len(data))}
    with httpx.Client(base_url=store.url) as h:
        r = h.put("/master.data/trailed", content=body, headers=headers)
        assert r.status_code == 200, r.text
        assert store.client.get_file("data@master:/trailed") == data
        n = commits(store.client, "data@master")
        bad = body.replace(data[:100], bytes(100), 1)
        r = h.put("/master.data/trailed", content=bad, headers=headers)
        assert r.status_code == 400 and "<Code>BadDigest</Code>" in r.text
        r = h.put("/master.data/trailed", content=body[:-40], headers=headers)
        assert r.status_code == 400 and "<Code>IncompleteBody</Code>" in r.text
    assert commits(store.client, "data@master") == n


# -- auth ---------------------------------------------------------------------------------------------------
@dataclass
class Cluster:
    url: str
    keys: dict[str, tuple[str, str]]
    root: Client


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    settings = Settings.for_home(tmp_path / "server", TUSK_USER="server")
    with Client(settings=settings) as root:
        _, root_token = root.activate_auth("root")
        tokens = {"root": root_token}
        for user in ("rita", "wally", "stranger"):
            _, tokens[user] = root.create_token(user)
        root.create_repo("data")
        root.put_file("data@master:/a.txt", b"alpha")
        root.set_role("data", "rita", "reader")
        root.set_role("data", "wally", "writer")
        with gateway(settings, auth=True) as url:
            yield Cluster(url, {u: s3_credentials(t) for u, t in tokens.items()}, root)


def as_user(cluster: Cluster, user: str) -> Any:
    key, secret = cluster.keys[user]
    return s3_client(cluster.url, key, secret, signature_version="s3v4")  # boto3 presigns with SigV2 otherwise


def test_keys_from_tokens_enforce_the_rest_apis_roles(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    root = cluster.root
    rita, wally, stranger = (as_user(cluster, u) for u in ("rita", "wally", "stranger"))
    assert rita.get_object(Bucket="master.data", Key="a.txt")["Body"].read() == b"alpha"
    assert [b["Name"] for b in rita.list_buckets()["Buckets"]] == ["master.data"]
    n = commits(root, "data@master")
    for attempt in (lambda: rita.put_object(Bucket="master.data", Key="r.txt", Body=b"no"),
                    lambda: rita.delete_object(Bucket="master.data", Key="a.txt"),
                    lambda: rita.create_multipart_upload(Bucket="master.data", Key="r"),
                    lambda: rita.delete_objects(Bucket="master.data", Delete={"Objects": [{"Key": "a.txt"}]})):
        with pytest.raises(ClientError) as err:
            attempt()
        assert code_of(err) == "AccessDenied"
        assert "rita is not a writer of data" in err.value.response["Error"]["Message"]
    assert commits(root, "data@master") == n
    wally.put_object(Bucket="master.data", Key="w.txt", Body=b"yes")
    odd = "odd names/a+b é~(1)=&.txt"  # the signature covers the path as the client escaped it
    wally.put_object(Bucket="master.data", Key=odd, Body=b"odd")
    assert wally.get_object(Bucket="master.data", Key=odd)["Body"].read() == b"odd"
    assert [o["Key"] for o in rita.list_objects_v2(Bucket="master.data", Prefix="odd names/")["Contents"]] == [odd]
    assert rita.list_objects(Bucket="master.data", Prefix="odd ", Delimiter="/")["CommonPrefixes"] == [
        {"Prefix": "odd names/"}]
    n += 1
    assert root.get_file("data@master:/w.txt") == b"yes" and root.inspect_commit("data@master").author == "wally"
    assert stranger.list_buckets()["Buckets"] == []
    with pytest.raises(ClientError) as err:
        stranger.get_object(Bucket="master.data", Key="a.txt")
    assert code_of(err) == "NoSuchBucket"  # no oracle for which repos exist

    key, _ = cluster.keys["wally"]
    with pytest.raises(ClientError) as err:
        s3_client(cluster.url, key, "not-the-secret").put_object(Bucket="master.data", Key="x", Body=b"x")
    assert code_of(err) == "SignatureDoesNotMatch"
    with pytest.raises(ClientError) as err:
        s3_client(cluster.url, "0000deadbeef", "whatever").list_buckets()
    assert code_of(err) == "InvalidAccessKeyId"
    r = httpx.get(f"{cluster.url}/master.data/a.txt")
    assert r.status_code == 403 and "<Code>AccessDenied</Code>" in r.text
    assert commits(root, "data@master") == n + 1

    url = rita.generate_presigned_url("get_object", Params={"Bucket": "master.data", "Key": "a.txt"}, ExpiresIn=60)
    v2 = s3_client(cluster.url, *cluster.keys["rita"]).generate_presigned_url(
        "get_object", Params={"Bucket": "master.data", "Key": "a.txt"})
    assert "signature_version='s3v4'" in httpx.get(v2).text
    assert httpx.get(url).content == b"alpha"
    assert httpx.get(url.replace("a.txt", "w.txt")).status_code == 403  # the signature covers the key
    put_url = wally.generate_presigned_url("put_object", Params={"Bucket": "master.data", "Key": "p.txt"})
    assert httpx.put(put_url, content=b"presigned").status_code == 200  # UNSIGNED-PAYLOAD
    assert root.get_file("data@master:/p.txt") == b"presigned"
    query_signer = S3SigV4QueryAuth(Credentials(*cluster.keys["rita"]), "s3", "us-east-1", expires=60)
    request = AWSRequest("GET", f"{cluster.url}/master.data/a.txt")
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: datetime(2020, 1, 1, tzinfo=UTC))
    query_signer.add_auth(request)
    monkeypatch.undo()
    r = httpx.get(request.url)
    assert r.status_code == 403 and "expired" in r.text

    token_id = cluster.keys["rita"][0]
    root.revoke_token(token_id)
    with pytest.raises(ClientError) as err:
        rita.list_buckets()
    assert code_of(err) == "InvalidAccessKeyId"


class _StreamingSigner(S3SigV4Auth):
    def payload(self, request: AWSRequest, *args: Any) -> str:
        return sigv4.STREAMING_SIGNED


def _signed_chunked_put(url: str, key: tuple[str, str], path: str, data: bytes, chunk: int, tamper: bool = False
                        ) -> httpx.Response:
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD upload: the seed signed by botocore, each chunk signed as AWS
    documents it (the AWS Java and Go SDKs send these)."""
    host = url.removeprefix("http://")
    encoded_length = sum(len(f"{len(data[i:i + chunk]):x};chunk-signature=") + 64 + 4 + len(data[i:i + chunk])
                         for i in range(0, len(data), chunk)) + len("0;chunk-signature=") + 64 + 4
    request = AWSRequest("PUT", f"{url}{path}", headers={
        "x-amz-content-sha256": sigv4.STREAMING_SIGNED, "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)), "Content-Length": str(encoded_length), "Host": host})
    _StreamingSigner(Credentials(*key), "s3", "us-east-1").add_auth(request)
    auth = request.headers["Authorization"]
    seed = auth.rsplit("Signature=", 1)[1]
    amz_date = request.headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"
    signing = hmac.new(("AWS4" + key[1]).encode(), amz_date[:8].encode(), hashlib.sha256).digest()
    for part in ("us-east-1", "s3", "aws4_request"):
        signing = hmac.new(signing, part.encode(), hashlib.sha256).digest()
    body = b""
    previous = seed
    for piece in [*(data[i:i + chunk] for i in range(0, len(data), chunk)), b""]:
        text = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, hashlib.sha256(b"").hexdigest(),
                          hashlib.sha256(piece).hexdigest()])
        previous = hmac.new(signing, text.encode(), hashlib.sha256).hexdigest()
        sent = piece[:-1] + b"!" if tamper and len(piece) == chunk else piece
        body += f"{len(piece):x};chunk-signature={previous}\r\n".encode() + sent + b"\r\n"
    assert len(body) == encoded_length
    return httpx.put(f"{url}{path}", content=body, headers=dict(request.headers.items()))


def test_signed_bodies_are_checked_chunk_by_chunk_and_whole(cluster: Cluster) -> None:
    data = os.urandom(300_000)
    r = _signed_chunked_put(cluster.url, cluster.keys["wally"], "/master.data/chunked.bin", data, 65536)
    assert r.status_code == 200, r.text
    assert cluster.root.get_file("data@master:/chunked.bin") == data
    n = commits(cluster.root, "data@master")
    r = _signed_chunked_put(cluster.url, cluster.keys["wally"], "/master.data/chunked.bin", data, 65536, tamper=True)
    assert r.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in r.text
    signed = AWSRequest("PUT", f"{cluster.url}/master.data/swapped.bin", data=b"what was signed")
    S3SigV4Auth(Credentials(*cluster.keys["wally"]), "s3", "us-east-1").add_auth(signed)
    r = httpx.put(signed.url, content=b"what was sent!!", headers=dict(signed.headers.items()))
    assert r.status_code == 400 and "<Code>XAmzContentSHA256Mismatch</Code>" in r.text
    assert commits(cluster.root, "data@master") == n


# -- the AWS CLI, against `tusk server --s3-port` -----------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _aws() -> str:
    here = Path(sys.executable).parent / "aws"
    found = str(here) if here.exists() else shutil.which("aws")
    if found is None:
        pytest.skip("the AWS CLI is not installed (pip install awscli: the dev extra has it)")
    return found


def test_aws_cli_cp_ls_and_sync_through_tusk_server(tmp_path: Path) -> None:
    aws = _aws()
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUSK_", "AWS_"))}
    env |= {"TUSK_HOME": str(home), "TUSK_USER": "tester", "TUSK_RUNTIME": "local"}
    with Client(settings=Settings.from_env(env=env)) as c:
        c.create_repo("data")
        c.put_file("data@master:/seed.txt", b"seed")
    port, s3_port = _free_port(), _free_port()
    tusk_bin = str(Path(sys.executable).parent / "tusk")
    server = subprocess.Popen([tusk_bin, "server", "--port", str(port), "--s3-port", str(s3_port),
                               "--no-grpc", "--log-level", "warning"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{s3_port}"
    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
    aws_env = env | {"AWS_ACCESS_KEY_ID": "anyone", "AWS_SECRET_ACCESS_KEY": "anything", "AWS_CONFIG_FILE": str(config),
                     "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true"}

    def run(*args: str) -> str:
        done = subprocess.run([aws, "--endpoint-url", endpoint, *args], env=aws_env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.HTTPError:
                assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
                assert time.monotonic() < deadline, "the S3 gateway did not start"
                time.sleep(0.2)
        assert "master.data" in run("s3", "ls")
        big = tmp_path / "big.bin"
        digest = write_random(big, 20 * MiB)  # past the CLI's 8 MiB threshold: a multipart upload
        with Client(settings=Settings.from_env(env=env)) as c:
            before = commits(c, "data@master")
            run("s3", "cp", str(big), "s3://master.data/uploads/big.bin")
            assert commits(c, "data@master") == before + 1
        run("s3", "cp", "s3://master.data/uploads/big.bin", str(tmp_path / "big.back"))
        assert sha256_file(tmp_path / "big.back") == digest
        listing = run("s3", "ls", "s3://master.data/uploads/")
        assert "big.bin" in listing and str(20 * MiB) in listing
        local = tmp_path / "local"
        (local / "sub").mkdir(parents=True)
        for i in range(5):
            (local / "sub" / f"f{i}.txt").write_text(f"file {i}\n")
        (local / "top.txt").write_text("top\n")
        run("s3", "sync", str(local), "s3://master.data/synced")
        assert "f4.txt" in run("s3", "ls", "--recursive", "s3://master.data/synced/")
        again = subprocess.run([aws, "--endpoint-url", endpoint, "s3", "sync", str(local), "s3://master.data/synced"],
                               env=aws_env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0 and "upload" not in again.stdout  # nothing changed: nothing sent
        back = tmp_path / "back"
        run("s3", "sync", "s3://master.data/synced", str(back))
        assert sorted(str(p.relative_to(back)) for p in back.rglob("*") if p.is_file()) == \
            sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
        assert (back / "sub" / "f3.txt").read_text() == "file 3\n"
        run("s3", "rm", "s3://master.data/synced/top.txt")
        with Client(settings=Settings.from_env(env=env)) as c:
            assert [f.path for f in c.list_files("data@master:/synced")] == ["/synced/sub"]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    assert server.returncode == 0
