"""Service pipelines (Pachyderm's ``service``): a long-running command over the latest input, on a port.

As in Pachyderm, the command of a pipeline with ``service: {"internal_port": N, "external_port": M}`` runs
on and on (``tusk.pipelines.long_running`` starts and restarts it) with the latest commit of each input at
``/pfs/<name>`` (read-only, the whole commit: a service has a single datum, so its inputs are pfs inputs, or
a cross of them, with glob "/"), and starts again over the new commit when an input branch moves. It has no
jobs and writes no output commits. It listens on ``internal_port``; Tusk publishes that port on the host's
loopback, at ``127.0.0.1:external_port`` (Pachyderm makes a Kubernetes service on ``external_port``).

The bwrap sandbox has no network, so the port is relayed: the command runs under a small bridge, in the
sandbox, that listens on a unix socket in a directory bound in from the host and connects each connection to
``127.0.0.1:internal_port`` of the sandbox's own loopback; on the host a relay listens on
``127.0.0.1:external_port`` and connects each connection to that socket (the S3 endpoint of a datum reaches
the sandbox the same way, the other way round: ``tusk.pipelines.runtimes``). The ``local`` runtime has the
host's network: the relay connects to ``127.0.0.1:internal_port`` itself, or is not needed when both ports
are the same.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tusk.errors import InvalidArgument, NotFound
from tusk.pipelines.long_running import Launch, Runner, reset_pfs
from tusk.pipelines.registry import StoredPipeline
from tusk.pipelines.sandbox import Mount
from tusk.pipelines.spec import PfsInput
from tusk.versioning.refs import FileRef

__all__ = ["ServiceKind"]

_SOCKET_DIR = "/run/tusk-service"
_SOCKET = "port.sock"
# In the sandbox: listens on the unix socket and relays each connection to 127.0.0.1:PORT of the sandbox's
# loopback; runs the command meanwhile and exits with its code.
_BRIDGE = r'''
import os, socket, subprocess, sys, threading
path, port, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
try:
    os.unlink(path)
except OSError:
    pass
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
server.listen(128)
def relay(src, dst):
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
def serve(client):
    try:
        upstream = socket.create_connection(("127.0.0.1", port))
    except OSError:
        client.close()
        return
    back = threading.Thread(target=relay, args=(upstream, client), daemon=True)
    back.start()
    relay(client, upstream)
    back.join()
    client.close()
    upstream.close()
def accept():
    while True:
        client, _ = server.accept()
        threading.Thread(target=serve, args=(client,), daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
try:
    sys.exit(subprocess.call(cmd))
except OSError as exc:
    print(f"cannot start {cmd[0]!r}: {exc.strerror}", file=sys.stderr)
    sys.exit(127)
'''


def _relay(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


class _PortRelay:
    """Listens on ``127.0.0.1:port`` of the host and relays each connection to what ``connect`` opens."""

    def __init__(self, port: int, connect: Callable[[], socket.socket]) -> None:
        self.connect = connect
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.server.bind(("127.0.0.1", port))
        except OSError as exc:
            self.server.close()
            raise InvalidArgument(f"service.external_port {port} cannot be published on 127.0.0.1: "
                                  f"{exc.strerror} (another program, or another service, has it)") from None
        self.server.listen(128)
        threading.Thread(target=self._accept, daemon=True, name=f"tusk-service-port-{port}").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = self.connect()
        except OSError:
            client.close()
            return
        back = threading.Thread(target=_relay, args=(upstream, client), daemon=True)
        back.start()
        _relay(client, upstream)
        back.join()
        client.close()
        upstream.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self.server.close()


class ServiceKind:
    """Lays out the latest input commits at /pfs before each start; publishes the port."""

    def __init__(self, services: Any, pipeline: StoredPipeline) -> None:
        self.services = services
        self.pipeline = pipeline
        assert pipeline.spec.service is not None
        self.ports = pipeline.spec.service
        self.heads: dict[str, str] | None = None  # input name -> the commit the running command reads
        self.relay: _PortRelay | None = None
        self._waiting_said = False
        self._sockets: Path | None = None  # the bridge's socket: under /tmp, as a unix socket's path is short

    def _inputs(self) -> list[PfsInput]:
        return [leaf for leaf in self.pipeline.spec.input.leaves() if isinstance(leaf, PfsInput)]

    def _current(self) -> dict[str, str] | None:
        heads = {}
        for leaf in self._inputs():
            try:
                heads[leaf.input_name] = self.services.commits.inspect(leaf.repo, leaf.branch).id
            except NotFound:
                return None
        return heads

    def changed(self, runner: Runner) -> bool:
        return self.heads is not None and self._current() not in (None, self.heads)

    def prepare(self, runner: Runner, pfs: Path) -> Launch | None:
        heads = self._current()
        if heads is None:
            if not self._waiting_said:
                runner.say("waiting for a commit in every input: " + ", ".join(
                    f"{leaf.repo}@{leaf.branch}" for leaf in self._inputs()))
                runner.record(state="waiting")
                self._waiting_said = True
            return None
        self._waiting_said = False
        if self._sockets is None:  # not under TUSK_HOME: a deep home would pass the 108 bytes of a socket path
            self._sockets = Path(tempfile.mkdtemp(prefix="tusk-service-"))
            self._sockets.chmod(0o755)
        sockets = self._sockets
        sandboxed = runner.sandbox is not None
        if self.relay is None:
            port = self.ports.internal_port
            if sandboxed:
                path = str(sockets / _SOCKET)

                def to_sandbox() -> socket.socket:
                    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    try:
                        conn.connect(path)
                    except OSError:
                        conn.close()
                        raise
                    return conn
                self.relay = _PortRelay(self.ports.external_port, to_sandbox)
            elif port != self.ports.external_port:
                self.relay = _PortRelay(self.ports.external_port,
                                        lambda: socket.create_connection(("127.0.0.1", port)))
        reset_pfs(pfs)
        launch = Launch()
        for leaf in self._inputs():
            name, commit = leaf.input_name, heads[leaf.input_name]
            target = pfs / name
            target.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(NotFound):  # an empty commit: an empty directory
                self.services.files.download(FileRef(leaf.repo, commit), target)
            launch.mounts.append(Mount(target, f"/pfs/{name}"))
            launch.env |= {name: f"/pfs/{name}", f"{name}_COMMIT": commit}
        (pfs / "out").mkdir(exist_ok=True)
        launch.mounts.append(Mount(pfs / "out", "/pfs/out", writable=True))
        if sandboxed:
            launch.mounts.append(Mount(sockets, _SOCKET_DIR, writable=True))
            internal = str(self.ports.internal_port)
            launch.wrap = lambda cmd, _sandboxed: [sys.executable, "-c", _BRIDGE, f"{_SOCKET_DIR}/{_SOCKET}",
                                                   internal, *cmd]
        self.heads = heads
        runner.say("serving " + ", ".join(f"{k}@{v}" for k, v in heads.items()) +
                   f" on 127.0.0.1:{self.ports.external_port}")
        runner.record(input_commits=heads, port=self.ports.external_port)
        return launch

    def close(self) -> None:
        if self.relay is not None:
            self.relay.close()
            self.relay = None
        if self._sockets is not None:
            shutil.rmtree(self._sockets, ignore_errors=True)
            self._sockets = None
