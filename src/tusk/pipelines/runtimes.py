"""Runtimes: how user code runs for one datum.

Every runtime gets the same request: a datum directory laid out as Pachyderm's
``/pfs`` (one directory per input, plus ``out``), the command, stdin, env and
limits. ``local`` runs a subprocess and rewrites ``/pfs`` to the datum
directory in argv, stdin and env (no isolation: for a single user's laptop).
``bwrap`` mounts the datum directory at a literal ``/pfs`` in the sandbox of
``tusk.pipelines.sandbox``: read-only inputs, no network, nothing of the host
but its system directories, an unprivileged uid with no capabilities, limits.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

from tusk.config import Limits
from tusk.errors import InvalidArgument
from tusk.pipelines.s3 import Endpoint
from tusk.pipelines.sandbox import Mount, SandboxCommand, resolve_user

__all__ = ["BwrapRuntime", "ConfiguredRuntime", "DockerRuntime", "LocalRuntime", "RunRequest", "RunResult", "Runtime",
           "choose_runtime", "explain_failure", "image_note", "stop_programs"]

_PFS = re.compile(r"(?<![\w./-])/pfs(?=/|$|[\s\"';:,)])")
_LOG_LIMIT = 1 << 20
# user programs running now (each the leader of its own session), so a Ctrl-C can end them: they do not get
# the terminal's SIGINT themselves, and the job runner releases its job only once they are gone
_RUNNING: set[subprocess.Popen[bytes]] = set()
_RUNNING_LOCK = threading.Lock()
_STOPPING = threading.Event()


def stop_programs() -> None:
    """End every user program this process runs, and start no new one (the CLI's Ctrl-C: the process exits)."""
    _STOPPING.set()
    with _RUNNING_LOCK:
        for proc in _RUNNING:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
_SANDBOX_ENV = ("PATH", "LANG", "LC_ALL")  # of the server's environment, the only variables user code sees


@dataclass
class RunRequest:
    cmd: Sequence[str]
    stdin: Sequence[str]
    env: Mapping[str, str]
    pfs_dir: Path  # contains <input>/... and out/
    input_names: Sequence[str]
    working_dir: str | None  # the spec's transform.working_dir: where the code is, as the code sees it
    timeout: float | None
    accept_return_code: Sequence[int] = ()
    code_dir: Path | None = None  # the pipeline's code on this host
    user: str | None = None  # the spec's transform.user
    # the datum's S3 endpoint (s3 inputs, s3_out: tusk.pipelines.s3), which the code reaches at its URL on loopback
    s3: Endpoint | None = None
    # (host directory, path inside) shown read-only: transform.secrets with a mount_path (tusk.pipelines.secrets)
    mounts: Sequence[tuple[Path, str]] = ()
    # the pipeline asked for the host's network (metadata.annotations "tusk.io/network": "host")
    network: bool = False


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

    @property
    def network(self) -> bool:
        """Whether user code can reach the network (a capability: a failure's explanation depends on it)."""
        ...

    def run(self, req: RunRequest) -> RunResult: ...


NETWORK_ANNOTATION = "tusk.io/network"  # metadata.annotations: "host" shares the host's network with the sandbox
_NO_NETWORK = ("its log shows a network lookup or connection that failed: the sandbox has no network (put what "
               "the code downloads into an input repo, and read it at /pfs/<name>; or give the pipeline the host's "
               f"network with \"metadata\": {{\"annotations\": {{\"{NETWORK_ANNOTATION}\": \"host\"}}}})")
# What a failed datum's log can show, and what to tell the user then: (pattern, applies to the runtime, hint).
_FAILURE_HINTS: list[tuple[re.Pattern[str], Callable[[Runtime], bool], str]] = [
    (re.compile(r"Temporary failure in name resolution|Name or service not known|getaddrinfo|"
                r"Could not resolve host|Network is unreachable|No address associated with hostname|"
                r"nodename nor servname provided", re.IGNORECASE),
     lambda runtime: not runtime.network, _NO_NETWORK),
]


def explain_failure(log: str, runtime: Runtime, network: bool = False) -> str | None:
    """Why a failed datum's log suggests it failed, in the sandbox's terms (no network, ...), or None;
    ``network``: the datum ran with the host's network (a network hint would be wrong)."""
    hints = [hint for pattern, applies, hint in _FAILURE_HINTS
             if applies(runtime) and not (network and hint is _NO_NETWORK) and pattern.search(log)]
    return "; ".join(hints) or None


def _execute(argv: Sequence[str], stdin: str | None, env: Mapping[str, str], cwd: Path | None,
             timeout: float | None, accept: Sequence[int], shown: str | None = None) -> RunResult:
    """Run ``argv`` in its own session; ``shown`` names the user's program in errors (not the sandbox's)."""
    start = time.monotonic()
    if _STOPPING.is_set():
        return RunResult(False, None, "", 0.0, "interrupted")
    try:  # not under the lock: the workers' spawns (~1 ms each) overlap
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(env), cwd=cwd, start_new_session=True,
        )
    except OSError as exc:
        return RunResult(False, None, "", time.monotonic() - start, f"cannot start {argv[0]!r}: {exc.strerror}")
    with _RUNNING_LOCK:
        stopping = _STOPPING.is_set()  # a stop_programs that began after the check above and missed it
        if not stopping:
            _RUNNING.add(proc)
    if stopping:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return RunResult(False, None, "", time.monotonic() - start, "interrupted")
    try:
        out, _ = proc.communicate(stdin.encode() if stdin is not None else None, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        log = out.decode(errors="replace")[-_LOG_LIMIT:]
        return RunResult(False, None, log, time.monotonic() - start, f"datum timed out after {timeout:g}s",
                         timed_out=True)
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(proc)
    log = out.decode(errors="replace")[-_LOG_LIMIT:]
    rc = proc.returncode
    ok = rc == 0 or rc in accept
    error = None if ok else f"{shown or argv[0]} exited with code {rc}{last_lines(log)}"
    return RunResult(ok, rc, log, time.monotonic() - start, error)


def last_lines(log: str, lines: int = 3, limit: int = 400) -> str:
    """``: `` and the last lines the program printed (its error, usually), for a failed datum's error."""
    tail = [line.strip() for line in log.splitlines() if line.strip() and not line.startswith("[tusk]")][-lines:]
    text = " / ".join(tail)
    return f": {text[-limit:]}" if text else ""


class LocalRuntime:
    """A plain subprocess; ``/pfs`` is rewritten to the datum's directory."""

    name = "local"
    network = True

    def __init__(self, base_env: Mapping[str, str]) -> None:
        self.base_env = dict(base_env)

    def _map(self, text: str, pfs: Path) -> str:
        return _PFS.sub(str(pfs).replace("\\", "\\\\"), text)

    def run(self, req: RunRequest) -> RunResult:
        if req.mounts:  # no mount namespace: a path such as /etc/tls cannot show the datum's files
            return RunResult(False, None, "", 0.0, "transform.secrets with a mount_path ("
                             f"{', '.join(inside for _, inside in req.mounts)}) needs a runtime that mounts "
                             "files: run with TUSK_RUNTIME=bwrap (or an image in docker), or use env_var")
        pfs = req.pfs_dir
        argv = [self._map(a, pfs) for a in req.cmd]
        stdin = "\n".join(self._map(line, pfs) for line in req.stdin) + "\n" if req.stdin else None
        env = self.base_env | {k: self._map(v, pfs) for k, v in req.env.items()} | {
            "TUSK_PFS": str(pfs), "PFS": str(pfs)}
        cwd = Path(req.working_dir) if req.working_dir else req.code_dir
        return _execute(argv, stdin, env, cwd, req.timeout, req.accept_return_code)


class BwrapRuntime:
    """bubblewrap: literal ``/pfs``, inputs read-only, ``/pfs/out`` writable, no network, nothing else of the host.

    What the sandbox shows and withholds is described in ``tusk.pipelines.sandbox``.
    """

    name = "bwrap"
    network = False
    _probed: ClassVar[dict[str, bool]] = {}

    def __init__(self, base_env: Mapping[str, str], bwrap: str = "bwrap", limits: Limits | None = None) -> None:
        # only what a program needs from the server's environment: never its tokens, URLs or credentials
        self.base_env = {k: v for k, v in base_env.items() if k in _SANDBOX_ENV} | {"HOME": "/tmp",
                                                                                    "TMPDIR": "/tmp"}
        found = SandboxCommand.find(limits, bwrap)
        if found is None:
            raise InvalidArgument("the bwrap runtime needs bubblewrap (and setpriv when Tusk runs as root): "
                                  "apt-get install bubblewrap util-linux")
        self.sandbox = found

    @classmethod
    def available(cls, bwrap: str = "bwrap") -> bool:
        """True when a sandbox can be made here (bubblewrap installed, user namespaces allowed)."""
        if bwrap not in cls._probed:
            sandbox = SandboxCommand.find(None, bwrap)
            ok = False
            if sandbox is not None:
                probe = subprocess.run(sandbox.argv(["true"], [], "/tmp"), capture_output=True, check=False,
                                       env={"PATH": os.defpath})
                ok = probe.returncode == 0
            cls._probed[bwrap] = ok
        return cls._probed[bwrap]

    def run(self, req: RunRequest) -> RunResult:
        pfs = req.pfs_dir
        try:
            user = resolve_user(req.user)
        except ValueError as exc:
            return RunResult(False, None, "", 0.0, str(exc))
        mounts = [Mount(pfs / name, f"/pfs/{name}") for name in req.input_names if (pfs / name).exists()]
        mounts.append(Mount(pfs / "out", "/pfs/out", writable=True))
        if (pfs / ".tusk").is_dir():  # manifests of model inputs
            mounts.append(Mount(pfs / ".tusk", "/pfs/.tusk"))
        mounts += [Mount(host, inside) for host, inside in req.mounts]  # secrets' mount_path, read-only
        self.sandbox.prepare_writable(pfs / "out")
        cwd = req.working_dir or "/tmp"  # no code: an empty scratch directory
        if req.code_dir is not None and req.code_dir.is_dir():
            cwd = req.working_dir or str(req.code_dir)
            mounts.append(Mount(req.code_dir, cwd))
        stdin = "\n".join(req.stdin) + "\n" if req.stdin else None
        env = self.base_env | dict(req.env) | {"TUSK_PFS": "/pfs", "PFS": "/pfs"}
        cmd = list(req.cmd)
        if req.s3 is not None and req.s3.socket is not None:
            # no network in the sandbox: its own loopback, where a bridge listens on the endpoint's port and
            # relays to the endpoint's unix socket, bound in; the bridge runs the command and exits with it
            mounts.append(Mount(req.s3.socket.parent, _S3_DIR))
            port = req.s3.url.rsplit(":", 1)[-1]
            cmd = [sys.executable, "-c", _BRIDGE, f"{_S3_DIR}/{req.s3.socket.name}", port, *cmd]
        elif req.s3 is not None:
            return RunResult(False, None, "", 0.0, "the datum's S3 endpoint has no unix socket, the only way into "
                                                   "the bwrap sandbox (which has no network)")
        argv = self.sandbox.argv(cmd, mounts, cwd, user, ["--dir", "/pfs"], network=req.network)
        result = _execute(argv, stdin, env, None, req.timeout, req.accept_return_code, shown=req.cmd[0])
        return within_output_limit(result, pfs / "out", self.sandbox.limits.output_bytes)


_S3_DIR = "/run/tusk-s3"
# Listens on 127.0.0.1:PORT in the sandbox's network namespace and relays each connection to the unix socket;
# runs the command meanwhile and exits with its code (so the sandbox's wrapper finds nothing left running).
_BRIDGE = r'''
import socket, subprocess, sys, threading
path, port, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(128)
def relay(src, dst, done):
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    if done.acquire(blocking=False) is False:
        src.close()
        dst.close()
def accept():
    while True:
        client, _ = server.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(path)
        except OSError:
            client.close()
            continue
        done = threading.Lock()
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=relay, args=(a, b, done), daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
try:
    sys.exit(subprocess.call(cmd))
except OSError as exc:
    print(f"cannot start {cmd[0]!r}: {exc.strerror}", file=sys.stderr)
    sys.exit(127)
'''


def within_output_limit(result: RunResult, out: Path, limit: int | None) -> RunResult:
    """``result``, failed when a successful run wrote more than ``limit`` bytes to ``out`` (/pfs/out)."""
    if result.ok and limit is not None:
        size = tree_size(out)
        if size > limit:
            result.ok = False
            result.error = f"the datum wrote {size} bytes to /pfs/out, over the limit of {limit}"
    return result


def tree_size(root: Path) -> int:
    """Bytes of the files below ``root`` (what a datum wrote to /pfs/out), not following links."""
    total = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


class DockerRuntime:
    """The spec's ``image``, where a container engine answers; /pfs bind-mounted, inputs read-only, no network."""

    name = "docker"
    network = False  # --network none
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
        argv = [self.docker, "run", "--rm", "-i", "--network", "host" if req.s3 is not None or req.network else "none"]
        if req.user:  # transform.user, as Pachyderm runs the user container
            argv += ["--user", req.user]
        for name in req.input_names:
            if (pfs / name).exists():
                argv += ["-v", f"{pfs / name}:/pfs/{name}:ro"]
        argv += ["-v", f"{pfs / 'out'}:/pfs/out"]
        for host, inside in req.mounts:  # secrets' mount_path
            argv += ["-v", f"{host}:{inside}:ro"]
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


def choose_runtime(preference: str, base_env: Mapping[str, str], limits: Limits | None = None
                   ) -> tuple[Runtime, str | None]:
    """The runtime to use and, when falling back, a message saying why."""
    if preference not in ("auto", "local", "bwrap"):
        raise InvalidArgument(f"unknown runtime {preference!r}: use auto, bwrap or local")
    if preference in ("auto", "bwrap"):
        if BwrapRuntime.available():
            return BwrapRuntime(base_env, limits=limits), None
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

    def __init__(self, preference: str, base_env: Mapping[str, str], limits: Limits | None = None) -> None:
        self.preference = preference
        self.base_env = dict(base_env)
        self.limits = limits
        self._chosen: tuple[Runtime, str | None] | None = None
        if preference != "auto":
            self._choose()

    def _choose(self) -> tuple[Runtime, str | None]:
        if self._chosen is None:
            self._chosen = choose_runtime(self.preference, self.base_env, self.limits)
        return self._chosen

    @property
    def name(self) -> str:
        return self._choose()[0].name

    @property
    def network(self) -> bool:
        return self._choose()[0].network

    @property
    def note(self) -> str | None:
        """Why the runtime is not the one asked for (the sandbox fallback), or None."""
        return self._choose()[1]

    def run(self, req: RunRequest) -> RunResult:
        return self._choose()[0].run(req)
