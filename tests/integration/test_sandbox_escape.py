"""Sandbox escapes: what user code must not reach, do or leave behind, whoever Tusk runs as.

Each probe runs as a pipeline's datum in the bwrap runtime and writes what it
managed into /pfs/out/report; the assertions say what it must not have managed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tusk import Client
from tusk.config import Settings
from tusk.pipelines.runtimes import BwrapRuntime
from tusk.pipelines.sandbox import software_paths

pytestmark = pytest.mark.skipif(not BwrapRuntime.available(), reason="bubblewrap is not installed")

SECRET = "TUSK-SANDBOX-SECRET-5f1c"

PROBE = """
import os, socket, subprocess, sys
home, report = sys.argv[1], {}
def attempt(name, fn):
    try:
        report[name] = repr(fn())[:200]
    except Exception as exc:
        report[name] = "refused: " + type(exc).__name__
attempt("database", lambda: open(os.path.join(home, "tusk.db"), "rb").read(16))
attempt("objects", lambda: os.listdir(os.path.join(home, "objects")))
attempt("token", lambda: open(os.path.join(home, "token")).read())
attempt("root_tusk", lambda: os.listdir("/root/.tusk"))
attempt("shadow", lambda: open("/etc/shadow").read(10))
attempt("write_input", lambda: open("/pfs/text/a.txt", "a").write("tamper"))
attempt("write_usr", lambda: open("/usr/tusk-escape", "w"))
attempt("tcp", lambda: socket.create_connection(("127.0.0.1", 5432), timeout=2))
def unix():
    s = socket.socket(socket.AF_UNIX)
    s.connect("/var/run/postgresql/.s.PGSQL.5432")
attempt("unix_socket", unix)
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
report["cap_eff"] = status["CapEff"].strip()
for name, argv in {"mount": ["mount", "-t", "tmpfs", "none", "/tmp"],
                   "remount": ["mount", "-o", "remount,bind,rw", "/usr"],
                   "mknod": ["mknod", "/tmp/null", "c", "1", "3"],
                   "unshare": ["unshare", "-U", "true"]}.items():
    report[name] = "ran" if subprocess.run(argv, capture_output=True).returncode == 0 else "refused"
report["env"] = " ".join(sorted(os.environ))
report["secret_in_env"] = str(any("SANDBOX-SECRET" in v for v in os.environ.values()))
report["tmp"] = " ".join(sorted(os.listdir("/tmp")))
open("/pfs/out/report", "w").write(__import__("json").dumps(report))
"""


def _client(tmp_path: Path, **env: str) -> Client:
    home = tmp_path / "home"
    settings = Settings.from_env(env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "TUSK_HOME": str(home),
                                      "TUSK_RUNTIME": "bwrap", "AWS_SECRET_ACCESS_KEY": SECRET,
                                      "PYTHONPATH": SECRET, **env})
    client = Client(settings=settings)
    home.mkdir(parents=True, exist_ok=True)
    (home / "token").write_text(f"tusk_x_{SECRET}")
    return client


def _run(c: Client, tmp_path: Path, name: str, code: str, *args: str, **spec: object) -> tuple[str, str]:
    """Create pipeline ``name`` running ``code`` over repo text; return (job state, datum log + error)."""
    transform: dict[str, object] = {"cmd": [sys.executable, "probe.py", *args]}
    if "transform_user" in spec:
        transform["user"] = spec.pop("transform_user")
    code_dir = tmp_path / f"code-{name}"
    code_dir.mkdir()
    (code_dir / "probe.py").write_text(code)
    (code_dir / "spec.json").write_text(json.dumps({
        "pipeline": {"name": name}, "transform": transform,
        "input": {"pfs": {"repo": "text", "glob": "/"}}, "datum_tries": 1, **spec}))
    c.create_pipeline(code_dir / "spec.json")
    job = c.list_jobs(name)[0]
    datum = c.list_datums(job.id)[0]
    return job.state, datum.log + (datum.error or "")


def test_user_code_reaches_nothing_of_the_host(tmp_path: Path) -> None:
    with _client(tmp_path) as c:
        c.create_repo("text")
        c.put_file("text@master:/a.txt", b"hello\n")
        home = str(c.services.settings.home)
        state, log = _run(c, tmp_path, "probe", PROBE, home)
        assert state == "success", log
        report = json.loads(c.get_file("probe@master:/report"))
    for name in ("database", "objects", "token", "root_tusk", "shadow", "write_input", "write_usr", "tcp",
                 "unix_socket"):
        assert report[name].startswith("refused"), (name, report[name])
    assert report["cap_eff"] == "0000000000000000"
    for name in ("mount", "remount", "mknod", "unshare"):
        assert report[name] == "refused", name
    assert report["secret_in_env"] == "False", report["env"]
    assert not {"AWS_SECRET_ACCESS_KEY", "PYTHONPATH", "TUSK_HOME", "TUSK_RUNTIME"} & set(report["env"].split())
    # a private /tmp: nothing of the host's but the way to what is bound at its own path (the pipeline's code;
    # Tusk's Python, when it lives under /tmp, as in a CI clone)
    bound = [*software_paths(), str(tmp_path)]
    assert set(report["tmp"].split()) <= {Path(p).parts[2] for p in bound if p.startswith("/tmp/")}
    assert not Path("/usr/tusk-escape").exists()
    assert (tmp_path / "home" / "token").read_text() == f"tusk_x_{SECRET}"


def test_a_symlink_to_a_host_file_is_refused(tmp_path: Path) -> None:
    with _client(tmp_path) as c:
        c.create_repo("text")
        c.put_file("text@master:/a.txt", b"hello\n")
        db = c.services.settings.home / "tusk.db"
        state, log = _run(c, tmp_path, "link", f"import os; os.symlink({str(db)!r}, '/pfs/out/db')")
        assert state == "failure"
        assert "outside /pfs" in log
        assert c.list_commits("link@master") == [] or not c.list_files("link@master:/")


def test_a_fork_bomb_ends_the_datum_not_the_machine(tmp_path: Path) -> None:
    with _client(tmp_path, TUSK_DATUM_PROCESSES="40") as c:
        c.create_repo("text")
        c.put_file("text@master:/a.txt", b"hello\n")
        bomb = ("import os, time\nfor _ in range(200):\n    try:\n        pid = os.fork()\n"
                "    except OSError:\n        raise SystemExit('fork refused')\n    if pid == 0:\n"
                "        time.sleep(30); os._exit(0)\n")
        state, log = _run(c, tmp_path, "bomb", bomb, datum_timeout="60s")
        assert state == "failure"
        assert "fork refused" in log


def test_a_memory_hog_ends_the_datum(tmp_path: Path) -> None:
    with _client(tmp_path, TUSK_DATUM_MEMORY="512M") as c:
        c.create_repo("text")
        c.put_file("text@master:/a.txt", b"hello\n")
        state, log = _run(c, tmp_path, "hog", "blob = bytearray(2 << 30)\n")
        assert state == "failure"
        assert "MemoryError" in log


def test_output_over_its_limit_fails_the_datum(tmp_path: Path) -> None:
    with _client(tmp_path, TUSK_DATUM_OUTPUT_BYTES="1M") as c:
        c.create_repo("text")
        c.put_file("text@master:/a.txt", b"hello\n")
        state, log = _run(c, tmp_path, "big", "open('/pfs/out/big', 'wb').write(b'x' * (2 << 20))\n")
        assert state == "failure"
        assert "over the limit of 1048576" in log


def _running(marker: str) -> bool:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def test_a_background_process_is_killed_and_reported(tmp_path: Path) -> None:
    with _client(tmp_path) as c:
        c.create_repo("text")
        c.put_file("text@master:/a.txt", b"hello\n")
        code = ("import subprocess\nsubprocess.Popen(['sleep', '307.25'])\n"
                "open('/pfs/out/done', 'w').write('yes')\n")
        state, log = _run(c, tmp_path, "daemon", code)
        assert state == "success", log
        assert "killed 1 process(es) still running when the command ended" in log
        assert not _running("307.25")


def test_transform_user_maps_onto_the_sandbox_uid(tmp_path: Path) -> None:
    with _client(tmp_path) as c:
        c.create_repo("text")
        c.put_file("text@master:/a.txt", b"hello\n")
        code = "import os\nopen('/pfs/out/id', 'w').write(f'{os.getuid()}:{os.getgid()}')\n"
        state, log = _run(c, tmp_path, "asuser", code, transform_user="1000:1001")
        assert state == "success", log
        assert c.get_file("asuser@master:/id") == b"1000:1001"
        state, log = _run(c, tmp_path, "nosuch", code, transform_user="no-such-user-here")
        assert state == "failure"
        assert "transform.user 'no-such-user-here' is not a user here" in log
