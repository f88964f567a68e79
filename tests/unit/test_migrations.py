from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from tusk.storage.metadata import Base, Database
from tusk.storage.metadata._db import _MIGRATIONS, SCHEMA_REVISION


def test_schema_revision_constant_is_alembic_head() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == SCHEMA_REVISION


def test_migrations_create_every_model_table(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.migrate()
    db.migrate()  # idempotent
    assert db.current_revision() == SCHEMA_REVISION
    tables = set(inspect(db._read_engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    db.dispose()
