"""Datum batching from inside a pipeline's code: ``pachctl next datum`` and the ``batch_all_datums`` loop.

With ``"datum_batching": true`` in a pipeline's transform, its command starts
once per worker and asks for each datum in turn, as in Pachyderm::

    while pachctl next datum; do
        cp /pfs/in/* /pfs/out/
    done

``pachctl next datum`` blocks until the next datum's inputs are in place
under ``/pfs`` (and ``/pfs/out`` is empty), and reports the datum before as
done: a success, unless ``--error MESSAGE`` says it failed. When no datum is
left it exits 1 (in Pachyderm the worker kills the command then; Tusk kills it
a second later if it goes on). As in Pachyderm, it changes nothing in the
calling shell's environment: the datum's variables (``PACH_DATUM_ID``, one per
input...) are written to ``/pfs/.env``, in a form that ``sh`` reads with
``set -a; . /pfs/.env; set +a`` and ``python-dotenv`` loads;
``batch_all_datums`` loads them into ``os.environ`` for each datum.

Only ``next datum`` exists: Tusk's sandbox has no other ``pachctl`` command.
This module runs in the pipeline's code, so it needs nothing but the standard
library; it is also, as it is, the sandbox's ``pachctl`` script (run with
``python -IS``), so it imports little at its top: a shell loop starts one
``pachctl`` per datum.
"""

from __future__ import annotations

import _socket  # not ``socket``, which imports enum and selectors: 20 ms more per ``pachctl``
import os
import sys

TYPE_CHECKING = False  # not typing's, which takes 10 ms to import
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["FunctionDatum", "NotBatching", "batch_all_datums", "call", "datum_env", "next_datum", "pachctl"]

_SOCKET = "TUSK_NEXT_DATUM_SOCKET"
_loaded: set[str] = set()  # the variables the last datum's /pfs/.env set, unset before the next one's


class NotBatching(RuntimeError):
    """``next datum`` was called outside a pipeline with ``transform.datum_batching: true``."""


def next_datum(error: str = "") -> bool:
    """Report the current datum (failed when ``error`` is given) and wait for the next one.

    True when the next datum is in place under /pfs; False when there is none left.
    """
    path = os.environ.get(_SOCKET)
    if not path:
        raise NotBatching("`pachctl next datum` works only in the code of a pipeline whose transform sets "
                          "\"datum_batching\": true (the worker that feeds datums is not here)")
    for stream in (sys.stdout, sys.stderr):  # what the datum printed belongs to it, not to the next one
        stream.flush()
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        conn.connect(path)
        conn.sendall(_request(error))
        reply = b""
        while data := conn.recv(64):
            reply += data
    finally:
        conn.close()
    return reply.strip() == b"ready"


def _request(error: str) -> bytes:
    """``{"error": ...}`` and a newline (JSON by hand: ``json`` is one more import per ``pachctl``)."""
    escaped = "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in error)
    return ('{"error": "' + escaped + '"}\n').encode()


def datum_env(pfs: str | None = None) -> dict[str, str]:
    """The current datum's variables, as the worker wrote them to ``/pfs/.env``."""
    path = os.path.join(pfs or os.environ.get("PFS", "/pfs"), ".env")
    env: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                for word in _words(line):
                    key, sep, value = word.partition("=")
                    if sep:
                        env[key] = value
    except FileNotFoundError:
        pass
    return env


_SHAPES: list[Any] = []  # the two line shapes ``shlex.quote`` writes, compiled on first use


def _words(line: str) -> list[str]:
    """``shlex.split(line, comments=True)``, without shlex for the two shapes the worker writes: ``KEY=value``
    of characters that need no quoting, and ``KEY='value'`` with no quote inside (shlex takes ~12 µs a line,
    a tenth of a warm datum's cost). Any other line goes to shlex, so the result is shlex's for every line."""
    if not _SHAPES:
        import re

        safe = r"[\w@%+=:,./-]"  # what shlex.quote leaves unquoted
        _SHAPES.extend([re.compile(rf"({safe}+)\n?\Z", re.ASCII), re.compile(rf"({safe}*)'([^']*)'\n?\Z", re.ASCII)])
    plain, quoted = _SHAPES
    if (m := plain.match(line)) is not None:
        return [m.group(1)]
    if (m := quoted.match(line)) is not None:
        return [m.group(1) + m.group(2)]
    import shlex

    return shlex.split(line, comments=True)


def _load_env() -> dict[str, str]:
    for key in _loaded:
        os.environ.pop(key, None)
    env = datum_env()
    os.environ.update(env)
    _loaded.clear()
    _loaded.update(env)
    return env


def batch_all_datums(user_code: F) -> F:
    """Call the decorated function once per datum, as pachyderm-sdk's ``batch_all_datums`` does.

    Before each call it asks for the next datum and loads the datum's variables
    into ``os.environ``; an exception the function raises fails that datum only
    (it is printed, and reported with the next call). It returns when no datum
    is left. Expensive set-up (loading a model) goes before the first call::

        @batch_all_datums
        def main():
            shutil.copy(os.environ["images"], "/pfs/out/")

        if __name__ == "__main__":
            load_model()
            main()
    """

    import functools

    @functools.wraps(user_code)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        _every_datum(lambda _env: user_code(*args, **kwargs), repr)

    return wrapper  # type: ignore[return-value]


def _every_datum(run: Callable[[dict[str, str]], object], error_of: Callable[[Exception], str]) -> None:
    """Ask for each datum in turn, load its variables into ``os.environ`` and ``run`` it with them; an exception
    fails that datum only (printed, and reported as ``error_of(exc)`` with the next call)."""
    import traceback

    error = ""
    while next_datum(error):
        env = _load_env()
        error = ""
        try:
            run(env)
        except Exception as exc:  # the datum failed; the others go on
            traceback.print_exc()
            error = error_of(exc)


class FunctionDatum:
    """What a ``transform.function`` is called with, for one datum (when it takes an argument).

    ``inputs`` maps each input's name to its path for this datum (``/pfs/<name>/...``, the ``<name>`` variable),
    ``out`` is the directory to write to (``/pfs/out``), ``env`` the datum's variables (also in ``os.environ``).
    """

    __slots__ = ("env", "id", "inputs", "job_id", "out")

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.id = env.get("PACH_DATUM_ID", "")
        self.job_id = env.get("PACH_JOB_ID", "")
        self.inputs = {k[len("TUSK_INPUT_"):]: v for k, v in env.items() if k.startswith("TUSK_INPUT_")}
        self.out = os.path.join(os.environ.get("PFS", "/pfs"), "out")

    def __repr__(self) -> str:
        return f"FunctionDatum(id={self.id!r}, inputs={self.inputs!r}, out={self.out!r})"


def call(target: str) -> int:
    """Import ``module:function`` from the pipeline's code (the working directory) and call it once per datum:
    ``transform.function``'s warm worker. The import and whatever the module does at its top (loading a model)
    happen once; a datum whose call raises fails alone (the traceback is its log) and the next one goes on."""
    import importlib
    import inspect
    import traceback

    module_name, _, attribute = target.partition(":")
    sys.path.insert(0, os.getcwd())
    try:
        function: Any = importlib.import_module(module_name)
    except Exception as exc:
        if not (isinstance(exc, ModuleNotFoundError) and exc.name == module_name.split(".")[0]):
            traceback.print_exc()  # the module itself failed: its traceback says where
        print(f"transform.function {target}: cannot import {module_name} from the pipeline's code: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    for part in attribute.split("."):
        if not hasattr(function, part):
            print(f"transform.function {target}: {module_name} has no {attribute}", file=sys.stderr)
            return 2
        function = getattr(function, part)
    if not callable(function):
        print(f"transform.function {target}: {type(function).__name__} is not callable", file=sys.stderr)
        return 2
    try:
        takes_datum = any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
                          for p in inspect.signature(function).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: call it with the datum
        takes_datum = True
    _every_datum(lambda env: function(FunctionDatum(env)) if takes_datum else function(),
                 lambda exc: f"{target} raised {type(exc).__name__}: {exc}"[:2000])
    return 0


def pachctl(argv: list[str]) -> int:
    """The ``pachctl`` of Tusk's sandbox: ``pachctl next datum [--error MESSAGE]`` and nothing else."""
    if argv[:2] != ["next", "datum"]:
        print(f"pachctl {' '.join(argv)}: Tusk's sandbox offers only `pachctl next datum` (datum batching); "
              "run other pachctl commands, or their `tusk` equivalents, outside the pipeline", file=sys.stderr)
        return 2
    rest, error = argv[2:], ""
    while rest:
        arg = rest.pop(0)
        if arg == "--error" and rest:
            error = rest.pop(0)
        elif arg.startswith("--error="):
            error = arg.split("=", 1)[1]
        else:
            print(f"pachctl next datum: unknown argument {arg!r} (the only one is --error MESSAGE)",
                  file=sys.stderr)
            return 2
    try:
        ready = next_datum(error)
    except (NotBatching, OSError) as exc:
        print(f"pachctl next datum: {exc}", file=sys.stderr)
        return 2
    if not ready:
        print("pachctl next datum: no more datums", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # the sandbox's pachctl; ``_call MODULE:FUNCTION`` is transform.function's worker
    sys.exit(call(sys.argv[2]) if sys.argv[1:2] == ["_call"] and len(sys.argv) == 3 else pachctl(sys.argv[1:]))
