"""The S3 gateway with the data tools people point at S3: DuckDB's httpfs (read_parquet, read_csv, globs, and
COPY ... TO, which DuckDB sends as a multipart upload) and pandas through s3fs, with and without SigV4.

The httpfs extension comes from PyPI (duckdb-extension-httpfs, at DuckDB's own version) and is loaded from
its file: nothing is fetched from DuckDB's extension repository.

s3fs (through aiobotocore) pins an older botocore than the boto3 and AWS CLI the other gateway tests use, so
it is not in the dev extra: the pandas test runs pandas in a child process with s3fs, aiobotocore and their
botocore from a separate directory (scripts/bootstrap.sh makes .venv/s3fs-lib), and is skipped unless that
directory or TUSK_TEST_S3FS_PATH exists::

    pip install --no-deps --target /tmp/s3fs-lib s3fs aiobotocore aioitertools 'botocore==<aiobotocore's pin>'
    TUSK_TEST_S3FS_PATH=/tmp/s3fs-lib pytest tests/integration/test_s3_gateway_clients.py
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.integration.test_s3_gateway import commits, gateway
from tusk.config import Settings
from tusk.s3gateway import s3_credentials
from tusk.sdk import Client

duckdb = pytest.importorskip("duckdb")
httpfs = pytest.importorskip("duckdb_extension_httpfs")


def _extension() -> Path:
    path = Path(httpfs.__file__).parent / "extensions" / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
    if not path.exists():
        pytest.skip(f"duckdb-extension-httpfs has no build for DuckDB {duckdb.__version__}: install "
                    f"duckdb-extension-httpfs=={duckdb.__version__} (or the duckdb its version names)")
    return path


def connect(url: str, key: str = "anyone", secret: str = "anything") -> Any:
    """A DuckDB connection whose s3:// URLs go to the gateway at ``url``, signed with ``key``/``secret``."""
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false; SET autoload_known_extensions = false")
    con.execute(f"LOAD '{_extension()}'")
    # 5 MiB parts (DuckDB's default part size is 800 GB / 10000 parts): a COPY of a few MiB is a multipart upload
    con.execute("SET s3_uploader_max_filesize = '50GB'")
    con.execute(f"CREATE SECRET gateway (TYPE s3, KEY_ID '{key}', SECRET '{secret}', REGION 'us-east-1', "
                f"ENDPOINT '{url.removeprefix('http://')}', URL_STYLE 'path', USE_SSL false)")
    return con


def parquet_bytes(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


@dataclass
class Store:
    url: str
    client: Client


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    settings = Settings.for_home(tmp_path / "home", TUSK_USER="tester")
    with Client(settings=settings) as c, gateway(settings) as url:
        c.create_repo("repo")
        with c.modify("repo@master") as m:
            m.put_bytes("/x.parquet", parquet_bytes(pa.table({"i": list(range(100)), "s": [f"v{i}" for i in
                                                                                             range(100)]})))
            m.put_bytes("/a.csv", b"name,score\nada,3\nbob,5\ncyd,8\n")
            m.put_bytes("/parts/p1.parquet", parquet_bytes(pa.table({"i": [1, 2]})))
            m.put_bytes("/parts/p2.parquet", parquet_bytes(pa.table({"i": [3]})))
        yield Store(url, c)


def test_duckdb_reads_parquet_csv_and_globs(store: Store) -> None:
    con = connect(store.url)
    q = con.execute
    assert q("SELECT count(*), sum(i), max(s) FROM read_parquet('s3://master.repo/x.parquet')").fetchall() == [
        (100, 4950, "v99")]
    assert q("SELECT name, score FROM read_csv('s3://master.repo/a.csv') ORDER BY score DESC").fetchall() == [
        ("cyd", 8), ("bob", 5), ("ada", 3)]
    assert q("SELECT sum(i) FROM read_parquet('s3://master.repo/parts/*.parquet')").fetchall() == [(6,)]
    assert sorted(r[0] for r in q("SELECT * FROM glob('s3://master.repo/**')").fetchall()) == [
        "s3://master.repo/a.csv", "s3://master.repo/parts/p1.parquet", "s3://master.repo/parts/p2.parquet",
        "s3://master.repo/x.parquet"]
    old = store.client.inspect_commit("repo@master").id
    store.client.put_file("repo@master:/a.csv", b"name,score\nzed,1\n")
    assert q("SELECT name FROM read_csv('s3://master.repo/a.csv')").fetchall() == [("zed",)]
    # a commit bucket: the file as it was
    assert q(f"SELECT count(*) FROM read_csv('s3://{old[:12]}.repo/a.csv')").fetchall() == [(3,)]
    with pytest.raises(duckdb.Error, match=r"404|No files found|not found"):
        q("SELECT * FROM read_parquet('s3://master.repo/missing.parquet')")


def test_duckdb_copy_to_lands_one_commit_even_multipart(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from tusk.s3gateway import writes

    parts: list[str] = []
    upload_part = writes.upload_part
    monkeypatch.setattr(writes, "upload_part", lambda call, raw: parts.append(call.key) or upload_part(call, raw))
    con = connect(store.url)
    q = con.execute
    c = store.client
    before = commits(c, "repo@master")
    q("COPY (SELECT range AS i, range * 2 AS j FROM range(1000)) TO 's3://master.repo/out.parquet' (FORMAT parquet)")
    assert commits(c, "repo@master") == before + 1
    table = pq.read_table(io.BytesIO(c.get_file("repo@master:/out.parquet")))
    assert table.num_rows == 1000 and sum(table.column("j").to_pylist()) == 999000
    q("COPY (SELECT * FROM read_csv('s3://master.repo/a.csv')) TO 's3://master.repo/copy.csv' (HEADER)")
    assert c.get_file("repo@master:/copy.csv").decode().splitlines()[0] == "name,score"

    # ~20 MiB of incompressible strings: several 5 MiB parts, one commit, spool emptied
    q("COPY (SELECT range AS i, md5(range::VARCHAR) || md5((range + 1)::VARCHAR) AS s FROM range(400000)) "
      "TO 's3://dev.repo/big.parquet' (FORMAT parquet, COMPRESSION uncompressed)")
    size = c.inspect_file("repo@dev:/big.parquet").size_bytes
    assert size > 15 << 20, size
    assert parts.count("big.parquet") >= 3  # DuckDB sent it in parts
    assert commits(c, "repo@dev") == 1  # the branch did not exist: the write created it, in one commit
    assert q("SELECT count(*), sum(i) FROM read_parquet('s3://dev.repo/big.parquet')").fetchall() == [
        (400000, 399999 * 400000 // 2)]
    spool = c.settings.home / "tmp" / "s3-uploads"
    assert not spool.exists() or not list(spool.iterdir())


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
        for user in ("rita", "wally"):
            _, tokens[user] = root.create_token(user)
        root.create_repo("repo")
        root.put_file("repo@master:/x.parquet", parquet_bytes(pa.table({"i": [1, 2, 3]})))
        root.put_file("repo@master:/a.csv", b"k,v\na,1\n")
        root.set_role("repo", "rita", "reader")
        root.set_role("repo", "wally", "writer")
        with gateway(settings, auth=True) as url:
            yield Cluster(url, {u: s3_credentials(t) for u, t in tokens.items()}, root)


def test_duckdb_signs_with_keys_from_tokens_and_a_reader_cannot_write(cluster: Cluster) -> None:
    root = cluster.root
    rita = connect(cluster.url, *cluster.keys["rita"]).execute
    wally = connect(cluster.url, *cluster.keys["wally"]).execute
    assert rita("SELECT sum(i) FROM read_parquet('s3://master.repo/x.parquet')").fetchall() == [(6,)]
    assert rita("SELECT v FROM read_csv('s3://master.repo/a.csv')").fetchall() == [(1,)]
    n = commits(root, "repo@master")
    with pytest.raises(duckdb.Error, match=r"403|AccessDenied"):
        rita("COPY (SELECT 1 AS one) TO 's3://master.repo/r.parquet' (FORMAT parquet)")
    assert commits(root, "repo@master") == n
    wally("COPY (SELECT range AS i FROM range(10)) TO 's3://master.repo/w.parquet' (FORMAT parquet)")
    assert commits(root, "repo@master") == n + 1
    assert root.inspect_commit("repo@master").author == "wally"
    assert rita("SELECT sum(i) FROM read_parquet('s3://master.repo/w.parquet')").fetchall() == [(45,)]
    wrong = connect(cluster.url, cluster.keys["rita"][0], "0" * 64).execute
    with pytest.raises(duckdb.Error, match=r"403|SignatureDoesNotMatch"):
        wrong("SELECT * FROM read_parquet('s3://master.repo/x.parquet')")


_PANDAS = """
import json, sys
import pandas as pd
url, key, secret, reader_key, reader_secret = sys.argv[1:6]


def opts(k, s):
    return {"key": k, "secret": s, "client_kwargs": {"endpoint_url": url, "region_name": "us-east-1"},
            "config_kwargs": {"s3": {"addressing_style": "path"}}}


out = {"csv": pd.read_csv("s3://master.repo/a.csv", storage_options=opts(reader_key, reader_secret)).to_dict("list")}
df = pd.DataFrame({"x": list(range(10)), "y": [f"r{i}" for i in range(10)]})
df.to_parquet("s3://master.repo/b.parquet", storage_options=opts(key, secret))
back = pd.read_parquet("s3://master.repo/b.parquet", storage_options=opts(reader_key, reader_secret))
out["parquet"] = back.to_dict("list")
try:
    df.to_parquet("s3://master.repo/refused.parquet", storage_options=opts(reader_key, reader_secret))
    out["refused"] = None
except Exception as exc:
    out["refused"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def test_pandas_reads_csv_and_writes_parquet_through_s3fs(cluster: Cluster, tmp_path: Path) -> None:
    lib = os.environ.get("TUSK_TEST_S3FS_PATH") or next(
        (str(p) for p in [Path(__file__).parents[2] / ".venv" / "s3fs-lib"] if p.is_dir()), None)  # bootstrap's
    if not lib:
        pytest.skip("s3fs needs an older botocore than the dev extra's boto3: install it apart and set "
                    "TUSK_TEST_S3FS_PATH (see this module's docstring)")
    root = cluster.root
    n = commits(root, "repo@master")
    script = tmp_path / "pandas_s3.py"
    script.write_text(_PANDAS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TUSK_"))} | {"PYTHONPATH": lib}
    done = subprocess.run([sys.executable, str(script), cluster.url, *cluster.keys["wally"], *cluster.keys["rita"]],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["csv"] == {"k": ["a"], "v": [1]}
    assert out["parquet"] == {"x": list(range(10)), "y": [f"r{i}" for i in range(10)]}
    assert out["refused"] is not None and "PermissionError" in out["refused"], out["refused"]
    assert commits(root, "repo@master") == n + 1  # to_parquet: one commit; the reader's: none
    assert root.inspect_commit("repo@master").author == "wally"
    table = pq.read_table(io.BytesIO(root.get_file("repo@master:/b.parquet")))
    assert table.column("x").to_pylist() == list(range(10))
