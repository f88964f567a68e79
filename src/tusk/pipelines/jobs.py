"""Jobs: a pipeline run over its input commits, one per commit set.

A commit that lands on a branch some pipeline reads creates a job for that
pipeline under the commit's global id. Running a job enumerates its datums,
skips those whose hash was processed before (reusing their output), runs the
rest, merges all datum outputs into the output commit and lands it with
provenance; that output commit in turn triggers the pipelines downstream, so
one user commit drives the whole DAG under one global id.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import gc
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tusk.errors import Conflict, IntegrityError, InvalidArgument, JobNotFound, NotFound, Timeout, TuskError
from tusk.ids import Digest, is_commit_id, new_commit_id
from tusk.pipelines import datum_rows
from tusk.pipelines.codestore import JobCode
from tusk.pipelines.datum_changes import Changes, datum_changes
from tusk.pipelines.datum_rows import BaseRow, Sharing, base_rows
from tusk.pipelines.datums import Datum, Globber, Match, datum_hash, enumerate_datums, pfs_datum
from tusk.pipelines.executors import Executor, LocalExecutor
from tusk.pipelines.outcomes import OutcomeLog, replay
from tusk.pipelines.records import DatumInfo, JobInfo, input_commits, job_state
from tusk.pipelines.registry import PipelineService, StoredPipeline
from tusk.pipelines.runtimes import Runtime
from tusk.pipelines.secrets import SecretService, SecretValues
from tusk.pipelines.spec import PfsInput, PipelineSpec
from tusk.pipelines.support import project_name
from tusk.pipelines.worker import DatumOutcome, DatumWorker, JobLabels
from tusk.storage.metadata import (
    DatumCacheRow,
    DatumRunRow,
    JobRow,
    PipelineRow,
    RepoRow,
)
from tusk.versioning import fence, refstore
from tusk.versioning.commits import CommitService
from tusk.versioning.context import Context, _aware, acting_as, expand_id, now
from tusk.versioning.records import CommitInfo, InputCommit
from tusk.versioning.staging import Op
from tusk.versioning.trees import EMPTY_TREE, Entry, MutableTree

__all__ = ["JobService"]

Progress = Callable[[str, int, int, int], None]  # (pipeline, datums done, datums total, datums failed)
_ACTIVE = ("created", "interrupted", "running")  # "interrupted": released by a Ctrl-C, claimable at once
LEASE_SECONDS = 30.0  # a running job's owner renews its lease every third of this
# the commit sets whose jobs the writes of this context (a request, a CLI call) created: what a writer waits for
_CAUSED: ContextVar[frozenset[str]] = ContextVar("tusk_caused_commit_sets", default=frozenset())
# pipelines whose start_job waits for the end of a ``starts_deferred`` block (None: none is open)
_DEFERRED: ContextVar[list[str] | None] = ContextVar("tusk_deferred_job_starts", default=None)



def _owner() -> str:
    """``host:pid/nonce``: the nonce tells apart two schedulers in one process (tests, embedded servers)."""
    return f"{socket.gethostname()}:{os.getpid()}/{secrets.token_hex(4)}"


def _owner_alive(owner: str | None) -> bool:
    if not owner:
        return False
    host, _, rest = owner.rpartition(":")
    pid = rest.split("/", 1)[0]
    if host != socket.gethostname():
        return True  # cannot tell for another host: assume it is working
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


class JobService:
    def __init__(self, ctx: Context, commits: CommitService, pipelines: PipelineService, runtime: Runtime,
                 scratch: Path, lease_seconds: float = LEASE_SECONDS, code_cache: Path | None = None) -> None:
        self.ctx = ctx
        self.commits = commits
        self.pipelines = pipelines
        self.worker = DatumWorker(ctx, runtime, scratch)
        self.code_cache = code_cache or scratch.parent / "cache" / "code"  # materialized code trees, by digest
        self.journals = scratch.parent / "journals"  # running jobs' datum outcomes (tusk.pipelines.outcomes)
        self.record_batch, self.record_seconds = 256, 0.25  # outcomes per database write, and its longest wait
        self.egress_endpoint: str | None = None  # the S3 endpoint egress to s3:// uses (TUSK_S3_ENDPOINT_URL)
        self.executor: Executor = LocalExecutor(self.worker)  # or a DaskExecutor (Services.open, by settings)
        self.lease_seconds = lease_seconds
        self.owner = _owner()
        # set by a server with auth on: why the pipeline's creator may not run it now (None: they may)
        self.authorize: Callable[[StoredPipeline], str | None] | None = None
        self.secrets: SecretService | None = None  # unseals a job's transform.secrets (set by Services)

    # -- triggering ----------------------------------------------------------
    def on_commit(self, commit: CommitInfo, moved: bool = False) -> list[str]:
        """Create jobs for the pipelines that read the branch this commit landed on.

        A branch moved back to a commit whose set was already processed (a
        rollback, a re-promotion) starts a new global id: the pipelines that
        read the branch must run again over the commit it now points at.
        """
        if commit.state != "finished":
            return []
        created = []
        with self.ctx.db.write() as s:
            readers = [p for p in self.pipelines.all(s) if p.row.state == "running" and not p.spec.long_running
                       and any(leaf.repo == commit.repo and leaf.branch == commit.branch
                               for leaf in p.spec.pfs_leaves())]  # (a service restarts instead: long_running)
            global_id = commit.global_id
            if moved and global_id != self.commits.one_change() and any(
                    self._job_exists(s, p, global_id) for p in readers):
                global_id = new_commit_id()
            for p in readers:
                if self._job_exists(s, p, global_id):
                    continue
                if self._upstream_pending(s, p, global_id):
                    continue  # another input of this set is still being computed: its landing triggers us
                if self._input_open(s, p, global_id):
                    continue  # another input commit of this set (a transaction's) is still open: its finish does
                created.append(self._create_job(s, p, global_id).id)
            if readers:
                _CAUSED.set(_CAUSED.get() | {global_id})
        return created

    @contextmanager
    def starts_deferred(self) -> Iterator[None]:
        """Create the jobs ``start_job`` is asked for inside the block when it ends, not at once.

        The API grants a pipeline's creator its output repo after creating it; a scheduler that took the
        first job in between would refuse it (the creator was not yet its writer) and the job would fail.
        """
        deferred: list[str] = []
        token = _DEFERRED.set(deferred)
        try:
            yield
        finally:
            _DEFERRED.reset(token)
            for name in dict.fromkeys(deferred):  # what was created stays created: its job starts, as before
                with contextlib.suppress(NotFound):  # (deleted again inside the block)
                    self.start_job(name)

    def start_job(self, name: str) -> str | None:
        """A job over the pipeline's current inputs (after create, update or rerun); None for a spout or a
        service, which has no jobs (``tusk.pipelines.long_running`` runs it), or inside ``starts_deferred``."""
        deferred = _DEFERRED.get()
        if deferred is not None:
            deferred.append(name)
            return None
        with self.ctx.db.write() as s:
            p = self.pipelines.load(s, name)
            if p.spec.long_running:
                return None
            job = self._create_job(s, p, new_commit_id())
        _CAUSED.set(_CAUSED.get() | {job.global_id})
        return job.id

    def take_caused(self) -> frozenset[str]:
        """The commit sets whose jobs this context's writes created since the last take (then forgotten).

        A writer waits for these and nothing else: another user's pipeline,
        stuck or failing, neither delays nor fails a write that did not trigger it.
        """
        caused = _CAUSED.get()
        _CAUSED.set(frozenset())
        return caused

    def _job_exists(self, s: Session, p: StoredPipeline, global_id: str) -> bool:
        return s.scalar(select(JobRow.id).where(JobRow.pipeline_id == p.row.id, JobRow.global_id == global_id)
                        .limit(1)) is not None

    def _upstream_pending(self, s: Session, p: StoredPipeline, global_id: str) -> bool:
        for leaf in p.spec.pfs_leaves():
            upstream = s.scalar(select(PipelineRow.id).where(PipelineRow.name == leaf.repo))
            if upstream is not None and s.scalar(
                select(JobRow.id).where(JobRow.pipeline_id == upstream, JobRow.global_id == global_id,
                                        JobRow.state.in_(_ACTIVE), JobRow.output_commit_id.is_(None))
                .limit(1)) is not None:
                return True  # (a job whose output has landed is only announcing it: that is not pending)
        return False

    def _input_open(self, s: Session, p: StoredPipeline, global_id: str) -> bool:
        """Whether a commit of this set is open on a branch the pipeline reads: commits started together (in one
        transaction) are one change, and the job runs once, when the last of them is finished (Pachyderm's rule)."""
        leaves = {(leaf.repo, leaf.branch) for leaf in p.spec.pfs_leaves()}
        return not leaves.isdisjoint(refstore.open_in_set(s, global_id))

    def _create_job(self, s: Session, p: StoredPipeline, global_id: str) -> JobRow:
        inputs: list[InputCommit] = []
        for leaf in p.spec.pfs_leaves():
            repo = s.scalar(select(RepoRow).where(RepoRow.name == leaf.repo))
            commit_id = leaf.commit
            if commit_id is None and repo is not None:
                commit_id = (refstore.finished_in_set(s, repo.id, leaf.branch, global_id)
                             or refstore.head_id(s, repo.id, leaf.branch))
            inputs.append(InputCommit(name=leaf.input_name, repo=leaf.repo, branch=leaf.branch,
                                      commit=commit_id or ""))
        job = JobRow(id=new_commit_id(), pipeline_id=p.row.id, pipeline_version=p.row.version, global_id=global_id,
                     input_commits=json.dumps(inputs), state="created", created_at=now())
        s.add(job)
        s.flush()
        return job

    # -- running -------------------------------------------------------------
    def run_pending(self, progress: Progress | None = None, limit: int | None = None,
                    global_ids: Collection[str] | None = None) -> list[JobInfo]:
        """Run created jobs (and take over jobs whose runner died) until none are left to claim.

        With ``global_ids``, only jobs of those commit sets (and the older jobs of the same pipelines they
        queue behind) are claimed.
        """
        done: list[JobInfo] = []
        while limit is None or len(done) < limit:
            job_id = self._claim_next(global_ids)
            if job_id is None:
                break
            caused = _CAUSED.get()  # downstream jobs share the job's commit set: nothing new to wait for
            try:
                with self._lease(job_id):
                    done.append(self._run_safely(job_id, progress))
            except KeyboardInterrupt:
                self._release(job_id)
                raise
            finally:
                _CAUSED.set(caused)
        return done

    def drain(self, progress: Progress | None = None, poll: float = 0.1,
              global_ids: Collection[str] | None = None) -> list[JobInfo]:
        """Run what can be claimed here and wait for the jobs other runners hold, until no job is active
        (of ``global_ids``, when given: a writer waits for the commit sets its writes caused, nothing else).

        Waiting is sound because a job stays active until the jobs its output
        triggers exist (see ``_finish``): "no active job" means the DAG is done.
        A job that fails is returned, not raised: the write that triggered it stands.
        """
        if global_ids is not None and not global_ids:
            return []
        done: list[JobInfo] = []
        while True:
            done += self.run_pending(progress, global_ids=global_ids)
            with self.ctx.db.read() as s:
                q = select(JobRow.id).where(JobRow.state.in_(_ACTIVE))
                if global_ids is not None:
                    q = q.where(JobRow.pipeline_id.in_(self._waited_pipelines(s, global_ids)))
                if s.scalar(q.limit(1)) is None:
                    return done
            time.sleep(poll)

    def _waited_pipelines(self, s: Session, global_ids: Collection[str]) -> list[int]:
        """Pipelines with an active job in these commit sets: their older jobs run first, so they are waited
        for too (a pipeline's jobs run one at a time, oldest first)."""
        return list(s.scalars(select(JobRow.pipeline_id).where(JobRow.state.in_(_ACTIVE),
                                                               JobRow.global_id.in_(list(global_ids)))
                              .distinct()))

    def _release(self, job_id: str) -> None:
        """Give back a job this runner holds (Ctrl-C): ``interrupted``, no owner, so the next ``tusk job wait``
        or write takes it over at once and resumes it (datums recorded before are not redone)."""
        with self.ctx.db.write() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.owner == self.owner,
                                           JobRow.state == "running")
                      .values(state="interrupted", owner=None, lease_expires_at=None,
                              reason="interrupted (Ctrl-C); the next `tusk job wait` or write resumes it")
                      .execution_options(synchronize_session=False))

    def _claimable(self, job: JobRow) -> bool:
        if job.state in ("created", "interrupted"):
            return True
        expires = _aware(job.lease_expires_at) if job.lease_expires_at is not None else None
        if expires is not None and expires < now():
            return True  # its runner stopped renewing: dead, or cut off from the database
        return not _owner_alive(job.owner)  # on this host a dead runner is seen at once, lease or not

    def _claim_next(self, global_ids: Collection[str] | None = None) -> str | None:
        """Claim one job with a compare-and-set on (state, owner, lease): of several schedulers sharing the
        database, exactly one wins each job, and a pipeline's next job waits for its previous one."""
        with self.ctx.db.write() as s:
            busy: set[int] = set()  # a pipeline's jobs run one at a time, oldest first: each builds on the last
            q = select(JobRow).where(JobRow.state.in_(_ACTIVE)).order_by(JobRow.created_at)
            if global_ids is not None:
                q = q.where(JobRow.pipeline_id.in_(self._waited_pipelines(s, global_ids)))
            for job in s.scalars(q):
                if job.pipeline_id in busy:
                    continue
                busy.add(job.pipeline_id)
                if not self._claimable(job):
                    continue
                same_owner = JobRow.owner.is_(None) if job.owner is None else JobRow.owner == job.owner
                same_lease = JobRow.lease_expires_at.is_(None) if job.lease_expires_at is None \
                    else JobRow.lease_expires_at == job.lease_expires_at
                claimed = s.execute(update(JobRow).where(JobRow.id == job.id, JobRow.state == job.state, same_owner,
                                                         same_lease)
                                    .values(state="running", owner=self.owner, started_at=job.started_at or now(),
                                            lease_expires_at=now() + timedelta(seconds=self.lease_seconds))
                                    .execution_options(synchronize_session=False))
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    return job.id
        return None

    def _creator(self, job_id: str) -> str:
        with self.ctx.db.read() as s:
            job = s.get(JobRow, job_id)
            row = s.get(PipelineRow, job.pipeline_id) if job is not None else None
            return row.created_by if row is not None else self.ctx.user

    @contextmanager
    def _lease(self, job_id: str) -> Iterator[None]:
        """Renew the job's lease while it runs here."""
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.lease_seconds / 3):
                with self.ctx.db.write() as s:
                    s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.owner == self.owner,
                                                   JobRow.state == "running")
                              .values(lease_expires_at=now() + timedelta(seconds=self.lease_seconds))
                              .execution_options(synchronize_session=False))

        thread = threading.Thread(target=renew, name=f"tusk-lease-{job_id[:8]}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _run_safely(self, job_id: str, progress: Progress | None) -> JobInfo:
        """Run the job; whatever goes wrong in it, it ends ``failure`` with the error, never stays running
        (a job left running would hold its pipeline, and everyone waiting for it, forever). Its bookkeeping is
        inside too: finding its creator, recording datums, landing the output with provenance."""
        try:
            creator = self._creator(job_id)
        except Exception as exc:
            return self._fail(job_id, _describe(exc))
        with acting_as(creator):
            try:
                return self._run(job_id, progress)
            except Exception as exc:  # any bug or bad data: the job's failure, not the caller's
                return self._fail(job_id, _describe(exc))

    def _fail(self, job_id: str, error: str) -> JobInfo:
        """End a job that raised: with a failed output commit when one can land, else just its row."""
        with self.ctx.db.read() as s:
            job = s.get(JobRow, job_id)
            assert job is not None
            # (its output commit takes the job's id: one that landed before the job's row said so counts)
            landed = job.output_commit_id is not None or refstore.commit(s, job_id) is not None
            name = s.get(PipelineRow, job.pipeline_id).name  # type: ignore[union-attr]
            global_id, inputs, version = job.global_id, input_commits(job.input_commits), job.pipeline_version
        if not landed:
            with contextlib.suppress(Exception):  # e.g. the output repo is gone: the row still says why
                with self.ctx.db.read() as s:
                    p = self.pipelines.load(s, name, version)
                return self._finish(job_id, p, global_id, inputs, EMPTY_TREE, error, 0, 0, 0)
        with self.ctx.db.write() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.owner == self.owner,
                                           JobRow.state == "running")
                      .values(state="failure", reason=error, finished_at=now(), lease_expires_at=None)
                      .execution_options(synchronize_session=False))
        return self.inspect(job_id)

    def _run(self, job_id: str, progress: Progress | None) -> JobInfo:
        generation = fence.writer_token(self.ctx)  # before any datum stores output: a gc meanwhile is checked
        with self.ctx.db.read() as s:
            job = s.get(JobRow, job_id)
            assert job is not None
            landed = job.output_commit_id
            pipeline = s.get(PipelineRow, job.pipeline_id)
            stored = self.pipelines.load(s, pipeline.name, job.pipeline_version) if landed and pipeline else None
        if landed is not None:  # its runner died after landing the output, before marking the job done
            return self._complete(job_id, self.commits.inspect_id(landed), stored)
        self._replay(job_id)  # what a runner that died here recorded only in the job's journal
        with self.ctx.db.read() as s:
            job = s.get(JobRow, job_id)
            assert job is not None
            pipeline_name = s.get(PipelineRow, job.pipeline_id).name  # type: ignore[union-attr]
            p = self.pipelines.load(s, pipeline_name, job.pipeline_version)
            inputs = input_commits(job.input_commits)
            roots = {}
            for i in inputs:
                row = refstore.commit(s, i["commit"])
                roots[i["name"]] = row.tree_digest if row is not None and row.tree_digest else EMPTY_TREE
            done_before = {r.datum_id: r for r in s.scalars(select(DatumRunRow).where(DatumRunRow.job_id == job_id))}
            global_id = job.global_id
        spec = p.spec
        refused = self.authorize(p) if self.authorize is not None else None
        if refused is not None:  # a pipeline runs with its creator's rights, as they are now
            return self._finish(job_id, p, global_id, inputs, EMPTY_TREE, refused, 0, 0, 0)
        try:
            secret_values = self._secrets(spec)
        except TuskError as exc:  # a secret gone, or sealed with another key: the message names no value
            return self._finish(job_id, p, global_id, inputs, EMPTY_TREE, str(exc), 0, 0, 0)
        deadline = None if spec.job_timeout is None else time.monotonic() + spec.job_timeout

        plan = self._changed_datums(job_id, p, inputs, roots, done_before) or \
            self._all_datums(job_id, p, inputs, roots, done_before)
        todo, outputs = plan.todo, plan.outputs
        counter = {"done": plan.total - len(todo)}
        if progress:
            progress(p.name, counter["done"], plan.total, 0)

        failures: list[tuple[Datum, DatumOutcome]] = []
        order = {d.id: i for i, d in enumerate(todo)}
        code = self.job_code(p) if todo else JobCode(None, Path(p.version.code_dir), "")
        labels = JobLabels(p.name, p.version.version, p.spec_commit, project_name(spec.pipeline.project),
                           creator=p.row.created_by or self.ctx.user, secrets=secret_values)
        # each outcome journaled at once (a resumed job does not redo it), in the database by batches
        with _fewer_collections(), \
                OutcomeLog(self._journal(job_id), self._write_batch, self.record_batch, self.record_seconds) as journal:
            for d, outcome in self.executor.run(job_id, spec, code, roots, todo, deadline, labels):
                journal.add(*self._rows(job_id, p, d, plan.hashes[d.id], outcome))
                counter["done"] += 1
                if outcome.state == "success" and outcome.output_tree:
                    outputs[d.id] = outcome.output_tree
                elif outcome.state == "failed":
                    failures.append((d, outcome))
                if progress:
                    progress(p.name, counter["done"], plan.total, len(failures))
        failures.sort(key=lambda f: order[f[0].id])
        processed = plan.resumed + len(todo) - len(failures)
        error = None
        if failures:
            d, outcome = failures[0]
            paths = ", ".join(f"{i.name}:{i.path}" for i in d.inputs)
            error = f"{len(failures)} datum(s) failed; first: datum {d.id} ({paths}): {outcome.error}"
        elif deadline is not None and time.monotonic() > deadline:
            error = f"job timed out after {spec.job_timeout:g}s"
        root: str = EMPTY_TREE
        if error is None:
            try:
                root = plan.merge(outputs)
            except Conflict as exc:
                error = str(exc)
        return self._finish(job_id, p, global_id, inputs, root, error, processed, plan.skipped, len(failures),
                            generation)

    def _all_datums(self, job_id: str, p: StoredPipeline, inputs: list[InputCommit], roots: dict[str, str],
                    done_before: dict[str, DatumRunRow]) -> _Plan:
        """Every datum of the job's inputs: those finished before a crash, those whose hash is cached (skipped,
        with their rows shared with the base job where they can be), and the rest to run."""
        spec = p.spec
        datums = enumerate_datums(spec.input.effective(spec.name),
                                  self._globber({i["name"]: (i["commit"], roots[i["name"]]) for i in inputs}))
        hashes = {d.id: datum_hash(d, p.version.salt) for d in datums}
        with self.ctx.db.write() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id).values(datums_total=len(datums)))
            cached = self._cached(s, p, hashes.values()) if spec.reprocess_spec == "until_success" else {}
            base, sharing = self._merge_base(s, p)
        outputs: dict[str, str] = {}
        todo: list[Datum] = []
        skipped = resumed = 0
        reused: list[tuple[Datum, str, DatumOutcome]] = []
        shared: list[Datum] = []
        for d in datums:
            prior = done_before.get(d.id)
            if (finished := self._finished_before(prior, hashes[d.id])) is not None:
                outputs[d.id], state = finished  # finished before a crash: not redone
                skipped += state == "skipped"
                resumed += state == "success"
            elif hashes[d.id] in cached:
                outputs[d.id] = cached[hashes[d.id]]
                skipped += 1
                if sharing.shared(d.id, hashes[d.id], cached[hashes[d.id]]):
                    shared.append(d)
                else:
                    reused.append((d, hashes[d.id], DatumOutcome("skipped", cached[hashes[d.id]], 0, "")))
            else:
                todo.append(d)
        hidden = sharing.hidden({d.id for d in shared} | {d.id for d, _, _ in reused} | done_before.keys())
        if Sharing.worth_it(len(shared), len(reused) + len(hidden), len(datums)):
            self._record_many(job_id, p, reused, sharing.base, hidden)
        else:  # rows for every skipped datum: this job is a base for later ones
            reused += [(d, hashes[d.id], DatumOutcome("skipped", outputs[d.id], 0, "")) for d in shared]
            self._record_many(job_id, p, reused, None, [])
        return _Plan(len(datums), todo, hashes, outputs, skipped, resumed,
                     lambda done: self._merge(datums, done, base))

    def _changed_datums(self, job_id: str, p: StoredPipeline, inputs: list[InputCommit], roots: dict[str, str],
                        done_before: dict[str, DatumRunRow]) -> _Plan | None:
        """The job's datums as changes from the job that wrote its pipeline's output (``_previous``): the datums
        that differ between that job's input commits and this one's (``tusk.pipelines.datum_changes``: from the
        glob matches on the paths each input commit changed, ``TreeStore.glob_changes``), each run, taken from
        the datum cache, or gone; every other datum is that job's, with its row and output. So a job's cost
        follows its change, not its input's size. None when this job must list all its datums: no such job,
        another input or salt, or rows too many to share."""
        spec = p.spec
        inp = spec.input.effective(spec.name)
        if not inp.leaves() or spec.reprocess_spec != "until_success":
            return None
        with self.ctx.db.read() as s:
            prev = self._previous(s, p)
            if prev is None:
                return None
            sources, earlier = {i["name"]: (i["commit"], roots[i["name"]]) for i in inputs}, prev.sources

            def leaf(pfs: PfsInput) -> Changes:  # a pfs input's changed glob matches
                (old_commit, old_root), (commit, root) = earlier[pfs.input_name], sources[pfs.input_name]
                out = Changes()
                for path, old, new, g in self.ctx.trees.glob_changes(old_root, root, pfs.glob):
                    if new is not None:
                        out.present.append(d := pfs_datum(pfs, commit, Match(path, new, g)))
                        if old is None:
                            out.added.add(d.id)
                    elif old is not None:
                        out.gone.append(pfs_datum(pfs, old_commit, Match(path, old, g)))
                return out

            changes = datum_changes(inp, leaf, self._globber(earlier), self._globber(sources))
            present = changes.present
            gone = [d.id for d in changes.gone]
            total = prev.total + len(changes.added) - len(gone)
            if len(present) >= total:  # every datum changed (a cross's model did): nothing to share (``shared``
                return None  # below is at most total - present), known before any query of rows
            hashes = {d.id: datum_hash(d, p.version.salt) for d in present}
            ids = [*hashes, *gone]
            based: dict[str, BaseRow] = {}  # the base job's shareable rows of the changed datums
            for start in range(0, len(ids), 500):
                based.update({d: BaseRow(h, t) for d, h, t in s.execute(
                    select(DatumRunRow.datum_id, DatumRunRow.hash, DatumRunRow.output_tree).where(
                        DatumRunRow.job_id == prev.base, DatumRunRow.datum_id.in_(ids[start : start + 500]),
                        DatumRunRow.state.in_(datum_rows.SHAREABLE)))})
            cached = self._cached(s, p, hashes.values())
            own = [] if prev.base == prev.job else list(s.scalars(select(DatumRunRow).where(
                DatumRunRow.job_id == prev.job)))
        before = {d: r.output_tree for d, r in based.items() if r.output_tree}  # the previous job's outputs
        for row in own:  # (its own rows override its base's)
            if row.datum_id in hashes or row.datum_id in gone:
                before.pop(row.datum_id, None)
                if row.state in datum_rows.SHAREABLE and row.output_tree:
                    before[row.datum_id] = row.output_tree
        changed = set(ids)
        commits = {i["name"]: i["commit"] for i in inputs}
        copied = [_copied_row(job_id, row, commits) for row in own if row.datum_id not in changed]
        outputs: dict[str, str] = {}
        todo: list[Datum] = []
        reused: list[tuple[Datum, str, DatumOutcome]] = []
        keep: set[str] = set(done_before)
        skipped = total - len(present)
        resumed = 0
        for d in present:
            h, prior = hashes[d.id], done_before.get(d.id)
            if (finished := self._finished_before(prior, h)) is not None:
                outputs[d.id], state = finished  # finished before a crash: not redone
                skipped += state == "skipped"
                resumed += state == "success"
            elif h in cached:
                outputs[d.id] = cached[h]
                skipped += 1
                keep.add(d.id)
                if based.get(d.id) != BaseRow(h, cached[h]):
                    reused.append((d, h, DatumOutcome("skipped", cached[h], 0, "")))
            else:
                todo.append(d)
        hidden = [d for d in ids if d in based and d not in keep]
        shared = total - len(present) - sum(row.state in datum_rows.SHAREABLE for row in own
                                            if row.datum_id not in changed)
        if not Sharing.worth_it(shared, len(copied) + len(reused) + len(hidden), total):
            return None  # this job lists all its datums, and is the base of the next ones
        with self.ctx.db.write() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id).values(datums_total=total))
        self._record_many(job_id, p, reused, prev.base, hidden, copied)
        return _Plan(total, todo, hashes, outputs, skipped, resumed,
                     lambda done: self._merge_changes(prev.output, ids, before, done))

    @staticmethod
    def _cached(s: Session, p: StoredPipeline, hashes: Collection[str]) -> dict[str, str]:
        """The pipeline's datum cache entries for these hashes: hash -> output tree."""
        wanted = sorted(set(hashes))
        cached: dict[str, str] = {}
        for start in range(0, len(wanted), 500):
            cached.update({h: t for h, t in s.execute(select(DatumCacheRow.hash, DatumCacheRow.output_tree).where(
                DatumCacheRow.pipeline_id == p.row.id, DatumCacheRow.hash.in_(wanted[start : start + 500])))})
        return cached

    def _finished_before(self, prior: DatumRunRow | None, hash_: str) -> tuple[str, str] | None:
        """(output tree, state) of a datum's row from an earlier run of this job (before a crash) when it is a
        finished outcome for this hash whose output is still stored: then it is not redone."""
        if prior is None or prior.state not in datum_rows.SHAREABLE or not prior.output_tree or \
                prior.hash != hash_ or not self._intact(prior.output_tree):
            return None
        return prior.output_tree, prior.state

    def _previous(self, s: Session, p: StoredPipeline) -> _Previous | None:
        """The job that wrote the pipeline's output head, when a job may take its datums as changes from it: it
        succeeded, over this input (the same spec input and salt, so the same datums and hashes)."""
        repo = s.scalar(select(RepoRow).where(RepoRow.name == p.name))
        head = refstore.head(s, repo.id, p.spec.output_branch) if repo else None
        job = s.get(JobRow, head.job_id) if head is not None and head.job_id else None
        if head is None or job is None or head.tree_digest is None or job.state != "success" or \
                job.output_commit_id != head.id or job.pipeline_id != p.row.id:
            return None
        version = p if job.pipeline_version == p.version.version else \
            self.pipelines.load(s, p.name, job.pipeline_version)
        if version.version.salt != p.version.salt or version.spec.input != p.spec.input:
            return None
        sources: dict[str, tuple[str, str]] = {}  # its input commits and their trees, by input name
        for source in input_commits(job.input_commits):
            commit = refstore.commit(s, source["commit"]) if source["commit"] else None
            if source["commit"] and commit is None:
                return None
            sources[source["name"]] = \
                (source["commit"], commit.tree_digest if commit is not None and commit.tree_digest else EMPTY_TREE)
        if any(leaf.input_name not in sources for leaf in p.spec.input.effective(p.name).leaves()
               if isinstance(leaf, PfsInput)):
            return None
        return _Previous(job.id, job.datums_base or job.id, sources, head.tree_digest, job.datums_total)

    def _globber(self, sources: dict[str, tuple[str, str]]) -> Globber:
        """The glob matches of each pfs input in these input commits: name -> (commit, tree)."""
        def globber(leaf: PfsInput) -> tuple[str, list[Match]]:
            commit, root = sources[leaf.input_name]
            if root == EMPTY_TREE:  # no commit on the input branch yet, or an empty one: nothing to process
                return commit, []
            return commit, [Match(path, e, g) for path, e, g in self.ctx.trees.glob_groups(root, leaf.glob)]
        return globber

    def _merge_changes(self, base: str, ids: list[str], before: dict[str, str], outputs: dict[str, str]) -> str:
        """The previous output with the changed datums' outputs in place of what they wrote before; a path
        written by two datums is an error naming them (``_merge``)."""
        tree = MutableTree(self.ctx.trees, base)
        current = {d: outputs[d] for d in ids if outputs.get(d) not in (None, EMPTY_TREE)}
        for d in ids:
            if d in before and current.get(d) != before[d]:
                for path, _ in self.ctx.trees.walk(before[d]):
                    tree.delete(path)
        owner: dict[str, str] = {}
        for d, out in current.items():
            if before.get(d) == out:
                continue
            for path, entry in self.ctx.trees.walk(out):
                if path in owner or tree.get(path) is not None:
                    raise Conflict(f"datums {owner.get(path, '(an earlier datum)')} and {d} both wrote {path}; "
                                   "each output path must come from one datum")
                owner[path] = d
                tree.put(path, entry)
        return tree.finish()[0]

    def _secrets(self, spec: PipelineSpec) -> SecretValues | None:
        """The job's secrets, unsealed once for all its datums (None when the spec names none)."""
        if not spec.transform.secrets:
            return None
        if self.secrets is None:
            raise TuskError(f"pipeline {spec.name} names secrets, and this job runner has no secret store")
        return self.secrets.resolve(spec)

    def job_code(self, p: StoredPipeline) -> JobCode:
        """The version's stored code, materialized and verified on this host (``IntegrityError`` on a mismatch:
        the job fails before any datum runs).

        A version made before code was stored runs its directory's current
        content, as it did then, but stored and materialized like any other, so
        it runs on other replicas and Dask workers too; a directory that cannot
        be stored (too large, or not on this host) runs in place.
        """
        label = f"pipeline {p.name} version {p.version.version}"
        image = (json.loads(p.version.code_info) if p.version.code_info else {}).get("image")
        tree = p.version.code_tree
        if tree is None:
            legacy = Path(p.version.code_dir)
            try:
                tree = self.pipelines.code.store(legacy).digest if legacy.is_dir() else None
            except InvalidArgument:
                tree = None
            if tree is None:
                return JobCode(None, legacy, label, image)
        return JobCode(Digest(tree), self.materialize(tree, label), label, image)

    def materialize(self, tree: str, label: str) -> Path:
        return self.pipelines.code.materialize(tree, self.code_cache, label)

    def _merge_base(self, s: Session, p: StoredPipeline) -> tuple[tuple[str, dict[str, str]] | None, Sharing]:
        """The output branch head and the datum outputs that made it, when a job of this pipeline wrote it; and
        the rows a new job may share instead of writing its own (``tusk.pipelines.datum_rows``)."""
        repo = s.scalar(select(RepoRow).where(RepoRow.name == p.name))
        head = refstore.head(s, repo.id, p.spec.output_branch) if repo else None
        if head is None or head.job_id is None or head.tree_digest is None:
            return None, Sharing(None, {})
        base, shareable, listed_rows = base_rows(s, head.job_id)
        return (head.tree_digest, {d: r.output_tree for d, r in listed_rows.items() if r.output_tree}), \
            Sharing(base, shareable)

    def _merge(self, datums: list[Datum], outputs: dict[str, str], base: tuple[str, dict[str, str]] | None) -> str:
        """One tree from every datum's output; two datums writing one path is an error naming both.

        With a base (the previous output and its datums' outputs), only datums
        whose output changed are applied, so a job's cost follows its change.
        """
        current = {d.id: outputs[d.id] for d in datums if outputs.get(d.id) not in (None, EMPTY_TREE)}
        if base is None:
            tree, before = MutableTree(self.ctx.trees, EMPTY_TREE), {}
        else:
            tree, before = MutableTree(self.ctx.trees, base[0]), base[1]
        owner: dict[str, str] = {}
        changed = [d for d in current if before.get(d) != current[d]]
        for datum_id, out in before.items():  # take away what removed or changed datums wrote
            if current.get(datum_id) != out:
                for path, _ in self.ctx.trees.walk(out):
                    tree.delete(path)
        for datum_id in changed:
            for path, entry in self.ctx.trees.walk(current[datum_id]):
                if path in owner or (base is not None and tree.get(path) is not None):
                    other = owner.get(path) or self._owner_of(path, current, before, changed)
                    raise Conflict(f"datums {other} and {datum_id} both wrote {path}; each output path must come"
                                   " from one datum")
                owner[path] = datum_id
                tree.put(path, entry)
        return tree.finish()[0]

    def _owner_of(self, path: str, current: dict[str, str], before: dict[str, str], changed: list[str]) -> str:
        for datum_id, out in current.items():
            if datum_id not in changed and self.ctx.trees.lookup(out, path) is not None:
                return datum_id
        return "(an earlier datum)"

    def _journal(self, job_id: str) -> Path:
        return self.journals / f"{job_id}.jsonl"

    def _replay(self, job_id: str) -> None:
        """Write the outcomes a dead runner of this job left in its journal on this host, then drop it."""
        path = self._journal(job_id)
        runs, cache = replay(path)
        if runs:
            self._write_batch(runs, cache)
        path.unlink(missing_ok=True)

    def _record_many(self, job_id: str, p: StoredPipeline, items: list[tuple[Datum, str, DatumOutcome]],
                     base: str | None, hidden: list[str], copied: Collection[dict[str, Any]] = ()) -> None:
        """Reused (skipped) datums not shared with the base job, rows hiding the base's datums this job
        does not share (``tusk.pipelines.datum_rows``), and rows copied from the previous job, in one bulk
        insert; the base named in the same transaction, before any datum runs."""
        stamp = now()
        rows = [_run_row(job_id, d, h, o, stamp) for d, h, o in items]
        rows += [{**_HIDING_ROW, "job_id": job_id, "datum_id": d, "finished_at": stamp} for d in hidden]
        rows += [{**row, "finished_at": stamp} for row in copied]
        with self.ctx.db.write() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id).values(datums_base=base))
            if rows:
                s.connection().execute(self._statements.reused, rows)

    def _intact(self, tree: str) -> bool:
        """Whether every directory and chunk of a datum output is still in the store."""
        try:
            for _, entry in self.ctx.trees.walk(tree):
                for ref in entry.file.chunks if entry.file else ():
                    if not self.ctx.content.has_chunk(ref):
                        return False
        except IntegrityError:
            return False
        return True

    def _rows(self, job_id: str, p: StoredPipeline, d: Datum, h: str, o: DatumOutcome
              ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """A datum's run row and, for a success, its cache entry."""
        cache = None
        if o.state == "success" and o.output_tree and p.spec.reprocess_spec == "until_success":
            cache = {"pipeline_id": p.row.id, "hash": h, "output_tree": o.output_tree, "job_id": job_id}
        return _run_row(job_id, d, h, o), cache

    def _write_batch(self, runs: list[dict[str, Any]], cache: list[dict[str, Any]]) -> None:
        """Upsert datums' run rows and add their cache entries, in one transaction: statements with bound
        parameters, each compiled once per process (one built with its values inline is compiled anew per
        datum: ~2 ms each), executed once per batch."""
        with self.ctx.db.write() as s:
            connection = s.connection()
            connection.execute(self._statements.upsert, runs)
            if cache:
                connection.execute(self._statements.cache, cache)

    @functools.cached_property
    def _statements(self) -> _RecordStatements:
        """The record statements, with bound parameters; a rerun's upsert replaces every column but the key."""
        runs = self.ctx.db.insert(DatumRunRow)
        replaced = {c.name: runs.excluded[c.name] for c in DatumRunRow.__table__.columns if not c.primary_key}
        return _RecordStatements(
            upsert=runs.on_conflict_do_update(index_elements=["job_id", "datum_id"], set_=replaced),
            cache=self.ctx.db.insert(DatumCacheRow).on_conflict_do_nothing(index_elements=["pipeline_id", "hash"]),
            reused=runs.on_conflict_do_nothing(index_elements=["job_id", "datum_id"]))

    def _finish(self, job_id: str, p: StoredPipeline, global_id: str, inputs: list[InputCommit], root: str,
                error: str | None, processed: int, skipped: int, failed: int,
                generation: int | None = None) -> JobInfo:
        with self.ctx.db.read() as s:
            job = s.get(JobRow, job_id)
            held = job is not None and job.state == "running" and job.owner == self.owner
        if not held:  # stopped while running ("killed"), or another runner took it over: land nothing
            return self.inspect(job_id)
        ops = [Op("root", "/", Entry("", "dir", 0, Digest(root)))]
        provenance = [i for i in inputs if i["commit"]]
        commit = self.commits.land(p.name, p.spec.output_branch, ops, origin="auto", global_id=global_id,
                                   provenance=provenance, error=error, job_id=job_id, notify=False,
                                   description=f"{p.name} v{p.row.version} job {job_id}", new_id=job_id,
                                   generation=generation)
        with self.ctx.db.write() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id).values(
                state="failure" if error else "running", reason=error, output_commit_id=commit.id,
                datums_processed=processed, datums_skipped=skipped, datums_failed=failed,
                finished_at=now() if error else None))
            if error:
                self._mark_downstream_unrunnable(s, p.name, global_id, job_id)
        if error:
            return self.inspect(job_id)
        return self._complete(job_id, commit, p)

    def _complete(self, job_id: str, commit: CommitInfo, p: StoredPipeline | None = None) -> JobInfo:
        """Egress the output (``tusk.pipelines.egress``), trigger what reads it, then mark the job done: it
        stays active until its downstream jobs exist, so anyone waiting for "no active job" never sees a gap
        between two jobs of one DAG. An egress that fails fails the job; its output commit has landed."""
        reason = None
        if p is not None and p.spec.egress is not None and p.spec.egress.url:
            from tusk.pipelines.egress import egress_commit

            try:
                egress_commit(self.ctx, commit.tree or EMPTY_TREE, p.spec.egress.url, self.egress_endpoint)
            except TuskError as exc:
                reason = f"the output commit landed, but {exc}"
        self.commits.notify(commit)
        with self.ctx.db.write() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.state == "running").values(
                state="failure" if reason else "success", reason=reason, finished_at=now(), lease_expires_at=None))
        return self.inspect(job_id)

    def _mark_downstream_unrunnable(self, s: Session, repo: str, global_id: str, failed_job: str) -> None:
        for other in self.pipelines.all(s):
            if any(leaf.repo == repo for leaf in other.spec.pfs_leaves()) and \
                    not self._job_exists(s, other, global_id):
                job = self._create_job(s, other, global_id)
                job.state, job.reason, job.finished_at = "unrunnable", f"upstream job {failed_job} failed", now()
                s.flush()
                self._mark_downstream_unrunnable(s, other.name, global_id, failed_job)

    # -- queries -------------------------------------------------------------
    def _info(self, s: Session, job: JobRow) -> JobInfo:
        name = s.get(PipelineRow, job.pipeline_id).name  # type: ignore[union-attr]
        return JobInfo(
            id=job.id, pipeline=name, pipeline_version=job.pipeline_version, global_id=job.global_id,
            state=job_state(job.state), reason=job.reason if job.state not in ("created", "running") else None,
            input_commits=input_commits(job.input_commits), output_commit=job.output_commit_id,
            datums_total=job.datums_total, datums_processed=job.datums_processed, datums_skipped=job.datums_skipped,
            datums_failed=job.datums_failed, created_at=_aware(job.created_at),
            started_at=_aware(job.started_at) if job.started_at else None,
            finished_at=_aware(job.finished_at) if job.finished_at else None,
        )

    @staticmethod
    def job_row(s: Session, job_id: str) -> JobRow:
        """The job with that id, or the one whose id starts with it (6+ hex characters)."""
        full = job_id if is_commit_id(job_id) else expand_id(s, JobRow.id, job_id, "job")
        job = s.get(JobRow, full) if full is not None else None
        if job is None:
            raise JobNotFound(f"job {job_id} not found")
        return job

    @staticmethod
    def datum_id(s: Session, datum_id: str, job: JobRow) -> str:
        """The datum id of the job that is ``datum_id`` or the one that starts with it (6+ hex characters)."""
        if is_commit_id(datum_id):
            return datum_id
        return expand_id(s, DatumRunRow.datum_id, datum_id, "datum", datum_rows.listed_where(job),
                         scope=f" in job {job.id}") or datum_id

    def expand_datum_id(self, datum_id: str, job_id: str) -> str:
        """``datum_id`` in full, when it is a unique prefix of one of the job's datums."""
        with self.ctx.db.read() as s:
            return self.datum_id(s, datum_id, self.job_row(s, job_id))

    def inspect(self, job_id: str) -> JobInfo:
        with self.ctx.db.read() as s:
            return self._info(s, self.job_row(s, job_id))

    def list(self, pipeline: str | None = None, global_id: str | None = None, limit: int | None = None,
             offset: int = 0) -> list[JobInfo]:
        """Newest first; ``offset`` skips that many, ``limit`` keeps at most that many (none or 0: all)."""
        with self.ctx.db.read() as s:
            q = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id.desc())
            if pipeline is not None:
                q = q.where(JobRow.pipeline_id == self.pipelines._row(s, pipeline).id)
            if global_id is not None:
                q = q.where(JobRow.global_id == self.commits.set_id(s, global_id))
            return [self._info(s, j) for j in s.scalars(q.offset(offset or None).limit(limit or None))]

    def wait(self, job_id: str, timeout: float | None = None) -> JobInfo:
        """Run pending work in-process (embedded mode) until the job is done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job_id = self.inspect(job_id).id
        while True:
            info = self.inspect(job_id)
            if info.state not in _ACTIVE:
                return info
            if not self.run_pending(limit=1):
                if deadline is not None and time.monotonic() > deadline:
                    raise Timeout(f"job {job_id} is still {info.state} after {timeout}s")
                time.sleep(0.2)

    def stop(self, job_id: str) -> JobInfo:
        with self.ctx.db.write() as s:
            job = self.job_row(s, job_id)
            if job.state in _ACTIVE:
                job.state, job.reason, job.finished_at = "killed", f"stopped by {self.ctx.user}", now()
            return self._info(s, job)

    def datums(self, job_id: str, limit: int | None = None, offset: int = 0, failed_first: bool = False
               ) -> builtins.list[DatumInfo]:
        """By datum id; with ``failed_first``, the troubled ones (failed, or recovered with an error) first.
        ``offset`` skips that many, ``limit`` keeps at most that many (none or 0: all).

        Failures first is two ranges, each in datum id order: the troubled datums (a partial index holds just
        them), then the others from where the troubled ones end; so no page sorts all of a job's datums.
        """
        limit = limit or None
        with self.ctx.db.read() as s:
            job = self.job_row(s, job_id)
            if not failed_first:
                return datum_rows.info(job, list(s.scalars(datum_rows.listed(job).offset(offset or None)
                                                           .limit(limit))))
            rows = list(s.scalars(datum_rows.listed(job, troubled=True).offset(offset or None).limit(limit)))
            if limit is not None and len(rows) == limit:
                return datum_rows.info(job, rows)
            troubled = offset + len(rows) if rows else s.scalar(
                select(func.count()).select_from(datum_rows.listed(job, troubled=True).subquery()))
            rest = datum_rows.listed(job, troubled=False).offset(max(0, offset - (troubled or 0)) or None)
            rows += s.scalars(rest.limit(None if limit is None else limit - len(rows)))
            return datum_rows.info(job, rows)

    def datum(self, job_id: str, datum_id: str) -> DatumInfo:
        with self.ctx.db.read() as s:
            job = self.job_row(s, job_id)
            row = datum_rows.find(s, job, self.datum_id(s, datum_id, job))
            if row is None:
                raise NotFound(f"datum {datum_id} not found in job {job.id}")
            return datum_rows.info(job, [row])[0]


_GC_LOCK = threading.Lock()
_GC_HOLDERS = [0]  # running jobs that asked for fewer collections; the first saved the thresholds
_GC_SAVED: list[tuple[int, int, int]] = []


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Python's cyclic collector less often while datums run: each datum makes thousands of short-lived objects,
    and the default threshold (700) ran a collection every few datums (~6% of a tiny-datum job's CPU). Process-
    wide, so jobs running at once share it; the thresholds come back when the last one ends."""
    with _GC_LOCK:
        if _GC_HOLDERS[0] == 0:
            _GC_SAVED[:] = [gc.get_threshold()]
            first, *rest = _GC_SAVED[0]
            gc.set_threshold(max(first, 50_000), *rest)
        _GC_HOLDERS[0] += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_HOLDERS[0] -= 1
            if _GC_HOLDERS[0] == 0 and _GC_SAVED:
                gc.set_threshold(*_GC_SAVED[0])


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, TuskError) else f"{type(exc).__name__}: {exc}"


class _RecordStatements(NamedTuple):
    upsert: Any  # a datum's run row, replaced when the datum runs again in the job
    cache: Any  # its cache entry, kept when one exists
    reused: Any  # a skipped datum's run row, kept when one exists


def _run_row(job_id: str, d: Datum, h: str, o: DatumOutcome, stamp: Any = None) -> dict[str, Any]:
    return {
        "job_id": job_id, "datum_id": d.id, "hash": h, "state": o.state, "output_tree": o.output_tree,
        "inputs": json.dumps([{"name": i.name, "repo": i.repo, "path": i.path, "commit": i.commit}
                              for i in d.inputs]),
        "tries": o.tries, "log": o.log, "error": o.error, "finished_at": stamp or now(),
        "download_seconds": o.stats.get("download_seconds", 0.0),
        "process_seconds": o.stats.get("process_seconds", 0.0),
        "upload_seconds": o.stats.get("upload_seconds", 0.0),
        "download_bytes": int(o.stats.get("download_bytes", 0)),
        "upload_bytes": int(o.stats.get("upload_bytes", 0)),
    }


_HIDING_ROW = {"hash": "", "state": datum_rows.GONE, "inputs": "[]", "output_tree": None, "tries": 0, "log": "",
             "error": None, "download_seconds": 0.0, "process_seconds": 0.0, "upload_seconds": 0.0,
             "download_bytes": 0, "upload_bytes": 0}


class _Plan(NamedTuple):
    """What a job runs, and how its output is made."""

    total: int  # its datums
    todo: list[Datum]  # those to run
    hashes: dict[str, str]  # by datum id, at least of those to run
    outputs: dict[str, str]  # the output trees of those not to run that the merge needs, by datum id
    skipped: int
    resumed: int  # finished before a crash
    merge: Callable[[dict[str, str]], str]  # every output tree needed (``outputs`` and the runs') -> the root


class _Previous(NamedTuple):
    """The job whose output a job's datums are changes from."""

    job: str
    base: str  # the job whose rows it shares (itself, when it has a row for each of its datums)
    sources: dict[str, tuple[str, str]]  # its input commits and their trees, by input name
    output: str  # its output tree
    total: int  # its datums


def _copied_row(job_id: str, row: DatumRunRow, commits: dict[str, str]) -> dict[str, Any]:
    """A datum row of the previous job as this job's: its skipped datum, read from this job's input commits (the
    same content: the same hash), or (``gone``) a datum it hides."""
    if row.state not in datum_rows.SHAREABLE:
        return {**_HIDING_ROW, "job_id": job_id, "datum_id": row.datum_id}
    inputs = [{**i, "commit": commits.get(i["name"], i["commit"])} for i in json.loads(row.inputs)]
    return {**_HIDING_ROW, "job_id": job_id, "datum_id": row.datum_id, "hash": row.hash, "state": "skipped",
            "output_tree": row.output_tree, "inputs": json.dumps(inputs)}
