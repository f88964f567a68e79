"""Datum batching (``transform.datum_batching``): one long-lived command per worker, fed datum after datum.

As in Pachyderm, the command starts once per worker (``parallelism_spec``
threads here) and loops on ``pachctl next datum`` (``tusk.datum_batching``),
which blocks until the next datum is in place. For each datum the worker:

1. lays the datum out in the worker's *slot*: the same directories the
   command sees as ``/pfs/<input>`` for its whole life (emptied and refilled
   in place, so the sandbox's bind mounts keep showing them), an empty
   ``/pfs/out``, and the datum's variables in ``/pfs/.env`` (``pachctl`` sets
   nothing in the caller's environment, in Pachyderm as here);
2. answers the pending ``next datum`` call, and waits for the next one (the
   datum is done: /pfs/out is ingested as for any datum; with ``--error`` it
   failed), or for the command to end (0 or an accepted code: done; any other
   code, a signal, a crash: that datum failed), or for the datum's timeout;
3. retries a failed datum up to ``datum_tries`` (restarting the command when it
   ended), then runs ``err_cmd`` as for any datum.

What the command prints while a datum is current is that datum's log (what it
printed starting up is the first datum's). A datum that was finished is never
given again, a skipped one never at all: the job runner hands over only the
datums to run. When no datum is left, ``next datum`` exits 1 and the command
is killed if it has not ended a second later.

The command reaches the worker through a unix socket bound into the sandbox
(which has no network), by way of ``tusk.pipelines.batch_relay``; ``pachctl``
is a script next to that socket, first on the command's PATH.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tusk import datum_batching
from tusk.config import Limits
from tusk.errors import TuskError
from tusk.pipelines.batch_relay import HEADER, frame
from tusk.pipelines.datums import Datum
from tusk.pipelines.runtimes import RunRequest, RunResult, Runtime, explain_failure, last_lines, tree_size
from tusk.pipelines.s3 import wants_s3_out
from tusk.pipelines.slots import Slot
from tusk.pipelines.spec import PipelineSpec
from tusk.pipelines.worker import (
    DatumOutcome,
    DatumWorker,
    JobLabels,
    _LazyFeeder,
    _remaining,
    _secret_files,
)
from tusk.storage.buffers import write_all
from tusk.versioning.trees import Entry

if TYPE_CHECKING:
    from tusk.pipelines.codestore import JobCode

__all__ = ["BatchSession", "run_batched"]

_INSIDE = "/run/tusk-batch"  # where the sandbox sees the worker's socket and pachctl
_LOG_LIMIT = 1 << 20  # a datum's log keeps its last MiB, as with a command per datum
_END_GRACE = 1.0  # seconds a command may take to end by itself once told there is no datum left
_DATUM_ONLY = ("PACH_DATUM_ID", "TUSK_DATUM_ID")


def run_batched(worker: DatumWorker, job_id: str, spec: PipelineSpec, code: JobCode, roots: dict[str, str],
                datums: list[Datum], deadline: float | None, labels: JobLabels | None
                ) -> Iterator[tuple[Datum, DatumOutcome]]:
    """The datums on ``parallelism_spec.constant`` threads, each with its own long-lived command."""
    names = sorted({i.name for d in datums for i in d.inputs})
    sessions: list[BatchSession] = []
    lock = threading.Lock()
    mine = threading.local()

    def one(d: Datum) -> tuple[Datum, DatumOutcome]:
        session: BatchSession | None = getattr(mine, "session", None)
        if session is None:
            with lock:
                session = BatchSession(worker, job_id, spec, code.local, roots, deadline, labels, code.image,
                                       names, len(sessions))
                sessions.append(session)
            mine.session = session
        return d, session.run(d)

    try:
        with ThreadPoolExecutor(max_workers=spec.parallelism_spec.constant, thread_name_prefix="tusk-batch") as pool:
            yield from pool.map(one, datums)
    finally:
        for session in sessions:
            session.close()


class _Process:
    """One run of the command: its relay's connection, its output, and what it did (a queue of events)."""

    def __init__(self, runtime: Runtime, request: RunRequest, listener: socket.socket) -> None:
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.exit_code: int | None = None
        self.group: int | None = None  # the command's process group, as its relay reports it
        self._host_pids = runtime.name == "local"  # in the sandbox, its pid namespace ends with it
        self.exited = False
        self._log: list[bytes] = []
        self._size = 0
        self._lock = threading.Lock()
        self._conn: socket.socket | None = None
        self._listener = listener
        self._reader = threading.Thread(target=self._read, daemon=True, name="tusk-batch-relay")
        self._reader.start()
        self._runner = threading.Thread(target=self._run, args=(runtime, request), daemon=True,
                                        name="tusk-batch-command")
        self._runner.start()

    def _run(self, runtime: Runtime, request: RunRequest) -> None:
        try:
            result = runtime.run(request)
        except Exception as exc:  # a runtime that raises: the command did not run
            result = RunResult(False, None, "", 0.0, f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(OSError):
            self._listener.close()  # a relay that never connected: the reader stops waiting
        self._reader.join(timeout=5)  # its last frames (output, exit code) come before the process ends
        if self._host_pids and self.group is not None:  # a relay killed from outside leaves no orphan behind
            with contextlib.suppress(OSError):
                os.killpg(self.group, signal.SIGKILL)
        self.exited = True
        self.events.put(("exit", result))

    def _read(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        self._conn = conn
        inbox = b""
        try:
            while data := conn.recv(1 << 16):
                inbox += data
                while len(inbox) >= HEADER.size:
                    kind, size = HEADER.unpack_from(inbox)
                    if len(inbox) < HEADER.size + size:
                        break
                    payload, inbox = inbox[HEADER.size:HEADER.size + size], inbox[HEADER.size + size:]
                    if kind == b"L":
                        with self._lock:
                            self._log.append(payload)
                            self._size += len(payload)
                            if self._size > 4 * _LOG_LIMIT:  # keep the tail, as a datum's log does
                                tail = b"".join(self._log)[-_LOG_LIMIT:]
                                self._log, self._size = [tail], len(tail)
                    elif kind == b"N":
                        self.events.put(("next", _error_of(payload)))
                    elif kind == b"X":
                        self.exit_code = int(payload)
                    elif kind == b"P":
                        self.group = int(payload)
        except OSError:
            pass

    def take_log(self) -> str:
        with self._lock:
            data, self._log, self._size = b"".join(self._log), [], 0
        return data[-_LOG_LIMIT:].decode(errors="replace")

    def send(self, kind: bytes) -> bool:
        try:
            if self._conn is None:
                return False
            self._conn.sendall(frame(kind))
            return True
        except OSError:
            return False

    def kill(self, wait: float = 10.0) -> RunResult | None:
        """Kill the command (its relay kills its process group) and wait for it to end; its result."""
        self.send(b"K")
        with contextlib.suppress(OSError):
            if self._conn is not None:
                self._conn.shutdown(socket.SHUT_RDWR)  # the relay kills the command when the worker goes away
            else:
                self._listener.close()  # a relay still starting cannot connect, and ends
        return self.wait_exit(wait)

    def wait_exit(self, wait: float) -> RunResult | None:
        end = time.monotonic() + wait
        while True:
            try:
                kind, value = self.events.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                return None
            if kind == "exit":
                assert isinstance(value, RunResult)
                return value


def _error_of(payload: bytes) -> str:
    try:
        return str(json.loads(payload).get("error") or "")
    except (ValueError, AttributeError):
        return payload.decode(errors="replace")


class BatchSession:
    """One worker thread's slot and long-lived command, for one job."""

    def __init__(self, worker: DatumWorker, job_id: str, spec: PipelineSpec, code_dir: Path, roots: dict[str, str],
                 deadline: float | None, labels: JobLabels | None, image: dict[str, Any] | None,
                 input_names: list[str], index: int) -> None:
        self.worker, self.job_id, self.spec, self.code_dir = worker, job_id, spec, code_dir
        self.roots, self.deadline, self.image = roots, deadline, image
        self.labels = labels or JobLabels(spec.name, 0, "")
        self.input_names = input_names
        self.slot = Slot(worker.scratch / job_id / f"batch-{index}")  # inputs' inodes reused (tusk.pipelines.slots)
        self.pfs = self.slot.pfs
        for name in [*input_names, "out", ".tusk"]:
            (self.pfs / name).mkdir(parents=True, exist_ok=True)
        (self.pfs / ".env").touch()
        # the socket and pachctl: under /tmp, as a unix socket's path is short (108 bytes)
        self.control = Path(tempfile.mkdtemp(prefix="tusk-batch-"))
        self.control.chmod(0o755)
        pachctl = self.control / "pachctl"
        # tusk.datum_batching as it is, on the interpreter alone (-S: no site-packages to scan on each call)
        pachctl.write_text(f"#!{sys.executable} -IS\n" + Path(datum_batching.__file__).read_text())
        pachctl.chmod(0o755)
        self.process: _Process | None = None
        self.starts = 0
        self._secret_mounts: list[tuple[Path, str]] | None = None

    # -- one datum ---------------------------------------------------------------------------------------------
    def run(self, datum: Datum) -> DatumOutcome:
        outcome = self._run(datum)
        values = self.labels.secrets
        if values:  # a value the code printed is masked in its log
            outcome.log = values.mask(outcome.log) or ""
            outcome.error = values.mask(outcome.error)
        return outcome

    def _run(self, datum: Datum) -> DatumOutcome:
        stats: dict[str, float] = {}
        try:
            runtime, note = self.worker._runtime_for(self.spec, self.image)
            refusal = self._refusal(runtime, datum)
            if refusal:
                return DatumOutcome("failed", None, 0, "", refusal, stats)
            t = time.monotonic()
            lazy: list[tuple[Path, Entry, str]] = []
            with self.worker.turn:  # the threads take turns with their work here (tusk.pipelines.worker._turns)
                for name in [*self.input_names, ".tusk"]:
                    self.slot.clear(self.pfs / name)
                local, downloaded = self.worker._materialize(datum, self.pfs, self.roots, lazy, self.slot)
                stats["download_seconds"], stats["download_bytes"] = time.monotonic() - t, downloaded
                env = self.worker._env(self.job_id, datum, self.spec, self.labels)
                self._write_env(runtime, env)
            logs = [f"[tusk] {note}\n"] if note else []
            return self._tries(runtime, datum, env, lazy, local, logs, stats)
        except TuskError as exc:
            return DatumOutcome("failed", None, 0, "", str(exc), stats)

    def _refusal(self, runtime: Runtime, datum: Datum) -> str | None:
        field = "datum_batching" if self.spec.transform.datum_batching else "function"
        if runtime.name not in ("local", "bwrap"):
            where = "an imported image" if runtime.name == "image" else f"the {runtime.name} runtime"
            return (f"transform.{field} needs Tusk's `pachctl next datum` inside {where}, which it "
                    "cannot have (it would need a static pachctl in the image): run the pipeline without an "
                    f"image (bwrap or local runtime), or drop {field}")
        if any(i.s3 for i in datum.inputs) or wants_s3_out(self.spec):
            return (f"transform.{field} with s3 inputs or s3_out is not supported: each datum has its own "
                    f"S3 endpoint, which a long-lived process cannot follow; drop {field} or s3")
        return None

    def _tries(self, runtime: Runtime, datum: Datum, env: dict[str, str], lazy: list[tuple[Path, Entry, str]],
               local: dict[str, Entry], logs: list[str], stats: dict[str, float]) -> DatumOutcome:
        spec = self.spec
        ok, error, tries = False, None, 0
        for tries in range(1, spec.datum_tries + 1):
            self.slot.clear(self.pfs / "out")
            timeout = _remaining(spec.datum_timeout, self.deadline)
            if timeout is not None and timeout <= 0:
                return DatumOutcome("failed", None, tries, "".join(logs), "job timed out", stats)
            feeders = [_LazyFeeder(self.worker.ctx, fifo, entry, name) for fifo, entry, name in lazy]
            try:
                ok, error, log, seconds = self._present(runtime, env, timeout)
            finally:
                stats["download_bytes"] += sum(f.finish() for f in feeders)
            stats["process_seconds"] = stats.get("process_seconds", 0.0) + seconds
            logs.append(log)
            if ok:
                break
            logs.append(f"[tusk] try {tries}/{spec.datum_tries} failed: {error}\n")
        if not ok:
            hint = explain_failure("".join(logs), runtime)
            if hint:
                error = f"{error}; {hint}"
                logs.append(f"[tusk] {hint}\n")
            if spec.transform.err_cmd:
                err = runtime.run(RunRequest(
                    cmd=spec.transform.err_cmd, stdin=spec.transform.err_stdin, env=env, pfs_dir=self.pfs,
                    input_names=[i.name for i in datum.inputs], working_dir=spec.transform.working_dir,
                    timeout=_remaining(spec.datum_timeout, self.deadline), code_dir=self.code_dir,
                    user=spec.transform.user, mounts=self._secrets(runtime)))
                logs.append(err.log)
                if err.ok:
                    logs.append("[tusk] err_cmd succeeded: datum recovered, its output is skipped\n")
                    return DatumOutcome("recovered", None, tries, "".join(logs), error, stats)
            return DatumOutcome("failed", None, tries, "".join(logs), error, stats)
        limit = self._output_limit(runtime)
        if limit is not None and (size := tree_size(self.pfs / "out")) > limit:
            error = f"the datum wrote {size} bytes to /pfs/out, over the limit of {limit}"
            return DatumOutcome("failed", None, tries, "".join(logs), error, stats)
        t = time.monotonic()
        with self.worker.turn:
            tree, uploaded = self.worker._ingest(self.pfs / "out", self.pfs, local)
        stats["upload_seconds"], stats["upload_bytes"] = time.monotonic() - t, uploaded
        return DatumOutcome("success", tree, tries, "".join(logs), None, stats)

    @staticmethod
    def _output_limit(runtime: Runtime) -> int | None:
        """The sandbox's limit on a datum's output (a command per datum has it checked by the runtime)."""
        if runtime.name != "bwrap":
            return None
        limits = getattr(runtime, "limits", None)
        return (limits if isinstance(limits, Limits) else Limits.default()).output_bytes

    def _present(self, runtime: Runtime, env: dict[str, str], timeout: float | None
                 ) -> tuple[bool, str | None, str, float]:
        """Give the datum now in the slot to the command: (ok, error, what it printed, seconds it took)."""
        start = time.monotonic()
        notes: list[str] = []
        process = self.process
        if process is not None and process.exited:
            self._reap(process, notes)
            process = None
        if process is None:
            process = self._start(runtime, env)
            kind, value = _wait(process, timeout)
            if kind != "next":
                return self._ended(process, kind, value, timeout, start, notes, before_first=True)
            notes.append(process.take_log())  # what it printed starting up: the first datum's
        else:
            process.take_log()  # nothing was current: what came between datums belongs to none
        if not process.send(b"R"):
            return self._ended(process, *_wait(process, 5.0), timeout, start, notes, before_first=True)
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
        kind, value = _wait(process, left)
        if kind == "next":
            log = "".join(notes) + process.take_log()
            if value:
                return False, f"the code reported the datum as failed: {value}", log, time.monotonic() - start
            return True, None, log, time.monotonic() - start
        return self._ended(process, kind, value, timeout, start, notes)

    def _ended(self, process: _Process, kind: str, value: Any, timeout: float | None, start: float,
               notes: list[str], before_first: bool = False) -> tuple[bool, str | None, str, float]:
        """The command ended (or timed out, then it is killed) while a datum was current, or before asking."""
        result = value if kind == "exit" else process.kill()
        self.process = None
        log = "".join(notes) + process.take_log() + (result.log if result is not None else "")
        seconds = time.monotonic() - start
        if kind == "timeout":
            return False, f"datum timed out after {timeout:g}s", log, seconds
        assert isinstance(result, RunResult)
        code = process.exit_code
        if code is None:  # the relay never ran, or died: the runtime's own account
            return False, result.error or f"the command ended (code {result.returncode})", log, seconds
        function, shown = self.spec.transform.function, self._shown()
        if before_first and function is not None and code >= 0:
            return False, f"{shown} ended before its first datum (code {code}){last_lines(log)}", log, seconds
        if before_first:
            return False, (f"{shown} ended with code {code} before asking for a datum: with "
                           "datum_batching the code loops on `pachctl next datum`"), log, seconds
        if code == 0 or code in self.spec.transform.accept_return_code:
            return True, None, log, seconds
        if code < 0:
            return False, f"{shown} was killed by signal {-code}", log, seconds
        return False, f"{shown} exited with code {code}", log, seconds

    def _shown(self) -> str:
        """The user's program, in errors: the cmd's first word, or ``transform.function MODULE:FUNCTION``."""
        function = self.spec.transform.function
        return f"transform.function {function}" if function is not None else self.spec.transform.cmd[0]

    def _reap(self, process: _Process, notes: list[str]) -> None:
        """A command that ended between datums: its last words go to the next datum's log."""
        result = process.wait_exit(0)
        text = process.take_log() + (result.log if result is not None else "")
        notes.append(text)
        notes.append(f"[tusk] the command ended between datums (code {process.exit_code}); starting it again\n")
        self.process = None

    def _start(self, runtime: Runtime, datum_env: dict[str, str]) -> _Process:
        self.starts += 1
        spec = self.spec
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = self.control / f"worker-{self.starts}.sock"
        listener.bind(str(path))
        path.chmod(0o777)  # as root, the sandboxed code is another uid
        listener.listen(1)
        sandboxed = runtime.name == "bwrap"
        inside = f"{_INSIDE}/{path.name}" if sandboxed else str(path)
        env = {k: v for k, v in datum_env.items() if k not in self._datum_keys(datum_env)}
        base_path = env.get("PATH") or getattr(runtime, "base_env", {}).get("PATH") or os.defpath
        env["PATH"] = f"{_INSIDE if sandboxed else self.control}:{base_path}"
        env.setdefault("PYTHONUNBUFFERED", "1")  # what a datum prints is its own, not the next one's
        mounts = list(self._secrets(runtime))
        if sandboxed:
            mounts += [(self.control, _INSIDE), (self.pfs / ".env", "/pfs/.env")]
        request = RunRequest(
            cmd=[sys.executable, "-I", "-m", "tusk.pipelines.batch_relay", inside, *self._command(sandboxed)],
            stdin=spec.transform.stdin, env=env, pfs_dir=self.pfs, input_names=self.input_names,
            working_dir=spec.transform.working_dir, timeout=_remaining(None, self.deadline),
            code_dir=self.code_dir, user=spec.transform.user, mounts=mounts)
        self.process = _Process(runtime, request, listener)
        return self.process

    def _command(self, sandboxed: bool) -> list[str]:
        """The transform's cmd; for a ``function``, this Python running ``tusk.datum_batching`` (the pachctl
        script beside the socket) to import it from the code and call it per datum."""
        transform = self.spec.transform
        if transform.function is None:
            return transform.cmd
        script = f"{_INSIDE if sandboxed else self.control}/pachctl"
        return [sys.executable, script, "_call", transform.function]

    def _datum_keys(self, env: dict[str, str]) -> set[str]:
        keys = set(_DATUM_ONLY)
        for name in self.input_names:
            keys |= {name, f"{name}_COMMIT", f"TUSK_INPUT_{name}", f"PACH_DATUM_{name}_JOIN_ON",
                     f"PACH_DATUM_{name}_GROUP_BY"}
        return keys & set(env)

    def _secrets(self, runtime: Runtime) -> list[tuple[Path, str]]:
        if self._secret_mounts is None:
            self._secret_mounts = _secret_files(self.slot.root, self.labels.secrets, runtime)
        return self._secret_mounts

    def _write_env(self, runtime: Runtime, env: dict[str, str]) -> None:
        """The datum's variables in /pfs/.env, rewritten in place (the sandbox binds the file, not a name)."""
        hidden = set(self.labels.secrets.env) if self.labels.secrets is not None else set()
        lines = []
        for key, value in env.items():
            if key in hidden:
                continue
            if runtime.name == "local" and (value == "/pfs" or value.startswith("/pfs/")):
                value = str(self.pfs) + value[len("/pfs"):]  # as the local runtime rewrites /pfs
            lines.append(f"{key}={shlex.quote(value)}\n")
        # written over, then cut to size: truncating it first costs ~200 µs per datum on ext4 (auto_da_alloc);
        # by os calls, as a file object adds an fstat, an isatty and a dozen seeks
        data = "".join(lines).encode()
        fd = os.open(self.pfs / ".env", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.ftruncate(fd, write_all(fd, data))
        finally:
            os.close(fd)

    def close(self) -> None:
        """No datum is left: tell the command, give it a moment to end, then kill it; remove the slot."""
        process, self.process = self.process, None
        if process is not None and not process.exited:
            process.send(b"D")
            if process.wait_exit(_END_GRACE) is None:
                process.kill()
        self.slot.remove()
        shutil.rmtree(self.control, ignore_errors=True)


def _wait(process: _Process, timeout: float | None) -> tuple[str, Any]:
    """The command's next event: ("next", error), ("exit", RunResult) or ("timeout", None)."""
    try:
        return process.events.get(timeout=timeout)
    except queue.Empty:
        return "timeout", None
