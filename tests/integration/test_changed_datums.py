"""A job whose pipeline's output came from an earlier job over the same input takes its datums as changes from
that job (``JobService._changed_datums``): it globs only the paths the input commit changed, and inherits every
other datum's row and output. Checked against the same history with every job globbing its whole input: the same
job states and counts, the same output trees and the same datum listings; for pfs inputs on SQLite + local
objects and PostgreSQL + S3, for cross, union, join and group inputs (``tusk.pipelines.datum_changes``) on
SQLite; and a SIGKILL in the middle of such a job redoes nothing it finished."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Backend
from tusk import Client
from tusk.config import Settings
from tusk.pipelines import jobs as jobs_module
from tusk.pipelines.jobs import JobService
from tusk.pipelines.records import DatumInfo, JobInfo

# each datum writes one file named after its path: its path and, for a directory, what it holds, for a file,
# its content
WORK = ('grep -rqs bad "$data" && exit 1; p=${data#*/pfs/data}; n=$(echo "$p" | md5sum | cut -c1-16); '
        '{ echo "$p"; if [ -d "$data" ]; then (cd "$data" && find . | sort); else cat "$data"; fi; } > /pfs/out/$n')
GLOBS = {"top": "/*", "every": "/**", "second": "/*/*", "root": "/"}


def _spec(name: str, glob: str) -> dict[str, Any]:
    return {"pipeline": {"name": name}, "transform": {"cmd": ["sh", "-c", WORK]},
            "input": {"pfs": {"repo": "data", "glob": glob}}}


def _client(env: dict[str, str]) -> Client:
    return Client(settings=Settings.from_env(env=env | {"TUSK_RUNTIME": "local"}))


def _history(c: Client) -> None:
    """Changes of every kind: files and directories changed, added and deleted, a change undone (the datum
    cache), a new pipeline version, a failing datum and its fix, the input emptied and filled again."""
    c.create_repo("data")
    with c.modify("data@master") as m:
        for path in ("/a/x", "/a/y", "/b/z", "/c/d/w", "/c/v", *(f"/f{i}" for i in range(30))):
            m.put_bytes(path, f"{path} first\n".encode())
    for name, glob in GLOBS.items():
        c.create_pipeline(_spec(name, glob))
    c.put_file("data@master:/a/x", b"x changed\n")
    with c.modify("data@master") as m:
        m.put_bytes("/e/new", b"new\n")
        m.put_bytes("/f30", b"thirty\n")
        m.delete("/b")
        m.delete("/f2")
        m.put_bytes("/c/d/w", b"deeper change\n")
    c.put_file("data@master:/a/x", b"/a/x first\n")  # back as it was: its datums come from the cache
    for name, glob in GLOBS.items():  # a new version, the same datums (no reprocess)
        c.update_pipeline(_spec(name, glob) | {"description": "v2"})
    c.put_file("data@master:/f1", b"one changed\n")
    c.put_file("data@master:/a/y", b"bad\n")
    c.put_file("data@master:/f3", b"three changed while /a/y fails\n")
    c.put_file("data@master:/a/y", b"fixed\n")
    with c.modify("data@master") as m:
        m.delete("/")
    with c.modify("data@master") as m:
        m.put_bytes("/a/x", b"/a/x first\n")
        m.put_bytes("/g/h", b"h\n")


def _plain(job: JobInfo, d: DatumInfo) -> tuple[Any, ...]:
    commits = {i["name"]: i["commit"] for i in job.input_commits}
    assert d.job == job.id and all(i["commit"] == commits[i["name"]] for i in d.inputs), (job, d)
    return d.id, d.state, tuple(i["path"] for i in d.inputs), d.error


def _record(c: Client, names: Iterable[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Each pipeline's jobs, oldest first: state, counts, output tree and datums."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for name in names:
        rows = []
        for j in reversed(c.list_jobs(name)):
            tree = c.inspect_commit(f"{name}@{j.output_commit}").tree if j.output_commit else None
            rows.append((j.state, j.datums_total, j.datums_processed, j.datums_skipped, j.datums_failed, tree,
                         [_plain(j, d) for d in c.list_datums(j.id)]))
        out[name] = rows
    return out


def _compared(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, history: Callable[[Client], None],
              names: Iterable[str]) -> tuple[dict[str, list[tuple[Any, ...]]], dict[str, list[str]], int]:
    """The history run with every job listing all its datums, and again with jobs taking the changes: each
    pipeline's record, which must be the same both times; how each job of the second run was planned; and how
    many of them globbed their whole input.

    The specs are dicts, whose code is the working directory: it is an empty one of the test's own, so that
    another test writing into the checkout cannot change the code between a create and an update (a change the
    update would rightly reprocess for)."""
    code = tmp_path / "code"
    code.mkdir()
    monkeypatch.chdir(code)
    with monkeypatch.context() as m:
        m.setattr(JobService, "_changed_datums", lambda *a: None)
        with _client({"TUSK_HOME": str(tmp_path / "every"), "TUSK_USER": "tester"}) as c:
            history(c)
            expected = _record(c, names)
    planned: dict[str, list[str]] = {name: [] for name in names}  # each pipeline's jobs: how each was planned
    changed, every = JobService._changed_datums, jobs_module.enumerate_datums

    def spy_changed(self: JobService, job_id: str, p: Any, *args: Any) -> Any:
        plan = changed(self, job_id, p, *args)
        planned[p.name].append("changes" if plan is not None else "every")
        return plan

    globbed: list[int] = []

    def spy_every(*args: Any, **kw: Any) -> Any:  # a job that globs its whole input
        globbed.append(1)
        return every(*args, **kw)

    monkeypatch.setattr(JobService, "_changed_datums", spy_changed)
    monkeypatch.setattr(jobs_module, "enumerate_datums", spy_every)
    with _client(backend.env) as c:
        history(c)
        got = _record(c, names)
    for name in names:
        assert [j[:6] for j in got[name]] == [j[:6] for j in expected[name]], name
        assert [j[6] for j in got[name]] == [j[6] for j in expected[name]], name
        assert len(planned[name]) == len(got[name])
    return got, planned, len(globbed)


def test_a_job_over_the_changes_equals_a_job_over_every_datum(backend: Backend, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    got, planned, globbed = _compared(backend, tmp_path, monkeypatch, _history, GLOBS)
    states = [j[0] for j in got["top"]]
    assert states.count("failure") == 2 and states[-1] == "success", states  # (/a/y bad, then /f3 beside it)
    # each job took the changes but each pipeline's first, the one that emptied its input (no datum left to
    # share) and the one after it (no datum to inherit); with glob "/" a change changes the one datum, so only a
    # job over an unchanged input (a new pipeline version) takes the changes
    for name in ("top", "every", "second"):
        assert planned[name].count("every") == 3, (name, planned[name])
    assert planned["root"].count("changes") == 1, planned["root"]
    assert globbed == sum(p.count("every") for p in planned.values())  # the others globbed nothing


# a datum of a combined input writes one file named after what it sees under /pfs: the paths and their content
COMBINED_WORK = ("cd /pfs && l=$(find . -path ./out -prune -o -path './.*' -prune -o -type f -print | sort) && "
                 "! grep -qs bad $l /dev/null && n=$(echo \"$l\" | md5sum | cut -c1-16) && "
                 "{ echo \"$l\"; cat $l /dev/null; } > out/$n")


def _pfs(repo: str, glob: str, **more: Any) -> dict[str, Any]:
    return {"pfs": {"repo": repo, "glob": glob, **more}}


COMBINED: dict[str, dict[str, Any]] = {
    "cross": {"cross": [_pfs("data", "/*"), _pfs("model", "/")]},  # data x model, the usual one
    "crosses": {"cross": [_pfs("data", "/f2*"), _pfs("model", "/*"), _pfs("other", "/*")]},
    "union": {"union": [_pfs("data", "/*"), _pfs("other", "/*")]},
    "nested": {"cross": [{"union": [_pfs("data", "/*/*"), _pfs("other", "/*")]}, _pfs("model", "/*")]},
    "join": {"join": [_pfs("data", "/(f*)", join_on="$1", outer_join=True), _pfs("other", "/(f*)", join_on="$1")]},
    "group": {"group": [_pfs("data", "/(f*)", group_by="$1"), _pfs("other", "/(*)", group_by="$1")]},
}


def _combined_history(c: Client) -> None:
    """Changes to each side of the combinations: a file changed, added, deleted, changed back (the cache), a
    directory deleted, a failing datum and its fix, one side emptied and filled again."""
    for repo in ("data", "model", "other"):
        c.create_repo(repo)
    with c.modify("data@master") as m:
        for path in ("/a/x", "/a/y", "/b/z", *(f"/f{i}" for i in range(24))):
            m.put_bytes(path, f"{path} first\n".encode())
    with c.modify("model@master") as m:
        m.put_bytes("/m1", b"m1\n")
        m.put_bytes("/m2", b"m2\n")
    with c.modify("other@master") as m:
        for path in ("/f1", "/f2", "/o1"):
            m.put_bytes(path, f"{path} other\n".encode())
    for name, inp in COMBINED.items():
        c.create_pipeline({"pipeline": {"name": name}, "transform": {"cmd": ["sh", "-c", COMBINED_WORK]},
                           "input": inp})
    c.put_file("data@master:/f1", b"f1 changed\n")
    c.put_file("model@master:/m1", b"m1 changed\n")
    with c.modify("data@master") as m:
        m.put_bytes("/f30", b"thirty\n")
        m.delete("/f2")
        m.put_bytes("/a/x", b"x changed\n")
    with c.modify("other@master") as m:
        m.delete("/f2")
        m.put_bytes("/o1", b"o1 changed\n")
        m.put_bytes("/f3", b"three\n")
    c.put_file("data@master:/f1", b"/f1 first\n")  # back as it was: its datums come from the cache
    c.put_file("model@master:/m3", b"m3\n")
    with c.modify("data@master") as m:
        m.delete("/a")
    c.put_file("data@master:/f20", b"bad\n")
    c.put_file("data@master:/f20", b"fixed\n")
    with c.modify("model@master") as m:
        m.delete("/")
    c.put_file("model@master:/m1", b"m1 back\n")
    c.put_file("other@master:/o2", b"o2\n")


def test_combined_inputs_over_the_changes_equal_every_datum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    backend = Backend("sqlite-local", {"TUSK_HOME": str(tmp_path / "changes"), "TUSK_USER": "tester"})
    got, planned, _ = _compared(backend, tmp_path, monkeypatch, _combined_history, COMBINED)
    for name in COMBINED:
        states = [j[0] for j in got[name]]
        assert ("failure" in states) == (name != "nested") and states[-1] == "success", (name, states)  # (/f20)
        assert planned[name].count("changes") >= len(planned[name]) // 2, (name, planned[name])
    # one data file changed: the one datum with it, the others inherited; the model changed: every datum (the
    # job lists them all); the model emptied: none
    assert planned["cross"][1] == "changes" and got["cross"][1][1:5] == (26, 1, 25, 0), got["cross"][1]
    assert planned["cross"][2] == "every" and got["cross"][2][1:5] == (26, 26, 0, 0), got["cross"][2]
    assert [j[1] for j in got["cross"]][-2:] == [0, 25]


TUSK = [sys.executable, "-m", "tusk"]


def test_sigkill_mid_job_over_changes_resumes_without_redoing_datums(backend: Backend, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSK_")} | backend.env | {"TUSK_RUNTIME": "local"}
    counter = tmp_path / "runs.log"
    with _client(backend.env) as c:
        c.create_repo("in")
        with c.modify("in@master") as m:
            for i in range(120):
                m.put_bytes(f"/f{i:03}", f"{i}\n".encode())
        c.create_pipeline({"pipeline": {"name": "slow"}, "input": {"pfs": {"repo": "in", "glob": "/*"}},
                           "transform": {"cmd": ["sh", "-c", f"echo $PACH_DATUM_ID >> {counter}; "
                                                 "! grep -q changed $in || sleep 0.2; cp $in /pfs/out/"]}})
    counter.unlink()
    changed = tmp_path / "changed"
    changed.mkdir()
    for i in range(0, 120, 10):
        (changed / f"f{i:03}").write_text(f"{i} changed\n")
    proc = subprocess.Popen([*TUSK, "put", "file", "in@master:/", "-r", "-f", str(changed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not counter.exists() or len(counter.read_text().split()) < 5):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 5 <= len(counter.read_text().split()) < 12  # killed mid-job
    with _client(backend.env) as c:
        job = c.list_jobs("slow")[0]
        finished = c.wait_job(job.id)
        assert finished.state == "success", finished
        assert (finished.datums_total, finished.datums_processed, finished.datums_skipped) == (120, 12, 108)
        runs = counter.read_text().split()
        assert len(set(runs)) == 12 and len(runs) <= 14  # (as in test_pipeline_cli: at most two run twice)
        files = {f.path: c.get_file(f"slow@master:{f.path}") for f in c.list_files("slow@master")}
        assert files == {f"/f{i:03}": f"{i}{' changed' if i % 10 == 0 else ''}\n".encode() for i in range(120)}
        datums = c.list_datums(finished.id)
        assert len(datums) == 120 and sum(d.state == "success" for d in datums) == 12
