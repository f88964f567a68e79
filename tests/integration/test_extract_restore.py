"""`tusk extract` / `tusk restore`: a store moves whole between backends (SQLite + local → PostgreSQL + S3)."""

from __future__ import annotations

import io
import json
import sys
import tarfile
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import S3_BUCKET, Backend, open_backend
from tusk import Client
from tusk.cli.main import main
from tusk.config import Settings
from tusk.errors import InvalidArgument
from tusk.storage.metadata import Base
from tusk.versioning.archive import RUNTIME_TABLES, archived_tables

SPEC = {
    "pipeline": {"name": "shout"},
    "transform": {"cmd": ["python3", "shout.py"]},
    "input": {"pfs": {"repo": "words", "glob": "/*"}},
    "datum_tries": 1,
}
PROGRAM = """import os, pathlib
src = pathlib.Path(os.environ["words"])
pathlib.Path(os.environ.get("TUSK_PFS", "/pfs"), "out", src.name).write_text(src.read_text().upper())
"""
BIG = "".join(f"{i:08x}\n" for i in range(300_000)).encode()
MODEL = """
class Model:
    def predict(self, x):
        return [len(str(r)) for r in x]
"""


@dataclass
class Source:
    """A store on SQLite + local objects with something of everything, and its archive."""

    env: dict[str, str]
    archive: Path
    state: dict[str, Any]

    def client(self) -> Client:
        return Client(settings=Settings.from_env(env=self.env))


def _build(c: Client, tmp: Path) -> None:
    c.create_repo("words", "input words")
    c.put_file("words@master:/a", b"hello")
    with c.modify("words@master", description="two at once") as m:
        m.put_bytes("/b", b"world")
        m.put_bytes("/c", BIG)  # a file of several chunks
    code = tmp / "code"
    code.mkdir()
    (code / "shout.py").write_text(PROGRAM)
    (code / "spec.json").write_text(json.dumps(SPEC))
    c.create_pipeline(code / "spec.json")
    assert c.get_file("shout@master:/a") == b"HELLO"
    c.create_branch("words@dev", head="words@master")
    c.start_commit("words@dev", "left open")  # an open commit with a staged change
    c.put_file("words@dev:/staged", b"not yet")
    c.create_repo("model")
    with c.modify("model@master") as m:
        m.put_bytes("/tusk-model.yaml", b"class: model.py:Model\n")
        m.put_bytes("/model.py", MODEL.encode())
    v1 = c.inspect_commit("model@master").id
    c.promote_model(f"model@{v1}", "production", note="first one")
    c.put_file("model@master:/model.py", (MODEL + "\n# v2\n").encode())
    c.create_deployment({"name": "m", "predictors": [{"name": "main", "model": "model@production"}]})


def _state(c: Client) -> dict[str, Any]:
    """Everything that must survive a round trip, as plain data."""
    out: dict[str, Any] = {"repos": [r.to_dict() for r in c.list_repos()]}
    for repo in c.list_repos():
        out[f"branches/{repo.name}"] = [b.to_dict() for b in c.list_branches(repo.name)]
        commits = c.list_commits(repo.name)
        out[f"commits/{repo.name}"] = [x.to_dict() for x in commits]
        for commit in commits:
            out[f"set/{commit.global_id}"] = sorted(x.id for x in c.inspect_commit_set(commit.global_id))
            if commit.state == "finished":
                out[f"files/{repo.name}@{commit.id}"] = {
                    f.path: c.get_file(f"{repo.name}@{commit.id}:{f.path}")
                    for f in c.walk_files(f"{repo.name}@{commit.id}") if f.kind == "file"}
    out["pipeline"] = c.inspect_pipeline("shout")
    out["jobs"] = c.list_jobs("shout")
    out["manifest/production"] = c.model_manifest("model@production")
    out["manifest/master"] = c.model_manifest("model@master")
    out["models"] = c.list_models()
    out["deployment"] = c.inspect_deployment("m")
    out["deployment history"] = c.deployment_history("m")
    return out


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    tmp = tmp_path_factory.mktemp("source")
    env = {"TUSK_HOME": str(tmp / "home"), "TUSK_USER": "tester", "TUSK_RUNTIME": "local"}
    src = Source(env, tmp / "store.tar", {})
    with src.client() as c:
        _build(c, tmp)
        src.state = _state(c)
        report = c.extract(src.archive)
        assert report.objects > 0 and report.tables["commits"] == len(
            [x for k, v in src.state.items() if k.startswith("commits/") for x in v])
        assert report.archive_bytes == src.archive.stat().st_size
    yield src


def _pg_s3(request: pytest.FixtureRequest, tmp_path: Path, name: str = "target") -> Generator[Backend, None, None]:
    """A fresh PostgreSQL schema and S3 prefix (conftest's isolation), as an embedded store."""
    yield from open_backend("postgres-s3", request, tmp_path / name)


@pytest.fixture
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Client]:
    gen = _pg_s3(request, tmp_path)
    backend = next(gen)
    c = Client(settings=Settings.from_env(env=backend.env | {"TUSK_RUNTIME": "local"}))
    try:
        yield c
    finally:
        c.close()
        gen.close()


def _members(archive: Path) -> dict[str, bytes]:
    """The archive's tables and objects (the manifest and end.json carry the time of the extract)."""
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()  # type: ignore[union-attr]
                if m.name.startswith(("tables/", "objects/"))}


def test_a_round_trip_to_postgres_and_s3_keeps_everything(source: Source, target: Client, tmp_path: Path) -> None:
    report = target.restore(source.archive)
    assert report.fsck is not None and report.fsck.ok, report.fsck
    assert report.fsck.commits > 0 and report.fsck.chunks > 0
    restored = _state(target)
    assert restored.keys() == source.state.keys()
    for key, value in source.state.items():
        assert restored[key] == value, key
    assert target.fsck().ok
    again = target.extract(tmp_path / "again.tar")  # from PostgreSQL + S3: the same rows and objects, byte for byte
    assert (again.tables, again.objects, again.object_bytes) == (report.tables, report.objects, report.object_bytes)
    assert _members(tmp_path / "again.tar") == _members(source.archive)
    # provenance and global ids came along: the output commit names the input commit it was computed from
    out = target.inspect_commit("shout@master")
    words = target.inspect_commit("words@master")
    assert [p["commit"] for p in out.provenance] == [words.id]
    assert out.id in {c.id for c in target.inspect_commit_set(out.global_id)}
    # the store is alive: ids continue past the restored rows, and pipelines still run
    target.create_repo("more")
    target.put_file("words@master:/d", b"again")
    assert target.get_file("shout@master:/d") == b"AGAIN"
    target.finish_commit("words@dev")
    assert target.get_file("words@dev:/staged") == b"not yet"
    assert target.fsck().ok


def test_restore_refuses_a_store_that_is_not_empty(source: Source, target: Client) -> None:
    target.create_repo("already-here")
    with pytest.raises(InvalidArgument, match="not empty"):
        target.restore(source.archive)
    assert [r.name for r in target.list_repos()] == ["already-here"]


def test_a_truncated_archive_is_refused_and_leaves_no_metadata(source: Source, tmp_path: Path) -> None:
    data = source.archive.read_bytes()
    with tarfile.open(source.archive) as tar:
        end = tar.getmember("end.json")
    # inside the objects; every member but end.json whole; inside end.json
    for cut in (len(data) // 3, end.offset, end.offset_data + 10):
        cut_file = tmp_path / f"cut-{cut}.tar"
        cut_file.write_bytes(data[:cut])
        with Client(home=tmp_path / f"home-{cut}") as c:
            with pytest.raises(InvalidArgument, match=r"truncated|corrupt"):
                c.restore(cut_file)
            assert c.list_repos() == []
            report = c.restore(source.archive)  # the leftover objects do not stand in the way
            assert report.fsck is not None and report.fsck.ok
            assert c.get_file("words@master:/a") == b"hello"


def _rewrite(archive: Path, dest: Path, change: dict[str, Any] | None = None, flip: str | None = None) -> Path:
    """The archive with its manifest changed, or a byte flipped in the member named ``flip``."""
    with tarfile.open(archive) as src, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
        for member in src.getmembers():
            fh = src.extractfile(member)
            assert fh is not None
            body = fh.read()
            if member.name == "manifest.json" and change:
                body = json.dumps(json.loads(body) | change).encode()
            if member.name == flip:
                body = bytes([body[0] ^ 1]) + body[1:]
            member.size = len(body)
            out.addfile(member, io.BytesIO(body))
    return dest


def test_an_archive_of_a_newer_schema_or_format_is_refused(source: Source, tmp_path: Path) -> None:
    with Client(home=tmp_path / "home") as c:
        newer = _rewrite(source.archive, tmp_path / "schema.tar", {"schema_revision": "9999"})
        with pytest.raises(InvalidArgument, match=r"schema revision 9999, newer.*upgrade Tusk"):
            c.restore(newer)
        newer = _rewrite(source.archive, tmp_path / "format.tar", {"format_version": 99})
        with pytest.raises(InvalidArgument, match=r"format version 99.*upgrade Tusk"):
            c.restore(newer)
        with tarfile.open(source.archive) as tar:
            table = next(n for n in tar.getnames() if n.endswith("-commits.jsonl"))
        bad = _rewrite(source.archive, tmp_path / "flipped.tar", flip=table)
        with pytest.raises(InvalidArgument, match="corrupt"):
            c.restore(bad)
        assert c.list_repos() == []


def test_the_archive_layout(source: Source) -> None:
    with tarfile.open(source.archive) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert names[0] == "manifest.json" and names[-1] == "end.json"
    assert manifest["format"] == "tusk-archive" and manifest["format_version"] == 1
    tables = [n for n in names if n.startswith("tables/")]
    assert [t.partition("-")[2].removesuffix(".jsonl") for t in tables] == manifest["tables"]
    # every table is in the archive but the servers' coordination state, parents before children
    assert set(manifest["tables"]) | RUNTIME_TABLES == set(Base.metadata.tables)
    assert manifest["tables"] == [t.name for t in archived_tables()]
    assert manifest["tables"].index("repos") < manifest["tables"].index("commits") < \
        manifest["tables"].index("commit_provenance")
    objects = [n for n in names if n.startswith("objects/")]
    assert objects == sorted(objects) and names == ["manifest.json", *tables, *objects, "end.json"]


def test_extract_to_s3_and_restore_from_it(source: Source, target: Client, s3_endpoint: str) -> None:
    url = f"s3://{S3_BUCKET}/archives/{uuid.uuid4().hex[:8]}/store.tar"
    env = source.env | {"TUSK_S3_ENDPOINT_URL": s3_endpoint}
    with Client(settings=Settings.from_env(env=env)) as c:
        sent = c.extract(url)
    report = target.restore(url)
    assert report.fsck is not None and report.fsck.ok
    assert (report.objects, report.object_bytes, report.tables) == (sent.objects, sent.object_bytes, sent.tables)
    assert target.get_file("words@master:/c") == BIG
    with pytest.raises(InvalidArgument, match="invalid archive URL"):
        target.restore(f"s3://{S3_BUCKET}")
    with pytest.raises(InvalidArgument, match="no such archive"):
        target.restore(f"s3://{S3_BUCKET}/archives/missing.tar")


def test_the_cli_extracts_to_stdout_and_restores_from_stdin(source: Source, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("TUSK_")]:
        monkeypatch.delenv(key)

    def tusk(home: Path, *args: str, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        monkeypatch.setenv("TUSK_HOME", str(home))
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsysbinary.readouterr()
        return code, captured.out, captured.err

    home = Path(source.env["TUSK_HOME"])
    code, out, err = tusk(home, "extract", "-")
    assert code == 0 and b"extracted" in err and out[:2048].find(b"manifest.json") >= 0
    code, text, _ = tusk(tmp_path / "new", "restore", "-", stdin=out)
    assert code == 0 and b"restored" in text and b"no problems found" in text, text
    code, text, err = tusk(tmp_path / "new", "restore", "-", stdin=out)
    assert code == 2 and b"not empty" in err
    code, text, _ = tusk(home, "extract", str(tmp_path / "again.tar"))
    assert code == 0 and b"extracted" in text and (tmp_path / "again.tar").stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    code, text, _ = tusk(tmp_path / "new", "extract", str(tmp_path / "third.tar"), "--json")
    assert code == 0 and json.loads(text)["tables"]["repos"] == len(source.state["repos"])


def test_a_remote_client_says_to_run_it_where_the_store_is(tmp_path: Path) -> None:
    env = {"TUSK_ADDRESS": "http://127.0.0.1:9", "TUSK_HOME": str(tmp_path)}
    with Client(settings=Settings.from_env(env=env)) as c:
        for call in (c.extract, c.restore):
            with pytest.raises(InvalidArgument, match="where the store is"):
                call(tmp_path / "x.tar")


def test_an_s3_upload_lands_whole_in_parts_or_not_at_all(s3_endpoint: str) -> None:
    """The stream extract writes to S3: a multipart upload of 8 MiB parts, completed on close, aborted on error."""
    from tusk.storage.objects._s3 import S3ObjectStore

    store = S3ObjectStore(S3_BUCKET, f"uploads-{uuid.uuid4().hex[:8]}", endpoint_url=s3_endpoint)
    data = bytes(range(256)) * (19 << 12)  # 19 MiB: two whole parts and a short one
    upload = store.open_upload("big.tar")
    for i in range(0, len(data), 1 << 20):
        upload.write(data[i:i + (1 << 20)])
    upload.close()
    assert store.get("big.tar") == data
    body = store.open_download("big.tar")
    assert body.read(10) == data[:10]
    body.close()
    upload = store.open_upload("dropped.tar")
    upload.write(data)
    upload.abort()
    assert not store.exists("dropped.tar") and list(store.scan_temporary()) == []


def test_an_object_larger_than_a_piece_is_copied_in_ranges(tmp_path: Path) -> None:
    big = bytes(range(256)) * (81 << 10)  # 20.25 MiB: read as three ranges
    with Client(home=tmp_path / "a") as a, Client(home=tmp_path / "b") as b:
        a.services.ctx.objects.put("packs/big", big)
        sent = a.extract(tmp_path / "a.tar")
        assert sent.objects == 1 and sent.object_bytes == len(big)
        b.restore(tmp_path / "a.tar")
        assert b.services.ctx.objects.get("packs/big") == big
