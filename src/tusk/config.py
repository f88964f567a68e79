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
from dataclasses import dataclass, field, replace
from pathlib import Path

from tusk.errors import InvalidArgument

__all__ = ["TOKEN_FILE", "Limits", "Settings"]


@dataclass(frozen=True)
class Limits:
    """Per-run resource limits; None is unlimited."""

    memory_bytes: int | None = None  # address space of each process (RLIMIT_AS)
    processes: int | None = 512  # processes of the sandbox's uid (RLIMIT_NPROC); a fork bomb ends the run
    cpu_seconds: int | None = None  # CPU time of each process (RLIMIT_CPU)
    file_bytes: int | None = None  # largest file a process may write (RLIMIT_FSIZE)
    output_bytes: int | None = None  # total size of /pfs/out, checked after the run

    @classmethod
    def default(cls) -> Limits:
        """Half the machine's memory per process, 512 processes, 6 CPU hours, 64 GiB files and output."""
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
        except (ValueError, OSError):
            memory = 8 << 30
        return cls(memory_bytes=memory, processes=512, cpu_seconds=6 * 3600, file_bytes=64 << 30,
                   output_bytes=64 << 30)


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


_LIMIT_VARS = {"memory_bytes": "TUSK_DATUM_MEMORY", "processes": "TUSK_DATUM_PROCESSES",
               "cpu_seconds": "TUSK_DATUM_CPU_SECONDS", "file_bytes": "TUSK_DATUM_FILE_BYTES",
               "output_bytes": "TUSK_DATUM_OUTPUT_BYTES"}
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _datum_limits(env: Mapping[str, str]) -> Limits:
    """Sandbox limits: the defaults, with any TUSK_DATUM_* set (sizes take K, M, G, T; 0 or none: unlimited)."""
    values: dict[str, int | None] = {}
    for name, var in _LIMIT_VARS.items():
        raw = env.get(var, "").strip().lower().removesuffix("ib").removesuffix("b")
        if not raw:
            continue
        unit = raw[-1] if raw[-1] in _SIZE_UNITS and not raw[-1].isdigit() else ""
        try:
            number = int(float(raw[: len(raw) - len(unit)]) * _SIZE_UNITS[unit]) if raw != "none" else 0
        except ValueError:
            raise InvalidArgument(f"{var}={env[var]!r} is not a number (use e.g. 2G, 512M or 0 for none)") from None
        values[name] = number or None
    return replace(Limits.default(), **values)


SERVING_MAX_BODY_BYTES = 64 << 20  # the default largest inference request body, also once decompressed


def _duration(env: Mapping[str, str], var: str, default: float | None, positive: bool = False) -> float | None:
    """A Go-style duration setting ("30s", "10m", "1h30m"), or ``default`` when unset."""
    from tusk.schedules import parse_duration

    raw = env.get(var, "").strip()
    if not raw:
        return default
    try:
        seconds = parse_duration(raw)
    except ValueError:
        seconds = None
    if seconds is None or seconds < 0 or (positive and seconds == 0):
        kind = "a positive" if positive else "a"
        raise InvalidArgument(f"{var}={env[var]!r} is not {kind} duration (use e.g. 30s, 10m or 6h)")
    return seconds


def _serving_max_body(env: Mapping[str, str]) -> int:
    """TUSK_SERVING_MAX_BODY_BYTES: a positive size (K, M, G suffixes), default 64 MiB."""
    var = "TUSK_SERVING_MAX_BODY_BYTES"
    raw = env.get(var, "").strip().lower().removesuffix("ib").removesuffix("b")
    if not raw:
        return SERVING_MAX_BODY_BYTES
    unit = raw[-1] if raw[-1] in _SIZE_UNITS and not raw[-1].isdigit() else ""
    try:
        number = int(float(raw[: len(raw) - len(unit)]) * _SIZE_UNITS[unit])
    except ValueError:
        number = 0
    if number <= 0:
        raise InvalidArgument(f"{var}={env[var]!r} is not a positive size (use e.g. 64M, 512K or 1G)")
    return number


TOKEN_FILE = "token"  # written by `tusk auth login`, under TUSK_HOME, readable by its user only


def _image_fallback(env: Mapping[str, str]) -> bool:
    value = env.get("TUSK_IMAGE_FALLBACK", "").strip().lower()
    if value not in ("", "host", "none"):
        raise InvalidArgument(f"TUSK_IMAGE_FALLBACK={value!r}: use host (run the command on this machine's "
                              "software when its image is not imported) or none")
    return value == "host"


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
    datum_limits: Limits = field(default_factory=Limits.default)  # per sandboxed run (TUSK_DATUM_*)
    allow_unsandboxed: bool = False  # TUSK_ALLOW_UNSANDBOXED=1: an admin lets a server with auth run user code
    config_path: Path | None = None  # the contexts file (TUSK_CONFIG, else ~/.config/tusk/config.json)
    serving_max_body_bytes: int = SERVING_MAX_BODY_BYTES  # largest inference body, decompressed (TUSK_SERVING_...)
    gc_interval: float | None = None  # TUSK_GC_INTERVAL: `tusk server` runs gc this often (off when unset)
    gc_grace: float = 3600.0  # TUSK_GC_GRACE: what a scheduled gc spares (unreferenced objects younger than this)
    # TUSK_IMAGE_FALLBACK=host: a pipeline whose image is not imported runs its command on this machine's software
    image_fallback: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, cwd: Path | None = None,
                 use_context: bool = True) -> Settings:
        """Settings from the environment, over the current context (``tusk context``), over the defaults."""
        from tusk.contexts import ContextFile, config_path

        env = os.environ if env is None else env
        cwd = Path.cwd() if cwd is None else cwd
        use_context = use_context and env.get("TUSK_CONTEXT") != "none"  # none: this command uses no context
        context = ContextFile(config_path(env)).current(env.get("TUSK_CONTEXT") or None) if use_context else None
        if context is not None:
            env = {**{f"TUSK_{k.upper()}": v for k in ("address", "token", "home")
                      if (v := getattr(context, k))}, **env}
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
            datum_limits=_datum_limits(env),
            allow_unsandboxed=env.get("TUSK_ALLOW_UNSANDBOXED", "") in ("1", "true", "yes"),
            config_path=config_path(env),
            serving_max_body_bytes=_serving_max_body(env),
            gc_interval=_duration(env, "TUSK_GC_INTERVAL", None, positive=True),
            gc_grace=_duration(env, "TUSK_GC_GRACE", 3600.0) or 0.0,
            image_fallback=_image_fallback(env),
        )

    @classmethod
    def for_home(cls, home: Path, **overrides: str) -> Settings:
        """Embedded defaults rooted at ``home`` (used by tests and ``tusk demo``)."""
        inherited = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TUSK_RUNTIME")}
        return cls.from_env(env={**inherited, "TUSK_HOME": str(home), **overrides}, use_context=False)
