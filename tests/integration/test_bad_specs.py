"""Bad pipeline specs through the CLI: each is refused with exit code 2 and a one-line error, before anything is
written; and a poison pipeline's job fails on its own without holding up anyone else's writes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from tests.conftest import Backend, open_backend
from tusk.config import Settings
from tusk.ids import new_commit_id
from tusk.sdk import Client
from tusk.storage.metadata import (
    BranchRow,
    CommitRow,
    JobRow,
    PipelineRow,
    PipelineVersionRow,
    RepoRow,
    RoleBindingRow,
)
from tusk.versioning.context import now

TUSK = [sys.executable, "-m", "tusk"]
TABLES = (RepoRow, BranchRow, CommitRow, PipelineRow, PipelineVersionRow, JobRow, RoleBindingRow)


@pytest.fixture(params=["sqlite-local", "remote"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from open_backend(request.param, request, tmp_path)


def run(backend: Backend, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = backend.subprocess_env() | {"TUSK_RUNTIME": "local"}
    proc = subprocess.run([*TUSK, *args], capture_output=True, text=True, env=env, timeout=120, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def store(backend: Backend) -> Client:
    """An embedded client on the store itself (the server's, for the remote backend)."""
    env = (backend.store_env or backend.env) | {"TUSK_RUNTIME": "local"}
    return Client(settings=Settings.from_env(env=env), run_jobs=False)


def census(c: Client) -> dict[str, int]:
    with c.services.ctx.db.read() as s:
        return {t.__tablename__: s.scalar(select(func.count()).select_from(t)) or 0 for t in TABLES}


def _spec(name: str, inp: dict[str, Any]) -> dict[str, Any]:
    return {"pipeline": {"name": name}, "transform": {"cmd": ["sh", "-c", "cp -r /pfs/data/. /pfs/out/ || true"]},
            "input": inp}


def _pfs(glob: str = "/*", repo: str = "data", **extra: str) -> dict[str, Any]:
    return {"pfs": {"repo": repo, "glob": glob, **extra}}


CREATE = {  # name: (spec, what the error says)
    "unknown field": (_spec("p", {"pfs": {"repo": "data", "glob": "/*", "lazzy": True}}), "input.pfs.lazzy"),
    "unbalanced glob in a join": (_spec("p", {"join": [_pfs("/(*", join_on="$1"), _pfs("/(*)", name="d2",
                                                                                      join_on="$1")]}),
                                  "input.join[0].pfs.glob"),
    "bad character class": (_spec("p", _pfs("/[z-a]*")), "'/[z-a]*': character class [z-a]: bad character range"),
    "missing capture group in group_by": (_spec("p", {"group": [_pfs("/(*)", group_by="$9")]}),
                                          "input.group[0].pfs.group_by: $9"),
    "missing capture group in join_on": (_spec("p", {"join": [_pfs("/(*)", join_on="$2"),
                                                              _pfs("/(*)", name="d2", join_on="$1")]}),
                                         "input.join[0].pfs.join_on: $2"),
    "join without join_on": (_spec("p", {"join": [_pfs("/(*)"), _pfs("/(*)", name="d2", join_on="$1")]}),
                             "needs pfs.join_on"),
    "over-long input name": (_spec("p", _pfs(name="n" * 300)), "invalid input name"),
    "input name that is a path": (_spec("p", _pfs(name="../escape")), "invalid input name"),
    "reading its own output": (_spec("own", _pfs(repo="own")), "cannot read its own output"),
    "missing input repo": (_spec("p", _pfs(repo="missing")), "repo 'missing' not found"),
    "name of an existing repo": (_spec("public", _pfs()), "repo 'public' already exists"),
    "name of an existing pipeline": (_spec("cyc1", _pfs()), "pipeline 'cyc1' already exists"),
    "cron on someone else's repo": (_spec("p", {"cron": {"name": "tick", "spec": "@every 60s", "repo": "public"}}),
                                    "repo 'public' already exists"),
    "cron ticking into its own output": (_spec("p", {"cron": {"name": "t", "spec": "@every 60s", "repo": "p"}}),
                                         "tick repo of its own"),
    "cron tick repo name too long": (_spec("p" * 60, {"cron": {"name": "tick", "spec": "@every 60s"}}),
                                     "its tick repo is an invalid repo name"),
    "bad cron schedule": (_spec("p", {"cron": {"name": "tick", "spec": "every tuesday"}}), "input.cron.spec"),
}

UPDATE = {
    "a cycle": (_spec("cyc1", _pfs(repo="cyc2")), "cyc1 → cyc2 → cyc1"),
    "reading its own output": (_spec("cyc1", _pfs(repo="cyc1")), "cannot read its own output"),
    "bad glob": (_spec("cyc1", _pfs("/(*")), "input.pfs.glob"),
    "missing capture group": (_spec("cyc1", {"group": [_pfs("/(*)", group_by="$3")]}), "$3"),
    "cron on someone else's repo": (_spec("cyc1", {"cross": [_pfs(), {"cron": {
        "name": "tick", "spec": "@every 60s", "repo": "public"}}]}), "repo 'public' already exists"),
    "a pipeline that does not exist": (_spec("nope", _pfs()), "pipeline 'nope' not found"),
}


@pytest.fixture
def world(backend: Backend) -> Iterator[Backend]:
    """Repos data and public, and pipelines cyc1 (reads data) and cyc2 (reads cyc1)."""
    run(backend, "repo", "create", "data")
    run(backend, "repo", "create", "public")
    with store(backend) as c:
        c.put_file("data@master:/a_1.txt", b"one")
        c.run_jobs = True
        c.create_pipeline(_spec("cyc1", _pfs()))
        c.create_pipeline(_spec("cyc2", _pfs(repo="cyc1")))
        c.services.jobs.drain()  # the server's scheduler may hold a job of these: the census starts when all are done
    yield backend


@pytest.mark.parametrize("verb", ["create", "update"])
def test_every_bad_spec_is_refused_before_anything_is_written(world: Backend, tmp_path: Path, verb: str) -> None:
    cases = CREATE if verb == "create" else UPDATE
    with store(world) as c:
        before = census(c)
        for case, (spec, says) in cases.items():
            path = tmp_path / f"{case.replace(' ', '_')}.json"
            path.write_text(json.dumps(spec))
            proc = run(world, "pipeline", verb, "-f", str(path), check=False)
            stderr = proc.stderr.strip()
            assert proc.returncode == 2, f"{case}: exit {proc.returncode}: {proc.stderr}"
            assert "\n" not in stderr and "Traceback" not in stderr, f"{case}: {proc.stderr}"
            assert stderr.startswith("error:") and says in stderr, f"{case}: {stderr}"
            assert census(c) == before, f"{case} changed the store"


def _poison(c: Client) -> None:
    """A spec stored before specs were checked (group_by $9 on a glob with one group): its job can only fail."""
    c.create_pipeline(_spec("poison", {"group": [_pfs("/(*)", group_by="$1")]}), wait=False)
    with c.services.ctx.db.write() as s:
        version = s.scalar(select(PipelineVersionRow).join(PipelineRow).where(PipelineRow.name == "poison"))
        assert version is not None
        version.spec_json = version.spec_json.replace('"$1"', '"$9"')


def test_a_poison_job_fails_and_holds_up_no_one(world: Backend, tmp_path: Path) -> None:
    src = tmp_path / "x.txt"
    src.write_text("x")
    with store(world) as c:
        _poison(c)
        # another runner holds one of poison's jobs, alive and renewing: nobody else's write may wait for it
        with c.services.ctx.db.write() as s:
            job = c.services.jobs._create_job(s, c.services.pipelines.load(s, "poison"), new_commit_id())
            job.state, job.owner, job.lease_expires_at = "running", "another-host:1/runner", now() + timedelta(1)
            stuck = job.id
        t = time.monotonic()
        run(world, "put", "file", "public@master:/x.txt", "-f", str(src))  # unrelated to poison: at once
        assert time.monotonic() - t < 15
        with c.services.ctx.db.write() as s:  # the other runner lets go of it
            s.execute(update(JobRow).where(JobRow.id == stuck).values(state="killed"))
        put = run(world, "put", "file", "data@master:/b_2.txt", "-f", str(src), check=False)  # triggers poison
        assert put.returncode == 6 and "poison" in put.stderr, put.stderr  # its job failed; the put landed...
        jobs = c.list_jobs("poison")
        assert jobs and all(j.state in ("failure", "killed") for j in jobs)  # ...none stays running
        assert "$9 refers to a capture group" in (jobs[0].reason or "")
        assert c.get_file("cyc1@master:/b_2.txt") == b"x"  # ...and the put's own pipelines ran

