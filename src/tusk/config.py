"""Settings: the only place environment variables are read.

``Settings.from_env()`` is called once, at start-up, by the CLI, the SDK or the
server; everything below receives a ``Settings`` value and never reads
``os.environ`` itself.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["TOKEN_FILE", "Settings"]


def _pipeline_path(env: Mapping[str, str]) -> str:
    """PATH for user code: Tusk's own virtualenv first, so ``python3`` in a transform has what Tusk has.

    A user who runs ``.venv/bin/tusk`` without activating the environment
    expects pipelines to see its packages (scikit-learn, say), as ``poetry run``
    or ``uv run`` would. Outside a virtualenv, PATH is passed through.
    """
    path = env.get("PATH", os.defpath)
    if sys.prefix == sys.base_prefix:
        return path
    venv_bin = str(Path(sys.executable).parent)
    parts = path.split(os.pathsep)
    return path if parts and parts[0] == venv_bin else os.pathsep.join([venv_bin, *parts])


TOKEN_FILE = "token"  # written by `tusk auth login`, under TUSK_HOME, readable by its user only


def _stored_token(home: Path) -> str | None:
    try:
        return (home / TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


def _default_home(cwd: Path, env: Mapping[str, str]) -> Path:
    local = cwd / ".tusk"
    if local.is_dir():
        return local
    return Path(env.get("HOME", str(Path.home()))) / ".tusk"


@dataclass(frozen=True)
class Settings:
    """Where Tusk keeps its metadata and objects, and who is acting."""

    home: Path
    database_url: str
    objects_url: str
    user: str = "anonymous"
    address: str | None = None
    token: str | None = None
    s3_endpoint_url: str | None = None
    runtime: str = "auto"  # pipeline runtime: auto (bwrap if available) | bwrap | local
    dask_address: str | None = None  # a Dask scheduler (tcp://host:8786): datums run on its workers
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
        env = os.environ if env is None else env
        cwd = Path.cwd() if cwd is None else cwd
        home = Path(env["TUSK_HOME"]).expanduser() if env.get("TUSK_HOME") else _default_home(cwd, env)
        database_url = env.get("TUSK_DATABASE_URL") or f"sqlite:///{home / 'tusk.db'}"
        objects_url = env.get("TUSK_OBJECTS_URL") or f"file://{home / 'objects'}"
        try:
            user = env.get("TUSK_USER") or getpass.getuser()
        except (KeyError, OSError):
            user = "anonymous"
        return cls(
            home=home,
            database_url=database_url,
            objects_url=objects_url,
            user=user,
            address=env.get("TUSK_ADDRESS") or None,
            token=env.get("TUSK_TOKEN") or _stored_token(home),
            s3_endpoint_url=env.get("TUSK_S3_ENDPOINT_URL") or env.get("AWS_ENDPOINT_URL") or None,
            runtime=env.get("TUSK_RUNTIME") or "auto",
            dask_address=env.get("TUSK_DASK_ADDRESS") or None,
            extra={k: v for k, v in env.items() if k in ("HOME", "LANG", "LC_ALL", "PYTHONPATH", "TMPDIR")}
            | {"PATH": _pipeline_path(env)},
        )

    @classmethod
    def for_home(cls, home: Path, **overrides: str) -> Settings:
        """Embedded defaults rooted at ``home`` (used by tests and ``tusk demo``)."""
        inherited = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TUSK_RUNTIME")}
        return cls.from_env(env={**inherited, "TUSK_HOME": str(home), **overrides})
