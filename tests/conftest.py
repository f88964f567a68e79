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
# One bucket for the session, a prefix per test: SeaweedFS's `weed mini` gives each bucket its own volumes and
# starts failing writes (InternalError) after ~75 buckets.
S3_BUCKET = f"tusk-tests-{uuid.uuid4().hex[:8]}"


@dataclass
class Backend:
    """One metadata + object store combination, as the environment that selects it."""

    name: str
    env: dict[str, str]

    def settings(self) -> Settings:
        return Settings.from_env(env=self.env)

    def client(self) -> Client:
        return Client(settings=self.settings())

    def subprocess_env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("TUSK_")}
        return keep | self.env


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    for key, value in S3_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    home = tmp_path / "home"
    env = {"TUSK_HOME": str(home), "TUSK_USER": "tester"}
    if request.param == "sqlite-local":
        yield Backend(request.param, env)
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
        yield Backend(request.param, env)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


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
