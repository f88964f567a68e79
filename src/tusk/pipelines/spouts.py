"""Spouts, with Pachyderm 1.x's protocol (the spouts of Pachyderm before 1.12, "spouts 1.0").

A spout pipeline has no input. Its command runs on and on (``tusk.pipelines.long_running`` starts it and
restarts it) and brings data in from outside: ``/pfs/out`` is a named pipe, and each complete tar stream the
command writes to it becomes one commit to the pipeline's output repo, on ``output_branch``. The command
opens the pipe, writes a tar, closes it, and does so again for the next commit (several tars written in one
opening are read one after another too). A tar cut short (the command crashed, or closed the pipe in the
middle) is discarded: nothing of it lands. As in Pachyderm 1.x, a file of the tar is appended to the file of
the same path that the branch holds already (Pachyderm's ``put file``), unless ``spout.overwrite`` is true,
when it replaces it. Directories need no entry; links, devices and paths with ``..`` are skipped, saying so in
the log. The commits trigger the pipelines downstream as any commit does.

Pachyderm 2.x's spouts instead give the command a pachd address to call ``put file`` on (``pachctl`` or a
client); Tusk's sandbox has no network, so Tusk follows 1.x. Its ``spout.marker`` is refused.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import threading
from pathlib import Path
from typing import Any

from tusk.errors import TuskError
from tusk.pipelines.long_running import Launch, Runner, reset_pfs
from tusk.pipelines.registry import StoredPipeline
from tusk.pipelines.sandbox import Mount

__all__ = ["SpoutKind"]

_BLOCK = 512


class _Forward:
    """A pipe as the forward-only, seekable file ``tarfile`` reads: reads are whole (a pipe's are not), ``seek``
    forward reads and drops, and a block read ahead can be put back (``unread``)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.pos = 0
        self.back = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def unread(self, data: bytes) -> None:
        self.back = data + self.back
        self.pos -= len(data)

    def read(self, n: int = -1) -> bytes:
        parts: list[bytes] = []
        want = n if n >= 0 else 1 << 62
        if self.back:
            parts.append(self.back[:want])
            self.back = self.back[want:]
            want -= len(parts[0])
        while want > 0:
            data = self.raw.read(min(want, 1 << 20))
            if not data:
                break
            parts.append(data)
            want -= len(data)
        out = b"".join(parts)
        self.pos += len(out)
        return out

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        target = offset if whence == os.SEEK_SET else self.pos + offset
        if whence not in (os.SEEK_SET, os.SEEK_CUR) or target < self.pos:
            raise io.UnsupportedOperation("a spout's pipe is read forward only")
        while self.pos < target and self.read(min(target - self.pos, 1 << 20)):
            pass
        return self.pos


class SpoutKind:
    """Makes the named pipe ``/pfs/out`` (once: it outlives restarts of the command) and reads it."""

    def __init__(self, services: Any, pipeline: StoredPipeline) -> None:
        self.services = services
        self.pipeline = pipeline
        self.fifo: Path | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.commits = 0

    def prepare(self, runner: Runner, pfs: Path) -> Launch | None:
        if self.fifo is None:
            reset_pfs(pfs)
            fifo = pfs / "out"
            os.mkfifo(fifo, 0o666)
            os.chmod(fifo, 0o666)  # (the umask took bits off): the sandbox's uid writes it
            self.fifo = fifo
            self._thread = threading.Thread(target=self._read, args=(runner,), daemon=True,
                                            name=f"tusk-spout-reader-{self.pipeline.name}")
            self._thread.start()
        return Launch(mounts=[Mount(self.fifo, "/pfs/out", writable=True)])

    def changed(self, runner: Runner) -> bool:
        return False

    def close(self) -> None:
        self._stopping.set()
        if self.fifo is not None:  # a reader waiting for a writer to open the pipe: open it, so it wakes
            with contextlib.suppress(OSError):
                os.close(os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK))
        if self._thread is not None:
            self._thread.join(5.0)

    # -- the reader ----------------------------------------------------------
    def _read(self, runner: Runner) -> None:
        assert self.fifo is not None
        while not self._stopping.is_set():
            try:
                with open(self.fifo, "rb", buffering=0) as raw:
                    stream = _Forward(raw)
                    while not self._stopping.is_set() and self._one_tar(stream, runner):
                        pass
            except OSError as exc:
                runner.say(f"reading /pfs/out failed: {exc}")
                self._stopping.wait(1.0)

    def _one_tar(self, stream: _Forward, runner: Runner) -> bool:
        """Read one tar stream from the pipe and commit it; False at the end of the pipe's data."""
        while True:  # the zero blocks that end a tar (and pad it to a record) come before the next one
            block = stream.read(_BLOCK)
            if not block:
                return False
            if block.strip(b"\0"):
                stream.unread(block)
                break
        try:
            with tarfile.open(fileobj=stream, mode="r:") as tar:  # type: ignore[call-overload]
                self._commit(tar, runner)
        except (tarfile.TarError, EOFError, OSError) as exc:
            runner.say(f"a tar stream on /pfs/out was cut short or is not a tar ({exc}): nothing of it landed")
            while stream.read(1 << 16):  # drop the rest of this opening: there is no telling where a tar starts
                pass
            return False
        except TuskError as exc:
            runner.say(f"could not commit a tar stream from /pfs/out: {exc}")
            runner.record(last_error=str(exc))
        return True

    def _commit(self, tar: tarfile.TarFile, runner: Runner) -> None:
        spec = self.pipeline.spec
        assert spec.spout is not None
        files = self.services.files
        mod = files.modify(self.pipeline.name, spec.output_branch)
        count = 0
        for member in tar:
            name = member.name
            parts = [p for p in name.split("/") if p not in ("", ".")]
            if member.isdir():
                continue
            if not member.isfile() or not parts or ".." in parts:
                runner.say(f"skipped {name!r} in a tar on /pfs/out: only regular files with paths inside the "
                           "repo are committed")
                continue
            data = tar.extractfile(member)
            assert data is not None
            mod.put_stream("/" + "/".join(parts), data, append=not spec.spout.overwrite)
            count += 1
        commit = self.services.commits.land(
            self.pipeline.name, spec.output_branch, mod.ops, origin="auto", generation=mod.generation,
            description=f"spout {self.pipeline.name} v{self.pipeline.row.version}: {count} file(s)")
        self.services.jobs.take_caused()  # nobody here waits for the jobs it triggered: the scheduler runs them
        self.commits += 1
        runner.say(f"committed {commit.id} ({count} file(s)) to {self.pipeline.name}@{spec.output_branch}")
        runner.record(commits=self.commits, last_commit=commit.id)
