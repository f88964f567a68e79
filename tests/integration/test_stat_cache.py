"""The stat cache of ``put -r`` (tusk.versioning.statcache): a re-put of an unchanged tree reads no file, and
nothing it skips reading is ever stale: a changed file (even within the same second, with its size and mtime
put back), a gc in between, or a store made again at the same place."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BACKENDS, Backend, open_backend
from tusk.config import Settings
from tusk.sdk import Client
from tusk.storage.content import FileNode
from tusk.versioning import statcache

RACY_NS = 200_000_000  # the tests' racy window: 0.2 s, so they need not wait 2 s for files to be cacheable


@pytest.fixture(autouse=True)
def short_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statcache, "RACY_NS", RACY_NS)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from open_backend(request.param, request, tmp_path / "store")


def _tree(root: Path, n: int = 40) -> Path:
    for i in range(n):
        sub = root / f"d{i % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:03d}.txt").write_bytes(f"file {i}\n".encode() * (1 + i))
    (root / "big.bin").write_bytes(os.urandom(3 << 20))  # chunked by FastCDC, not packed
    return root


def _settle() -> None:
    time.sleep(RACY_NS / 1e9 * 1.5)  # the files are now older than the racy window


def _put(c: Client, source: Path) -> tuple[int, dict[str, bytes]]:
    """Put the tree as one commit; (files taken from the cache, the commit's files)."""
    with c.modify("data@master") as m:
        m.put_tree("/", source)
    return m.cached_files, {f.path: c.get_file(f"data@master:{f.path}") for f in c.walk_files("data@master:/")
                            if f.kind == "file"}


def _on_disk(source: Path) -> dict[str, bytes]:
    return {f"/{p.relative_to(source)}": p.read_bytes() for p in sorted(source.rglob("*")) if p.is_file()}


def test_a_re_put_of_an_unchanged_tree_reads_no_file(backend: Backend, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    source = _tree(tmp_path / "src")
    _settle()
    with backend.client() as c:
        c.create_repo("data")
        cached, first = _put(c, source)
        assert cached == 0 and first == _on_disk(source)
        read: list[str] = []
        content = c.services.ctx.content
        real = content.write_many

        def spying(files: Iterable[tuple[str, int]], progress: Any = None) -> list[FileNode]:
            listed = list(files)
            read.extend(path for path, _ in listed)
            return real(listed, progress)

        monkeypatch.setattr(content, "write_many", spying)
        cached, again = _put(c, source)
        assert (cached, read) == (len(first), [])
        assert again == first
        (source / "d2" / "new.txt").write_bytes(b"a new file")
        (source / "big.bin").write_bytes(os.urandom(1 << 20))  # another size
        cached, files = _put(c, source)
        assert sorted(read) == sorted(str(source / p) for p in ("big.bin", "d2/new.txt"))
        assert cached == len(first) - 1 and files == _on_disk(source)


def test_a_file_changed_within_the_same_second_is_read_again(backend: Backend, tmp_path: Path) -> None:
    source = _tree(tmp_path / "src", n=8)
    _settle()
    with backend.client() as c:
        c.create_repo("data")
        _put(c, source)
        target = source / "d1" / "f001.txt"
        st = target.stat()
        old = target.read_bytes()
        target.write_bytes(old.upper())  # same size
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime put back: only ctime moved
        assert target.stat().st_size == st.st_size and target.stat().st_mtime_ns == st.st_mtime_ns
        cached, files = _put(c, source)
        assert files["/d1/f001.txt"] == old.upper()
        assert cached == len(files) - 1

        # changed again at once, in the racy window: never cached, so a further same-size change is seen too
        target.write_bytes(old.lower())
        _put(c, source)
        target.write_bytes(old.swapcase())
        cached, files = _put(c, source)
        assert files["/d1/f001.txt"] == old.swapcase()


def test_after_a_gc_the_cache_is_not_trusted(backend: Backend, tmp_path: Path) -> None:
    source = _tree(tmp_path / "src", n=8)
    _settle()
    with backend.client() as c:
        c.create_repo("data")
        _put(c, source)
        c.delete_repo("data")  # every chunk of the tree is now garbage
        report = c.gc(grace=0)
        assert report.objects_swept > 0
        c.create_repo("data")
        cached, files = _put(c, source)
        assert cached == 0 and files == _on_disk(source)
        assert c.fsck().ok


def test_a_store_made_again_at_the_same_place_does_not_reuse_the_cache(tmp_path: Path) -> None:
    source = _tree(tmp_path / "src", n=8)
    _settle()
    home = tmp_path / "home"
    for attempt in range(2):
        with Client(settings=_settings(home)) as c:
            c.create_repo("data")
            cached, files = _put(c, source)
            assert cached == 0, attempt  # the second store is new: its cache entries are not the first's
            assert files == _on_disk(source)
        for name in ("tusk.db", "tusk.db-wal", "tusk.db-shm"):
            (home / name).unlink(missing_ok=True)
        for p in sorted((home / "objects").rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
    assert (home / "cache" / "stat.db").exists()


def test_a_corrupt_cache_file_costs_reads_not_puts(tmp_path: Path) -> None:
    source = _tree(tmp_path / "src", n=8)
    _settle()
    home = tmp_path / "home"
    (home / "cache").mkdir(parents=True)
    (home / "cache" / "stat.db").write_bytes(b"this is not a database" * 100)
    with Client(settings=_settings(home)) as c:
        c.create_repo("data")
        assert _put(c, source) == (0, _on_disk(source))
        cached, files = _put(c, source)  # the file was replaced by a working cache
        assert cached == len(files)


def _settings(home: Path) -> Settings:
    return Settings.for_home(home, TUSK_RUNTIME="local")


def _spy_lookups(c: Client, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The local files the stat cache is asked about, one by one."""
    asked: list[str] = []
    cache, _ = c.services.files.stat_cache()
    assert cache is not None
    real = cache.lookup

    def spying(store: str, files: Any, generation: int) -> Any:
        asked.extend(path for path, _ in files)
        return real(store, files, generation)

    monkeypatch.setattr(cache, "lookup", spying)
    return asked


def test_an_unchanged_directory_is_skipped_whole_and_a_changed_one_is_not(backend: Backend, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    source = _tree(tmp_path / "src")
    _settle()
    with backend.client() as c:
        c.create_repo("data")
        _, first = _put(c, source)
        asked = _spy_lookups(c, monkeypatch)
        cached, again = _put(c, source)
        assert again == first and cached == len(first)
        assert asked == []  # every directory unchanged: not one file looked up, nothing staged
        (source / "d2" / "f002.txt").write_bytes(b"changed")
        _settle()
        cached, files = _put(c, source)
        assert files == _on_disk(source) and files["/d2/f002.txt"] == b"changed"
        assert sorted(asked) == sorted(str(p) for p in (source / "d2").iterdir())  # that directory only
        # someone else changes the repo's d1: its digest is not the one the last put left, so it is put again
        asked.clear()
        c.put_file("data@master:/d1/f001.txt", b"theirs")
        c.put_file("data@master:/d3/extra.txt", b"theirs too")
        cached, files = _put(c, source)
        assert files["/d1/f001.txt"] == (source / "d1" / "f001.txt").read_bytes()
        assert files["/d3/extra.txt"] == b"theirs too"  # put -r adds and replaces, never deletes
        assert {Path(p).parent.name for p in asked} == {"d1", "d3", "src"}  # "/" holds d1 and d3: changed too


def test_a_young_file_keeps_its_directory_from_being_skipped(backend: Backend, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    source = _tree(tmp_path / "src", n=8)
    _settle()
    with backend.client() as c:
        c.create_repo("data")
        target = source / "d1" / "f001.txt"
        target.write_bytes(b"young")  # changed right before the put: its directory's entry is not kept
        _put(c, source)
        st = target.stat()
        target.write_bytes(b"YOUNG")  # the same size, the mtime put back
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        asked = _spy_lookups(c, monkeypatch)
        _, files = _put(c, source)
        assert files["/d1/f001.txt"] == b"YOUNG"
        assert str(target) in asked


def test_a_put_staged_into_an_open_commit_skips_no_directory(backend: Backend, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    source = _tree(tmp_path / "src", n=8)
    _settle()
    with backend.client() as c:
        c.create_repo("data")
        _put(c, source)
        commit = c.start_commit("data@master")
        c.delete_file(f"data@{commit.id}:/d1")
        asked = _spy_lookups(c, monkeypatch)
        with c.modify(f"data@{commit.id}") as m:
            m.put_tree("/", source)
        c.finish_commit(f"data@{commit.id}")
        assert len(asked) == len(_on_disk(source))
        files = {f.path for f in c.walk_files("data@master:/") if f.kind == "file"}
        assert files == set(_on_disk(source))


def test_a_directory_another_put_of_the_batch_wrote_to_is_not_recorded(backend: Backend, tmp_path: Path) -> None:
    """Two trees put in one batch, the second over the first's files: the digest the first's directory lands
    with is not what the first put, so it vouches for nothing and the next put of the first alone restores it."""
    first = _tree(tmp_path / "first", n=8)
    second = tmp_path / "second" / "d1"
    second.mkdir(parents=True)
    (second / "f001.txt").write_bytes(b"from the second tree")
    _settle()
    with backend.client() as c:
        c.create_repo("data")
        with c.modify("data@master") as m:
            m.put_tree("/", first)
            m.put_tree("/d1", second)
        assert c.get_file("data@master:/d1/f001.txt") == b"from the second tree"
        _put(c, first)
        assert c.get_file("data@master:/d1/f001.txt") == (first / "d1" / "f001.txt").read_bytes()
