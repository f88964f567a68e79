from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.servers import s3_server
from tusk.config import Settings
from tusk.sdk import Client

PG_URL = os.environ.get("TUSK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "tusk", "AWS_SECRET_ACCESS_KEY": "tusk-secret",
                  "AWS_DEFAULT_REGION": "us-east-1"}
BACKENDS = ["sqlite-local", "postgres-s3"]
CLI_BACKENDS = [*BACKENDS, "remote"]  # the CLI suites also run against a server, through TUSK_ADDRESS
# One bucket for the session, a prefix per test: SeaweedFS's `weed mini` gives each bucket its own volumes and
# starts failing writes (InternalError) after ~75 buckets.
S3_BUCKET = f"tusk-tests-{uuid.uuid4().hex[:8]}"


@dataclass
class Backend:
    """One metadata + object store combination, as the environment that selects it."""

    name: str
    env: dict[str, str]
    store_env: dict[str, str] | None = None  # remote: the server's own environment (its database and objects)

    def settings(self) -> Settings:
        return Settings.from_env(env=self.env)

    def client(self) -> Client:
        return Client(settings=self.settings())

    def store_client(self) -> Client:
        """An embedded client on the store itself (behind the server, for remote): to tamper with it."""
        return Client(settings=Settings.from_env(env=self.store_env or self.env))

    def subprocess_env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("TUSK_")}
        return keep | self.env


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    for key, value in S3_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    with s3_server() as endpoint:
        yield endpoint


def open_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The environment of one backend. ``remote`` is a Tusk server (API, scheduler, serving) in this process on
    PostgreSQL + S3, and the environment points clients at it with TUSK_ADDRESS."""
    home = tmp_path / "home"
    env = {"TUSK_HOME": str(home), "TUSK_USER": "tester"}
    if name == "sqlite-local":
        yield Backend(name, env)
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    env |= S3_CREDENTIALS | {
        "TUSK_DATABASE_URL": f"{PG_URL}?options=-csearch_path%3D{schema}",
        "TUSK_OBJECTS_URL": f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:12]}/objects",
        "TUSK_S3_ENDPOINT_URL": endpoint,
    }
    try:
        if name == "remote":
            yield from _remote(env, tmp_path)
        else:
            yield Backend(name, env)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _remote(server_env: dict[str, str], tmp_path: Path) -> Iterator[Backend]:
    from tusk.root import create_server_app
    from tusk.root.server import serve_in_thread
    from tusk.services import Services

    store_env = server_env | {"TUSK_HOME": str(tmp_path / "server"), "TUSK_RUNTIME": "local", "TUSK_USER": "server",
                              "PATH": os.environ["PATH"]}
    app = create_server_app(Services.open(Settings.from_env(env=store_env)), poll=0.2, close_services=True)
    with serve_in_thread(app) as url:
        yield Backend("remote", {"TUSK_ADDRESS": url, "TUSK_USER": "tester", "TUSK_HOME": str(tmp_path / "home")},
                      store_env)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from open_backend(request.param, request, tmp_path)


@pytest.fixture
def client(backend: Backend) -> Iterator[Client]:
    c = backend.client()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def pc(backend: Backend) -> Iterator[Client]:
    """A client whose pipelines run as plain local processes (the sandbox has tests of its own)."""
    c = Client(settings=Settings.from_env(env=backend.env | {"TUSK_RUNTIME": "local"}))
    try:
        yield c
    finally:
        c.close()
