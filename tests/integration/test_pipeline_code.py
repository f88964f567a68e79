"""Pipeline code is data: stored as a tree at create/update, materialized by digest for every job, checked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Backend, open_backend
from tusk import Client
from tusk.config import Settings
from tusk.pipelines.codestore import hash_code
from tusk.storage.content import chunk_key
from tusk.versioning.trees import tree_key

SPEC = {
    "pipeline": {"name": "shout"},
    "transform": {"cmd": ["python3", "shout.py"]},  # relative: runs in the code directory
    "input": {"pfs": {"repo": "words", "glob": "/*"}},
    "datum_tries": 1,
}
PROGRAM = """import os, pathlib
src = pathlib.Path(os.environ["words"])
pathlib.Path(os.environ.get("TUSK_PFS", "/pfs"), "out", src.name).write_text(src.read_text(){suffix})
"""


def _code(where: Path, suffix: str = ".upper()") -> Path:
    """A spec file beside its code; returns the spec file."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "shout.py").write_text(PROGRAM.replace("{suffix}", suffix))
    (where / "lib").mkdir(exist_ok=True)
    (where / "lib" / "notes.txt").write_text("a nested file, so the code tree has a directory\n")
    spec = where / "spec.json"
    spec.write_text(json.dumps(SPEC))
    return spec


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    return tmp_path / "code"


def test_a_job_runs_the_stored_code_until_the_pipeline_is_updated(pc: Client, code_dir: Path) -> None:
    spec = _code(code_dir)
    subprocess.run(["git", "init", "-q", str(code_dir)], check=True)
    subprocess.run(["git", "-C", str(code_dir), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c",
                    "--allow-empty"], check=True)
    pc.create_repo("words")
    pc.put_file("words@master:/a", b"hello")
    info = pc.create_pipeline(spec)[0]
    assert pc.get_file("shout@master:/a") == b"HELLO"
    stored = hash_code(code_dir).digest
    assert info.code is not None and info.code["tree"] == stored and info.code["git"]["commit"]
    assert pc.inspect_pipeline("shout").code == info.code

    (code_dir / "shout.py").write_text(PROGRAM.replace("{suffix}", "[::-1]"))  # edited after create
    pc.put_file("words@master:/b", b"world")
    assert pc.get_file("shout@master:/b") == b"WORLD"  # the stored code ran, not the directory
    assert pc.list_jobs("shout")[0].state == "success"

    notes = pc.update_pipeline(spec)[0].notes
    assert any("code" in n and "changed" in n for n in notes), notes
    assert pc.get_file("shout@master:/a") == b"olleh" and pc.get_file("shout@master:/b") == b"dlrow"
    assert pc.inspect_pipeline("shout").code["tree"] == hash_code(code_dir).digest != stored  # type: ignore[index]

    node = pc.lineage("shout@master")["commit"]  # lineage names the code the job ran, and its git commit
    assert node["code"]["tree"] == hash_code(code_dir).digest and node["code"]["git_commit"]
    versions = pc.pipeline_versions("shout")
    assert [v["code"]["tree"] for v in versions] == [stored, hash_code(code_dir).digest]  # type: ignore[index]


@pytest.mark.parametrize("target", ["chunk", "tree"])
def test_corrupt_stored_code_fails_the_job_and_leaves_the_output_branch(tmp_path: Path, code_dir: Path,
                                                                         target: str) -> None:
    home = tmp_path / "home"
    settings = Settings.for_home(home, TUSK_RUNTIME="local")
    spec = _code(code_dir)
    with Client(settings=settings) as c:
        c.create_repo("words")
        c.put_file("words@master:/a", b"hello")
        c.create_pipeline(spec)
        head = c.inspect_commit("shout@master").id
        assert c.get_file("shout@master:/a") == b"HELLO"
    tree = hash_code(code_dir)
    key = tree_key(tree.digest) if target == "tree" else chunk_key(next(  # shout.py's chunk
        d for d in tree.chunks if (home / "objects" / chunk_key(d)).read_bytes().startswith(b"import os")))
    stored = home / "objects" / key
    stored.write_bytes(b"X" * stored.stat().st_size)  # same size: only hashing can tell
    shutil.rmtree(home / "cache", ignore_errors=True)  # as on a replica that never ran this code

    with Client(settings=settings) as c:  # a fresh process: nothing of the tree is cached in memory
        c.put_file("words@master:/b", b"world")
        job = c.list_jobs("shout")[0]
        assert job.state == "failure"
        assert job.reason is not None and "pipeline shout version 1" in job.reason, job.reason
        assert "failed verification" in job.reason and tree.digest[:16] in job.reason, job.reason
        assert c.inspect_commit("shout@master").id == head  # the output branch did not move
        assert not list(home.joinpath("cache", "code").glob(f"{tree.digest}*"))  # nothing half-written is kept

        c.update_pipeline(spec)  # the same code, stored again: the damaged object is rewritten
        assert c.list_jobs("shout")[0].state == "success"
        assert c.get_file("shout@master:/b") == b"WORLD"


def test_storing_identical_code_again_writes_nothing(tmp_path: Path, code_dir: Path) -> None:
    spec = _code(code_dir)
    with Client(settings=Settings.for_home(tmp_path / "home", TUSK_RUNTIME="local")) as c:
        c.create_repo("words")
        c.create_pipeline(spec)
        tree = hash_code(code_dir)
        code_keys = {tree_key(tree.digest)} | {chunk_key(d) for d in tree.chunks}
        objects = c.services.ctx.objects
        assert all(objects.exists(k) for k in code_keys)
        written: list[str] = []
        put = objects.put

        def counting_put(key: str, data: bytes | memoryview) -> None:
            written.append(key)
            put(key, data)

        objects.put = counting_put  # type: ignore[method-assign]
        c.update_pipeline(spec)
        c.delete_pipeline("shout")
        c.create_pipeline(spec)  # re-created with the same code
        assert not set(written) & code_keys, written
        (code_dir / "shout.py").write_text(PROGRAM.replace("{suffix}", ".lower()"))
        c.update_pipeline(spec)
        assert set(written) & {chunk_key(d) for d in hash_code(code_dir).chunks}  # new code is written


@pytest.fixture
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from open_backend("remote", request, tmp_path)


def test_a_remote_client_uploads_only_code_the_server_lacks(remote: Backend, code_dir: Path) -> None:
    spec = _code(code_dir)
    sent: list[tuple[str, str, int]] = []
    with Client(settings=Settings.from_env(env=remote.env)) as c:

        def record(request: httpx.Request) -> None:
            size = int(request.headers.get("content-length") or 0)
            sent.append((request.method, request.url.path, size))

        c.transport.http.event_hooks["request"] = [record]  # type: ignore[attr-defined]
        c.create_repo("words")
        c.put_file("words@master:/a", b"hello")
        c.create_pipeline(spec)
        assert c.get_file("shout@master:/a") == b"HELLO"
        uploads = [s for s in sent if s[:2] == ("POST", "/api/v1/code")]
        assert len(uploads) == 1
        digest = hash_code(code_dir).digest
        assert c.inspect_pipeline("shout").code["tree"] == digest  # type: ignore[index]

        sent.clear()
        c.update_pipeline(spec)  # identical code: asked about, not sent
        c.delete_pipeline("shout")
        c.create_pipeline(spec)
        assert [s for s in sent if s[1].startswith("/api/v1/code")] == [
            ("GET", f"/api/v1/code/{digest}", 0), ("GET", f"/api/v1/code/{digest}", 0)], sent

        sent.clear()
        (code_dir / "shout.py").write_text(PROGRAM.replace("{suffix}", "[::-1]"))
        c.update_pipeline(spec)
        assert [s[:2] for s in sent if s[1].startswith("/api/v1/code")] == [
            ("GET", f"/api/v1/code/{hash_code(code_dir).digest}"), ("POST", "/api/v1/code")]
        assert c.get_file("shout@master:/a") == b"olleh"

        c.create_pipeline({"pipeline": {"name": "bare"}, "input": {"pfs": {"repo": "words", "glob": "/"}},
                           "transform": {"cmd": ["sh", "-c", "ls -A > /pfs/out/listing"]}})
        assert c.get_file("bare@master:/listing") == b""  # created without code: an empty directory


def test_a_script_in_the_code_runs_by_its_own_path(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "run.sh").write_text("#!/bin/sh\necho ran > /pfs/out/ran\n")
    (code / "run.sh").chmod(0o755)
    (code / "spec.json").write_text('{"pipeline": {"name": "script"}, "transform": {"cmd": ["./run.sh"]},'
                                    ' "input": {"pfs": {"repo": "in", "glob": "/"}}}')
    with Client(settings=Settings.for_home(tmp_path / "home")) as c:
        c.create_repo("in")
        c.put_file("in@master:/x", b"x")
        c.create_pipeline(code / "spec.json")
        job = c.list_jobs("script")[0]
        assert job.state == "success", c.list_datums(job.id)[0].log
        assert c.get_file("script@master:/ran") == b"ran\n"


def test_a_cached_copy_with_unchanged_stats_is_not_hashed_again_and_any_edit_is_caught(
        tmp_path: Path, code_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tusk.pipelines import codestore
    from tusk.versioning import statcache

    _code(code_dir)
    monkeypatch.setattr(statcache, "RACY_NS", 0)  # every file counts as settled at once
    hashed: list[Path] = []
    real_hash = codestore.hash_code

    def counting(directory: Path, limit: int = codestore.CODE_LIMIT) -> codestore.CodeTree:
        if not directory.name.startswith(".tmp-"):  # a copy being written is checked as it is made
            hashed.append(directory)
        return real_hash(directory, limit)

    with Client(settings=Settings.from_env(env={"TUSK_HOME": str(tmp_path / "home")})) as c:
        store = c.services.pipelines.code
        digest = store.store(code_dir).digest
        cache = tmp_path / "home" / "cache" / "code"
        monkeypatch.setattr(codestore, "hash_code", counting)
        copy = store.materialize(digest, cache, "pipeline shout version 1")  # written now: nothing to check
        assert hashed == []
        assert store.materialize(digest, cache, "p") == copy and hashed == [copy]  # hashed once, stats kept
        assert store.materialize(digest, cache, "p") == copy and hashed == [copy]  # stats alone
        # an edit that keeps the size and the mtime still moves the ctime: caught, and the copy rebuilt
        program = copy / "shout.py"
        before = program.stat()
        program.write_text(program.read_text().replace("upper", "lower"))
        os.utime(program, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert store.materialize(digest, cache, "p") == copy and len(hashed) == 2
        assert (copy / "shout.py").read_text() == PROGRAM.replace("{suffix}", ".upper()")
        # a file added where the code has none
        (copy / "lib" / "extra.py").write_text("x = 1\n")
        assert store.materialize(digest, cache, "p") == copy and len(hashed) == 3
        assert not (copy / "lib" / "extra.py").exists()
