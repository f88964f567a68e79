from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tusk.errors import StorageUnavailable

__all__ = ["SCHEMA_REVISION", "Database"]

_MIGRATIONS = Path(__file__).parent / "migrations"
# The newest Alembic revision. Checked by a test against the migrations directory, so
# start-up can compare it with the database in one query, without importing Alembic.
SCHEMA_REVISION = "0015"
_PG_MIGRATION_LOCK = 0x7475736B  # "tusk"


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # Writers take the write lock up front, so two writers never deadlock
        # upgrading read locks; readers stay concurrent under WAL.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """Engines and sessions for one metadata database.

    ``read()`` and ``write()`` open transactions. On SQLite a write transaction
    takes the database write lock at BEGIN; on PostgreSQL both are ordinary
    transactions and compare-and-set updates provide the serialization.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self._read_engine = _sqlite_engine(url, immediate=False)
            self._write_engine = _sqlite_engine(url, immediate=True)
        else:
            try:
                self._read_engine = self._write_engine = create_engine(url, pool_pre_ping=True)
            except ImportError as exc:  # the URL names a driver that is not installed
                extra = "postgres" if url.startswith("postgres") else None
                fix = f"pip install 'tusk[{extra}]'" if extra else f"install the Python package {exc.name!r}"
                raise StorageUnavailable(f"TUSK_DATABASE_URL {url.split('://', 1)[0]}://... needs the "
                                         f"{exc.name or 'database driver'} package: {fix}") from None
        self._reader = sessionmaker(self._read_engine, expire_on_commit=False)
        self._writer = sessionmaker(self._write_engine, expire_on_commit=False)

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self._guard(), self._reader() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        with self._guard(), self._writer() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read transaction that sees one moment throughout (REPEATABLE READ on PostgreSQL; a SQLite read
        transaction under WAL already does), for reads that must agree across tables, such as an extract."""
        with self._guard(), self._read_engine.connect() as conn:
            if not self.is_sqlite:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            raise StorageUnavailable(f"metadata database {self._safe_url()} failed: {exc.orig}") from exc

    def _safe_url(self) -> str:
        return self._write_engine.url.render_as_string(hide_password=True)

    def current_revision(self) -> str | None:
        try:
            with self._read_engine.connect() as conn:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except OperationalError:
            return None  # no schema yet (or unreachable: migrate() will say which)
        except DBAPIError:
            return None

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent, concurrency-safe)."""
        if self.current_revision() == SCHEMA_REVISION:
            return
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        try:
            with self._write_engine.begin() as conn:
                if not self.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                if MigrationContext.configure(conn).get_current_revision() != SCHEMA_REVISION:
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise StorageUnavailable(f"metadata database {self._safe_url()} is unreachable: {exc.orig}") from exc

    def insert(self, model: type[Any]) -> Any:
        """A dialect INSERT for a model's table (upserts need ``on_conflict_*``, which is dialect-specific).

        Only the dialect in use is imported: the PostgreSQL one costs ~50 ms of start-up.
        """
        from tusk.storage.metadata.models import Base

        table = Base.metadata.tables[model.__tablename__]
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table)
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)

    def dispose(self) -> None:
        self._read_engine.dispose()
        self._write_engine.dispose()

    def forget_after_fork(self) -> None:
        """In a forked child: drop the pooled connections inherited from the parent without closing them (they
        are still the parent's); the child opens its own when it needs one."""
        self._read_engine.dispose(close=False)
        self._write_engine.dispose(close=False)
