"""The process a function algorithm runs in, inside the sandbox: it imports the entrypoint and answers calls.

Run as a script (``python _worker.py DIR FILE FUNC NAME``), so it imports
nothing of Tusk itself. The server talks to it over stdin/stdout in frames: a
4-byte big-endian length, then JSON. Bytes travel as ``{"__bytes__": base64}``.

    server -> worker   {"t": "call", "data": ...}
    worker -> server   {"t": "result", "value": ...}
                       {"t": "error", "kind": "InputError" | ..., "message": ..., "stacktrace": ...}
                       {"t": "algo", "ref": "owner/name/1", "data": ...}   (ctx.algo(ref).pipe(data))
    server -> worker   {"t": "reply", "result": ..., "metadata": {...}} | {"t": "raise", "kind": ..., "message": ...}

A nested call is decided by the server (``permissions.call``, the caller's
rights); the worker has no other way out: no store, no network, no token.
The user's own prints go to stderr (the algorithm's log), never into the frames.
A stack trace sent back holds the algorithm's own frames only, with paths
relative to its directory: nothing of this worker or of the server's files.
"""

from __future__ import annotations

import base64
import importlib
import importlib.util
import inspect
import json
import os
import struct
import sys
import traceback
from typing import Any, BinaryIO


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _encode(value.tolist())
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__bytes__"}:
            return base64.b64decode(value["__bytes__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def send(out: BinaryIO, message: dict[str, Any]) -> None:
    body = json.dumps(_encode(message), allow_nan=False).encode()
    out.write(struct.pack(">I", len(body)) + body)
    out.flush()


def receive(inp: BinaryIO) -> dict[str, Any] | None:
    head = inp.read(4)
    if len(head) < 4:
        return None
    (size,) = struct.unpack(">I", head)
    body = inp.read(size)
    if len(body) < size:
        return None
    message: dict[str, Any] = _decode(json.loads(body))
    return message


class _Response:
    def __init__(self, result: Any, metadata: dict[str, Any]) -> None:
        self.result = result
        self.metadata = metadata


class _Handle:
    def __init__(self, channel: _Channel, ref: str) -> None:
        self._channel = channel
        self.ref = ref

    def pipe(self, data: Any) -> _Response:
        return self._channel.nested(self.ref, data)

    def __repr__(self) -> str:
        return f"<algorithm {self.ref}>"


class _Version:
    def __init__(self, full_name: str) -> None:
        self.owner, self.name, self.version = full_name.split("/")
        self.full_name = full_name


class _Context:
    """``ctx``: the algorithm's own version, and calls to the algorithms its permissions name."""

    def __init__(self, channel: _Channel, full_name: str) -> None:
        self._channel = channel
        self.version = _Version(full_name)
        self.model = None

    def algo(self, ref: str) -> _Handle:
        return _Handle(self._channel, ref)


class _Channel:
    def __init__(self, inp: BinaryIO, out: BinaryIO) -> None:
        self.inp, self.out = inp, out

    def nested(self, ref: str, data: Any) -> _Response:
        send(self.out, {"t": "algo", "ref": ref, "data": data})
        reply = receive(self.inp)
        if reply is None:
            raise SystemExit(0)
        if reply["t"] == "raise":
            raise _error_class(reply["kind"])(reply["message"])
        return _Response(reply["result"], reply["metadata"])


def _error_class(kind: str) -> type[Exception]:
    """Tusk's own class of that name when user code can import Tusk (so ``except InputError`` works)."""
    try:
        found = getattr(importlib.import_module("tusk.errors"), kind, None)
    except ImportError:
        found = None
    if isinstance(found, type) and issubclass(found, Exception):
        return found
    return type(kind, (_NestedError,), {})


def _failure(exc: BaseException, full_name: str, directory: str) -> dict[str, Any]:
    if type(exc).__module__ == "tusk.errors" or isinstance(exc, _NestedError):
        return {"t": "error", "kind": type(exc).__name__, "message": str(exc)}
    return {"t": "error", "kind": "AlgorithmError",
            "message": _relative(f"{full_name} raised {type(exc).__name__}: {exc}", directory),
            "stacktrace": _trace(exc, directory)}


def _relative(text: str, directory: str) -> str:
    root = os.path.realpath(directory)
    return text.replace(root + os.sep, "").replace(directory.rstrip(os.sep) + os.sep, "")


def _trace(exc: BaseException, directory: str) -> str:
    """The stack trace of the algorithm's own code: its frames only, their paths relative to its directory."""
    root = os.path.realpath(directory)
    frames = [traceback.FrameSummary(os.path.relpath(os.path.realpath(f.filename), root), f.lineno, f.name,
                                     line=f.line)
              for f in traceback.extract_tb(exc.__traceback__)
              if os.path.realpath(f.filename).startswith(root + os.sep)]
    lines = ["Traceback (most recent call last):\n", *traceback.StackSummary.from_list(frames).format(),
             *traceback.format_exception_only(type(exc), exc)]
    return _relative("".join(lines), directory)


class _NestedError(Exception):
    pass


def main(argv: list[str]) -> int:
    directory, file, func, full_name = argv
    inp = os.fdopen(os.dup(0), "rb")
    out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)  # print() in the algorithm: its log, not the frames
    sys.stdout = sys.stderr
    channel = _Channel(inp, out)
    sys.path.insert(0, directory)
    try:
        spec = importlib.util.spec_from_file_location("tusk_algorithm", os.path.join(directory, file))
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {file}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        fn = getattr(module, func, None)
        if not callable(fn):
            raise AttributeError(f"{file} has no function {func}")
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        wants_ctx = len(params) >= 2
    except Exception as exc:
        send(out, {"t": "error", "kind": "AlgorithmError",
                   "message": _relative(f"{full_name}: importing {file} raised {type(exc).__name__}: {exc}",
                                        directory),
                   "stacktrace": _trace(exc, directory)})
        return 1
    send(out, {"t": "ready"})
    ctx = _Context(channel, full_name)
    while (message := receive(inp)) is not None:
        try:
            value = fn(message["data"], ctx) if wants_ctx else fn(message["data"])
            send(out, {"t": "result", "value": value})  # encodes before writing: a result that is not JSON
        except Exception as exc:  # is the algorithm's error, and no frame is half-written
            send(out, _failure(exc, full_name, directory))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
