"""The REST API as a document and under fuzzing: the committed OpenAPI copy is current, and schemathesis finds
no server error in any operation."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tusk.config import Settings
from tusk.root import create_server_app
from tusk.root.server import serve_in_thread
from tusk.sdk import Client
from tusk.services import Services

ROOT = Path(__file__).resolve().parents[2]


def _openapi_script() -> object:
    spec = importlib.util.spec_from_file_location("openapi_script", ROOT / "scripts" / "openapi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_openapi_document_is_current() -> None:
    current = _openapi_script().document()  # type: ignore[attr-defined]
    committed = (ROOT / "docs" / "openapi.json").read_text()
    assert current == committed, "the API changed: run `python scripts/openapi.py --write` and commit docs/openapi.json"


# -- fuzzing: every operation, against a store with a little in it ------------------------------------------------
_HOME = Path(tempfile.mkdtemp(prefix="tusk-fuzz-"))
_settings = Settings.for_home(_HOME, TUSK_RUNTIME="local")
with Client(settings=_settings) as _seed:
    if not _seed.list_repos():
        _seed.create_repo("x")
        _seed.put_file("x@master:/x", b"x")
_services = Services.open(_settings)
_app = create_server_app(_services, scheduler=False, poll=0.5)  # fuzzed specs are created, never run
schema = schemathesis.openapi.from_asgi("/openapi.json", _app)


@schemathesis.serializer("application/x-tar")
def _tar_bytes(ctx: object, value: object) -> bytes:
    """Fuzzed tar bodies are arbitrary bytes: the server must refuse them with a 4xx."""
    return value if isinstance(value, bytes) else str(value).encode()


@pytest.fixture(scope="module", autouse=True)
def _close_fuzz_store() -> Iterator[None]:
    yield
    _services.close()
    shutil.rmtree(_HOME, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=int(os.environ.get("TUSK_FUZZ_EXAMPLES", "12")), deadline=None,
          suppress_health_check=list(HealthCheck))
def test_no_operation_answers_with_a_server_error(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=[not_a_server_error])


def test_large_files_stream_through_the_server_both_ways(tmp_path: Path) -> None:
    services = Services.open(Settings.for_home(tmp_path / "server"))
    payload = tmp_path / "big.bin"
    with open(payload, "wb") as fh:  # 48 MiB of incompressible bytes, written in pieces
        for i in range(48):
            fh.write(hashlib.blake2b(str(i).encode(), digest_size=64).digest() * (1 << 14))
    env = {"TUSK_HOME": str(tmp_path / "c")}
    with serve_in_thread(create_server_app(services, serving=False), timeout=60) as url, \
            Client(settings=Settings.from_env(env=env | {"TUSK_ADDRESS": url})) as c:
            c.create_repo("big")
            seen: list[int] = []
            commit = c.put_file("big@master:/blob.bin", payload, progress=seen.append)
            assert commit is not None and commit.size_bytes == payload.stat().st_size
            assert sum(seen) == payload.stat().st_size
            out = tmp_path / "back.bin"
            assert c.download("big@master:/blob.bin", out) == payload.stat().st_size
            assert out.read_bytes() == payload.read_bytes()
            with c.open("big@master:/blob.bin") as fh:
                assert fh.read(1000) == payload.read_bytes()[:1000]
            tree = tmp_path / "tree"
            (tree / "sub").mkdir(parents=True)
            (tree / "one.txt").write_text("1")
            (tree / "sub" / "two.txt").write_text("22")
            c.put_file("big@master:/tree", tree, recursive=True)  # one tar batch, one commit
            assert [(f.path, f.size_bytes) for f in c.walk_files("big@master:/tree")] == [
                ("/tree/one.txt", 1), ("/tree/sub/two.txt", 2)]
    services.close()


# -- malformed requests found by the security campaign: each a 400 naming what was wrong, never a 500 ----------
def _tar(*members: tuple[str, str]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind in members:
            info = tarfile.TarInfo(name)
            if kind.startswith("->"):
                info.type, info.linkname = tarfile.SYMTYPE, kind[2:]
                tar.addfile(info)
            else:
                info.size = len(kind)
                tar.addfile(info, io.BytesIO(kind.encode()))
    return buf.getvalue()


def _client() -> object:
    from starlette.testclient import TestClient

    return TestClient(_app, raise_server_exceptions=False)


@pytest.mark.parametrize("url", ["/api/v1/repos/x/commits?limit=151173202635084005376",
                                 "/api/v1/models?limit=151173202635084005376",
                                 "/api/v1/repos/x/commits?limit=-1"])
def test_an_out_of_range_integer_is_a_400(url: str) -> None:
    r = _client().get(url)  # type: ignore[attr-defined]
    assert r.status_code == 400 and r.json()["error_type"] == "InvalidArgument" and "limit" in r.json()["error"]


@pytest.mark.parametrize(("members", "message"), [
    ((("x", "1"), ("x/y", "2")), "'x/y' clashes"),
    ((("x/y", "1"), ("x", "2")), "'x' clashes"),
    ((("/etc/cron.d/x", "1"),), "escapes the directory"),
    ((("a/../../x", "1"),), "escapes the directory"),
    ((("l", "->../../etc"), ("l/p", "1")), "links to '../../etc'"),
    ((("l", "->/etc"),), "links to '/etc'"),
    ((("n" * 300, "1"),), "too long"),
])
def test_a_clashing_or_escaping_code_upload_is_a_400(members: tuple[tuple[str, str], ...], message: str) -> None:
    r = _client().post("/api/v1/code", content=_tar(*members),  # type: ignore[attr-defined]
                       headers={"content-type": "application/x-tar"})
    assert r.status_code == 400, r.text
    assert r.json()["error_type"] == "InvalidPath" and message in r.json()["error"]
    assert str(_HOME) not in r.text  # no server path in the message


def test_a_truncated_batch_is_a_400_and_lands_nothing() -> None:
    from tusk.transfer import BatchWriter

    batch = BatchWriter()
    batch.put_bytes("/big", b"q" * 300_000)  # past the small-file limit: streamed, so cut off mid-read
    batch.put_bytes("/small", b"s")
    body = b"".join(batch.chunks())
    t = _client()
    before = t.get("/api/v1/repos/x/commits/master").json()["id"]  # type: ignore[attr-defined]
    for cut in (len(body) // 2, 1536, 700, 100):  # inside the data, after a header, inside headers
        r = t.post("/api/v1/repos/x/commits/master/batch", content=body[:cut],  # type: ignore[attr-defined]
                   headers={"content-type": "application/x-tar"})
        assert r.status_code == 400 and r.json()["error_type"] == "InvalidArgument", (cut, r.text)
    assert t.get("/api/v1/repos/x/commits/master").json()["id"] == before  # type: ignore[attr-defined]


def test_a_file_put_at_the_root_is_refused() -> None:
    from tusk.transfer import BatchWriter

    t = _client()
    r = t.put("/api/v1/repos/x/commits/master/files/", content=b"x")  # type: ignore[attr-defined]
    assert r.status_code == 400 and "not '/'" in r.json()["error"]
    batch = BatchWriter()
    batch.put_bytes("/", b"x")
    r = t.post("/api/v1/repos/x/commits/master/batch", content=b"".join(batch.chunks()),  # type: ignore[attr-defined]
               headers={"content-type": "application/x-tar"})
    assert r.status_code == 400 and "not '/'" in r.json()["error"]
