"""A function algorithm's warm process: started once per version, in the pipelines' sandbox, called over a pipe.

The server never imports an algorithm's code. The process sees its own
directory (read-only, at ``/algorithm``) and Tusk's Python, nothing of the
store, the database, the network or the server's environment; its only way
out is a nested ``ctx.algo(ref).pipe(x)``, which it asks of the server, and
which the server decides (see ``AlgorithmService``). Calls to one process are
serialized; a process that dies is started again on the next call.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from tusk.algorithms import _worker as frames
from tusk.config import Limits
from tusk.errors import AlgorithmError, TuskError
from tusk.pipelines.sandbox import Mount, SandboxCommand

__all__ = ["AlgorithmProcess", "NestedCall"]

INSIDE = "/algorithm"
_WORKER = Path(frames.__file__).resolve()
_ENV = ("PATH", "LANG", "LC_ALL")

NestedCall = Callable[[str, Any], tuple[Any, dict[str, Any]]]  # (ref, data) -> (result, metadata)


class AlgorithmProcess:
    def __init__(self, directory: Path, entrypoint: str, full_name: str, base_env: dict[str, str],
                 limits: Limits | None = None) -> None:
        self.directory = directory
        self.file, self.func = entrypoint.split(":", 1)
        self.full_name = full_name
        self.env = {k: v for k, v in base_env.items() if k in _ENV} | {"HOME": "/tmp", "TMPDIR": "/tmp"}
        self.sandbox = SandboxCommand.find(limits)
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def sandboxed(self) -> bool:
        return self.sandbox is not None

    def _argv(self) -> list[str]:
        if self.sandbox is None:  # no bubblewrap: still out of the server's process, though not isolated
            return [sys.executable, "-I", str(_WORKER), str(self.directory), self.file, self.func, self.full_name]
        cmd = [sys.executable, "-I", str(_WORKER), INSIDE, self.file, self.func, self.full_name]
        return self.sandbox.argv(cmd, [Mount(self.directory, INSIDE)], INSIDE)

    def _start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(self._argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=self.env, start_new_session=True)
        ready = self._receive(proc)
        if ready.get("t") != "ready":
            self._stop(proc)
            raise self._error(ready)
        return proc

    def call(self, data: Any, nested: NestedCall) -> Any:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            proc = self._proc
            try:
                self._send(proc, {"t": "call", "data": data})
                while True:
                    message = self._receive(proc)
                    if message["t"] == "result":
                        return message["value"]
                    if message["t"] == "error":
                        raise self._error(message)
                    if message["t"] != "algo":
                        raise AlgorithmError(f"{self.full_name}: its process sent {message['t']!r}")
                    self._send(proc, self._nested(nested, str(message["ref"]), message.get("data")))
            except (BrokenPipeError, ConnectionError) as exc:
                self._stop(proc)
                raise AlgorithmError(f"{self.full_name}: its process ended during the call ({exc})") from None
            except TypeError as exc:  # a result or nested input that is not JSON
                raise AlgorithmError(f"{self.full_name}: {exc}") from None

    @staticmethod
    def _nested(nested: NestedCall, ref: str, data: Any) -> dict[str, Any]:
        try:
            result, metadata = nested(ref, data)
        except TuskError as exc:
            return {"t": "raise", "kind": type(exc).__name__, "message": str(exc)}
        return {"t": "reply", "result": result, "metadata": metadata}

    def _send(self, proc: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
        stdin: IO[bytes] | None = proc.stdin
        assert stdin is not None
        frames.send(stdin, message)  # type: ignore[arg-type]

    def _receive(self, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
        assert proc.stdout is not None
        message = frames.receive(proc.stdout)  # type: ignore[arg-type]
        if message is None:
            code = proc.wait()
            self._proc = None
            raise AlgorithmError(f"{self.full_name}: its process ended (exit code {code}): a crash, or a limit "
                                 "of the sandbox (memory, processes, CPU time)")
        return message

    def _error(self, message: dict[str, Any]) -> TuskError:
        from tusk import errors

        kind = getattr(errors, str(message.get("kind")), None)
        cls = kind if isinstance(kind, type) and issubclass(kind, TuskError) else AlgorithmError
        err = cls(str(message.get("message")))
        if message.get("stacktrace"):
            err.stacktrace = message["stacktrace"]  # type: ignore[attr-defined]
        return err

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes]) -> None:
        proc.kill()
        proc.wait()

    def close(self) -> None:
        with self._lock:
            if self._proc is not None:
                self._stop(self._proc)
                self._proc = None
