"""Habits people bring from git, pachctl and kubectl: --version, diff --patch, logs --follow."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

TUSK = [sys.executable, "-m", "tusk"]


def _tusk(home: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = {"TUSK_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(home.parent), "TUSK_RUNTIME": "local"}
    return subprocess.run([*TUSK, *args], input=stdin.decode() if stdin else None, capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def test_version(tmp_path: Path) -> None:
    from tusk import __version__

    r = _tusk(tmp_path / "home", "--version")
    assert r.returncode == 0 and r.stdout.strip() == f"tusk {__version__}"


def test_diff_patch_shows_a_unified_diff_of_text_and_summarizes_binary(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _tusk(home, "repo", "create", "r").returncode == 0
    assert _tusk(home, "put", "file", "r@master:/notes.txt", "-f", "-", stdin=b"alpha\nbeta\ngamma\n").returncode == 0
    (tmp_path / "blob").write_bytes(bytes(range(256)))
    with_blob = _tusk(home, "put", "file", "r@master:/blob", "-f", str(tmp_path / "blob"))
    assert with_blob.returncode == 0
    assert _tusk(home, "put", "file", "r@master:/notes.txt", "-f", "-", stdin=b"alpha\nBETA\ngamma\ndelta\n"
                 ).returncode == 0
    r = _tusk(home, "diff", "file", "r@master", "--patch")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["--- a/notes.txt", "+++ b/notes.txt", "@@ -1,3 +1,4 @@", " alpha", "-beta",
                                     "+BETA", " gamma", "+delta"]
    r = _tusk(home, "diff", "file", "r@master^", "--patch")
    assert r.stdout.strip() == "Binary files a/blob and b/blob differ (0 B → 256 B)"
    r = _tusk(home, "diff", "file", "r@master", "r@master^^", "-p")  # two commits apart, both files
    assert "+delta" in r.stdout and "Binary files a/blob" in r.stdout


def test_logs_follow_prints_lines_as_datums_finish_until_the_job_ends(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _tusk(home, "repo", "create", "in").returncode == 0
    for i in range(3):
        assert _tusk(home, "put", "file", f"in@master:/{i}", "-f", "-", stdin=f"{i}".encode()).returncode == 0
    (tmp_path / "code").mkdir()
    spec = tmp_path / "code" / "slow.json"
    spec.write_text('{"pipeline": {"name": "slow"}, "transform": {"cmd": ["sh", "-c", '
                    '"sleep 1; echo line-$(cat /pfs/in/*); cp /pfs/in/* /pfs/out/"]},'
                    ' "input": {"pfs": {"repo": "in", "glob": "/*"}}, "parallelism_spec": {"constant": 1}}')
    creator = threading.Thread(target=_tusk, args=(home, "pipeline", "create", "-f", str(spec)))
    creator.start()
    job = ""
    deadline = time.monotonic() + 60
    while not job and time.monotonic() < deadline:
        listed = _tusk(home, "job", "list", "--json").stdout
        if '"id"' in listed:
            job = listed.split('"id": "', 1)[1].split('"', 1)[0]
        time.sleep(0.2)
    followed = _tusk(home, "logs", "--job", job, "--follow", "--poll", "0.2")
    creator.join()
    assert followed.returncode == 0, followed.stderr
    lines = [line.split(" ", 2)[2] for line in followed.stdout.splitlines()]
    assert sorted(lines) == ["line-0", "line-1", "line-2"]  # each once, none missed


def test_contexts_name_where_to_work(tmp_path: Path) -> None:
    config = tmp_path / "config.json"

    def tusk(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        full = {"TUSK_CONFIG": str(config), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env}
        return subprocess.run([*TUSK, *args], capture_output=True, text=True, env=full, timeout=120, check=False)

    assert tusk("context", "create", "laptop", "--home", str(tmp_path / "store")).returncode == 0
    assert tusk("context", "create", "team", "--address", "http://127.0.0.1:9", "--token", "tusk_x_secret0123"
                ).returncode == 0
    assert config.stat().st_mode & 0o077 == 0  # it holds tokens
    assert tusk("repo", "create", "here").returncode == 0  # the first context created is current
    assert (tmp_path / "store" / "tusk.db").exists()
    listed = tusk("context", "list", "--json")
    assert "secret0123" not in listed.stdout and '"current": "*"' in listed.stdout
    assert tusk("use", "context", "team").returncode == 0  # pachctl's order
    remote = tusk("repo", "list")
    assert remote.returncode == 4 and "cannot reach the Tusk server at http://127.0.0.1:9" in remote.stderr
    assert "here" in tusk("repo", "list", TUSK_CONTEXT="laptop").stdout  # one command, another context
    assert "here" in tusk("repo", "list", TUSK_ADDRESS="", TUSK_CONTEXT="none",
                          TUSK_HOME=str(tmp_path / "store")).stdout  # the environment wins
    missing = tusk("repo", "list", TUSK_CONTEXT="nosuch")
    assert missing.returncode == 2 and "no context 'nosuch'" in missing.stderr
    assert tusk("context", "delete", "team").returncode == 0
    assert tusk("context", "create", "bad name!", "--home", "x").returncode == 2


def test_a_trigger_branch_that_does_not_exist_is_made_and_branch_list_shows_triggers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _tusk(home, "repo", "create", "data").returncode == 0
    assert _tusk(home, "put", "file", "data@master:/a", "-f", "-", stdin=b"a").returncode == 0
    r = _tusk(home, "branch", "create", "data@master", "--trigger-branch", "staging", "--trigger-commits", "2",
              "--trigger-size", "1MiB")
    assert r.returncode == 0, r.stderr
    assert "(follows staging: 2 commits or 1.0 MiB)" in r.stdout
    assert "created branch data@staging" in r.stdout
    listed = _tusk(home, "--json", "branch", "list", "data")
    import json

    rows = {b["name"]: b for b in json.loads(listed.stdout)}
    assert rows["master"]["trigger"] == "staging: 2 commits or 1.0 MiB"
    assert rows["staging"]["trigger"] is None and rows["staging"]["head"] == rows["master"]["head"]
    table = _tusk(home, "branch", "list", "data").stdout
    assert "TRIGGER" in table and "staging: 2 commits" in table
    # one commit on staging: master waits; the second moves it
    assert _tusk(home, "put", "file", "data@staging:/b", "-f", "-", stdin=b"b").returncode == 0
    rows = {b["name"]: b for b in json.loads(_tusk(home, "--json", "branch", "list", "data").stdout)}
    assert rows["master"]["head"] != rows["staging"]["head"]
    assert _tusk(home, "put", "file", "data@staging:/c", "-f", "-", stdin=b"c").returncode == 0
    rows = {b["name"]: b for b in json.loads(_tusk(home, "--json", "branch", "list", "data").stdout)}
    assert rows["master"]["head"] == rows["staging"]["head"]
    himself = _tusk(home, "branch", "create", "data@x", "--trigger-branch", "x", "--trigger-commits", "1")
    assert himself.returncode == 2 and "cannot follow itself" in himself.stderr


def test_user_text_is_printed_as_it_is_not_as_markup(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _tusk(home, "repo", "create", "r").returncode == 0
    put = _tusk(home, "put", "file", "r@master:/[bold]x.txt", "-f", "-", stdin=b"1")
    assert put.returncode == 0, put.stderr
    assert "/[bold]x.txt" in _tusk(home, "list", "file", "r@master").stdout
    assert "/[bold]x.txt" in _tusk(home, "diff", "file", "r@master").stdout


def test_list_datum_takes_a_pipeline_or_pipeline_at_job(tmp_path: Path) -> None:
    import json

    home = tmp_path / "home"
    assert _tusk(home, "repo", "create", "in").returncode == 0
    assert _tusk(home, "put", "file", "in@master:/a", "-f", "-", stdin=b"a").returncode == 0
    spec = tmp_path / "copy.json"
    spec.write_text('{"pipeline": {"name": "copy"}, "transform": {"cmd": ["sh", "-c", "cp /pfs/in/* /pfs/out/"]},'
                    ' "input": {"pfs": {"repo": "in", "glob": "/*"}}}')
    assert _tusk(home, "pipeline", "create", "-f", str(spec)).returncode == 0
    assert _tusk(home, "put", "file", "in@master:/b", "-f", "-", stdin=b"b").returncode == 0
    jobs = json.loads(_tusk(home, "--json", "list", "job", "--pipeline", "copy").stdout)
    latest = json.loads(_tusk(home, "--json", "list", "datum", "copy").stdout)
    assert len(latest) == 2 and {d["state"] for d in latest} == {"success", "skipped"}
    first = json.loads(_tusk(home, "--json", "list", "datum", f"copy@{jobs[-1]['id'][:8]}").stdout)
    assert [d["state"] for d in first] == ["success"]
    wrong = _tusk(home, "list", "datum", f"other@{jobs[-1]['id'][:8]}")
    assert wrong.returncode == 2 and "belongs to pipeline copy" in wrong.stderr


def test_inspect_commit_global_lists_every_commit_one_user_commit_caused(tmp_path: Path) -> None:
    import json

    home = tmp_path / "home"
    assert _tusk(home, "repo", "create", "in").returncode == 0
    spec = tmp_path / "copy.json"
    spec.write_text('{"pipeline": {"name": "copy"}, "transform": {"cmd": ["sh", "-c", "cp /pfs/in/* /pfs/out/"]},'
                    ' "input": {"pfs": {"repo": "in", "glob": "/*"}}}')
    assert _tusk(home, "pipeline", "create", "-f", str(spec)).returncode == 0
    assert _tusk(home, "put", "file", "in@master:/a", "-f", "-", stdin=b"a").returncode == 0
    r = _tusk(home, "--json", "inspect", "commit", "in@master", "--global")
    assert r.returncode == 0, r.stderr
    assert sorted(c["repo"] for c in json.loads(r.stdout)) == ["copy", "in"]
