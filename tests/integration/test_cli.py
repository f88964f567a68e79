"""The tusk CLI, in-process, against both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_runner import Run, cli_runner
from tests.conftest import CLI_BACKENDS, Backend, open_backend


@pytest.fixture(params=CLI_BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Embedded on both stores, and remote: the same commands against a server."""
    yield from open_backend(request.param, request, tmp_path)


@pytest.fixture
def tusk(backend: Backend, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    return cli_runner(backend.env, monkeypatch, capsys)


def test_repo_and_file_roundtrip(tusk: Run, tmp_path: Path) -> None:
    assert tusk("repo", "create", "images").code == 0
    src = tmp_path / "cat.txt"
    src.write_text("meow")
    r = tusk("put", "file", "images@master:/animals/cat.txt", "-f", str(src))
    assert r.code == 0 and "committed" in r.out
    assert tusk("get", "file", "images@master:/animals/cat.txt").out == "meow"
    listing = tusk("list", "file", "images@master:/animals", "--json").json()
    assert listing == [{"path": "/animals/cat.txt", "kind": "file", "size_bytes": 4,
                        "digest": listing[0]["digest"], "chunks": 1}]  # type: ignore[index]
    repos = tusk("--json", "list", "repo").json()
    assert [r["name"] for r in repos] == ["images"]  # type: ignore[index, union-attr]


def test_verb_first_and_noun_first_are_equivalent(tusk: Run) -> None:
    assert tusk("create", "repo", "a").code == 0
    assert tusk("repo", "create", "b").code == 0
    assert [r["name"] for r in tusk("repo", "list", "--json").json()] == ["a", "b"]  # type: ignore[index, union-attr]


def test_stdin_put_append_and_diff(tusk: Run) -> None:
    tusk("repo", "create", "logs")
    assert tusk("put", "file", "logs@master:/app.log", "-f", "-", stdin=b"one\n").code == 0
    assert tusk("put", "file", "logs@master:/app.log", "-f", "-", "--append", stdin=b"two\n").code == 0
    assert tusk("get", "file", "logs@master:/app.log").out == "one\ntwo\n"
    assert tusk("get", "file", "logs@master^:/app.log").out == "one\n"
    diff = tusk("diff", "file", "logs@master", "--json").json()
    assert diff == [{"path": "/app.log", "change": "modified", "old_size": 4, "new_size": 8}]


def test_recursive_put_get_glob_copy_delete(tusk: Run, tmp_path: Path) -> None:
    src = tmp_path / "data"
    (src / "train").mkdir(parents=True)
    (src / "test").mkdir()
    for i in range(5):
        (src / "train" / f"{i}.csv").write_text(f"train {i}")
        (src / "test" / f"{i}.csv").write_text(f"test {i}")
    tusk("repo", "create", "ds")
    assert tusk("put", "file", "ds@master:/", "-r", "-f", str(src)).code == 0
    globbed = tusk("glob", "file", "ds@master:/train/*.csv", "--json").json()
    assert len(globbed) == 5  # type: ignore[arg-type]
    out = tmp_path / "out"
    assert tusk("get", "file", "ds@master:/test", "-r", "-o", str(out)).code == 0
    assert (out / "3.csv").read_text() == "test 3"
    assert tusk("copy", "file", "ds@master:/train", "ds@master:/train-copy").code == 0
    assert tusk("get", "file", "ds@master:/train-copy/4.csv").out == "train 4"
    assert tusk("delete", "file", "ds@master:/test").code == 0
    paths = [f["path"] for f in tusk("list", "file", "ds@master", "--json").json()]  # type: ignore[union-attr, index]
    assert paths == ["/train", "/train-copy"]


def test_recursive_put_skips_loops_fifos_and_sockets_with_a_warning(tusk: Run, tmp_path: Path) -> None:
    import os
    import socket

    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "ok.txt").write_text("ok")
    (src / "sub" / "loop").symlink_to("..")  # back up to the tree itself: a walk that follows it never ends
    (src / "self").symlink_to("self")  # a link to itself
    (src / "dangling").symlink_to("nowhere")
    (src / "linked.txt").symlink_to(src / "sub" / "ok.txt")  # a good link is followed
    os.mkfifo(src / "pipe")  # opening it would block the put forever
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "s"))  # a short path: AF_UNIX names are limited to ~100 bytes
    os.rename(tmp_path / "s", src / "sock")
    try:
        tusk("repo", "create", "t")
        r = tusk("put", "file", "t@master:/", "-r", "-f", str(src))
    finally:
        sock.close()
    assert r.code == 0, r.err
    assert "Traceback" not in r.err
    warned = {line.split("skipped ", 1)[1].split(":")[0] for line in r.err.splitlines() if "skipped" in line}
    assert warned == {str(src / n) for n in ("sub/loop", "self", "dangling", "pipe", "sock")}, r.err
    assert "symlink loop" in r.err and "FIFO" in r.err and "socket" in r.err and "dangling" in r.err
    paths = [f["path"] for f in tusk("list", "file", "t@master:/", "--json").json()]  # type: ignore[union-attr, index]
    assert paths == ["/linked.txt", "/sub"]
    assert tusk("get", "file", "t@master:/sub/ok.txt").out == "ok"


def test_commits_and_branches(tusk: Run) -> None:
    tusk("repo", "create", "r")
    commit_id = tusk("commit", "start", "r@master", "-m", "batch").out.strip()
    tusk("put", "file", "r@master:/a", "-f", "-", stdin=b"1")
    tusk("put", "file", "r@master:/b", "-f", "-", stdin=b"2")
    assert tusk("list", "file", "r@master").code != 0  # nothing finished on master yet
    assert tusk("finish", "commit", "r@master").code == 0
    info = tusk("inspect", "commit", f"r@{commit_id}", "--json").json()
    assert info["state"] == "finished" and info["size_bytes"] == 2  # type: ignore[index]
    assert tusk("inspect", "commit", commit_id).code == 0  # a global id
    assert tusk("branch", "create", "r@staging", "--head", "master").code == 0
    branches = tusk("branch", "list", "r", "--json").json()
    assert {b["name"]: b["head"] for b in branches} == {"master": commit_id, "staging": commit_id}  # type: ignore[union-attr, index]
    assert tusk("wait", "commit", "r@master", "--timeout", "5").code == 0
    assert len(tusk("list", "commit", "r@master", "--json").json()) == 1  # type: ignore[arg-type]
    assert tusk("fsck").code == 0


@pytest.mark.parametrize(("args", "code", "message"), [
    (("get", "file", "nope@master:/x"), 2, "repo 'nope' not found"),
    (("get", "file", "r@dev:/x"), 2, "branch 'dev' not found"),
    (("get", "file", "r@master:/missing"), 2, "no such file"),
    (("get", "file", "r@ma ster:/x"), 2, "not a branch name or commit id"),
    (("put", "file", "r@master:/../../etc/passwd", "-f", "-"), 2, "'..' would escape the repo"),
    (("put", "file", "r@master:/a/b/c", "-f", "-"), 2, "/a/b is a file"),
    (("put", "file", "r@master:/a", "-f", "-"), 2, "a directory exists"),
    (("put", "file", "r@master:/", "-f", "-"), 2, "a file needs a path inside the repo, not '/'"),
    (("repo", "create", "r"), 2, "already exists"),
    (("repo", "create", "bad name"), 2, "invalid repo name"),
])
def test_user_mistakes_give_one_line_errors(tusk: Run, args: tuple[str, ...], code: int, message: str) -> None:
    tusk("repo", "create", "r")
    tusk("put", "file", "r@master:/a/b", "-f", "-", stdin=b"x")
    r = tusk(*args, stdin=b"data")
    assert r.code == code
    assert message in r.err
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert tusk("get", "file", "r@master:/a/b").out == "x"  # nothing was lost


def test_fsck_exit_code_on_corruption(tusk: Run, backend: Backend) -> None:
    tusk("repo", "create", "r")
    tusk("put", "file", "r@master:/f", "-f", "-", stdin=b"payload" * 100)
    client = backend.store_client()
    try:
        objects = client.services.ctx.objects
        for key in [*objects.list("chunks/"), *objects.list("packs/")]:  # wherever the bytes were stored
            objects.put(key, b"garbage")
    finally:
        client.close()
    r = tusk("fsck")
    assert r.code == 3 and "corrupt" in r.err
    r = tusk("get", "file", "r@master:/f")
    assert r.code == 3 and "r@master:/f" in r.err and r.out == ""


def _corrupt(backend: Backend, prefix: str, truncate: bool = False) -> int:
    """Flip a byte in (or cut short) every stored object under ``prefix``: on disk for the local store."""
    from tusk.storage.objects import LocalObjectStore

    client = backend.store_client()
    try:
        objects = client.services.ctx.objects
        keys = list(objects.list(prefix))
        for key in keys:
            data = objects.get(key)
            bad = data[:-1] if truncate else bytes([data[0] ^ 1]) + data[1:]
            if isinstance(objects, LocalObjectStore):
                (objects.root / key).write_bytes(bad)
            else:
                objects.put(key, bad)
    finally:
        client.close()
    return len(keys)


@pytest.mark.parametrize("kind", ["loose", "packed", "block"])
def test_a_corrupt_chunk_is_repaired_by_putting_the_same_bytes_again(tusk: Run, backend: Backend, tmp_path: Path,
                                                                     kind: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = bytes(range(256)) * (1 if kind == "packed" else 12_000)  # 256 B: a small file's pack; 3 MB: chunks
    (src / "f.bin").write_bytes(data)
    tusk("repo", "create", "r")

    def put() -> int:
        if kind == "loose":  # a stream: loose chunks
            return tusk("put", "file", "r@master:/f.bin", "-f", "-", stdin=data).code
        return tusk("put", "file", "r@master:/", "-r", "-f", str(src)).code  # local files: packed

    assert put() == 0
    prefixes = {"loose": ["chunks/"], "packed": ["packs/"], "block": ["packs/", "chunks/"]}[kind]
    assert sum(_corrupt(backend, p) for p in prefixes) >= 1  # same size: only a hash sees it
    r = tusk("get", "file", "r@master:/f.bin", "-o", str(tmp_path / "bad.bin"))
    assert r.code == 3 and "corrupt" in r.err and "put the same file again" in r.err.lower()
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    r = tusk("fsck", "--repair")  # no good copy anywhere: it names the file to put again
    assert r.code == 3 and "/f.bin" in r.err and "put this file again" in r.err
    assert put() == 0  # the same bytes: they dedup...
    out = tmp_path / "back.bin"  # ...and repair
    assert tusk("get", "file", "r@master:/f.bin", "-o", str(out)).code == 0 and out.read_bytes() == data
    assert tusk("fsck").code == 0, tusk("fsck").err  # every commit's copy is whole again
    assert tusk("fsck", "--fast").code == 0


@pytest.mark.parametrize("source", ["stream", "file"])
def test_fsck_fast_sees_a_truncated_chunk(tusk: Run, backend: Backend, tmp_path: Path, source: str) -> None:
    data = bytes(range(256)) * 12_000
    (tmp_path / "f.bin").write_bytes(data)
    tusk("repo", "create", "r")

    def put() -> None:  # a stream is stored as loose chunks, a local file in a pack
        if source == "stream":
            assert tusk("put", "file", "r@master:/f.bin", "-f", "-", stdin=data).code == 0
        else:
            assert tusk("put", "file", "r@master:/f.bin", "-f", str(tmp_path / "f.bin")).code == 0

    put()
    assert tusk("fsck", "--fast").code == 0
    assert _corrupt(backend, "chunks/", truncate=True) + _corrupt(backend, "packs/", truncate=True) >= 1
    r = tusk("fsck", "--fast")
    assert r.code == 3 and "wrong size" in r.err and "/f.bin" in r.err
    put()  # the size check on dedup (of the loose chunk, of the pack) rewrites it
    assert tusk("fsck").code == 0
