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

from tusk.api import create_app
from tusk.config import Settings
from tusk.sdk import Client
from tusk.services import Services
from tusk.serving.server import serve_in_thread

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
_app = create_app(_services, scheduler=False, poll=0.5)  # fuzzed specs are created, never run
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
    with serve_in_thread(create_app(services, serving=False), timeout=60) as url, \
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
