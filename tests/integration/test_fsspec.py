"""The tusk:// filesystem (src/tusk/fs.py) under pandas, pyarrow, dask and fsspec, embedded and against a server."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tusk.config import Settings
from tusk.fs import TuskFileSystem
from tusk.root import create_server_app
from tusk.root.server import serve_in_thread
from tusk.sdk import Client
from tusk.services import Services

CSV = b"age,workclass,income\n39,State-gov,<=50K\n50,Self-emp,<=50K\n38,Private,>50K\n"


@dataclass
class Store:
    """One way to reach a store: the storage options a ``tusk://`` URL takes, and an SDK client on it."""

    mode: str
    options: dict[str, Any]
    client: Client
    url: str | None = None

    @property
    def fs(self) -> TuskFileSystem:
        return TuskFileSystem(**self.options)

    def commits(self, ref: str = "census@master") -> int:
        return len(self.client.list_commits(ref))


@pytest.fixture(params=["embedded", "remote"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Embedded: a store under ``home=``. Remote: a real Tusk server (uvicorn, in a thread) reached by ``address=``."""
    if request.param == "embedded":
        home = tmp_path / "home"
        with Client(home=home) as client:
            client.create_repo("census")
            yield Store("embedded", {"home": str(home)}, client)
        return
    settings = Settings.for_home(tmp_path / "server", TUSK_RUNTIME="local", TUSK_USER="server")
    app = create_server_app(Services.open(settings), poll=0.2, close_services=True)
    with serve_in_thread(app) as url:
        env = {"TUSK_ADDRESS": url, "TUSK_HOME": str(tmp_path / "client"), "TUSK_USER": "tester"}
        with Client(settings=Settings.from_env(env=env)) as client:
            assert client.remote
            client.create_repo("census")
            yield Store("remote", {"address": url}, client, url)


def test_the_entry_point_registers_the_protocol() -> None:
    assert fsspec.get_filesystem_class("tusk") is TuskFileSystem


def test_import_tusk_stays_light() -> None:
    """fsspec is imported by tusk.fs alone: not by ``import tusk``, the SDK or the CLI's start-up."""
    code = "import sys, tusk, tusk.sdk, tusk.cli.main; assert 'fsspec' not in sys.modules, 'fsspec imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pandas_csv_round_trip(store: Store) -> None:
    store.client.put_file("census@master:/raw/adult.data", CSV)
    df = pd.read_csv("tusk://census@master/raw/adult.data", storage_options=store.options)
    assert list(df["age"]) == [39, 50, 38]
    before = store.commits()
    df.assign(over_40=df["age"] > 40).to_csv("tusk://census@master/clean/adult.csv", index=False,
                                             storage_options=store.options)
    assert store.commits() == before + 1  # one file closed, one commit
    back = pd.read_csv("tusk://census@master/clean/adult.csv", storage_options=store.options)
    assert list(back["over_40"]) == [False, True, False]
    assert store.client.get_file("census@master:/clean/adult.csv").startswith(b"age,workclass,income,over_40\n")


def test_default_resolution_from_the_environment(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """No storage options: ``tusk://`` resolves as ``tusk.Client()`` does (TUSK_ADDRESS, else TUSK_HOME)."""
    store.client.put_file("census@master:/raw/adult.data", CSV)
    if store.mode == "remote":
        monkeypatch.setenv("TUSK_ADDRESS", str(store.url))
    else:
        monkeypatch.delenv("TUSK_ADDRESS", raising=False)
        monkeypatch.setenv("TUSK_HOME", str(store.options["home"]))
    monkeypatch.setenv("TUSK_CONTEXT", "none")
    TuskFileSystem.clear_instance_cache()
    try:
        with fsspec.open("tusk://census/raw/adult.data", "rb") as f:  # REPO alone means REPO@master
            assert f.read() == CSV
        assert fsspec.filesystem("tusk").client.remote == (store.mode == "remote")
    finally:
        TuskFileSystem.clear_instance_cache()


def test_listing_info_glob_and_find(store: Store) -> None:
    fs = store.fs
    with store.client.modify("census@master") as m:
        m.put_bytes("/raw/adult.data", CSV)
        m.put_bytes("/raw/adult.test", CSV[:30])
        m.put_bytes("/parts/a.csv", CSV)
        m.put_bytes("/parts/deep/b.csv", CSV)
    assert [e["name"] for e in fs.ls("tusk://")] == ["census"]
    listing = fs.ls("tusk://census@master/raw")
    assert {(e["name"], e["type"], e["size"]) for e in listing} == {
        ("census@master/raw/adult.data", "file", len(CSV)), ("census@master/raw/adult.test", "file", 30)}
    assert fs.ls("census@master", detail=False) == ["census@master/parts", "census@master/raw"]
    assert fs.info("tusk://census@master/parts")["type"] == "directory"
    assert fs.info("tusk://census@master")["type"] == fs.info("tusk://")["type"] == "directory"
    assert fs.du("census@master/parts") == 2 * len(CSV)
    info = fs.info("census@master:/raw/adult.data")  # the CLI's spelling works too
    assert info["name"] == "census@master/raw/adult.data"
    assert info["size"] == len(CSV)
    assert fs.isfile("census@master/raw/adult.data")
    assert fs.isdir("census@master/raw")
    assert not fs.exists("census@master/raw/nope")
    assert fs.glob("tusk://census@master/raw/*.data") == ["census@master/raw/adult.data"]
    assert fs.glob("tusk://census/**/*.csv") == ["census/parts/a.csv", "census/parts/deep/b.csv"]
    assert fs.find("census@master/parts") == ["census@master/parts/a.csv", "census@master/parts/deep/b.csv"]
    assert fs.checksum("census@master/parts/a.csv") == fs.checksum("census@master/raw/adult.data")  # same bytes
    fs.mkdir("census@master/empty")  # a no-op: directories exist while files are under them
    fs.makedirs("census@master/empty/deeper", exist_ok=True)


def test_ranges_through_cat_file_and_open(store: Store) -> None:
    data = os.urandom(3 << 20)  # several content-defined chunks
    store.client.put_file("census@master:/big.bin", data)
    fs = store.fs
    assert fs.cat_file("census@master/big.bin", 10, 20) == data[10:20]
    assert fs.cat_file("census@master/big.bin", -100) == data[-100:]
    assert fs.cat_file("census@master/big.bin", 1_000_000, 2_500_000) == data[1_000_000:2_500_000]
    assert fs.cat_file("census@master/big.bin", len(data) + 5) == b""
    assert fs.cat_file("census@master/big.bin") == data
    with fsspec.open("tusk://census@master/big.bin", "rb", **store.options) as f:
        assert f.size == len(data)
        f.seek(2_000_000)
        assert f.read(4096) == data[2_000_000:2_004_096]
        f.seek(-10, 2)
        assert f.read() == data[-10:]
    with store.fs.open("census@master/big.bin", "rb", block_size=1 << 16) as f:
        f.seek(123_456)
        assert f.read(1 << 17) == data[123_456:123_456 + (1 << 17)]


def test_a_ranged_read_reads_only_its_chunks(tmp_path: Path) -> None:
    with Client(home=tmp_path / "home") as client:
        client.create_repo("r")
        data = os.urandom(4 << 20)
        client.put_file("r@master:/big.bin", data)
        content = client.services.ctx.content
        chunks = client.inspect_file("r@master:/big.bin").chunks
        assert chunks > 4
        read: list[int] = []
        original = content.read_chunk

        def counting(ref: Any, name: str, verify: bool = True) -> bytes:
            read.append(ref.size)
            return original(ref, name, verify)

        content.read_chunk = counting  # type: ignore[method-assign]
        assert client.get_file("r@master:/big.bin", 2_000_000, 2_000_100) == data[2_000_000:2_000_100]
        assert 1 <= len(read) <= 2
        read.clear()
        fs = TuskFileSystem(client=client, skip_instance_cache=True)
        assert fs.cat_file("r/big.bin", -10) == data[-10:]
        assert len(read) == 1


def test_http_range_requests(store: Store) -> None:
    if store.url is None:
        pytest.skip("the HTTP API's Range support")
    store.client.put_file("census@master:/raw/adult.data", CSV)
    url = f"{store.url}/api/v1/repos/census/commits/master/files/raw/adult.data"
    with httpx.Client() as http:
        whole = http.get(url)
        assert whole.status_code == 200
        assert whole.headers["accept-ranges"] == "bytes"
        part = http.get(url, headers={"Range": "bytes=4-12"})
        assert part.status_code == 206
        assert part.content == CSV[4:13]
        assert part.headers["content-range"] == f"bytes 4-12/{len(CSV)}"
        assert http.get(url, headers={"Range": "bytes=-5"}).content == CSV[-5:]
        assert http.get(url, headers={"Range": "bytes=10-"}).content == CSV[10:]
        past = http.get(url, headers={"Range": f"bytes={len(CSV)}-"})
        assert past.status_code == 416
        assert past.headers["content-range"] == f"bytes */{len(CSV)}"
        assert http.get(url, headers={"Range": "lines=1-2"}).content == CSV  # another unit: the whole file


def test_parquet_through_pyarrow_and_pandas(store: Store) -> None:
    fs = store.fs
    table = pa.table({"age": [39, 50, 38, 61], "income": ["<=50K", "<=50K", ">50K", ">50K"]})
    pq.write_table(table, "census@master/features/part-0.parquet", filesystem=fs)
    pq.write_table(table.slice(0, 2), "census@master/features/part-1.parquet", filesystem=fs)
    assert pq.read_table("census@master/features/part-0.parquet", filesystem=fs).equals(table)
    dataset = ds.dataset("census@master/features", filesystem=fs, format="parquet")
    assert dataset.to_table().num_rows == 6
    assert dataset.to_table(filter=ds.field("age") > 45).column("age").to_pylist() == [50, 61, 50]

    df = pd.DataFrame({"x": range(1000), "y": [f"row {i}" for i in range(1000)]})
    df.to_parquet("tusk://census@master/frames/df.parquet", storage_options=store.options)
    back = pd.read_parquet("tusk://census@master/frames/df.parquet", storage_options=store.options)
    assert back.equals(df)
    assert pq.ParquetFile(fs.open("census@master/frames/df.parquet")).metadata.num_rows == 1000


def test_ancestry_and_commit_refs_read_older_versions(store: Store) -> None:
    fs = store.fs
    for version in (b"v1\n", b"v2\n", b"v3\n"):
        fs.pipe_file("census@master/model/VERSION", version)
    first = store.client.list_commits("census@master")[-1]
    assert fs.cat_file("census@master/model/VERSION") == b"v3\n"
    assert fs.cat_file("tusk://census@master^/model/VERSION") == b"v2\n"
    assert fs.cat_file("tusk://census@master~2/model/VERSION") == b"v1\n"
    assert fs.cat_file("tusk://census@master^^/model/VERSION") == b"v1\n"
    assert fs.cat_file(f"tusk://census@{first.id}/model/VERSION") == b"v1\n"
    assert fs.cat_file(f"tusk://census@{first.id[:8]}/model/VERSION") == b"v1\n"  # a short commit id
    assert pd.read_csv("tusk://census@master~1/model/VERSION", header=None, storage_options=store.options
                       )[0].tolist() == ["v2"]
    with pytest.raises(FileNotFoundError, match="history has only 3 commit"):
        fs.cat_file("census@master~5/model/VERSION")


def test_a_read_is_pinned_to_the_commit_it_opened(store: Store) -> None:
    fs = store.fs
    store.client.put_file("census@master:/data.bin", b"a" * 100_000)
    with fs.open("census@master/data.bin", "rb", block_size=1024) as f:
        head = f.read(10)
        store.client.put_file("census@master:/data.bin", b"b" * 100_000)  # the branch moves mid-read
        f.seek(90_000)
        assert head + f.read(10) == b"a" * 20


def test_a_transaction_of_three_files_is_one_commit(store: Store) -> None:
    fs = store.fs
    store.client.put_file("census@master:/old.txt", b"old")
    before = store.commits()
    with fs.transaction as tx:
        for i in range(2):
            with fs.open(f"census@master/batch/{i}.csv", "wb") as f:
                f.write(CSV * (i + 1))
        frame = pd.read_csv(io.BytesIO(CSV))  # pandas on the same options joins the transaction
        frame.to_csv("tusk://census@master/batch/2.csv", index=False, storage_options=store.options)
        fs.rm("census@master/old.txt")
        assert not fs.exists("census@master/batch/0.csv")  # nothing is visible before the block ends
    assert store.commits() == before + 1
    assert len(tx.commits) == 1
    assert fs.find("census@master") == [f"census@master/batch/{i}.csv" for i in range(3)]
    assert fs.cat_file("census@master/batch/1.csv") == CSV * 2
    assert len(pd.read_csv("tusk://census@master/batch/2.csv", storage_options=store.options)) == 3


def test_a_failed_transaction_lands_nothing(store: Store) -> None:
    fs = store.fs
    store.client.put_file("census@master:/keep.txt", b"keep")
    before = store.commits()
    with pytest.raises(RuntimeError), fs.transaction:
        fs.pipe_file("census@master/a.txt", b"a")
        raise RuntimeError("the job failed half way")
    assert store.commits() == before
    assert not fs.exists("census@master/a.txt")
    fs.pipe_file("census@master/b.txt", b"b")  # the filesystem is out of the transaction again
    assert store.commits() == before + 1


def test_a_file_left_by_an_exception_lands_nothing(store: Store) -> None:
    fs = store.fs
    store.client.put_file("census@master:/keep.txt", b"keep")
    before = store.commits()
    with pytest.raises(RuntimeError), fs.open("census@master/half.csv", "wb") as f:
        f.write(b"age\n")
        raise RuntimeError("interrupted")
    assert store.commits() == before
    assert not fs.exists("census@master/half.csv")


def test_append_rm_and_copy_by_reference(store: Store) -> None:
    fs = store.fs
    fs.pipe_file("census@master/log.txt", b"one\n")
    with fs.open("census@master/log.txt", "ab") as f:
        f.write(b"two\n")
    assert fs.cat_file("census@master/log.txt") == b"one\ntwo\n"
    fs.cp_file("census@master/log.txt", "census@master/copy/log.txt")
    assert fs.info("census@master/copy/log.txt")["digest"] == fs.info("census@master/log.txt")["digest"]
    fs.pipe_file("census@dev/new.txt", b"a new branch")  # a write to a new branch creates it, as put file does
    assert fs.cat_file("census@dev/new.txt") == b"a new branch"
    before = store.commits()
    with pytest.raises(IsADirectoryError, match="recursive=True"):
        fs.rm("census@master/copy")
    fs.rm("census@master/copy", recursive=True)
    assert store.commits() == before + 1
    assert not fs.exists("census@master/copy")
    with pytest.raises(FileNotFoundError):
        fs.rm("census@master/copy")
    fs.pipe({"census@master/g/a.csv": b"1", "census@master/g/b.csv": b"2", "census@master/g/c.txt": b""})
    before = store.commits()
    fs.rm("census@master/g/*.csv")  # a glob: every match, one commit
    assert store.commits() == before + 1
    assert fs.ls("census@master/g", detail=False) == ["census@master/g/c.txt"]
    with fs.transaction:
        fs.mv("census@master/g/c.txt", "census@master/g/d.txt")  # copy + rm: one commit in a transaction
    assert store.commits() == before + 2
    assert fs.ls("census@master/g", detail=False) == ["census@master/g/d.txt"]


def test_writes_to_a_commit_or_an_ancestry_ref_are_refused(store: Store) -> None:
    fs = store.fs
    landed = store.client.put_file("census@master:/a.txt", b"a")
    assert landed is not None
    before = store.commits()
    for ref in (landed.id, landed.id[:8]):
        with pytest.raises(PermissionError, match=r"commits are immutable; write to a branch instead, e\.g\. "
                                                  r"tusk://census@master/a\.txt"):
            fs.open(f"tusk://census@{ref}/a.txt", "wb")
    with pytest.raises(PermissionError, match="ancestry ref, which is read-only"):
        fs.pipe_file("census@master^/a.txt", b"b")
    with pytest.raises(PermissionError, match="commits are immutable"):
        pd.DataFrame({"x": [1]}).to_csv(f"tusk://census@{landed.id}/x.csv", storage_options=store.options)
    with pytest.raises(PermissionError):
        fs.rm(f"census@{landed.id}/a.txt")
    assert store.commits() == before


def test_missing_repo_ref_or_path_is_file_not_found(store: Store) -> None:
    fs = store.fs
    store.client.put_file("census@master:/a.txt", b"a")
    cases = {"tusk://nope@master/a.txt": "repo 'nope' not found",
             "tusk://census@nobranch/a.txt": "branch 'nobranch' not found",
             "tusk://census@master/missing.csv": "no such file or directory"}
    for url, message in cases.items():
        with pytest.raises(FileNotFoundError, match=message) as caught:
            pd.read_csv(url, storage_options=store.options)
        assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no internals chained
        assert url in str(caught.value)
        with pytest.raises(FileNotFoundError):
            fs.ls(url)
        with pytest.raises(FileNotFoundError):
            fs.cat_file(url)
    with pytest.raises(FileNotFoundError, match="repo 'nope' not found"):
        fs.pipe_file("nope@master/a.txt", b"x")
    with pytest.raises(ValueError, match="is not a branch name or commit id"):
        fs.info("census@/a.txt")
    with pytest.raises(IsADirectoryError):
        fs.open("census@master", "rb")


def test_dask_dataframe_reads_a_glob(store: Store) -> None:
    dd = pytest.importorskip("dask.dataframe")
    import dask

    rows = CSV.split(b"\n", 1)[1] * 20  # 60 rows a file
    with store.client.modify("census@master") as m:
        for i in range(3):
            m.put_bytes(f"/parts/{i}.csv", CSV.split(b"\n", 1)[0] + b"\n" + rows)
    frame = dd.read_csv("tusk://census@master/parts/*.csv", storage_options=store.options, blocksize=None)
    assert frame.npartitions == 3
    blocks = dd.read_csv("tusk://census@master/parts/*.csv", storage_options=store.options, blocksize=300)
    assert blocks.npartitions > 3  # byte ranges of each file, split at line ends
    with dask.config.set(scheduler="threads"):
        assert frame["age"].sum().compute() == 3 * 20 * (39 + 50 + 38)
        assert blocks["age"].sum().compute() == 3 * 20 * (39 + 50 + 38)


def test_the_filesystem_pickles_by_its_options(store: Store) -> None:
    """What Dask's process and distributed schedulers do: the worker reopens the store from the options."""
    store.client.put_file("census@master:/a.txt", b"a")
    fs = TuskFileSystem(**store.options, skip_instance_cache=True)
    fs.cat_file("census@master/a.txt")
    revived = pickle.loads(pickle.dumps(fs))
    assert revived is not fs
    assert revived.cat_file("census@master/a.txt") == b"a"
