"""First contact: the mistakes a new user makes, through the CLI as a subprocess, on every CLI backend.

Each one exits non-zero with one line on stderr that says what to do, and never a traceback. A job the
command waited for that fails exits 6 with the pipeline, job, datum and the user program's own error; a
Ctrl-C says what landed and leaves no job stuck.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from tests.conftest import CLI_BACKENDS, Backend, open_backend
from tusk.errors import JobFailed
from tusk.sdk import Client

TUSK = [sys.executable, "-m", "tusk"]
JOB_FAILED = 6


@pytest.fixture(params=CLI_BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from open_backend(request.param, request, tmp_path)


def _env(backend: Backend, **extra: str) -> dict[str, str]:
    return backend.subprocess_env() | {"TUSK_RUNTIME": "local"} | extra


def run(backend: Backend, *args: str, env: dict[str, str] | None = None, block: str | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``tusk ARGS``; ``block`` names modules to hide, as if their extra were not installed."""
    argv = [*TUSK, *args] if block is None else [
        sys.executable, "-c", f"import sys; sys.modules.update(dict.fromkeys({block.split(',')!r}));"
        " from tusk.cli.main import main; main()", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env or _env(backend), timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


@dataclass
class Mistake:
    args: tuple[str, ...]
    hint: str  # what the one line must say (case-insensitive): the fix, or what was wrong with the name in it
    code: int | None = None  # the documented exit code, where one is specific
    env: dict[str, str] = field(default_factory=dict)
    block: str | None = None
    embedded: bool = False  # a mistake about the local store: run without TUSK_ADDRESS
    once: bool = False  # caught before any store is asked (parsing, local files, extras): tried on one backend


def M(*args: str, hint: str, code: int | None = None, **kw: object) -> Mistake:
    return Mistake(tuple(args), hint, code, **kw)  # type: ignore[arg-type]


def _files(tmp: Path) -> dict[str, Path]:
    files = {
        "a.csv": "x\n1\n", "syntax.json": '{"pipeline": {"name": "p"},, }',
        "unknown.json": json.dumps({"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]},
                                    "input": {"pfs": {"repo": "data", "glob": "/*", "globb": "x"}}}),
        "nocmd.json": json.dumps({"pipeline": {"name": "p"}, "transform": {},
                                  "input": {"pfs": {"repo": "data", "glob": "/*"}}}),
        "noinput.json": json.dumps({"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]},
                                    "input": {"pfs": {"repo": "nosuch", "glob": "/*"}}}),
        "badname.json": json.dumps({"pipeline": {"name": "a b!"}, "transform": {"cmd": ["true"]},
                                    "input": {"pfs": {"repo": "data", "glob": "/*"}}}),
        "badglob.json": json.dumps({"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]},
                                    "input": {"pfs": {"repo": "data", "glob": "/[a"}}}),
        "syntax.yaml": "pipeline: {name: p\ntransform: [",
        "wrong_columns.csv": "age,hourz\n30,40\n",
        "too_few.csv": "age\n30\n",
        "rows.csv": "age,hours\n30,40\n",
        "deploy.yaml": "name: d\npredictors: 12\n",
    }
    out = {}
    for name, text in files.items():
        (tmp / name).write_text(text)
        out[name] = tmp / name
    (tmp / "adir").mkdir()
    (tmp / "adir" / "f").write_text("f")
    out["adir"] = tmp / "adir"
    return out


def _model_bytes() -> bytes:
    buf = io.BytesIO()
    joblib.dump(LinearRegression().fit(pd.DataFrame({"age": [1.0, 2.0, 3.0], "hours": [3.0, 1.0, 2.0]}),
                                       [1.0, 2.0, 3.0]), buf)
    return buf.getvalue()


def _catalogue(f: dict[str, Path], home: Path) -> list[Mistake]:
    missing = "0123456789abcdef0123456789abcdef"
    local = {"TUSK_ADDRESS": "", "TUSK_HOME": str(home / "local")}
    mistakes = [
        # typos in commands and options
        M("repoo", "list", hint="did you mean 'repo'", code=2),
        M("repo", "lst", hint="--help", code=2),
        M("repo", "list", "--bogus", hint="no such option", code=2),
        M("put", "file", "data@master:/x", "-f", hint="requires an argument", code=2),
        M("put", "file", hint="missing argument", code=2),
        M("repo", "create", hint="missing argument", code=2),
        M("commit", "wait", "data@master", "--timeout", "soon", hint="invalid value for '--timeout'", code=2),
        M("file", "put", "data@master:/x", "-f", str(f["a.csv"]), "--recursiv", hint="--help", code=2),
        # unknown repos, branches, commits, jobs
        M("repo", "inspect", "nosuch", hint="nosuch", code=2),
        M("list", "file", "nosuch@master", hint="tusk repo create nosuch", code=2),
        M("list", "file", "data@nobranch", hint="nobranch", code=2),
        M("get", "file", "data@master:/nosuch.csv", hint="/nosuch.csv", code=2),
        M("inspect", "commit", f"data@{missing}", hint=missing[:8], code=2),
        M("delete", "repo", "nosuch", hint="nosuch", code=2),
        M("branch", "create", "data@b", "--head", "nosuch", hint="nosuch", code=2),
        M("pipeline", "inspect", "nosuch", hint="nosuch", code=2),
        M("job", "inspect", missing, hint=missing[:8], code=2),
        M("job", "wait", missing, hint=missing[:8], code=2),
        M("datum", "list", missing, hint=missing[:8], code=2),
        M("lineage", "nosuch@master", hint="nosuch", code=2),
        M("commit", "finish", "data@master", hint="start a new commit", code=2),
        # bad refs and paths
        M("get", "file", "data@master^9:/a.csv", hint="master", code=2),
        M("get", "file", "data@@master:/a.csv", hint="data@@master", code=2),
        M("list", "file", "data@master:/../x", hint="..", code=2),
        M("put", "file", "data@master^:/x", "-f", str(f["a.csv"]), hint="write to a branch", code=2),
        M("repo", "create", "bad name!", hint="bad name!", code=2),
        # missing local files, bad globs
        M("put", "file", "data@master:/x", "-f", "/nonexistent/a.csv", hint="no such local file", code=2),
        M("put", "file", "data@master:/d", "-f", str(f["adir"]), hint="-r", code=2),
        M("glob", "file", "data@master:/[a", hint="[a", code=2),
        M("pipeline", "create", "-f", "/nonexistent/spec.json", hint="no such spec file", code=2),
        # malformed specs
        M("pipeline", "create", "-f", str(f["syntax.json"]), hint="syntax.json", code=2),
        M("pipeline", "create", "-f", str(f["syntax.yaml"]), hint="syntax.yaml", code=2),
        M("pipeline", "create", "-f", str(f["unknown.json"]), hint="input.pfs.globb", code=2),
        M("pipeline", "create", "-f", str(f["nocmd.json"]), hint="cmd", code=2),
        M("pipeline", "create", "-f", str(f["noinput.json"]), hint="nosuch", code=2),
        M("pipeline", "create", "-f", str(f["badname.json"]), hint="a b!", code=2),
        M("pipeline", "create", "-f", str(f["badglob.json"]), hint="[a", code=2),
        M("datum", "list", "-f", str(f["unknown.json"]), hint="input.pfs.globb", code=2),
        M("deploy", "create", "-f", str(f["deploy.yaml"]), hint="predictors", code=2),
        # models: no model, wrong columns, no such rows file
        M("model", "predict", "data@master", "-f", str(f["rows.csv"]), hint="no model", code=2),
        M("model", "predict", "models@master", "-f", str(f["wrong_columns.csv"]), hint="hours", code=2),
        M("model", "predict", "models@master", "-f", str(f["too_few.csv"]), hint="hours", code=2),
        M("model", "predict", "models@master", "-f", "/nonexistent.csv", hint="no such file", code=2),
        M("model", "inspect", "data@master", hint="no model", code=2),
        # missing extras (the module hidden, as if not installed) — about the local store
        M("repo", "list", hint="pip install 'tusk[s3]'", code=4, block="boto3", embedded=True,
          env=local | {"TUSK_OBJECTS_URL": "s3://bucket/prefix"}),
        M("repo", "list", hint="pip install 'tusk[postgres]'", code=4, block="psycopg", embedded=True,
          env=local | {"TUSK_DATABASE_URL": "postgresql+psycopg://tusk@127.0.0.1:5432/test"}),
        M("demo", hint="pip install 'tusk[ml]'", code=2, block="sklearn", embedded=True, env=local),
        M("model", "predict", "models@master", "-f", str(f["rows.csv"]), hint="pip install 'tusk[ml]'", code=2,
          block="sklearn,sklearn.linear_model,sklearn.linear_model._base"),
        # an unreachable server
        M("repo", "list", hint="is `tusk server` running", code=4,
          env={"TUSK_ADDRESS": "http://127.0.0.1:9", "TUSK_HOME": str(home / "nowhere")}),
    ]
    early = ("no such", "missing argument", "requires an argument", "invalid value", "did you mean", "--help",
             "syntax.", "pip install", "tusk server", "-r")
    for m in mistakes:
        m.once = m.block is not None or "TUSK_ADDRESS" in m.env or m.hint.lower().startswith(early)
    return mistakes


def _check(result: subprocess.CompletedProcess[str], m: Mistake) -> str | None:
    """What is wrong with how the CLI answered the mistake, or None."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if result.returncode == 0:
        return "exit 0"
    if m.code is not None and result.returncode != m.code:
        return f"exit {result.returncode}, not {m.code}"
    if "Traceback" in result.stderr + result.stdout:
        return "a traceback"
    if len(lines) != 1:
        return f"{len(lines)} lines on stderr"
    if not lines[0].startswith("error: ") or m.hint.lower() not in lines[0].lower():
        return f"the line does not say {m.hint!r}"
    return None


def test_a_catalogue_of_mistakes(backend: Backend, tmp_path: Path) -> None:
    files = _files(tmp_path)
    with Client(settings=backend.settings()) as c:
        c.create_repo("data")
        c.put_file("data@master:/a.csv", b"x\n1\n")
        c.create_repo("models")
        c.put_file("models@master:/model.joblib", _model_bytes())
    mistakes = _catalogue(files, tmp_path)
    assert len(mistakes) >= 40
    if backend.name != "sqlite-local":
        mistakes = [m for m in mistakes if not m.once]

    def attempt(m: Mistake) -> tuple[Mistake, subprocess.CompletedProcess[str]]:
        env = _env(backend) | m.env
        if m.embedded or not env.get("TUSK_ADDRESS"):
            env.pop("TUSK_ADDRESS", None)
        return m, run(backend, *m.args, env=env, block=m.block)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(attempt, mistakes))
    wrong = [f"tusk {' '.join(m.args)}: {why}\n  stderr: {r.stderr.strip()[-600:]}"
             for m, r in results if (why := _check(r, m)) is not None]
    assert not wrong, "\n".join(wrong)
    with Client(settings=backend.settings()) as c:  # none of it changed anything
        assert [r.name for r in c.list_repos()] == ["data", "models"]
        assert len(c.list_commits("data@master")) == 1


def test_a_bad_token(tmp_path: Path) -> None:
    from tusk.config import Settings
    from tusk.root import create_server_app
    from tusk.root.server import serve_in_thread
    from tusk.services import Services

    settings = Settings.for_home(tmp_path / "server")
    with Client(settings=settings) as c:
        c.activate_auth("root")
    app = create_server_app(Services.open(settings), auth=True, poll=0.2, serving=False, close_services=True)
    backend = Backend("auth", {})
    with serve_in_thread(app) as url:
        for token in ("not-a-token", ""):
            env = _env(backend, TUSK_ADDRESS=url, TUSK_TOKEN=token, TUSK_HOME=str(tmp_path / "client"))
            r = run(backend, "repo", "list", env=env)
            m = M("repo", "list", hint="token", code=2)
            assert _check(r, m) is None, r.stderr


def test_ctrl_c_before_the_commit_lands(backend: Backend) -> None:
    with Client(settings=backend.settings()) as c:
        c.create_repo("data")
        c.put_file("data@master:/first", b"1")
    proc = subprocess.Popen([*TUSK, "put", "file", "data@master:/x", "-f", "-"], env=_env(backend),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    proc.stdin.write("partial")
    proc.stdin.flush()
    time.sleep(2.0)  # reading stdin: the commit has not landed
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: interrupted:"), err
    if not backend.env.get("TUSK_ADDRESS"):
        assert "nothing was committed" in lines[0]
    with Client(settings=backend.settings()) as c:
        assert len(c.list_commits("data@master")) == 1


@pytest.mark.parametrize("backend", ["sqlite-local"], indirect=True)
def test_ctrl_c_while_the_cli_loads_is_its_one_line_not_a_traceback(backend: Backend) -> None:
    proc = subprocess.Popen([*TUSK, "put", "file", "data@master:/x", "-f", "-"], env=_env(backend),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    maps, deadline = Path(f"/proc/{proc.pid}/maps"), time.monotonic() + 60
    while "blake3" not in maps.read_text() and time.monotonic() < deadline:  # loading tusk.cli.main's modules
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err == "error: interrupted: nothing was committed\n", err


@pytest.mark.parametrize("backend", ["sqlite-local"], indirect=True)
def test_ctrl_c_through_code_an_extension_ran_still_exits_130(backend: Backend, tmp_path: Path) -> None:
    """CPython's ``-m`` dies by SIGINT, whatever ``sys.exit`` said, once a KeyboardInterrupt passed through code a C
    extension ran with ``PyRun_String`` (as a Cython module's initialisation does, if the Ctrl-C lands then)."""
    (tmp_path / "ctrl_c_in_c.py").write_text(textwrap.dedent("""\
        import ctypes
        import tusk.cli.main
        from tusk.cli.entry import run

        run_string = ctypes.pythonapi.PyRun_String
        run_string.restype = ctypes.py_object
        run_string.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.py_object, ctypes.py_object]
        code = b"import os, signal, time\\nos.kill(os.getpid(), signal.SIGINT)\\ntime.sleep(30)\\n"
        tusk.cli.main.normalize_argv = lambda *a: run_string(code, 257, {}, {})  # 257: Py_file_input
        run()
        """))
    env = _env(backend) | {"PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "ctrl_c_in_c", "list", "repo"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 130 and proc.stderr == "error: interrupted: nothing was committed\n", proc


@pytest.mark.parametrize("backend", ["sqlite-local", "postgres-s3"], indirect=True)
def test_ctrl_c_during_a_job_leaves_it_interrupted_and_resumable(backend: Backend, tmp_path: Path) -> None:
    started, fast = tmp_path / "started", tmp_path / "fast"
    spec = tmp_path / "slow.json"
    spec.write_text(json.dumps({"pipeline": {"name": "slow"}, "transform": {"cmd": [
        "sh", "-c", f"echo $PACH_DATUM_ID >> {started}; test -e {fast} || sleep 30; cp $in /pfs/out/"]},
        "input": {"pfs": {"repo": "in", "glob": "/*"}}}))
    with Client(settings=backend.settings()) as c:
        c.create_repo("in")
        c.create_pipeline(spec, wait=False)
    src = tmp_path / "a.txt"
    src.write_text("a")
    proc = subprocess.Popen([*TUSK, "put", "file", "in@master:/a.txt", "-f", str(src)], env=_env(backend),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - began < 20  # the user program was ended, not waited for
    assert proc.returncode == 130 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "landed" in lines[0] and "resume on the next `tusk job wait`" in lines[0], err
    jobs = json.loads(run(backend, "list", "job", "-p", "slow", "--json").stdout)
    assert jobs[0]["state"] == "interrupted" and "interrupted" in jobs[0]["reason"]  # (newest first)
    with Client(settings=backend.settings()) as c:
        commit = c.list_commits("in@master")[0]
        assert commit.id in lines[0]  # the put's commit landed, as the message says
    fast.touch()  # the resumed run need not sleep
    r = run(backend, "job", "wait", jobs[0]["id"], "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["state"] == "success"


def _failing_spec(tmp_path: Path) -> Path:
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"pipeline": {"name": "bad"}, "transform": {"cmd": ["python3", "nosuch.py"]},
                                "input": {"pfs": {"repo": "in", "glob": "/*"}}, "datum_tries": 1}))
    return spec


def test_a_failing_pipeline_fails_the_command_that_waited_for_it(backend: Backend, tmp_path: Path) -> None:
    spec = _failing_spec(tmp_path)
    src = tmp_path / "a.txt"
    src.write_text("a")
    assert run(backend, "repo", "create", "in").returncode == 0
    assert run(backend, "put", "file", "in@master:/a.txt", "-f", str(src)).returncode == 0  # no pipeline yet

    created = run(backend, "pipeline", "create", "-f", str(spec))
    assert created.returncode == JOB_FAILED, created.stderr
    assert "Traceback" not in created.stderr
    jobs = json.loads(run(backend, "list", "job", "-p", "bad", "--json").stdout)
    datums = json.loads(run(backend, "list", "datum", jobs[0]["id"], "--json").stdout)
    assert "pipeline bad" in created.stderr and jobs[0]["id"] in created.stderr
    assert datums[0]["id"] in created.stderr
    assert "can't open file" in created.stderr and "nosuch.py" in created.stderr  # the program's own words
    assert f"tusk logs --job {jobs[0]['id']}" in created.stderr

    put = run(backend, "put", "file", "in@master:/b.txt", "-f", str(src))
    assert put.returncode == JOB_FAILED and "can't open file" in put.stderr, put.stderr
    assert "committed to in@master" in put.stdout  # the write stands
    assert run(backend, "get", "file", "in@master:/b.txt").stdout == "a"

    assert run(backend, "put", "file", "in@master:/c.txt", "-f", str(src), "--no-wait").returncode == 0
    waited = run(backend, "job", "wait", json.loads(run(backend, "list", "job", "-p", "bad", "--json").stdout)[0]
                 ["id"])
    assert waited.returncode == JOB_FAILED and "can't open file" in waited.stderr, waited.stderr


def test_the_sdk_reports_failed_jobs_when_asked(backend: Backend, tmp_path: Path) -> None:
    spec = _failing_spec(tmp_path)
    with Client(settings=Backend("x", backend.env | {"TUSK_RUNTIME": "local"}).settings()) as c:
        c.create_repo("in")
        c.put_file("in@master:/a.txt", b"a")
        assert c.last_jobs == []
        c.raise_for_jobs()  # nothing waited for: nothing to raise
        c.create_pipeline(spec)  # the write returns: it landed
        assert [j.state for j in c.last_jobs] == ["failure"]
        with pytest.raises(JobFailed) as caught:
            c.raise_for_jobs()
        assert [j.pipeline for j in caught.value.jobs] == ["bad"] and "nosuch.py" in str(caught.value)
        commit = c.put_file("in@master:/b.txt", b"b")
        assert commit is not None and c.last_jobs[0].global_id == commit.global_id
        with pytest.raises(JobFailed):
            c.raise_for_jobs()
        assert c.wait_job(c.last_jobs[0].id).state == "failure"
        with pytest.raises(JobFailed):
            c.raise_for_jobs()
        c.create_repo("other")
        c.put_file("other@master:/x", b"x")  # triggers nothing
        assert c.last_jobs == []
        c.raise_for_jobs()
