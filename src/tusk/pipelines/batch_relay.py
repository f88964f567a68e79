"""The relay between a datum-batching command and its worker (``tusk.pipelines.batching``), run inside the sandbox.

``python -I -m tusk.pipelines.batch_relay SOCKET CMD...`` connects to the
worker's unix socket (bound into the sandbox, which has no network), runs
``CMD`` with its output on a pipe, and listens on a socket of its own in the
sandbox's ``/tmp`` (``TUSK_NEXT_DATUM_SOCKET``) for ``pachctl next datum``
(``tusk.datum_batching``). It relays, in order, on the one connection:

- what the command prints (``L`` frames): before a ``next datum`` call is
  passed on, the pipe is drained, so everything printed before the call is
  attributed to the datum it finished;
- each ``next datum`` call (``N``, its ``--error`` as payload), answered by the
  worker with ``R`` (the next datum is in place under /pfs) or ``D`` (no more
  datums: the call exits 1);
- the command's process group (``P``, first) and its exit code (``X``) as it
  ends. ``K`` from the worker, or the worker going away, kills that group.

Only the standard library: it starts before anything of the datum is known.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile

__all__ = ["HEADER", "frame", "main"]

HEADER = struct.Struct(">cI")  # kind, payload length


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


class _Relay:
    def __init__(self, worker: socket.socket, child: subprocess.Popen[bytes], output: int,
                 listener: socket.socket) -> None:
        self.worker, self.child, self.output, self.listener = worker, child, output, listener
        self.selector = selectors.DefaultSelector()
        self.pending: list[socket.socket] = []  # callers waiting for the worker's answer, oldest first
        self.requests: dict[socket.socket, bytes] = {}
        self.inbox = b""
        self.output_open = True

    def drain(self) -> None:
        """Send what the command printed so far (everything written before now is in the pipe)."""
        while self.output_open:
            try:
                data = os.read(self.output, 1 << 16)
            except BlockingIOError:
                return
            if not data:
                self.output_open = False
                self.selector.unregister(self.output)
                return
            self.worker.sendall(frame(b"L", data))

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.child.pid, signal.SIGKILL)

    def on_worker(self) -> bool:
        try:
            data = self.worker.recv(1 << 16)
        except OSError:
            data = b""
        if not data:  # the worker is gone: nothing may outlive it
            self.kill()
            return False
        self.inbox += data
        while len(self.inbox) >= HEADER.size:
            kind, size = HEADER.unpack_from(self.inbox)
            if len(self.inbox) < HEADER.size + size:
                break
            self.inbox = self.inbox[HEADER.size + size:]
            if kind == b"K":
                self.kill()
            elif kind in (b"R", b"D") and self.pending:
                caller = self.pending.pop(0)
                with contextlib.suppress(OSError):
                    caller.sendall(b"ready\n" if kind == b"R" else b"done\n")
                caller.close()
        return True

    def on_caller(self, caller: socket.socket) -> None:
        data = b""
        with contextlib.suppress(OSError):
            data = caller.recv(1 << 16)
        buffered = self.requests.get(caller, b"") + data
        if data and b"\n" not in buffered:
            self.requests[caller] = buffered
            return
        self.selector.unregister(caller)
        self.requests.pop(caller, None)
        if not data and not buffered:
            caller.close()
            return
        self.drain()
        self.pending.append(caller)
        self.worker.sendall(frame(b"N", buffered.split(b"\n", 1)[0]))

    def run(self) -> int:
        sel = self.selector
        sel.register(self.output, selectors.EVENT_READ, "output")
        sel.register(self.listener, selectors.EVENT_READ, "listener")
        sel.register(self.worker, selectors.EVENT_READ, "worker")
        pidfd = None
        if hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):
                pidfd = os.pidfd_open(self.child.pid)
                sel.register(pidfd, selectors.EVENT_READ, "exit")
        while self.child.poll() is None:
            for key, _ in sel.select(timeout=None if pidfd is not None else 0.05):
                if key.data == "output":
                    self.drain()
                elif key.data == "listener":
                    caller, _ = self.listener.accept()
                    sel.register(caller, selectors.EVENT_READ, "caller")
                elif key.data == "caller":
                    assert isinstance(key.fileobj, socket.socket)
                    self.on_caller(key.fileobj)
                elif key.data == "worker" and not self.on_worker():
                    self.child.wait()
                    return 137
        self.drain()
        rc = self.child.returncode
        code = rc if rc >= 0 else 128 - rc
        with contextlib.suppress(OSError):
            self.worker.sendall(frame(b"X", str(rc).encode()))
        return code


def main(argv: list[str]) -> int:
    path, cmd = argv[0], argv[1:]
    worker = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    worker.connect(path)
    home = tempfile.mkdtemp(prefix="tusk-next-datum-")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.path.join(home, "next.sock"))
    listener.listen(16)
    read, write = os.pipe()
    env = dict(os.environ, TUSK_NEXT_DATUM_SOCKET=os.path.join(home, "next.sock"))
    try:
        child = subprocess.Popen(cmd, stdout=write, stderr=write, env=env, start_new_session=True)
    except OSError as exc:
        worker.sendall(frame(b"L", f"cannot start {cmd[0]!r}: {exc.strerror}\n".encode()) + frame(b"X", b"127"))
        return 127
    finally:
        os.close(write)
    worker.sendall(frame(b"P", str(child.pid).encode()))  # its process group, for a worker that shares the pids
    os.set_blocking(read, False)
    relay = _Relay(worker, child, read, listener)
    try:
        return relay.run()
    except BaseException:  # the relay failing must not leave the command running unwatched
        relay.kill()
        raise


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
