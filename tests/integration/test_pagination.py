"""Pages of a list (``offset`` and ``limit``) are the whole list cut in pieces, in its order: commits (of a repo,
and of a branch, open commit first), a directory's entries, a diff, jobs and datums (failures first too). On SQLite +
local objects, PostgreSQL + S3, and through the API (remote)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from tests.conftest import CLI_BACKENDS, Backend, open_backend
from tusk import Client
from tusk.versioning.records import CommitInfo

T = TypeVar("T")


@pytest.fixture(params=CLI_BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from open_backend(request.param, request, tmp_path)


def paged(fetch: Callable[[int, int], Sequence[T]], size: int) -> list[T]:
    """Every row, a page of ``size`` at a time, until a short page."""
    out: list[T] = []
    while True:
        rows = fetch(len(out), size)
        assert len(rows) <= size
        out += rows
        if len(rows) < size:
            return out


def _commits(client: Client, ref: str, offset: int, limit: int) -> list[CommitInfo]:
    return client.list_commits(ref, limit, offset)


def test_commit_pages_are_the_history_in_pieces(client: Client) -> None:
    client.create_repo("data")
    for i in range(11):
        client.put_file("data@master:/n.txt", str(i).encode(), description=f"commit {i}")
    client.create_branch("data@dev", "master^4")
    client.put_file("data@dev:/dev.txt", b"dev")
    client.start_commit("data@master", "still open")  # a branch's history starts with its open commit
    for ref in ("data", "data@master", "data@dev"):
        whole = [c.id for c in client.list_commits(ref)]
        for size in (1, 4, len(whole), len(whole) + 3):
            got = paged(functools.partial(_commits, client, ref), size)
            assert [c.id for c in got] == whole, (ref, size)
    history = client.list_commits("data@master")
    assert (len(history), history[0].state, history[0].description) == (12, "open", "still open")
    assert [c.description for c in client.list_commits("data@master", 2, 3)] == ["commit 8", "commit 7"]
    assert [c.description for c in client.list_commits("data@dev", 2)] == ["", "commit 6"]
    assert client.list_commits("data@master", 5, 12) == []
    assert len(client.list_commits("data")) == 13


def test_directory_pages_are_its_entries_in_pieces(client: Client) -> None:
    client.create_repo("wide")
    with client.modify("wide@master") as m:
        for i in reversed(range(23)):
            m.put_bytes(f"/dir/f{i:02d}.txt", str(i).encode())
        m.put_bytes("/dir/sub/inner.txt", b"inner")
    whole = client.list_files("wide@master:/dir")
    assert [f.path for f in whole] == [f"/dir/f{i:02d}.txt" for i in range(23)] + ["/dir/sub"]
    for size in (1, 5, 24, 30):
        assert paged(lambda at, n: client.list_files("wide@master:/dir", n, at), size) == whole, size
    assert [f.path for f in client.list_files("wide@master:/dir", 2, 22)] == ["/dir/f22.txt", "/dir/sub"]
    assert client.list_files("wide@master:/dir", 3, 24) == []
    client.put_file("wide@master:/dir/f05.txt", b"changed")
    client.delete_file("wide@master:/dir/f11.txt")
    client.put_file("wide@master:/a.txt", b"new")
    since = client.list_commits("wide@master")[-1].id
    changes = client.diff_files("wide@master", f"wide@{since}")
    assert [(c.path, c.change) for c in changes] == [("/a.txt", "added"), ("/dir/f05.txt", "modified"),
                                                     ("/dir/f11.txt", "deleted")]
    assert paged(lambda at, n: client.diff_files("wide@master", f"wide@{since}", n, at), 2) == changes
    first = client.diff_files(f"wide@{since}", None)  # against the empty parent: every file added
    assert paged(lambda at, n: client.diff_files(f"wide@{since}", None, n, at), 7) == first and len(first) == 24


# Datums of files whose name has a 3 or a 7 fail: the failed ones come first when asked.
FLAKY = {"pipeline": {"name": "flaky"},
         "transform": {"cmd": ["sh", "-c", 'case "$(basename "$data")" in *3*|*7*) exit 1;; esac; cp "$data" /pfs/out/'
                               ]},
         "input": {"pfs": {"repo": "data", "glob": "/*"}}}


def test_job_and_datum_pages_are_the_lists_in_pieces(pc: Client) -> None:
    pc.create_repo("data")
    with pc.modify("data@master") as m:
        for i in range(9):
            m.put_bytes(f"/f{i}.txt", str(i).encode())
    pc.create_pipeline(FLAKY)
    for i in range(9, 13):
        pc.put_file(f"data@master:/f{i}.txt", str(i).encode())
    jobs = pc.list_jobs("flaky")
    assert len(jobs) == 5
    for size in (1, 2, 5, 7):
        assert [j.id for j in paged(lambda at, n: pc.list_jobs("flaky", limit=n, offset=at), size)] == \
            [j.id for j in jobs]
    assert [j.id for j in paged(lambda at, n: pc.list_jobs(limit=n, offset=at), 2)] == \
        [j.id for j in pc.list_jobs()]
    newest = jobs[0].id
    datums = pc.list_datums(newest)
    assert len(datums) == 13 and [d.id for d in datums] == sorted(d.id for d in datums)
    for size in (1, 4, 13):
        assert paged(lambda at, n: pc.list_datums(newest, n, at), size) == datums
    first = pc.list_datums(newest, failed_first=True)
    failed = [d for d in datums if d.state == "failed"]
    assert {d.inputs[0]["path"] for d in failed} == {"/f3.txt", "/f7.txt"}
    assert first == failed + [d for d in datums if d.state != "failed"]
    for size in (1, 3):
        assert paged(lambda at, n: pc.list_datums(newest, n, at, failed_first=True), size) == first
