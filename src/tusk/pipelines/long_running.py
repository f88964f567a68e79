"""Long-running pipelines: spouts and services, whose command runs on and on instead of once per datum.

A ``Supervisor`` runs them: the scheduler of ``tusk server`` calls ``reconcile`` on every pass, and
``tusk pipeline run-spouts`` does the same in the foreground (a laptop without a server). Each pass it
starts a ``Runner`` for every running spout or service pipeline it holds the lease of (``long-running:NAME``,
so that one replica of many runs it), and stops the runner of a pipeline that was stopped, deleted or updated
(an update starts the new version's runner). A runner starts the command, restarts it when it exits, after a
backoff that doubles from 1 s to 60 s (as Pachyderm's worker retries user code), and records what happens:

- ``$TUSK_HOME/long-running/<pipeline>/status.json``: state, pid, restarts, last exit, the last error;
  ``pipeline inspect`` shows it;
- ``$TUSK_HOME/long-running/<pipeline>/log``: the command's output and the runner's own lines (``[tusk] ...``);
  ``tusk logs -p <pipeline>`` shows it, as job ``spout`` or ``service``.

Both live in the home of the host that runs the process. What a kind adds, the pipe of a spout
(``tusk.pipelines.spouts``) or the input and port of a service (``tusk.pipelines.service_pipelines``), is a
``Kind``: it prepares ``/pfs`` before each start and says when the command must start again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import and_, or_, select

from tusk.errors import TuskError
from tusk.pipelines.registry import StoredPipeline
from tusk.pipelines.sandbox import Mount, SandboxCommand, resolve_user
from tusk.storage.metadata import PipelineRow, PipelineVersionRow
from tusk.versioning.context import now

__all__ = ["Kind", "Launch", "LeaseHolder", "Runner", "Supervisor", "notes_for", "read_log", "read_status"]

log = logging.getLogger("tusk.long_running")

LEASE_SECONDS = 15.0
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0
_LOG_KEEP = 1 << 20  # a log over twice this is cut to its last _LOG_KEEP bytes when the command starts again
_PFS = re.compile(r"(?<![\w./-])/pfs(?=/|$|[\s\"';:,)])")
_SANDBOX_ENV = ("PATH", "LANG", "LC_ALL")

LeaseHolder = Callable[[str, float], bool]  # (lease name, seconds) -> held by this supervisor


def _dir(home: Path, pipeline: str) -> Path:
    return home / "long-running" / pipeline


def read_status(home: Path, pipeline: str) -> dict[str, Any] | None:
    """The status the runner of ``pipeline`` last wrote on this host, or None."""
    try:
        data = json.loads((_dir(home, pipeline) / "status.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_log(home: Path, pipeline: str) -> list[str]:
    try:
        return (_dir(home, pipeline) / "log").read_text(errors="replace").splitlines()
    except OSError:
        return []


def notes_for(kind: str | None) -> list[str]:
    """What ``create pipeline`` tells the user about where a long-running pipeline runs."""
    if kind is None:
        return []
    return [f"{kind}: its command runs on and on under `tusk server` (the scheduler of the server that holds "
            f"it) or `tusk pipeline run-spouts` (in the foreground); until one of them runs, nothing does"]


@dataclass
class Launch:
    """What a kind adds to a start: mounts under /pfs, variables, and a wrapper around the command."""

    mounts: list[Mount] = field(default_factory=list)  # host path -> path in the sandbox (/pfs/...)
    env: dict[str, str] = field(default_factory=dict)
    wrap: Callable[[list[str], bool], list[str]] | None = None  # (cmd, sandboxed) -> cmd


class Kind(Protocol):
    def prepare(self, runner: Runner, pfs: Path) -> Launch | None:
        """Lay out ``pfs`` for the next start; None while the command cannot start yet (no input commit)."""
        ...

    def changed(self, runner: Runner) -> bool:
        """True when the running command must start again now (a service's input moved)."""
        ...

    def close(self) -> None: ...


class Runner:
    """Runs one version of one long-running pipeline until stopped, restarting its command when it exits."""

    def __init__(self, pipeline: StoredPipeline, kind: Kind, home: Path, base_env: Mapping[str, str],
                 sandbox: SandboxCommand | None, code_dir: Path | None, note: str | None = None) -> None:
        self.pipeline = pipeline
        self.name = pipeline.name
        self.version = pipeline.row.version
        self.kind = kind
        self.dir = _dir(home, self.name)
        self.base_env = dict(base_env)
        self.sandbox = sandbox
        self.code_dir = code_dir
        self.note = note
        self._stop = threading.Event()
        self._restart = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self.status: dict[str, Any] = {"kind": pipeline.spec.long_running, "pipeline": self.name,
                                       "version": self.version, "state": "starting", "pid": None, "restarts": 0,
                                       "started_at": None, "last_exit": None, "last_error": None}

    # -- records -------------------------------------------------------------
    def say(self, line: str) -> None:
        """A line of the runner's own in the pipeline's log."""
        with self._lock, open(self.dir / "log", "ab") as f:
            f.write(f"[tusk] {now().isoformat(timespec='seconds')} {line}\n".encode())

    def record(self, **changes: Any) -> None:
        with self._lock:
            self.status.update(changes)
            tmp = self.dir / "status.json.tmp"
            tmp.write_text(json.dumps(self.status, default=str))
            os.replace(tmp, self.dir / "status.json")

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> Runner:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.say(f"{self.status['kind']} {self.name} version {self.version}: starting")
        if self.note:
            self.say(self.note)
        self._thread = threading.Thread(target=self._loop, name=f"tusk-{self.status['kind']}-{self.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, why: str, timeout: float = 10.0) -> None:
        self._stop.set()
        self._kill()
        if self._thread is not None:
            self._thread.join(timeout)
        self.kind.close()
        self.say(f"stopped: {why}")
        self.record(state="stopped", pid=None, stopped_because=why)

    def restart(self) -> None:
        """End the running command; the loop starts it again at once (no backoff)."""
        self._restart.set()
        self._kill()

    def poll(self) -> None:
        """Called on every supervisor pass: restart when the kind says so."""
        if self._thread is not None and self._thread.is_alive() and not self._stop.is_set():
            try:
                if self.kind.changed(self):
                    self.restart()
            except TuskError as exc:
                self.record(last_error=str(exc))

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)

    def _loop(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._stop.is_set():
            self._restart.clear()
            try:
                started = self._start_once()
            except (TuskError, OSError, ValueError) as exc:
                started = False
                self.say(f"cannot start: {exc}")
                self.record(state="failed", pid=None, last_error=str(exc))
            if started is None:  # waiting (a service's input has no commit yet)
                self._stop.wait(1.0)
                continue
            if started:
                ran = time.monotonic()
                assert self._proc is not None
                rc = self._proc.wait()
                self._proc = None
                if self._stop.is_set():
                    break
                if self._restart.is_set():
                    self.say("input changed: starting again")
                    self.record(state="restarting", pid=None, last_exit=rc)
                    backoff = BACKOFF_FIRST
                    continue
                if time.monotonic() - ran > BACKOFF_MAX:
                    backoff = BACKOFF_FIRST  # it ran a good while: a fresh failure, not a crash loop
                self.say(f"command exited with code {rc}; starting again in {backoff:g}s")
                self.record(state="restarting", pid=None, last_exit=rc, restarts=self.status["restarts"] + 1,
                            last_error=f"exited with code {rc}")
            self._stop.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _start_once(self) -> bool | None:
        spec = self.pipeline.spec
        pfs = self.dir / "pfs"
        launch = self.kind.prepare(self, pfs)
        if launch is None:
            return None
        logfile = self.dir / "log"
        with contextlib.suppress(OSError):
            if logfile.stat().st_size > 2 * _LOG_KEEP:
                with open(logfile, "rb") as f:
                    f.seek(-_LOG_KEEP, os.SEEK_END)
                    tail = f.read()
                logfile.write_bytes(tail)
        env = {**spec.transform.env, "PPS_PIPELINE_NAME": self.name, "PPS_SPEC_COMMIT": self.pipeline.spec_commit,
               "PACH_JOB_ID": str(self.status["kind"]), **launch.env}
        cmd = list(spec.transform.cmd)
        stdin = "\n".join(spec.transform.stdin) + "\n" if spec.transform.stdin else None
        if self.sandbox is not None:
            argv = self._sandboxed(cmd, launch, pfs)
            env = {k: v for k, v in self.base_env.items() if k in _SANDBOX_ENV} | {
                "HOME": "/tmp", "TMPDIR": "/tmp"} | env | {"TUSK_PFS": "/pfs", "PFS": "/pfs"}
            cwd = None
        else:
            host = str(pfs).replace("\\", "\\\\")
            cmd = [_PFS.sub(host, a) for a in cmd]
            if stdin is not None:
                stdin = _PFS.sub(host, stdin)
            if launch.wrap is not None:
                cmd = launch.wrap(cmd, False)
            argv = cmd
            env = self.base_env | {k: _PFS.sub(host, v) for k, v in env.items()} | {"TUSK_PFS": str(pfs),
                                                                                       "PFS": str(pfs)}
            cwd = Path(spec.transform.working_dir) if spec.transform.working_dir else self.code_dir
        with open(logfile, "ab") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                    start_new_session=True)
        self._proc = proc
        if stdin is not None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.write(stdin.encode())
                proc.stdin.close()
        if self._stop.is_set():  # stopped while starting
            self._kill()
        self.record(state="running", pid=proc.pid, started_at=now().isoformat(), last_error=None)
        return True

    def _sandboxed(self, cmd: list[str], launch: Launch, pfs: Path) -> list[str]:
        assert self.sandbox is not None
        spec = self.pipeline.spec
        user = resolve_user(spec.transform.user)
        mounts = list(launch.mounts)
        for m in mounts:
            if m.writable:
                self.sandbox.prepare_writable(m.host)
        cwd = spec.transform.working_dir or "/tmp"
        if self.code_dir is not None and self.code_dir.is_dir():
            cwd = spec.transform.working_dir or str(self.code_dir)
            mounts.append(Mount(self.code_dir, cwd))
        if launch.wrap is not None:
            cmd = launch.wrap(cmd, True)
        return self.sandbox.argv(cmd, mounts, cwd, user, ["--dir", "/pfs"])


class Supervisor:
    """Keeps one runner per running long-running pipeline whose lease it holds (see the module's docstring)."""

    def __init__(self, services: Any, hold: LeaseHolder) -> None:
        self.services = services  # tusk.services.Services (not imported: it sits above the pipelines)
        self.hold = hold
        self.runners: dict[str, Runner] = {}
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, poll: float = 1.0) -> None:
        """Reconcile every ``poll`` seconds in a thread of its own, until ``stop``."""
        self._thread = threading.Thread(target=self._loop, args=(poll,), name="tusk-long-running", daemon=True)
        self._thread.start()

    def _loop(self, poll: float) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile()
                self.last_error = None
            except Exception as exc:  # keep supervising: one bad pass must not stop the others' processes
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("long-running pipelines: pass failed")
            self._stop.wait(poll)

    def reconcile(self) -> None:
        from tusk.pipelines.service_pipelines import ServiceKind
        from tusk.pipelines.spouts import SpoutKind

        with self.services.ctx.db.read() as s:  # (only the specs that may be spouts or services are parsed)
            names = s.scalars(select(PipelineRow.name).join(PipelineVersionRow, and_(
                PipelineVersionRow.pipeline_id == PipelineRow.id, PipelineVersionRow.version == PipelineRow.version))
                .where(or_(PipelineVersionRow.spec_json.contains('"spout"'),
                           PipelineVersionRow.spec_json.contains('"service"')))).all()
            found = [p for p in (self.services.pipelines.load(s, n) for n in names) if p.spec.long_running]
        wanted = {p.name: p for p in found if p.row.state == "running"}
        for name, runner in list(self.runners.items()):
            p = wanted.get(name)
            if p is None or p.row.version != runner.version or not runner.alive():
                why = ("the pipeline was deleted" if all(q.name != name for q in found) else
                       "the pipeline was stopped" if p is None else
                       f"version {p.row.version} replaces it" if p.row.version != runner.version else "it ended")
                runner.stop(why)
                del self.runners[name]
                if all(q.name != name for q in found):
                    clear(self.services.settings.home, name)
        for name, p in wanted.items():
            if not self.hold(f"long-running:{name}", LEASE_SECONDS):
                if name in self.runners:  # another supervisor took it over (this one was too slow to renew)
                    self.runners.pop(name).stop("another server holds it now")
                continue
            if name in self.runners:
                self.runners[name].poll()
                continue
            kind: Kind = SpoutKind(self.services, p) if p.spec.spout is not None else ServiceKind(self.services, p)
            self.runners[name] = self._runner(p, kind).start()

    def _runner(self, p: StoredPipeline, kind: Kind) -> Runner:
        runtime = self.services.runtime
        note = runtime.note
        sandbox = SandboxCommand.find(runtime.limits) if runtime.name == "bwrap" else None
        image = (json.loads(p.version.code_info) if p.version.code_info else {}).get("image") or {}
        if image.get("id"):
            note = (f"image {p.spec.transform.image} is imported, but a {p.spec.long_running} runs on this "
                    "machine's software for now (not in the image's root filesystem)")
        try:
            code = self.services.jobs.job_code(p).local
        except TuskError as exc:
            note, code = f"its code could not be materialized ({exc}); it runs without", None
        return Runner(p, kind, self.services.settings.home, runtime.base_env, sandbox, code, note)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)
        for name in list(self.runners):
            self.runners.pop(name).stop("the supervisor stopped")

    def status(self) -> dict[str, Any]:
        return {name: dict(r.status) for name, r in sorted(self.runners.items())}


def clear(home: Path, pipeline: str) -> None:
    """Forget a deleted pipeline's status (its log stays until a pipeline of that name starts again)."""
    with contextlib.suppress(OSError):
        (_dir(home, pipeline) / "status.json").unlink()


def reset_pfs(pfs: Path, keep: Sequence[str] = ()) -> None:
    """An empty ``pfs`` directory, but for the entries named in ``keep``."""
    pfs.mkdir(parents=True, exist_ok=True)
    for child in pfs.iterdir():
        if child.name in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                child.unlink()
