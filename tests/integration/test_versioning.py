"""Repos, branches, commits and files — run against SQLite+local and PostgreSQL+S3."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CLI_BACKENDS, Backend, open_backend
from tusk import Client
from tusk.errors import (
    AlreadyExists,
    BranchNotFound,
    CommitNotFound,
    Conflict,
    FileNotFound,
    InvalidArgument,
    InvalidPath,
    InvalidRef,
    ObjectCorrupt,
    RepoNotFound,
)
from tusk.storage.content import chunk_key


@pytest.fixture(params=CLI_BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The SDK embedded on both stores, and remote against a server: the same calls, the same results."""
    yield from open_backend(request.param, request, tmp_path)


@pytest.fixture
def store(backend: Backend, client: Client) -> Iterator[Client]:
    """An embedded client on the store behind ``client`` (itself, unless remote): to look at stored objects."""
    if backend.store_env is None:
        yield client
        return
    with backend.store_client() as embedded:
        yield embedded


def test_repo_lifecycle(client: Client) -> None:
    client.create_repo("images", "pictures")
    with pytest.raises(AlreadyExists):
        client.create_repo("images")
    assert [r.name for r in client.list_repos()] == ["images"]
    assert client.inspect_repo("images").description == "pictures"
    client.put_file("images@master:/a.png", b"png")
    assert client.inspect_repo("images").size_bytes == 3
    client.delete_repo("images")
    with pytest.raises(RepoNotFound, match="tusk repo create images"):
        client.inspect_repo("images")


def test_put_get_list_and_history(client: Client) -> None:
    client.create_repo("data")
    c1 = client.put_file("data@master:/dir/a.txt", b"one")
    c2 = client.put_file("data@master:/dir/b.txt", b"two")
    assert c1 is not None and c2 is not None
    assert c2.parent == c1.id and c1.parent is None
    assert c2.global_id == c2.id  # a user commit starts its own commit set
    assert client.get_file("data@master:/dir/a.txt") == b"one"
    assert [f.path for f in client.list_files("data@master:/dir")] == ["/dir/a.txt", "/dir/b.txt"]
    assert [f.path for f in client.list_files("data@master^:/dir")] == ["/dir/a.txt"]
    assert [c.id for c in client.list_commits("data@master")] == [c2.id, c1.id]
    assert client.inspect_commit(f"data@{c1.id}").size_bytes == 3
    assert client.inspect_commit("data@master").size_bytes == 6
    with pytest.raises(CommitNotFound, match="only 2 commit"):
        client.inspect_commit("data@master^2")


def test_put_stream_overwrite_and_append(client: Client) -> None:
    client.create_repo("logs")
    client.put_file("logs@master:/log", io.BytesIO(b"line1\n"))
    client.put_file("logs@master:/log", b"line2\n", append=True)
    assert client.get_file("logs@master:/log") == b"line1\nline2\n"
    client.put_file("logs@master:/log", b"fresh\n")
    assert client.get_file("logs@master:/log") == b"fresh\n"


def test_file_like_read_and_write(client: Client) -> None:
    client.create_repo("r")
    with client.open("r@master:/notes.txt", "wb") as fh:
        fh.write(b"hello ")
        fh.write(b"world")
    reader = client.open("r@master:/notes.txt")
    assert reader.read(5) == b"hello"
    assert reader.read() == b" world"
    with pytest.raises(ValueError), client.open("r@master:/broken.txt", "wb") as fh:
        fh.write(b"partial")
        raise ValueError("writer failed")
    with pytest.raises(FileNotFound):
        client.get_file("r@master:/broken.txt")


def test_recursive_put_download_and_glob(client: Client, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(3):
        (src / f"d{i}").mkdir(parents=True)
        for j in range(4):
            (src / f"d{i}" / f"f{j}.csv").write_text(f"{i},{j}\n")
    (src / "d0" / "readme.md").write_text("hi")
    client.create_repo("csv")
    commit = client.put_file("csv@master:/", src, recursive=True)
    assert commit is not None
    assert len(list(client.walk_files("csv@master"))) == 13
    assert [f.path for f in client.glob_files("csv@master:/*/f1.csv")] == ["/d0/f1.csv", "/d1/f1.csv",
                                                                           "/d2/f1.csv"]
    assert [f.path for f in client.glob_files("csv@master:/*")] == ["/d0", "/d1", "/d2"]
    assert len(client.glob_files("csv@master:/**.csv")) == 12
    out = tmp_path / "out"
    client.download("csv@master:/d1", out)
    assert sorted(p.name for p in out.iterdir()) == ["f0.csv", "f1.csv", "f2.csv", "f3.csv"]
    assert (out / "f2.csv").read_text() == "1,2\n"


def test_diff_between_commits(client: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/a", b"1")
    client.put_file("r@master:/b", b"2")
    first = client.inspect_commit("r@master")
    with client.modify("r@master") as m:
        m.put_bytes("/a", b"11")
        m.delete("/b")
        m.put_bytes("/c/d", b"4")
    changes = {(d.path, d.change) for d in client.diff_files("r@master")}
    assert changes == {("/a", "modified"), ("/b", "deleted"), ("/c/d", "added")}
    assert client.diff_files("r@master", f"r@{first.id}") == client.diff_files("r@master")
    assert [d.path for d in client.diff_files("r@master:/c")] == ["/c/d"]


def test_copy_shares_bytes(client: Client, store: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/big/x", b"x" * 100_000)
    objects = store.services.ctx.objects
    before = sorted(objects.list("chunks/"))
    client.copy_file("r@master:/big", "r@master:/copy")
    assert sorted(objects.list("chunks/")) == before
    assert client.get_file("r@master:/copy/x") == b"x" * 100_000


def test_delete_file_and_errors(client: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/a/b", b"1")
    with pytest.raises(FileNotFound):
        client.delete_file("r@master:/nope")
    client.delete_file("r@master:/a")
    assert client.list_files("r@master") == []
    with pytest.raises(InvalidArgument, match="name the path"):
        client.delete_file("r@master")


def test_user_mistakes_are_clear_errors(client: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/file", b"1")
    with pytest.raises(RepoNotFound):
        client.put_file("nope@master:/x", b"1")
    with pytest.raises(BranchNotFound):
        client.get_file("r@dev:/file")
    with pytest.raises(InvalidPath, match="escape"):
        client.put_file("r@master:/../etc/passwd", b"1")
    with pytest.raises(InvalidRef):
        client.get_file("r@:/file")
    with pytest.raises(Conflict, match="is a file"):
        client.put_file("r@master:/file/inside", b"1")
    with pytest.raises(Conflict, match="a directory exists"):
        client.put_file("r@master:/a/b", b"1")
        client.put_file("r@master:/a", b"1")
    with pytest.raises(InvalidRef, match="read-only"):
        client.put_file("r@master^:/x", b"1")
    assert client.get_file("r@master:/file") == b"1"


def test_open_commit_is_atomic(client: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/base", b"0")
    commit = client.start_commit("r@master", "batch")
    assert commit.state == "open"
    assert client.put_file("r@master:/one", b"1") is None  # staged in the open commit
    client.put_file(f"r@{commit.id}:/two", b"2")
    # readers of the branch see only the last finished commit
    assert [f.path for f in client.list_files("r@master")] == ["/base"]
    assert client.get_file(f"r@{commit.id}:/one") == b"1"  # the open commit itself can be read
    done = client.finish_commit("r@master")
    assert done.id == commit.id and done.state == "finished" and done.description == "batch"
    assert [f.path for f in client.list_files("r@master")] == ["/base", "/one", "/two"]
    with pytest.raises(Conflict, match="is finished"):
        client.put_file(f"r@{commit.id}:/three", b"3")


def test_staging_validates_conflicts_early(client: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/f", b"1")
    client.start_commit("r@master")
    with pytest.raises(Conflict):
        client.put_file("r@master:/f/g", b"x")
    client.finish_commit("r@master")
    assert client.get_file("r@master:/f") == b"1"


def test_branches_and_head_moves(client: Client) -> None:
    client.create_repo("r")
    c1 = client.put_file("r@master:/a", b"1")
    c2 = client.put_file("r@master:/a", b"2")
    assert c1 and c2
    client.create_branch("r@staging", head="master^")
    assert client.get_file("r@staging:/a") == b"1"
    with pytest.raises(AlreadyExists):
        client.create_branch("r@staging")
    client.create_branch("r@staging", head=c2.id)
    assert client.get_file("r@staging:/a") == b"2"
    assert [b.name for b in client.list_branches("r")] == ["master", "staging"]
    client.delete_branch("r@staging")
    assert [b.name for b in client.list_branches("r")] == ["master"]
    # writing to a new branch creates it, branching from nothing
    client.put_file("r@feature:/x", b"x")
    assert [f.path for f in client.list_files("r@feature")] == ["/x"]


def test_squash_and_delete_commit(client: Client) -> None:
    client.create_repo("r")
    c1 = client.put_file("r@master:/a", b"1")
    c2 = client.put_file("r@master:/b", b"2")
    c3 = client.put_file("r@master:/c", b"3")
    assert c1 and c2 and c3
    with pytest.raises(Conflict, match="head"):
        client.squash_commit(f"r@{c3.id}")
    client.squash_commit(f"r@{c2.id}")
    assert [c.id for c in client.list_commits("r@master")] == [c3.id, c1.id]
    assert [f.path for f in client.list_files("r@master")] == ["/a", "/b", "/c"]
    with pytest.raises(Conflict, match="child"):
        client.delete_commit(f"r@{c1.id}")
    client.delete_commit(f"r@{c3.id}")
    assert client.inspect_commit("r@master").id == c1.id
    assert [f.path for f in client.list_files("r@master")] == ["/a"]


def test_wait_and_commit_sets(client: Client) -> None:
    client.create_repo("r")
    c = client.put_file("r@master:/a", b"1")
    assert c is not None
    assert client.wait_commit("r@master", timeout=1).id == c.id
    assert [x.id for x in client.inspect_commit_set(c.global_id)] == [c.id]
    open_commit = client.start_commit("r@master")
    from tusk.errors import Timeout

    with pytest.raises(Timeout):
        client.wait_commit(f"r@{open_commit.id}", timeout=0.3)


def test_fsck_clean_then_detects_corruption(client: Client, store: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/a", b"a" * 5000)
    client.put_file("r@master:/b", b"b" * 5000)
    assert client.fsck().ok
    objects = store.services.ctx.objects
    digest = store.services.files.lookup(__import__("tusk.versioning.refs", fromlist=["x"]).parse_file_ref(
        "r@master:/b")).file.chunks[0].digest  # type: ignore[union-attr]
    objects.put(chunk_key(digest), b"b" * 4999 + b"X")
    store.services.ctx.content._known.clear()
    report = client.fsck()
    assert not report.ok
    assert any(p.path == "/b" and "corrupt" in p.problem for p in report.problems)
    with pytest.raises(ObjectCorrupt, match="r@master:/b"):
        client.get_file("r@master:/b")
    assert client.get_file("r@master:/a") == b"a" * 5000


def test_fsck_repair_rewrites_a_bad_chunk_from_another_stored_copy(client: Client, store: Client,
                                                                  tmp_path: Path) -> None:
    data = b"same bytes, two copies " * 10
    store.create_repo("r")
    store.put_file("r@master:/loose.txt", data)  # a loose chunk
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "packed.txt").write_bytes(data)
    store.put_file("r@master:/d", tmp_path / "d", recursive=True)  # the same bytes again, in a pack
    objects = store.services.ctx.objects
    key = chunk_key(store.services.files.lookup(__import__("tusk.versioning.refs", fromlist=["x"]).parse_file_ref(
        "r@master:/loose.txt")).file.chunks[0].digest)  # type: ignore[union-attr]
    objects.put(key, b"X" + data[1:])  # same size: only hashing sees it
    report = client.fsck()
    assert {p.path for p in report.problems} == {"/loose.txt"}  # the good packed copy does not hide it
    report = client.fsck(repair=True)
    assert report.ok and report.repaired and all(r.endswith(":/loose.txt") for r in report.repaired)
    assert client.get_file("r@master:/loose.txt") == data and client.fsck().ok
    assert not list(objects.list("suspect/"))  # the flag is cleared once the chunk is whole


def test_commit_cost_is_proportional_to_change(client: Client, store: Client) -> None:
    client.create_repo("r")
    with client.modify("r@master") as m:
        for d in range(30):
            for f in range(30):
                m.put_bytes(f"/d{d}/f{f}", f"{d}/{f}".encode())
    objects = store.services.ctx.objects
    trees_before = set(objects.list("trees/"))
    chunks_before = set(objects.list("chunks/"))
    client.put_file("r@master:/d12/f7", b"changed")
    assert len(set(objects.list("trees/")) - trees_before) == 2
    assert len(set(objects.list("chunks/")) - chunks_before) == 1


def test_progress_callbacks_count_every_byte(client: Client, tmp_path: Path) -> None:
    client.create_repo("r")
    src = tmp_path / "blob"
    src.write_bytes(bytes(range(256)) * 20_000)
    seen: list[int] = []
    client.put_file("r@master:/blob", src, progress=seen.append)
    assert sum(seen) == src.stat().st_size and len(seen) > 1
    got: list[int] = []
    client.download("r@master:/blob", tmp_path / "copy", progress=got.append)
    assert sum(got) == src.stat().st_size
    assert (tmp_path / "copy").read_bytes() == src.read_bytes()


def _small_dir(root: Path, n: int, tag: str = "") -> Path:
    for i in range(n):
        sub = root / f"d{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.txt").write_text(f"small file {i} {tag}\n" * (i % 7 + 1))
    return root


def test_small_files_are_packed_and_dedup_across_clients(backend: Backend, tmp_path: Path) -> None:
    if backend.name == "remote":
        pytest.skip("about the caches of two embedded clients; a server is one process")
    from tests.conftest import Backend

    assert isinstance(backend, Backend)
    src = _small_dir(tmp_path / "src", 200)
    with backend.client() as first:
        first.create_repo("r")
        first.put_file("r@master:/a", src, recursive=True)
        objects = first.services.ctx.objects
        assert list(objects.list("chunks/")) == []
        packs = sorted(objects.list("packs/"))
        assert len(packs) == 1
        assert first.get_file("r@master:/a/d3/f13.txt") == (src / "d3" / "f13.txt").read_bytes()
    with backend.client() as second:  # a fresh process-level cache: dedup comes from the chunk index
        second.put_file("r@master:/b", src, recursive=True)
        assert sorted(second.services.ctx.objects.list("packs/")) == packs
        assert second.get_file("r@master:/b/d3/f13.txt") == (src / "d3" / "f13.txt").read_bytes()
        (src / "d0" / "f0.txt").write_text("changed\n")
        second.put_file("r@master:/a", src, recursive=True)
        assert len(list(second.services.ctx.objects.list("packs/"))) == 2
        assert second.get_file("r@master:/a/d0/f0.txt") == b"changed\n"
        assert second.fsck().ok and second.fsck(verify_chunks=False).ok


def test_a_large_file_is_packed_into_blocks_that_dedup_per_chunk(backend: Backend, tmp_path: Path) -> None:
    if backend.name == "remote":
        pytest.skip("a remote put sends a stream, stored loose; this is about local files put in process")
    import random

    from tusk.storage.content import PACK_TARGET

    data = random.Random(7).randbytes(PACK_TARGET + (8 << 20))  # a little more than one pack's worth
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    with backend.client() as first:
        first.create_repo("r")
        first.put_file("r@master:/big.bin", src)
        objects = first.services.ctx.objects
        assert list(objects.list("chunks/")) == []  # not one loose object per chunk
        packs = {s.key: s.size for s in objects.scan("packs/")}
        assert len(packs) == 2 and sum(packs.values()) == len(data)
        assert first.get_file("r@master:/big.bin") == data
    with backend.client() as second:  # a fresh process: dedup comes from the chunk index
        second.put_file("r@master:/again.bin", src)
        assert {s.key: s.size for s in second.services.ctx.objects.scan("packs/")} == packs
        edited = data[: 20 << 20] + random.Random(8).randbytes(1 << 20) + data[20 << 20 :]
        src.write_bytes(edited)
        second.put_file("r@master:/edited.bin", src)
        objects = second.services.ctx.objects
        added = sum(s.size for s in objects.scan("packs/") if s.key not in packs)
        assert added <= 3 << 20, added  # the insertion and the chunks around it, not the file
        assert second.get_file("r@master:/edited.bin") == edited
        assert second.get_file("r@master:/big.bin") == data
        assert second.fsck().ok and second.fsck(verify_chunks=False).ok
        first_pack = min(packs, key=lambda k: -packs[k])  # the full one
        cut = objects.get(first_pack)[:-1]
        objects.put(first_pack, cut)
        assert not second.fsck(verify_chunks=False).ok  # a pack cut short is seen without reading it
    src.write_bytes(data)
    with backend.client() as third:  # the same bytes again: the dedup hit sees the short pack and repairs it
        third.put_file("r@master:/big.bin", src)
        assert third.fsck().ok and third.get_file("r@master:/big.bin") == data


def test_packs_seal_at_target_size(client: Client, store: Client, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import tusk.storage.content as content

    monkeypatch.setattr(content, "PACK_TARGET", 4096)
    src = _small_dir(tmp_path / "src", 300, tag="x" * 40)
    client.create_repo("r")
    client.put_file("r@master:/", src, recursive=True)
    assert len(list(store.services.ctx.objects.list("packs/"))) > 5
    for f in client.walk_files("r@master"):
        assert client.get_file(f"r@master:{f.path}") == (src / f.path.lstrip("/")).read_bytes()


def test_corruption_inside_a_pack_names_the_file(client: Client, store: Client, tmp_path: Path) -> None:
    src = _small_dir(tmp_path / "src", 20)
    client.create_repo("r")
    client.put_file("r@master:/", src, recursive=True)
    objects = store.services.ctx.objects
    (key,) = list(objects.list("packs/"))
    raw = bytearray(objects.get(key))
    raw[len(raw) // 2] ^= 0x20
    objects.put(key, bytes(raw))
    report = client.fsck()
    assert len(report.problems) == 1 and "corrupt" in report.problems[0].problem
    bad = report.problems[0].path
    with pytest.raises(ObjectCorrupt, match=bad):
        client.get_file(f"r@master:{bad}")
