"""Runtimes: how user code runs for one datum.

Every runtime gets the same request: a datum directory laid out as Pachyderm's
``/pfs`` (one directory per input, plus ``out``), the command, stdin, env and
limits. ``local`` runs a subprocess and rewrites ``/pfs`` to the datum
directory in argv, stdin and env. ``bwrap`` mounts the datum directory at a
literal ``/pfs`` in a sandbox with read-only inputs and no network.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tusk.errors import InvalidArgument

__all__ = ["BwrapRuntime", "ConfiguredRuntime", "DockerRuntime", "LocalRuntime", "RunRequest", "RunResult", "Runtime",
           "choose_runtime", "image_note"]

_PFS = re.compile(r"(?<![\w./-])/pfs(?=/|$|[\s\"';:,)])")
_LOG_LIMIT = 1 << 20


@dataclass
class RunRequest:
    cmd: Sequence[str]
    stdin: Sequence[str]
    env: Mapping[str, str]
    pfs_dir: Path  # contains <input>/... and out/
    input_names: Sequence[str]
    working_dir: Path | None
    timeout: float | None
    accept_return_code: Sequence[int] = ()


@dataclass
class RunResult:
    ok: bool
    returncode: int | None
    log: str
    seconds: float
    error: str | None = None
    timed_out: bool = False
    extra: dict[str, str] = field(default_factory=dict)


class Runtime(Protocol):
    @property
    def name(self) -> str: ...

    def run(self, req: RunRequest) -> RunResult: ...


def _execute(argv: Sequence[str], stdin: str | None, env: Mapping[str, str], cwd: Path | None,
             timeout: float | None, accept: Sequence[int]) -> RunResult:
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(env), cwd=cwd, start_new_session=True,
        )
    except OSError as exc:
        return RunResult(False, None, "", time.monotonic() - start, f"cannot start {argv[0]!r}: {exc.strerror}")
    try:
        out, _ = proc.communicate(stdin.encode() if stdin is not None else None, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        log = out.decode(errors="replace")[-_LOG_LIMIT:]
        return RunResult(False, None, log, time.monotonic() - start, f"datum timed out after {timeout:g}s",
                         timed_out=True)
    log = out.decode(errors="replace")[-_LOG_LIMIT:]
    rc = proc.returncode
    ok = rc == 0 or rc in accept
    error = None if ok else f"{argv[0]} exited with code {rc}"
    return RunResult(ok, rc, log, time.monotonic() - start, error)


class LocalRuntime:
    """A plain subprocess; ``/pfs`` is rewritten to the datum's directory."""

    name = "local"

    def __init__(self, base_env: Mapping[str, str]) -> None:
        self.base_env = dict(base_env)

    def _map(self, text: str, pfs: Path) -> str:
        return _PFS.sub(str(pfs).replace("\\", "\\\\"), text)

    def run(self, req: RunRequest) -> RunResult:
        pfs = req.pfs_dir
        argv = [self._map(a, pfs) for a in req.cmd]
        stdin = "\n".join(self._map(line, pfs) for line in req.stdin) + "\n" if req.stdin else None
        env = self.base_env | {k: self._map(v, pfs) for k, v in req.env.items()} | {
            "TUSK_PFS": str(pfs), "PFS": str(pfs)}
        return _execute(argv, stdin, env, req.working_dir, req.timeout, req.accept_return_code)


class BwrapRuntime:
    """bubblewrap: literal ``/pfs``, inputs read-only, ``/pfs/out`` writable, no network."""

    name = "bwrap"

    def __init__(self, base_env: Mapping[str, str], bwrap: str = "bwrap") -> None:
        self.base_env = dict(base_env)
        self.bwrap = bwrap

    @staticmethod
    def available(bwrap: str = "bwrap") -> bool:
        path = shutil.which(bwrap)
        if path is None:
            return False
        probe = subprocess.run([path, *_root_binds(), "--unshare-net", "--dev", "/dev", "--dir", "/pfs", "true"],
                               capture_output=True, check=False)
        return probe.returncode == 0

    def run(self, req: RunRequest) -> RunResult:
        pfs = req.pfs_dir
        argv = [self.bwrap, "--die-with-parent", "--new-session", "--unshare-net", "--unshare-pid",
                *_root_binds(), "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--dir", "/pfs"]
        for name in req.input_names:
            if (pfs / name).exists():
                argv += ["--ro-bind", str(pfs / name), f"/pfs/{name}"]
        argv += ["--bind", str(pfs / "out"), "/pfs/out"]
        if (pfs / ".tusk").is_dir():  # manifests of model inputs
            argv += ["--ro-bind", str(pfs / ".tusk"), "/pfs/.tusk"]
        for path in sorted(set(_named_tmp_paths(req.cmd, self.base_env.get("PATH"))) | set(_tmp_python_paths())):
            argv += ["--ro-bind", path, path]
        if req.working_dir is not None:
            # the code's directory may live under /tmp, which is a fresh tmpfs in here
            argv += ["--ro-bind", str(req.working_dir), str(req.working_dir), "--chdir", str(req.working_dir)]
        argv += ["--", *req.cmd]
        stdin = "\n".join(req.stdin) + "\n" if req.stdin else None
        env = self.base_env | dict(req.env) | {"TUSK_PFS": "/pfs", "PFS": "/pfs"}
        return _execute(argv, stdin, env, req.working_dir, req.timeout, req.accept_return_code)


class DockerRuntime:
    """The spec's ``image``, where a container engine answers; /pfs bind-mounted, inputs read-only, no network."""

    name = "docker"
    _available: bool | None = None

    def __init__(self, base_env: Mapping[str, str], image: str, docker: str = "docker") -> None:
        self.base_env = dict(base_env)
        self.image = image
        self.docker = docker

    @classmethod
    def available(cls, docker: str = "docker") -> bool:
        """True only when an engine answers (a docker client without an engine is not enough)."""
        if cls._available is None:
            path = shutil.which(docker)
            cls._available = bool(path) and subprocess.run(
                [str(path), "info"], capture_output=True, check=False, timeout=20).returncode == 0
        return cls._available

    def run(self, req: RunRequest) -> RunResult:
        pfs = req.pfs_dir
        argv = [self.docker, "run", "--rm", "-i", "--network", "none"]
        for name in req.input_names:
            if (pfs / name).exists():
                argv += ["-v", f"{pfs / name}:/pfs/{name}:ro"]
        argv += ["-v", f"{pfs / 'out'}:/pfs/out"]
        for key, value in req.env.items():
            argv += ["-e", f"{key}={value}"]
        argv += [self.image, *req.cmd]
        stdin = "\n".join(req.stdin) + "\n" if req.stdin else None
        return _execute(argv, stdin, self.base_env, None, req.timeout, req.accept_return_code)


def image_note(image: str | None) -> str | None:
    """The warning for a spec whose image cannot be used here, or None."""
    if image and not DockerRuntime.available():
        return (f"image {image!r} is recorded but ignored: no container engine answers here, so the command"
                " runs on this machine (install its dependencies locally)")
    return None


def _tmp_python_paths() -> list[str]:
    """Tusk's own import paths under /tmp (a checkout or venv there), so user code can ``import tusk`` inside.

    The sandbox's /tmp is a fresh tmpfs; without these binds, a pipeline that
    loads its model with ``tusk.models.load_dir`` fails when Tusk itself was
    installed under /tmp (an editable install in a CI clone, say).
    """
    return [p for p in sys.path if p.startswith("/tmp/") and os.path.isdir(p)]


def _named_tmp_paths(cmd: Sequence[str], search_path: str | None) -> list[str]:
    """Host paths under /tmp that the command names, to bind read-only (the sandbox's /tmp is its own).

    The program itself is looked up on PATH; a program in a ``bin/`` directory
    exposes its whole prefix, so an interpreter in a virtualenv under /tmp
    finds its libraries.
    """
    found: list[str] = []
    for i, arg in enumerate(cmd):
        path = arg if os.path.isabs(arg) else (shutil.which(arg, path=search_path) if i == 0 else None)
        if not path or not path.startswith("/tmp/") or not os.path.exists(path):
            continue
        target = path if os.path.isdir(path) else os.path.dirname(path)
        if os.path.basename(target) == "bin":
            target = os.path.dirname(target)
        if target != "/tmp" and target not in found:
            found.append(target)
    return found


_SKIP_ROOT = {"proc", "dev", "sys", "tmp", "run", "pfs", "lost+found", "mnt", "media"}


def _root_binds() -> list[str]:
    """The host's top-level directories, read-only, on the sandbox's own (writable) root.

    Binding ``/`` itself would leave no place to create ``/pfs``; binding each
    entry keeps a tmpfs root where ``/pfs`` can be made.
    """
    args: list[str] = []
    for name in sorted(os.listdir("/")):
        if name in _SKIP_ROOT:
            continue
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def choose_runtime(preference: str, base_env: Mapping[str, str]) -> tuple[Runtime, str | None]:
    """The runtime to use and, when falling back, a message saying why."""
    if preference not in ("auto", "local", "bwrap"):
        raise InvalidArgument(f"unknown runtime {preference!r}: use auto, bwrap or local")
    if preference in ("auto", "bwrap"):
        if BwrapRuntime.available():
            return BwrapRuntime(base_env), None
        if preference == "bwrap":
            raise InvalidArgument("the bwrap runtime needs bubblewrap: apt-get install bubblewrap")
        return LocalRuntime(base_env), ("bubblewrap is not available, so pipelines run as plain local"
                                        " processes (no sandbox); apt-get install bubblewrap to sandbox them")
    return LocalRuntime(base_env), None


class ConfiguredRuntime:
    """The configured runtime, resolved when first needed.

    ``auto`` probes for bubblewrap (a subprocess) only when a datum runs or
    someone asks which runtime it is, so commands that run no datum do not pay
    for the probe. An unknown setting, or ``bwrap`` without bubblewrap, is still
    an error at once.
    """

    def __init__(self, preference: str, base_env: Mapping[str, str]) -> None:
        self.preference = preference
        self.base_env = dict(base_env)
        self._chosen: tuple[Runtime, str | None] | None = None
        if preference != "auto":
            self._choose()

    def _choose(self) -> tuple[Runtime, str | None]:
        if self._chosen is None:
            self._chosen = choose_runtime(self.preference, self.base_env)
        return self._chosen

    @property
    def name(self) -> str:
        return self._choose()[0].name

    @property
    def note(self) -> str | None:
        """Why the runtime is not the one asked for (the sandbox fallback), or None."""
        return self._choose()[1]

    def run(self, req: RunRequest) -> RunResult:
        return self._choose()[0].run(req)
