"""Running one datum: lay out /pfs, run the code (with retries), ingest /pfs/out."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tusk.errors import InvalidArgument, TuskError
from tusk.pipelines.datums import Datum
from tusk.pipelines.images import image_note as images_note
from tusk.pipelines.runtimes import NETWORK_ANNOTATION, DockerRuntime, RunRequest, Runtime, explain_failure
from tusk.pipelines.runtimes import image_note as legacy_image_note
from tusk.pipelines.s3 import DatumGateway, Endpoint, InputBucket, endpoint_env, wants_s3_out
from tusk.pipelines.sandbox import SANDBOX_UID, SandboxCommand
from tusk.pipelines.secrets import SecretValues
from tusk.pipelines.slots import Slot
from tusk.pipelines.spec import PipelineSpec
from tusk.storage.metadata import ModelManifestRow
from tusk.storage.objects import ObjectStore
from tusk.versioning.context import Context
from tusk.versioning.trees import EMPTY_TREE, Entry, MutableTree

__all__ = ["DatumOutcome", "DatumWorker", "JobLabels"]

_Regular = tuple[str, Path, int | None]  # an output file to store: its path in the tree, on disk, and its size


@dataclass(frozen=True)
class JobLabels:
    """What a job's datums are told about the job and its pipeline, in Pachyderm's worker variables
    (``docs/pachyderm.md`` lists them all): the same for every datum of the job, wherever it runs."""

    pipeline: str
    version: int
    spec_commit: str  # PPS_SPEC_COMMIT: one id per pipeline version, as Pachyderm's spec commit is
    project: str = "default"
    creator: str = ""  # whose rights the datum's S3 endpoint acts with (the pipeline's creator)
    # the job's transform.secrets, unsealed by the job runner (tusk.pipelines.secrets); never in a repr
    secrets: SecretValues | None = field(default=None, repr=False, compare=False)


@dataclass
class DatumOutcome:
    state: str  # success | failed | recovered
    output_tree: str | None
    tries: int
    log: str
    error: str | None = None
    stats: dict[str, float] = field(default_factory=dict)


class DatumWorker:
    def __init__(self, ctx: Context, runtime: Runtime, scratch: Path) -> None:
        self.ctx = ctx
        self.runtime = runtime
        self.scratch = scratch
        # serves s3 inputs and s3_out to a datum (tusk.pipelines.s3); set by the composition root
        self.gateway: DatumGateway | None = None
        # or what makes one, on the first datum that needs it: the gateway's imports are paid for by S3-enabled
        # pipelines only, not by every command that runs a job
        self.gateway_factory: Callable[[], DatumGateway] | None = None
        self._gateway_lock = threading.Lock()
        self._images: dict[str, Runtime] = {}  # image id → its runtime (the root filesystem is found once)
        # commit id → its model manifest, for the current job (a manifest built on demand later is seen next job)
        self._manifests: dict[str, str | None] = {}
        self._manifests_job: str | None = None
        # this worker process, as the suffix of a pod name (PPS_POD_NAME): stable while the process lives
        self.worker_suffix = hashlib.blake2b(f"{socket.gethostname()}:{os.getpid()}".encode(),
                                             digest_size=3).hexdigest()[:5]
        self.turn = _turns(ctx.objects)  # held around a datum's work in this process (see _turns)

    def run(self, job_id: str, datum: Datum, spec: PipelineSpec, code_dir: Path, roots: dict[str, str],
            deadline: float | None, labels: JobLabels | None = None, image: dict[str, Any] | None = None,
            slot: Slot | None = None) -> DatumOutcome:
        """Run one datum; ``image`` is the version's image record (``tusk.pipelines.images``). In ``slot`` (the
        calling thread's, for this job: ``tusk.pipelines.slots``), or else in a directory of its own."""
        if spec.transform.batched:  # the executors feed these to a warm session (tusk.pipelines.batching)
            raise InvalidArgument(f"pipeline {spec.name}: a datum of a warm-worker transform (datum_batching, "
                                  "function) runs in a batching session, not as a process of its own")
        outcome = self._run(job_id, datum, spec, code_dir, roots, deadline, labels, image, slot)
        values = labels.secrets if labels is not None else None
        if values:  # the files go with the datum; a value the code printed is masked in its log
            _remove((slot.root if slot is not None else self.scratch / job_id / datum.id) / "secrets")
            outcome.log = values.mask(outcome.log) or ""
            outcome.error = values.mask(outcome.error)
        return outcome

    def _run(self, job_id: str, datum: Datum, spec: PipelineSpec, code_dir: Path, roots: dict[str, str],
             deadline: float | None, labels: JobLabels | None, image: dict[str, Any] | None, slot: Slot | None
             ) -> DatumOutcome:
        if job_id != self._manifests_job:
            self._manifests, self._manifests_job = {}, job_id
        workdir = slot.root if slot is not None else self.scratch / job_id / datum.id
        pfs = workdir / "pfs"
        stats: dict[str, float] = {}
        try:
            t = time.monotonic()
            lazy: list[tuple[Path, Entry, str]] = []
            with self.turn:
                if slot is not None:
                    slot.reset({i.name for i in datum.inputs} | {"out"})
                else:
                    shutil.rmtree(workdir, ignore_errors=True)
                local, downloaded = self._materialize(datum, pfs, roots, lazy, slot)
            stats["download_seconds"], stats["download_bytes"] = time.monotonic() - t, downloaded
            env = self._env(job_id, datum, spec, labels or JobLabels(spec.name, 0, ""))
            working_dir = spec.transform.working_dir
            logs: list[str] = []
            runtime, note = self._runtime_for(spec, image)
            if note:
                logs.append(f"[tusk] {note}\n")
            mounts = _secret_files(workdir, labels.secrets if labels else None, runtime)
            endpoint = contextlib.ExitStack()
            served = None
            s3_inputs = [InputBucket(i.name, i.repo, i.commit) for i in datum.inputs if i.s3]
            s3_out = wants_s3_out(spec)
            if s3_inputs or s3_out:
                if self.gateway is None and self.gateway_factory is not None:
                    with self._gateway_lock:
                        if self.gateway is None:
                            self.gateway = self.gateway_factory()
                if self.gateway is None:
                    return DatumOutcome("failed", None, 0, "", "this pipeline's s3 inputs or s3_out need the S3 "
                                                               "gateway, which this worker was not given", stats)
                (pfs / "out").mkdir(parents=True, exist_ok=True)
                served = endpoint.enter_context(self.gateway.serve(
                    s3_inputs, pfs / "out" if s3_out else None, (labels.creator if labels else "") or self.ctx.user))
                env |= endpoint_env(served)
            with endpoint:
                return self._run_tries(job_id, runtime, spec, env, pfs, datum, working_dir, code_dir,
                                       deadline, lazy, logs, stats, local, workdir, served, mounts, slot)
        except TuskError as exc:
            return DatumOutcome("failed", None, 0, "", str(exc), stats)

    def _runtime_for(self, spec: PipelineSpec, image: dict[str, Any] | None) -> tuple[Runtime, str | None]:
        """The runtime a datum of this version runs in, and a note for its log (the host fallback)."""
        ref = spec.transform.image
        if image and image.get("id"):
            key = str(image["id"])
            with self._gateway_lock:
                if key not in self._images:
                    from tusk.images.store import ImageStore
                    from tusk.pipelines.images import ImageRuntime

                    sandbox = SandboxCommand.find(getattr(self.runtime, "limits", None))
                    if sandbox is None:
                        raise InvalidArgument(f"image {ref!r} runs in the bwrap sandbox, which this machine lacks: "
                                              "apt-get install bubblewrap util-linux")
                    self._images[key] = ImageRuntime(sandbox, ImageStore(self.ctx), key,
                                                     self.scratch.parent / "cache" / "images")
                return self._images[key], None
        if ref and (image is None or image.get("runtime") == "docker") and DockerRuntime.available():
            return DockerRuntime(getattr(self.runtime, "base_env", {}), ref), None
        if image is not None:
            return self.runtime, images_note(image)
        return self.runtime, legacy_image_note(ref)  # a version made before images were resolved

    def _run_tries(self, job_id: str, runtime: Runtime, spec: PipelineSpec, env: dict[str, str], pfs: Path,
                   datum: Datum, working_dir: str | None, code_dir: Path, deadline: float | None,
                   lazy: list[tuple[Path, Entry, str]], logs: list[str], stats: dict[str, float],
                   local: dict[str, Entry], workdir: Path, s3: Endpoint | None,
                   mounts: list[tuple[Path, str]], slot: Slot | None) -> DatumOutcome:
        """Run the code up to ``datum_tries`` times (then ``err_cmd``), and ingest /pfs/out after a success."""
        result = None
        tries = 0
        try:
            for tries in range(1, spec.datum_tries + 1):
                if slot is not None:
                    slot.clear(pfs / "out")
                else:
                    shutil.rmtree(pfs / "out", ignore_errors=True)
                    (pfs / "out").mkdir(parents=True)
                timeout = _remaining(spec.datum_timeout, deadline)
                if timeout is not None and timeout <= 0:
                    return DatumOutcome("failed", None, tries, "".join(logs), "job timed out", stats)
                feeders = [_LazyFeeder(self.ctx, fifo, entry, name) for fifo, entry, name in lazy]  # fresh per try
                try:
                    result = runtime.run(RunRequest(
                        cmd=spec.transform.cmd, stdin=spec.transform.stdin, env=env, pfs_dir=pfs,
                        input_names=[i.name for i in datum.inputs], working_dir=working_dir, timeout=timeout,
                        accept_return_code=spec.transform.accept_return_code, code_dir=code_dir,
                        user=spec.transform.user, s3=s3, mounts=mounts, network=_wants_network(spec),
                    ))
                finally:
                    stats["download_bytes"] += sum(f.finish() for f in feeders)
                stats["process_seconds"] = stats.get("process_seconds", 0.0) + result.seconds
                logs.append(result.log)
                if not result.ok:
                    logs.append(f"[tusk] try {tries}/{spec.datum_tries} failed: {result.error}\n")
                if result.ok:
                    break
            assert result is not None
            if not result.ok:
                hint = explain_failure(result.log, runtime, _wants_network(spec))
                if hint:
                    result.error = f"{result.error}; {hint}"
                    logs.append(f"[tusk] {hint}\n")
                if spec.transform.err_cmd:
                    err = runtime.run(RunRequest(
                        cmd=spec.transform.err_cmd, stdin=spec.transform.err_stdin, env=env, pfs_dir=pfs,
                        input_names=[i.name for i in datum.inputs], working_dir=working_dir,
                        timeout=_remaining(spec.datum_timeout, deadline), code_dir=code_dir,
                        user=spec.transform.user, s3=s3, mounts=mounts, network=_wants_network(spec)))
                    logs.append(err.log)
                    if err.ok:
                        logs.append("[tusk] err_cmd succeeded: datum recovered, its output is skipped\n")
                        return DatumOutcome("recovered", None, tries, "".join(logs), result.error, stats)
                return DatumOutcome("failed", None, tries, "".join(logs), result.error, stats)
            t = time.monotonic()
            with self.turn:
                tree, uploaded = self._ingest(pfs / "out", pfs, local)
                stats["upload_seconds"], stats["upload_bytes"] = time.monotonic() - t, uploaded
                if slot is None:  # a slot is emptied by its next datum, reusing what it can
                    shutil.rmtree(workdir, ignore_errors=True)
            return DatumOutcome("success", tree, tries, "".join(logs), None, stats)
        except TuskError as exc:
            return DatumOutcome("failed", None, 0, "", str(exc), stats)

    def _env(self, job_id: str, datum: Datum, spec: PipelineSpec, labels: JobLabels) -> dict[str, str]:
        """The spec's ``env``, then every variable Pachyderm's worker sets for a datum (``docs/pachyderm.md``).

        As in Pachyderm, an input that contributes several files to a datum (a
        group) names the last in ``<input>``; its key is the same for all of them.
        """
        secrets = labels.secrets.env if labels.secrets is not None else {}
        env = dict(spec.transform.env) | secrets | {  # secrets' env_var after transform.env, as in Pachyderm
            "PPS_PIPELINE_NAME": labels.pipeline, "PPS_PROJECT_NAME": labels.project,
            "PPS_SPEC_COMMIT": labels.spec_commit,
            "PPS_POD_NAME": f"pipeline-{labels.pipeline}-v{labels.version}-{self.worker_suffix}",
            "PACH_JOB_ID": job_id, "PACH_DATUM_ID": datum.id, "TUSK_JOB_ID": job_id, "TUSK_DATUM_ID": datum.id,
            "PACH_OUTPUT_COMMIT_ID": job_id,  # the job's output commit takes the job's id when it lands
        }
        for i in datum.inputs:
            path = f"/pfs/{i.name}{i.path if i.path != '/' else ''}"
            env[i.name] = path
            env[f"{i.name}_COMMIT"] = i.commit
            env[f"TUSK_INPUT_{i.name}"] = path
            if i.join_key is not None:
                env[f"PACH_DATUM_{i.name}_JOIN_ON"] = i.join_key
            if i.group_key is not None:
                env[f"PACH_DATUM_{i.name}_GROUP_BY"] = i.group_key
        return env

    def _materialize(self, datum: Datum, pfs: Path, roots: dict[str, str], lazy: list[tuple[Path, Entry, str]],
                     slot: Slot | None = None) -> tuple[dict[str, Entry], int]:
        """Write each datum input under pfs/<name>/<path>; return local path → entry (for symlinked outputs).

        ``lazy`` inputs become named pipes fed on open, as in Pachyderm: bytes
        a datum never reads are never fetched (such files read once, in order).
        """
        local: dict[str, Entry] = {}
        total = 0
        made: set[Path] = set()
        for inp in datum.inputs:
            if inp.s3:  # served by the datum's S3 endpoint instead, as in Pachyderm
                continue
            base = pfs / inp.name
            base.mkdir(parents=True, exist_ok=True)
            made.add(base)
            # below base every directory is made here, so none is a link: its real path is base's, joined
            real_base = slot.realpath(base) if slot is not None else os.path.realpath(base)
            root = roots[inp.name]
            for path, entry in self.ctx.trees.walk(root, inp.path):
                rel = path.lstrip("/")
                target = base / rel
                if target.parent not in made:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    made.add(target.parent)
                local[f"{real_base}/{rel}" if rel else real_base] = entry
                if inp.empty_files or entry.file is None:
                    target.touch()
                    continue
                if inp.lazy:
                    lazy.append((target, entry, f"{inp.repo}@{inp.commit}:{path}"))
                    continue
                pieces = self.ctx.content.iter_bytes(entry.file, f"{inp.repo}@{inp.commit}:{path}")
                if slot is not None:
                    total += slot.write(target, pieces)
                    continue
                with open(target, "wb", buffering=1 << 16) as fh:  # a size given: no isatty call
                    for data in pieces:
                        fh.write(data)
                        total += len(data)
            self._write_manifest(pfs, inp.name, inp.commit)
        return local, total

    def _write_manifest(self, pfs: Path, name: str, commit: str) -> None:
        """An input that holds a model gets its manifest at /pfs/.tusk/manifests/<name>.json (for load_dir)."""
        if commit not in self._manifests:
            with self.ctx.db.read() as s:
                row = s.get(ModelManifestRow, commit)
                self._manifests[commit] = row.body if row is not None else None
        body = self._manifests[commit]
        if body is not None:
            target = pfs / ".tusk" / "manifests" / f"{name}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body)

    @staticmethod
    def _put_link_or_file(tree: MutableTree, regular: list[_Regular], rel: str, path: Path, real: str,
                          local: dict[str, Entry]) -> None:
        src = local.get(real)
        if src is not None:
            tree.put(rel, Entry(rel.rsplit("/", 1)[-1], src.kind, src.size, src.digest, src.file))
        else:
            regular.append((rel, Path(real), None))  # sized when read

    def _ingest(self, out: Path, pfs: Path, local: dict[str, Entry]) -> tuple[str, int]:
        """Store /pfs/out as a tree. A symlink to an input file reuses that file's chunks: no bytes are copied.

        What user code leaves in /pfs/out is data, not trusted: a link out of
        /pfs, a dangling link, a link to a directory that holds the link (a
        loop), or anything unreadable fails the datum with a message naming the
        output path; it never escapes the datum or stalls the job.
        """
        try:
            return self._ingest_tree(out, pfs, local)
        except OSError as exc:
            raise TuskError(f"cannot read the datum's output: {exc.strerror or exc} "
                            f"({exc.filename or 'in /pfs/out'})") from None

    def _ingest_tree(self, out: Path, pfs: Path, local: dict[str, Entry]) -> tuple[str, int]:
        tree = MutableTree(self.ctx.trees, EMPTY_TREE)
        regular: list[_Regular] = []
        # a directory at a time by scandir: an entry's type comes with its name, one stat gives a file's size
        pending: list[tuple[str, str]] = [(str(out), "")]
        while pending:
            directory, prefix = pending.pop()
            with os.scandir(directory) as listing:
                found = sorted(listing, key=lambda e: e.name)
            for item in found:
                rel = f"{prefix}/{item.name}"
                if not item.is_symlink():
                    if item.is_dir(follow_symlinks=False):
                        pending.append((item.path, rel))
                    else:
                        regular.append((rel, Path(item.path), item.stat(follow_symlinks=False).st_size))
                    continue
                path = Path(item.path)
                real = _linked(path, pfs, rel)
                if os.path.isdir(real):  # a link to a directory: its files, by reference where they are inputs
                    if os.path.realpath(path.parent).startswith(real.rstrip(os.sep) + os.sep) or \
                            os.path.realpath(path.parent) == real:
                        raise TuskError(f"output {rel} is a symlink to {os.readlink(path)}, a directory that holds"
                                        " the link itself: a loop")
                    for sub_dir, _, sub_files in os.walk(real):
                        for sub_name in sorted(sub_files):
                            sub_path = Path(sub_dir) / sub_name
                            sub_rel = f"{rel}/{sub_path.relative_to(real).as_posix()}"
                            sub_real = _linked(sub_path, pfs, sub_rel) if sub_path.is_symlink() \
                                else os.path.realpath(sub_path)
                            if os.path.isfile(sub_real):
                                self._put_link_or_file(tree, regular, sub_rel, sub_path, sub_real, local)
                elif os.path.isfile(real):
                    self._put_link_or_file(tree, regular, rel, path, real, local)
                else:
                    raise TuskError(f"output {rel} is a symlink to {os.readlink(path)}, which does not exist")
        # loose objects, not a pack: they are in the store the moment the datum is recorded
        nodes = [self.ctx.content.write_file(p, size=n) for _, p, n in regular]
        uploaded = 0
        for (rel, _, _), node in zip(regular, nodes, strict=True):
            tree.put(rel, Entry(rel.rsplit("/", 1)[-1], "file", node.size, node.digest, node))
            uploaded += node.size
        return tree.finish()[0], uploaded


def _turns(objects: ObjectStore) -> AbstractContextManager[Any]:
    """What a worker's threads take turns with for a datum's work in this process: laying out /pfs and
    ingesting /pfs/out. That work is many short system calls (stat, open, write, rename), and each lets go of
    the GIL: with two threads at it, every call hands the GIL to the other thread and back (a futex wake and
    a context switch; measured, 27% of the worker threads' CPU in a job of 10k warm-worker datums). In turns,
    the other threads wait on this lock instead, and each call costs what it costs alone; the user's code
    (another process) still runs beside. With a remote store the same work waits on the network, and the
    threads overlap those waits: there is nothing to take turns with."""
    return threading.Lock() if objects.url.startswith("file://") else contextlib.nullcontext()


_SYSTEM_DIRS = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"}  # the sandbox's, read-only


def _secret_files(workdir: Path, values: SecretValues | None, runtime: Runtime) -> list[tuple[Path, str]]:
    """Each ``mount_path`` secret's keys as files in ``workdir/secrets/<n>/`` (outside /pfs, so never output),
    as (host directory, mount_path) for the runtime to mount read-only. Readable by the code's user only (as
    root, the sandbox's uid), except for docker, whose container user may be any (0444)."""
    if values is None or not values.mounts:
        return []
    docker = runtime.name == "docker"
    owner = SANDBOX_UID if os.geteuid() == 0 and not docker else None
    mounts: list[tuple[Path, str]] = []
    for n, (inside, files) in enumerate(values.mounts):
        if runtime.name == "bwrap" and "/" + inside.strip("/").split("/")[0] in _SYSTEM_DIRS and \
                not os.path.isdir(inside):
            raise TuskError(f"secret mount_path {inside} is in a system directory the sandbox shows read-only from "
                            f"this host, where {inside} does not exist: mount it elsewhere (/var/secrets/..., "
                            "/run/secrets/...)")
        directory = workdir / "secrets" / str(n)
        directory.mkdir(parents=True, mode=0o700)
        for key, data in files.items():
            fd = os.open(directory / key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444 if docker else 0o400)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            if owner is not None:
                os.chown(directory / key, owner, owner)
        if docker:
            os.chmod(directory, 0o755)
        elif owner is not None:
            os.chown(directory, owner, owner)
        mounts.append((directory, inside))
    return mounts


def _remove(directory: Path) -> None:
    """Delete a datum's secret files (their directories may be another uid's: this process made them)."""
    shutil.rmtree(directory, ignore_errors=True)


def _linked(link: Path, pfs: Path, rel: str) -> str:
    """Where an output symlink points, refused unless inside the datum's /pfs (inputs and other outputs)."""
    real = _host_target(link, pfs)
    if not real.startswith(os.path.realpath(pfs) + os.sep):
        raise TuskError(f"output {rel} is a symlink to {os.readlink(link)}, outside /pfs: only inputs"
                        " and other outputs can be linked")
    return real


def _host_target(link: Path, pfs: Path) -> str:
    """Where a symlink made by user code points on this host: ``/pfs/...`` inside a sandbox is the datum's pfs."""
    target = os.readlink(link)
    if target == "/pfs" or target.startswith("/pfs/"):
        target = str(pfs) + target[len("/pfs"):]
    elif not os.path.isabs(target):
        target = os.path.join(os.path.dirname(link), target)
    return os.path.realpath(target)


class _LazyFeeder:
    """Streams one file into its named pipe when the user code opens it."""

    def __init__(self, ctx: Context, fifo: Path, entry: Entry, name: str) -> None:
        self.fifo, self.sent = fifo, 0
        fifo.unlink(missing_ok=True)
        os.mkfifo(fifo)
        self._thread = threading.Thread(target=self._feed, args=(ctx, entry, name), daemon=True)
        self._thread.start()

    def _feed(self, ctx: Context, entry: Entry, name: str) -> None:
        assert entry.file is not None
        try:
            with open(self.fifo, "wb") as pipe:  # blocks until a reader opens the pipe
                for data in ctx.content.iter_bytes(entry.file, name):
                    pipe.write(data)
                    self.sent += len(data)
        except (BrokenPipeError, OSError):
            pass  # the reader stopped early; that is its right

    def finish(self) -> int:
        """Release a writer still waiting for a reader that never came; return bytes sent (idempotent)."""
        if self._thread.is_alive():
            try:
                fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
                os.close(fd)
            except OSError:
                pass
            self._thread.join(timeout=5)
        return self.sent


def _remaining(datum_timeout: float | None, deadline: float | None) -> float | None:
    left = None if deadline is None else deadline - time.monotonic()
    if datum_timeout is None:
        return left
    return datum_timeout if left is None else min(datum_timeout, left)


def _wants_network(spec: PipelineSpec) -> bool:
    """Whether the pipeline asked for the host's network (``"metadata": {"annotations": {"tusk.io/network":
    "host"}}``): its datums then share it, in every runtime; by default they have none."""
    return (spec.annotation(NETWORK_ANNOTATION) or "").lower() == "host"
